package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
)

// dialClientEPWS connects a client endpoint over WebSocket.
func dialClientEPWS(t testing.TB, url string) *proto.EndPoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := ws.Dial(ctx, url, ws.DialOptions{Protocols: []string{ws.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := proto.NewClient(c, clientCfg())
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

// TestWSEndToEndMany: TestEndToEndMany over WebSocket: 100 WebSocket
// clients (proto.NewClient over ws.Client) × 10 virtual connections × 1000
// messages each way; every message arrives once, in order, byte for byte. Each virtual
// connection keeps a window of messages in flight; servers answer each
// message with one of their own, numbered on their side.
func TestWSEndToEndMany(t *testing.T) {
	// The full size runs without the race detector (11.6 s here, with
	// TestEndToEndMany at 4.6 s, on 2 cores at load 15); under it, which
	// slows the masking and decoding several times, 200 messages each way
	// (-short: 20 clients, 200).
	start := time.Now()
	clients, vconns, msgs := 100, 10, scaled(1000, 200, 200)
	if testing.Short() {
		clients = 20
	}
	const servers, window = 4, 32
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})

	var wg sync.WaitGroup
	errc := make(chan error, clients*vconns*2+servers)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	// Servers: each accepted virtual connection checks the client's
	// sequence and answers every message with its own next number.
	for sid := uint32(1); sid <= servers; sid++ {
		ep := g.dialServerEP(t, sid)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cw sync.WaitGroup
			defer cw.Wait()
			for {
				c, err := ep.Accept()
				if err != nil {
					return // endpoint closed at the end of the test
				}
				cw.Add(1)
				go func() {
					defer cw.Done()
					buf := make([]byte, 8)
					for want := uint32(0); ; want++ {
						m, err := c.Receive()
						if err == io.EOF {
							if want != uint32(msgs) {
								fail(fmt.Errorf("server %d conn %d: EOF after %d messages", sid, c.ConnID(), want))
							}
							return
						}
						if err != nil {
							fail(err)
							return
						}
						b := m.([]byte)
						if got := binary.LittleEndian.Uint32(b); got != want || binary.LittleEndian.Uint32(b[4:]) != c.ConnID() {
							fail(fmt.Errorf("server %d conn %d: got seq %d, want %d", sid, c.ConnID(), got, want))
							return
						}
						binary.LittleEndian.PutUint32(buf, want)
						binary.LittleEndian.PutUint32(buf[4:], sid)
						if err := c.Send(buf); err != nil {
							fail(err)
							return
						}
					}
				}()
			}
		}()
	}

	var cwg sync.WaitGroup
	for i := range clients {
		ep := dialClientEPWS(t, url)
		for v := range vconns {
			sid := uint32((i+v)%servers + 1)
			c, err := ep.Dial(sid)
			if err != nil {
				t.Fatalf("client %d dial %d: %v", i, sid, err)
			}
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				defer c.Close()
				credits := make(chan struct{}, window)
				for range window {
					credits <- struct{}{}
				}
				recvDone := make(chan struct{})
				go func() {
					defer close(recvDone)
					for want := uint32(0); want < uint32(msgs); want++ {
						m, err := c.Receive()
						if err != nil {
							fail(fmt.Errorf("client conn %d: receive %d: %w", c.ConnID(), want, err))
							return
						}
						b := m.([]byte)
						if got := binary.LittleEndian.Uint32(b); got != want || binary.LittleEndian.Uint32(b[4:]) != sid {
							fail(fmt.Errorf("client conn %d: got seq %d from %d, want %d from %d", c.ConnID(), got, binary.LittleEndian.Uint32(b[4:]), want, sid))
							return
						}
						credits <- struct{}{}
					}
				}()
				buf := make([]byte, 8)
				for seq := range uint32(msgs) {
					select {
					case <-credits:
					case <-recvDone:
						return
					}
					binary.LittleEndian.PutUint32(buf, seq)
					binary.LittleEndian.PutUint32(buf[4:], c.ConnID())
					if err := c.Send(buf); err != nil {
						fail(err)
						return
					}
				}
				<-recvDone
			}()
		}
	}
	cwg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	// Every virtual connection is closed by its client; the servers saw
	// every message before EOF.
	eventually(t, "virtual connections closed", func() bool { return g.Stats().VirtualConns == 0 })
	st := g.Stats()
	want := uint64(clients * vconns * msgs)
	if st.FramesDropped != 0 {
		t.Fatalf("%d frames dropped", st.FramesDropped)
	}
	if st.WS.Accepts != uint64(clients) {
		t.Fatalf("ws accepts %d, want %d", st.WS.Accepts, clients)
	}
	if st.WS.Traffic.FramesIn < want || st.WS.Traffic.FramesOut < want {
		t.Fatalf("ws frames in %d, out %d; want at least %d each", st.WS.Traffic.FramesIn, st.WS.Traffic.FramesOut, want)
	}
	for _, r := range Reasons() {
		if n := st.Disconnected(r); n != 0 {
			t.Fatalf("%d disconnects for %s", n, r)
		}
	}
	if st.DialsAccepted != uint64(clients*vconns) {
		t.Fatalf("DialsAccepted = %d, want %d", st.DialsAccepted, clients*vconns)
	}
	if st.Client.FramesIn < want || st.Server.FramesIn < want {
		t.Fatalf("frames in: client %d, server %d; want at least %d each", st.Client.FramesIn, st.Server.FramesIn, want)
	}
	t.Logf("%d WebSocket clients × %d virtual connections × %d messages each way: %d messages in order, byte for byte, in %v; ws frames in %d, out %d",
		clients, vconns, msgs, 2*want, time.Since(start).Round(time.Millisecond), st.WS.Traffic.FramesIn, st.WS.Traffic.FramesOut)
	g.Shutdown(t.Context())
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}
