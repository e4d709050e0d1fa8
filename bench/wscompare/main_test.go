package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	fwws "github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
)

// TestServersEcho: every library's server answers a Dial, echoes a data
// frame split across two messages (the second carrying a Ping too), and
// answers each read with whole frames.
func TestServersEcho(t *testing.T) {
	for lib, serve := range servers {
		t.Run(lib, func(t *testing.T) {
			tl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := wrap(lib, tl)
			served := make(chan error, 1)
			go func() { served <- serve(ln, &echo{maxPacket: proto.DefaultMaxPacket}) }()
			defer func() {
				ln.Close()
				<-served
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := fwws.Dial(ctx, "ws://"+ln.Addr().String()+"/", fwws.DialOptions{Protocols: []string{fwws.Subprotocol}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if c.Protocol != fwws.Subprotocol {
				t.Errorf("subprotocol %q", c.Protocol)
			}
			data := proto.EncodeData(nil, 7, bytes.Repeat([]byte("x"), 5000)) // larger than nothing: spans reads
			ping := proto.Command{Type: proto.CmdPing}.Encode(nil)
			dial := proto.Command{Type: proto.CmdDial, RemoteID: 3}.Encode(nil)
			if _, err := c.Write(append(dial, data[:100]...)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(append(append([]byte(nil), data[100:]...), ping...)); err != nil {
				t.Fatal(err)
			}
			want := append(append(proto.Command{Type: proto.CmdAccept, ConnID: 1, RemoteID: 3}.Encode(nil), data...), ping...)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got %d bytes back, not the answers", len(got))
			}
		})
	}
}
