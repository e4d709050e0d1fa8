package gateway

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
	gws "github.com/gobwas/ws"
)

// A hostile WebSocket peer: each attack must close only the offender,
// be counted, and leave the gateway serving the others, whose round trips
// are checked throughout.

// echoer is an honest WebSocket client with a virtual connection to
// server 1, for round trips during an attack.
type echoer struct {
	c  *peer
	s  *peer
	id uint32
	n  int
}

func newEchoer(t *testing.T, g *testGW, url string, s *peer) *echoer {
	c, _ := dialWS(t, url, ws.DialOptions{})
	id, _ := open(t, c, s, 1)
	return &echoer{c: c, s: s, id: id}
}

// roundTrip sends a message each way and returns how long it took.
func (e *echoer) roundTrip() time.Duration {
	e.c.t.Helper()
	start := time.Now()
	msg := fmt.Sprint("round trip ", e.n)
	e.n++
	e.c.sendData(e.id, msg)
	e.s.expectData(e.id, msg)
	e.s.sendData(e.id, msg)
	e.c.expectData(e.id, msg)
	return time.Since(start)
}

// TestWSHostileHandshakeFlood: a flood of connections that trickle their
// requests a byte at a time (slowloris), more than MaxHandshakes, while an
// upgraded client keeps exchanging: the flood is closed at the handshake
// timeout, counted as timeout (and overflow: the oldest closed to make
// room for the newer ones past the cap), the honest
// client's round trips go on, and new clients get in once it is over.
func TestWSHostileHandshakeFlood(t *testing.T) {
	const flood, maxHS, timeout = 300, 200, 500 * time.Millisecond
	g := startGW(t, Config{})
	// The flood comes from one address: the per-source cap is off, so
	// that it fills every slot (TestHandshakesPerSource has the cap).
	url, wl := startWSL(t, g, ws.Config{HandshakeTimeout: timeout, MaxHandshakes: maxHS, MaxHandshakesPerSource: -1})
	s := g.dialServer(t, 1)
	e := newEchoer(t, g, url, s)
	conns := make([]net.Conn, flood)
	for i := range conns {
		conns[i] = dialRaw(t, wl.Addr().String())
	}
	req := []byte(upgradeRequest("/", ""))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(req)-2; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, c := range conns {
				c.SetWriteDeadline(time.Now().Add(waitFor))
				c.Write(req[i : i+1])
			}
		}
	})
	var worst time.Duration
	deadline := time.Now().Add(2 * waitFor)
	for !func() bool {
		st := wl.Stats()
		return st.Failed[ws.FailTimeout]+st.Failed[ws.FailOverflow] >= flood && st.InProgress == 0
	}() {
		if time.Now().After(deadline) {
			t.Fatalf("the flood not over: %+v", wl.Stats())
		}
		worst = max(worst, e.roundTrip())
	}
	close(stop)
	wg.Wait()
	for _, c := range conns {
		expectSocketEnd(t, c)
	}
	st := wl.Stats()
	t.Logf("flood of %d: %d timed out, %d overflowed; the honest client's worst round trip %v over %d", flood, st.Failed[ws.FailTimeout], st.Failed[ws.FailOverflow], worst, e.n)
	if st.Failed[ws.FailTimeout] < maxHS || st.Failed[ws.FailOverflow] == 0 {
		t.Fatalf("timeouts %d, overflows %d; want at least %d and some", st.Failed[ws.FailTimeout], st.Failed[ws.FailOverflow], maxHS)
	}
	if worst > waitFor/2 {
		t.Fatalf("the honest client's round trip took %v during the flood", worst)
	}
	c, _ := dialWS(t, url, ws.DialOptions{})
	c.ping()
}

