package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/fastway-go/fastway/proto"
)

// End-to-end tests: the real gateway on loopback with the real endpoints
// (proto.NewClient, proto.DialServer) on both sides.

func clientCfg() proto.EndPointCfg { return proto.EndPointCfg{} }

func serverCfg(id uint32) proto.EndPointCfg {
	return proto.EndPointCfg{ServerID: id, AuthKey: testKey}
}

// dialServerEP connects an endpoint server and waits until the gateway has
// registered it: a client's probe Dial is accepted.
func (g *testGW) dialServerEP(t testing.TB, id uint32) *proto.EndPoint {
	t.Helper()
	ep, err := proto.DialServerAddr("tcp", g.serverAddr, serverCfg(id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	eventually(t, fmt.Sprintf("server %d registered", id), func() bool { return g.servers.newest(id) != nil })
	return ep
}

func (g *testGW) dialClientEP(t testing.TB) *proto.EndPoint {
	t.Helper()
	ep, err := proto.DialClientAddr("tcp", g.clientAddr, clientCfg())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

// TestEndToEndMany: 100 clients × 10 virtual connections × 1000 messages
// each way; every message arrives once and in order. Each virtual
// connection keeps a window of messages in flight; servers answer each
// message with one of their own, numbered on their side.
func TestEndToEndMany(t *testing.T) {
	clients, vconns, msgs := 100, 10, 1000
	if testing.Short() {
		clients, msgs = 20, 200
	}
	const servers, window = 4, 32
	g := startGW(t, Config{})

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
		ep := g.dialClientEP(t)
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
	g.Shutdown(t.Context())
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

func TestEndToEndServerDialsClient(t *testing.T) {
	g := startGW(t, Config{})
	srv := g.dialServerEP(t, 9)
	cli := g.dialClientEP(t)
	c, err := cli.Dial(9)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if sc.ConnID() != c.ConnID() || c.RemoteID() != 9 {
		t.Fatalf("conn IDs %d/%d, remote %d", sc.ConnID(), c.ConnID(), c.RemoteID())
	}
	// The server now knows the client's gateway ID and dials it back.
	back, err := srv.Dial(sc.RemoteID())
	if err != nil {
		t.Fatal(err)
	}
	in, err := cli.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if in.ConnID() != back.ConnID() || in.RemoteID() != 9 {
		t.Fatalf("client accepted %d from %d; want %d from 9", in.ConnID(), in.RemoteID(), back.ConnID())
	}
	if err := back.Send([]byte("push")); err != nil {
		t.Fatal(err)
	}
	if m, err := in.Receive(); err != nil || string(m.([]byte)) != "push" {
		t.Fatalf("Receive = %q, %v", m, err)
	}
	if err := in.Send([]byte("ack")); err != nil {
		t.Fatal(err)
	}
	if m, err := back.Receive(); err != nil || string(m.([]byte)) != "ack" {
		t.Fatalf("Receive = %q, %v", m, err)
	}
}

func TestEndToEndRefusedAndClosed(t *testing.T) {
	g := startGW(t, Config{})
	srv := g.dialServerEP(t, 1)
	cli := g.dialClientEP(t)
	if _, err := cli.Dial(2); !errors.Is(err, proto.ErrRefused) {
		t.Fatalf("Dial(2) = %v, want ErrRefused", err)
	}
	c, err := cli.Dial(1)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// Close from the client: the server's Receive ends with io.EOF.
	c.Send([]byte("last"))
	c.Close()
	if m, err := sc.Receive(); err != nil || string(m.([]byte)) != "last" {
		t.Fatalf("Receive = %q, %v", m, err)
	}
	if _, err := sc.Receive(); err != io.EOF {
		t.Fatalf("Receive after Close = %v, want io.EOF", err)
	}
	if _, err := c.Receive(); err != io.EOF {
		t.Fatalf("Receive after own Close = %v, want io.EOF", err)
	}

	// A client's physical disconnect closes its virtual connections at the
	// server.
	if _, err := cli.Dial(1); err != nil {
		t.Fatal(err)
	}
	sc2, err := srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cli.Close()
	if _, err := sc2.Receive(); err != io.EOF {
		t.Fatalf("Receive after client disconnect = %v, want io.EOF", err)
	}
	// And a server's disconnect closes them at the clients.
	cli2 := g.dialClientEP(t)
	c3, err := cli2.Dial(1)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := c3.Receive(); err != io.EOF {
		t.Fatalf("Receive after server disconnect = %v, want io.EOF", err)
	}
}
