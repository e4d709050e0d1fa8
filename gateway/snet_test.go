package gateway

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/faultproxy"
	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/snet"
)

// shrunkListener gives accepted connections small socket buffers, so the
// bytes in flight stay well below the snet rewrite buffer.
type shrunkListener struct{ net.Listener }

func (l shrunkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		faultproxy.Shrink(c)
	}
	return c, err
}

func snetListen(t testing.TB, cfg snet.Config) net.Listener {
	t.Helper()
	ln, err := snet.Listen(cfg, func() (net.Listener, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		return shrunkListener{ln}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func snetDialer(addr string) func() (net.Conn, error) {
	return func() (net.Conn, error) {
		c, err := net.DialTimeout("tcp", addr, waitFor)
		if err == nil {
			faultproxy.Shrink(c)
		}
		return c, err
	}
}

// TestSnetThroughGatewaySurvivesCuts: 10 MiB each way through the gateway,
// snet on both of its ports, while a proxy cuts the client's TCP connection
// at random points at least 20 times. Every byte arrives once and in order,
// and the virtual connection survives. Plain and encrypted.
func TestSnetThroughGatewaySurvivesCuts(t *testing.T) {
	const total = 10 << 20
	const msgSize = 8 << 10
	for i, crypt := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "crypt"}[crypt], func(t *testing.T) {
			cfg := snet.Config{
				EnableCrypt:        crypt,
				RewriterBufferSize: 1 << 20,
				HandshakeTimeout:   2 * time.Second,
				ReconnWaitTimeout:  10 * time.Second,
			}
			g := New(Config{
				ServerAuthPassword:   testKey,
				Logger:               discard(),
				ClientSendChanSize:   4 * total / msgSize, // a reconnect may stall the client for a while
				ClientSendQueueBytes: 4 * total,
			})
			cl, sl := snetListen(t, cfg), snetListen(t, cfg)
			errc := make(chan error, 2)
			go func() { errc <- g.ServeClients(cl) }()
			go func() { errc <- g.ServeServers(sl) }()
			t.Cleanup(func() {
				g.Stop()
				<-errc
				<-errc
			})

			sconn, err := snet.Dial(cfg, snetDialer(sl.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			srv, err := proto.DialServer(sconn, serverCfg(1))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			eventually(t, "server registered", func() bool { return g.servers.newest(1) != nil })

			proxy := faultproxy.New(t, cl.Addr().String(), uint64(i+7))
			cconn, err := snet.Dial(cfg, snetDialer(proxy.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			cli, err := proto.NewClient(cconn, proto.EndPointCfg{})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			c, err := cli.Dial(1)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := srv.Accept()
			if err != nil {
				t.Fatal(err)
			}
			proxy.Arm()

			start := time.Now()
			errs := make(chan error, 4)
			send := func(conn *proto.Conn, seed byte) {
				msg := make([]byte, msgSize)
				for seq := range total / msgSize {
					fill(msg, seed, seq)
					if err := conn.Send(msg); err != nil {
						errs <- fmt.Errorf("send %d: %w", seq, err)
						return
					}
				}
				errs <- nil
			}
			recv := func(conn *proto.Conn, seed byte) {
				want := make([]byte, msgSize)
				for seq := range total / msgSize {
					m, err := conn.Receive()
					if err != nil {
						errs <- fmt.Errorf("receive %d: %w", seq, err)
						return
					}
					fill(want, seed, seq)
					if !bytes.Equal(m.([]byte), want) {
						errs <- fmt.Errorf("message %d corrupted or out of order", seq)
						return
					}
				}
				errs <- nil
			}
			go send(c, 1)
			go recv(sc, 1)
			go send(sc, 2)
			go recv(c, 2)
			deadline := time.After(2 * time.Minute) // RC4 under -race on a shared box is slow
			for range 4 {
				select {
				case err := <-errs:
					if err != nil {
						t.Fatal(err)
					}
				case <-deadline:
					t.Fatalf("timed out after %d cuts", proxy.Cuts())
				}
			}
			cuts := proxy.Cuts()
			t.Logf("2 × %d MiB through the gateway with %d cuts in %v", total>>20, cuts, time.Since(start).Round(time.Millisecond))
			if cuts < 20 {
				t.Fatalf("only %d cuts", cuts)
			}
			st := g.Stats()
			if st.ClientConns != 1 || st.VirtualConns != 1 || st.FramesDropped != 0 {
				t.Fatalf("after the cuts: %d clients, %d virtual connections, %d dropped", st.ClientConns, st.VirtualConns, st.FramesDropped)
			}
			if err := cli.Err(); err != nil {
				t.Fatalf("client endpoint failed: %v", err)
			}
		})
	}
}

// fill writes message seq of a stream into b: its number, then a pattern.
func fill(b []byte, seed byte, seq int) {
	binary.LittleEndian.PutUint32(b, uint32(seq))
	for i := 4; i < len(b); i++ {
		b[i] = seed + byte(seq) + byte(i)
	}
}

// TestSnetServerPortFlood: 800 connections complete an snet handshake on a
// server port with snet (the 1 MiB buffer of -ServerSnetEnable) and then
// say nothing, so the gateway holds each in its server handshake until
// ServerAuthTimeout: the heap grows by little, since a session's rewrite
// buffer is allocated only as it writes (here: the 8-byte challenge). An
// honest server registers meanwhile and serves a client.
func TestSnetServerPortFlood(t *testing.T) {
	flood := 800
	if raceEnabled {
		flood = 400
	}
	cfg := snet.Config{RewriterBufferSize: 1 << 20, Logger: discard()}
	// Every flood session is from 127.0.0.1 and then waits in the
	// gateway's handshake: no throttle or per-source cap for this one.
	g := New(Config{ServerAuthPassword: testKey, Logger: discard(), ServerAuthTimeout: waitFor, ServerAuthFailBurst: -1, ServerMaxHandshakesPerSource: -1})
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := snet.Listen(cfg, func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	go func() { errc <- g.ServeClients(cl) }()
	go func() { errc <- g.ServeServers(sl) }()
	t.Cleanup(func() {
		g.Stop()
		<-errc
		<-errc
	})

	before := heapInUse()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range flood {
		c, err := snet.Dial(cfg, snet.TCPDialer(cfg, sl.Addr().String(), waitFor))
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	ls := sl.(*snet.Listener)
	eventually(t, "every flood session has its challenge", func() bool {
		st := ls.Stats()
		return st.Sessions == uint64(flood) && st.RewriteBytes >= flood*1024
	})
	grown := int64(heapInUse()) - int64(before)
	st := ls.Stats()
	t.Logf("%d snet sessions in their server handshake: heap +%.1f MiB (%.1f KiB each, both ends), %d KiB of rewrite buffers",
		flood, float64(grown)/(1<<20), float64(grown)/float64(flood)/1024, st.RewriteBytes>>10)
	if grown > 20<<20 {
		t.Errorf("heap grew by %.1f MiB, want under 20", float64(grown)/(1<<20))
	}

	// An honest server gets through.
	sconn, err := snet.Dial(cfg, snet.TCPDialer(cfg, sl.Addr().String(), waitFor))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proto.DialServer(sconn, serverCfg(1))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	eventually(t, "the honest server registered", func() bool { return g.servers.newest(1) != nil })
	c := &testGW{Gateway: g, clientAddr: cl.Addr().String()}
	cli := c.dialClientEP(t)
	vc, err := cli.Dial(1)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.Send([]byte("through the flood")); err != nil {
		t.Fatal(err)
	}
	if m, err := sc.Receive(); err != nil || string(m.([]byte)) != "through the flood" {
		t.Fatalf("received %q, %v", m, err)
	}
}

// heapInUse returns the bytes of live heap objects after a GC.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