// TestWSHostilePingFlood: a client that floods WebSocket Pings (and, in
// its own run, §1 Pings) and never reads: the gateway answers until the
// client's socket is full, then closes it (a Pong the socket will not
// take within the control timeout: a write error; the §1 answers by the
// slow-consumer bound), holding bounded memory meanwhile, and the honest
// client is not delayed. The Pong's failure was counted as "peer closed"
// (the read after it found the socket closed) before ws.ErrControlWrite.
func TestWSHostilePingFlood(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frame  []byte
		reason Reason
	}{
		{"websocket", wsFrame(gws.OpPing, true, bytes.Repeat([]byte("p"), 125)), ReasonWriteError},
		{"protocol", wsFrame(gws.OpBinary, true, bytes.Repeat(proto.Command{Type: proto.CmdPing}.Encode(nil), 13)), ReasonSlowConsumer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := &bytesPool{Pool: slab.NewAtomPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor, slab.DefaultPageSize)}
			g := startGW(t, Config{MemPool: pool})
			// A small send buffer toward the clients: the flooder's
			// socket is full after KiBs, not the MiBs the kernel's
			// autotuning would let it take first.
			url := startWSSmallSend(t, g)
			s := g.dialServer(t, 1)
			e := newEchoer(t, g, url, s)
			_, bad := dialWS(t, url, ws.DialOptions{})
			bad.NetConn().(*net.TCPConn).SetReadBuffer(4 << 10)
			eventually(t, "both clients in", func() bool { return g.Stats().WS.Conns == 2 })
			burst := bytes.Repeat(tc.frame, 64)
			flooded := make(chan error, 1)
			go func() {
				bad.NetConn().SetWriteDeadline(time.Now().Add(4 * waitFor))
				for {
					if _, err := bad.NetConn().Write(burst); err != nil {
						flooded <- err
						return
					}
				}
			}()
			var worst time.Duration
			// The Pongs must first fill the gateway's send buffer (up to
			// 4 MiB here: 33,000 of them) and then wait out the 5 s control
			// timeout; on a machine loaded by other work that took over 15 s
			// once.
			deadline := time.Now().Add(6 * waitFor)
			for g.Stats().WS.Conns != 1 {
				if time.Now().After(deadline) {
					st := g.Stats()
					t.Fatalf("the flooder was not closed: ws %+v client %+v hw %v", st.WS.Traffic, st.Client, st.QueueHighWater)
				}
				worst = max(worst, e.roundTrip())
			}
			if err := <-flooded; err == nil {
				t.Fatal("the flood's writes did not fail")
			}
			st := g.Stats()
			if want := tc.reason; st.WS.Disconnects[want] != 1 {
				t.Fatalf("disconnects %v, want the flooder's under %s", st.WS.Disconnects, want)
			}
			t.Logf("flooder closed (disconnects %v); pool peak %d KiB; the honest client's worst round trip %v over %d",
				st.WS.Disconnects, pool.peak.Load()>>10, worst, e.n)
			if worst > waitFor/2 {
				t.Fatalf("the honest client's round trip took %v during the flood", worst)
			}
			if p := pool.peak.Load(); p > 4<<20 {
				t.Fatalf("the gateway's buffers peaked at %d KiB", p>>10)
			}
			e.roundTrip()
		})
	}
}

