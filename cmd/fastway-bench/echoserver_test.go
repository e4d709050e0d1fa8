package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// startEchoServer serves the bare echo process on a loopback port until the
// test ends.
func startEchoServer(t *testing.T) string { return startEchoRelay(t, "") }

// startEchoRelay starts the -listen process in the test: an echo server, or
// with relay set a relay to that address. It returns its address.
func startEchoRelay(t *testing.T, relay string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newEchoServer(ln, proto.DefaultMaxPacket)
	s.relay = relay
	served := make(chan error, 1)
	go func() { served <- s.serve() }()
	t.Cleanup(func() {
		// close ends every connection (a relay's both copies) and waits
		// for them: bounded here, so a copy that does not end fails the
		// test instead of hanging it.
		closed := make(chan struct{})
		go func() { s.close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the echo server's close did not end its connections within 10 s")
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// readFrame reads one whole frame.
func readFrame(t *testing.T, c net.Conn) []byte {
	t.Helper()
	var h [proto.SizeOfLength]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatal(err)
	}
	f := make([]byte, proto.SizeOfLength+int(binary.LittleEndian.Uint32(h[:])))
	copy(f, h[:])
	if _, err := io.ReadFull(c, f[proto.SizeOfLength:]); err != nil {
		t.Fatal(err)
	}
	return f
}

func readCmd(t *testing.T, c net.Conn) proto.Command {
	t.Helper()
	cmd, err := proto.DecodeCommand(readFrame(t, c))
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestEchoServerAnswers(t *testing.T) {
	addr := startEchoServer(t)
	c := dialRaw(t, addr)

	// Two pipelined Dials: two Accepts, in order, with distinct ConnIDs.
	var b []byte
	b = proto.Command{Type: proto.CmdDial, RemoteID: 7}.Encode(b)
	b = proto.Command{Type: proto.CmdDial, RemoteID: 9}.Encode(b)
	write(t, c, b)
	a1, a2 := readCmd(t, c), readCmd(t, c)
	if a1.Type != proto.CmdAccept || a1.RemoteID != 7 || a1.ConnID == 0 ||
		a2.Type != proto.CmdAccept || a2.RemoteID != 9 || a2.ConnID == 0 || a2.ConnID == a1.ConnID {
		t.Fatalf("replies %+v %+v, want Accept of 7 then 9 with distinct ConnIDs", a1, a2)
	}
	if got := readCmdAfter(t, c, proto.Command{Type: proto.CmdDial}.Encode(nil)); got.Type != proto.CmdAccept || got.RemoteID != 0 || got.ConnID == 0 {
		t.Fatalf("Dial(0) got %+v, want Accept of server 0", got)
	}

	// Data frames come back unchanged, a large one too (read buffer growth).
	for _, n := range []int{0, 5, 100 << 10} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		frame := proto.EncodeData(nil, a1.ConnID, msg)
		write(t, c, frame)
		if got := readFrame(t, c); !bytes.Equal(got, frame) {
			t.Fatalf("data frame of %d bytes came back as %d bytes", len(frame), len(got))
		}
	}

	if got := readCmdAfter(t, c, proto.Command{Type: proto.CmdPing}.Encode(nil)); got.Type != proto.CmdPing {
		t.Fatalf("Ping got %+v", got)
	}
	cl := proto.Command{Type: proto.CmdClose, ConnID: a2.ConnID}
	if got := readCmdAfter(t, c, cl.Encode(nil)); got != cl {
		t.Fatalf("Close got %+v, want %+v", got, cl)
	}

	// Accept is the gateway's to send: the connection is closed.
	write(t, c, proto.Command{Type: proto.CmdAccept, ConnID: 1, RemoteID: 1}.Encode(nil))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after Accept from a client: read %d, %v; want EOF", n, err)
	}
}

func readCmdAfter(t *testing.T, c net.Conn, b []byte) proto.Command {
	t.Helper()
	write(t, c, b)
	return readCmd(t, c)
}

func TestEchoServerRejectsBadLength(t *testing.T) {
	addr := startEchoServer(t)
	c := dialRaw(t, addr)
	write(t, c, []byte{3, 0, 0, 0, 0, 0, 0}) // Length 3 < 4
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %d, %v; want EOF", n, err)
	}
}