// TestWSHostileGiantLength: a frame that declares 2^62 payload bytes is a
// stream like any other (message boundaries mean nothing): the §1 frames
// inside it are forwarded, and a §1 frame past MaxPacket inside it is a
// protocol error, as on TCP (its Close frame says 1000: docs/protocol.md
// §8 gives 1002 to the WebSocket layer's errors only).
func TestWSHostileGiantLength(t *testing.T) {
	g := startGW(t, Config{MaxPacket: 64 << 10})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	e := newEchoer(t, g, url, s)
	c, wc := dialWS(t, url, ws.DialOptions{})
	id, _ := open(t, c, s, 1)
	hdr := []byte{0x82, 0x80 | 127, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // mask 0: payload as is
	wc.NetConn().Write(hdr)
	for i := range 5 {
		wc.NetConn().Write(proto.EncodeData(nil, id, []byte(fmt.Sprint("inside ", i))))
		s.expectData(id, fmt.Sprint("inside ", i))
		e.roundTrip()
	}
	var big [8]byte
	big[0], big[1], big[2] = 0xff, 0xff, 0xff // Length 16 MiB
	wc.NetConn().Write(big[:])
	expectWSClose(t, wc, gws.StatusNormalClosure, false)
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	eventually(t, "a protocol error counted", func() bool { return g.Stats().WS.Disconnects[ReasonProtocolError] == 1 })
	e.roundTrip()
}

// TestWSHostileCloseStorm: clients that send a burst of Close frames (and
// data after them), and a crowd that connects and Closes at once: each
// gets one Close back, is counted peer closed, and nothing after its
// first Close is read.
func TestWSHostileCloseStorm(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{MaxHandshakesPerSource: -1}) // the crowd comes from one address
	s := g.dialServer(t, 1)
	e := newEchoer(t, g, url, s)
	c, wc := dialWS(t, url, ws.DialOptions{})
	id, _ := open(t, c, s, 1)
	var storm []byte
	for range 100 {
		storm = append(storm, wsFrame(gws.OpClose, true, []byte{0x03, 0xe8})...)
		storm = append(storm, wsFrame(gws.OpBinary, true, proto.EncodeData(nil, id, []byte("after close")))...)
	}
	wc.NetConn().Write(storm)
	expectWSClose(t, wc, gws.StatusNormalClosure, false)
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	crowd := scaled(200, 100, 50)
	var wg sync.WaitGroup
	errs := make(chan error, crowd)
	for range crowd {
		wg.Go(func() {
			ctx := t.Context()
			cl, err := ws.Dial(ctx, url, ws.DialOptions{})
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			cl.WriteFrame(gws.OpClose, true, nil)
			cl.SetReadDeadline(time.Now().Add(waitFor))
			if _, _, err := cl.ReadMessage(); err == nil {
				errs <- fmt.Errorf("a message before the Close")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, "the storm counted", func() bool {
		st := g.Stats()
		return st.WS.Disconnects[ReasonPeerClosed] == uint64(crowd+1) && st.WS.Conns == 1
	})
	e.roundTrip()
}

// TestWSHostileHalfOpen: upgrades left half done: a client that sends its
// request and shuts its writing side, one that resets the connection right
// after its request, and one that never reads the 101 nor sends anything:
// the first two are closed at once (peer closed, or counted io), the last
// at the idle timeout; nobody else is touched.
func TestWSHostileHalfOpen(t *testing.T) {
	const idle = 300 * time.Millisecond
	g := startGW(t, Config{ClientIdleTimeout: idle})
	url, wl := startWSL(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	e := newEchoer(t, g, url, s)
	// The honest client stays active through the idle timeout.
	addr := wl.Addr().String()
	req := []byte(upgradeRequest("/", ""))

	fin := dialRaw(t, addr).(*net.TCPConn)
	fin.Write(req)
	fin.CloseWrite()
	rst := dialRaw(t, addr).(*net.TCPConn)
	rst.SetLinger(0)
	rst.Write(req)
	rst.Close()
	mute := dialRaw(t, addr).(*net.TCPConn)
	mute.SetReadBuffer(1 << 10)
	mute.Write(req)
	start := time.Now()
	for time.Since(start) < 3*idle {
		e.roundTrip()
	}
	st, ls := g.Stats(), wl.Stats()
	t.Logf("ws disconnects %v; handshakes %d upgraded, failed %v", st.WS.Disconnects, ls.Upgrades, ls.Failed)
	if st.WS.Conns != 1 || st.WS.Disconnects[ReasonIdleTimeout] != 1 {
		t.Fatalf("ws conns %d, idle disconnects %d; want 1 (the honest one), 1 (the mute one)", st.WS.Conns, st.WS.Disconnects[ReasonIdleTimeout])
	}
	if got := st.WS.Disconnects[ReasonPeerClosed] + ls.Failed[ws.FailIO]; got != 2 {
		t.Fatalf("the FIN and the reset: %d counted (peer closed + io), want 2", got)
	}
	if ls.Failed[ws.FailRequest] != 0 {
		t.Fatalf("%d counted as bad requests: each request was valid", ls.Failed[ws.FailRequest])
	}
	e.roundTrip()
}
