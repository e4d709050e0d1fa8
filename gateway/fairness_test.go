package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
)

// pacedReader reads from r at most rate bytes per second.
type pacedReader struct {
	r     io.Reader
	rate  float64
	start time.Time
	n     int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	// Sleep until the bytes read so far are due: pacing, not correctness.
	if due := p.start.Add(time.Duration(float64(p.n) / p.rate * float64(time.Second))); time.Until(due) > 0 {
		time.Sleep(time.Until(due))
	}
	n, err := p.r.Read(b[:min(len(b), 16<<10)])
	p.n += int64(n)
	return n, err
}

// floodUntilError writes frame to conn over and over, from a goroutine,
// until a write fails: the connection closes (at the test's end, or the
// gateway closes it) or waitFor passes.
func floodUntilError(conn net.Conn, frame []byte) {
	go func() {
		conn.SetWriteDeadline(time.Now().Add(waitFor))
		for {
			if _, err := conn.Write(frame); err != nil {
				return
			}
		}
	}()
}

// pushUntil writes frame to conn over and over, from a goroutine counted in
// wg, until stop is closed. A write that times out after pause is the
// gateway's back-pressure: pushing goes on, from where the write stopped,
// so the stream stays whole frames (a flooder that started each frame
// anew after a partial write would break its own stream).
func pushUntil(wg *sync.WaitGroup, stop <-chan struct{}, conn net.Conn, frame []byte, pause time.Duration) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		rest := frame
		for {
			select {
			case <-stop:
				return
			default:
			}
			conn.SetWriteDeadline(time.Now().Add(pause))
			n, err := conn.Write(rest)
			var ne net.Error
			switch {
			case err == nil:
				rest = frame
			case errors.As(err, &ne) && ne.Timeout():
				rest = rest[n:]
				if len(rest) == 0 {
					rest = frame
				}
			default:
				return // closed
			}
		}
	}()
}

// heldToward returns the bytes the gateway holds for link l: queued and
// being written.
func heldToward(l *link) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queuedBytes + l.batchBytes
}

// TestServerQueueBoundedInBytes: clients flood a server that stops
// reading with 16 KiB frames. What the gateway holds for the server stays
// under ServerSendQueueBytesPerClient plus a frame per client, and under
// ServerSendQueueBytes plus a frame in all (the clients are paused by
// back-pressure instead); the frames all arrive once the server reads,
// and the buffers go back to the pool.
func TestServerQueueBoundedInBytes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		clients int
		cfg     Config
	}{
		{"one client, its share", 1, Config{}},
		{"16 clients, the total", 16, Config{ServerSendQueueBytes: 512 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := &bytesPool{Pool: slab.NewSyncPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor)}
			tc.cfg.MemPool = pool
			g := startGW(t, tc.cfg)
			s := g.dialServer(t, 1)
			s.conn.(*net.TCPConn).SetReadBuffer(64 << 10)
			srv := g.servers.newest(1)
			const size = 16 << 10
			frames := 2000 / tc.clients // 32 MiB in all: far more than the sockets hold
			var frame []byte
			errc := make(chan error, tc.clients)
			type flooder struct {
				c     *peer
				frame []byte
			}
			var flooders []flooder
			for range tc.clients {
				c := g.dialClient(t)
				id, _ := open(t, c, s, 1)
				frame = proto.EncodeData(nil, id, make([]byte, size))
				flooders = append(flooders, flooder{c, frame})
			}
			for _, f := range flooders {
				c := f.c
				go func(frame []byte) {
					c.conn.SetWriteDeadline(time.Now().Add(4 * waitFor))
					for range frames {
						if _, err := c.conn.Write(frame); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}(f.frame)
			}
			cfg := g.Config()
			limit := min(cfg.ServerSendQueueBytes, tc.clients*cfg.ServerSendQueueBytesPerClient)
			bound := min(cfg.ServerSendQueueBytes+len(frame), tc.clients*(cfg.ServerSendQueueBytesPerClient+len(frame)))
			eventually(t, "the server's queue full", func() bool { return heldToward(srv) >= limit })
			// The clients are paused: nothing more is queued however
			// long they push.
			peak := 0
			for range 50 {
				peak = max(peak, heldToward(srv))
			}
			if peak > bound {
				t.Fatalf("the gateway holds %d bytes for the server, above %d", peak, bound)
			}
			inUse := pool.inUse.Load()
			t.Logf("server not reading, %d clients flooding it: the gateway holds %s for it (bound %s), %s of pool buffers in all",
				tc.clients, mib(int64(peak)), mib(int64(bound)), mib(inUse))
			if inUse > int64(4*bound+(2<<20)) {
				t.Fatalf("%s of buffers in use while the server stalls", mib(inUse))
			}
			n := 0
			for n < frames*tc.clients {
				for _, f := range readData(t, s, 1) {
					if len(f) != len(frame) {
						t.Fatalf("frame %d: %d bytes, want %d", n, len(f), len(frame))
					}
					n++
				}
			}
			for range tc.clients {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, "buffers back", func() bool { return pool.inUse.Load() < 1<<20 })
			// Every client's share is given back once its frames are
			// written: none stays paused.
			eventually(t, "shares given back", func() bool {
				srv.mu.Lock()
				defer srv.mu.Unlock()
				return len(srv.shares.bySource) == 0
			})
		})
	}
}

// TestLightClientLatencyBesideHeavy: a server reads at 20 MiB/s and echoes
// what a light client sends; a heavy client floods the same server at full
// speed. The light client's round trips stay short: the gateway holds at
// most the heavy client's ServerSendQueueBytesPerClient (128 KiB: 6 ms at
// 20 MiB/s) ahead of a light frame, on top of what the sockets' kernel
// buffers hold.
func TestLightClientLatencyBesideHeavy(t *testing.T) {
	const rate = 20 << 20
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	// A server's receive buffer of its own choosing; the gateway's send
	// buffer is the kernel's (autotuned).
	s.conn.(*net.TCPConn).SetReadBuffer(256 << 10)
	heavy, light := g.dialClient(t), g.dialClient(t)
	hid, _ := open(t, heavy, s, 1)
	lid, _ := open(t, light, s, 1)
	srv := g.servers.newest(1)

	// The server: paced reads, echoes of the light client's frames.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var echoErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		fr := proto.NewFrameReader(&pacedReader{r: s.conn, rate: rate}, nil, 64<<10, 1<<20)
		for {
			s.conn.SetReadDeadline(time.Now().Add(waitFor))
			f, err := fr.ReadFrame()
			if err != nil {
				select {
				case <-stop:
				default:
					echoErr.Store(err)
				}
				return
			}
			if proto.Header(f).ConnID() == lid {
				s.conn.SetWriteDeadline(time.Now().Add(waitFor))
				if _, err := s.conn.Write(f); err != nil {
					echoErr.Store(err)
					return
				}
			}
		}
	}()
	pushUntil(&wg, stop, heavy.conn, proto.EncodeData(nil, hid, make([]byte, 16<<10)), 200*time.Millisecond)
	eventually(t, "the server's queue filled by the heavy client", func() bool {
		return heldToward(srv) >= g.Config().ServerSendQueueBytesPerClient/2
	})

	const pings = 20
	var rtts []time.Duration
	peakHeld := 0
	msg := make([]byte, 1<<10)
	for i := range pings {
		msg[0] = byte(i)
		start := time.Now()
		light.sendData(lid, string(msg))
		f := readData(t, light, 1)[0]
		rtts = append(rtts, time.Since(start))
		if f[proto.HeaderSize] != byte(i) {
			t.Fatalf("echo %d: got echo %d", i, f[proto.HeaderSize])
		}
		peakHeld = max(peakHeld, heldToward(srv))
		time.Sleep(10 * time.Millisecond) // pacing of the light client
	}
	if n := g.Stats().Disconnected(ReasonProtocolError); n != 0 {
		t.Fatalf("the heavy client closed as a protocol error: its stream broke")
	}
	close(stop)
	heavy.conn.Close()
	s.conn.Close()
	wg.Wait()
	if err := echoErr.Load(); err != nil {
		t.Fatalf("server: %v", err)
	}
	slices.Sort(rtts)
	p50, p99 := rtts[len(rtts)/2], rtts[len(rtts)*99/100]
	t.Logf("light client beside a heavy one, server reading at 20 MiB/s: round trip p50 %v, p99 %v, max %v; the gateway held at most %s for the server (%v at 20 MiB/s)",
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), rtts[len(rtts)-1].Round(time.Millisecond),
		mib(int64(peakHeld)), time.Duration(float64(peakHeld)/rate*float64(time.Second)).Round(time.Millisecond))
	if p99 > 500*time.Millisecond {
		t.Fatalf("light client's p99 round trip %v, want under 500ms", p99)
	}
}

// TestPausedClientStillServed: a client floods server 1, which reads at
// 20 MiB/s, so back-pressure pauses it, while it also sends Pings and
// frames to server 2 in the same stream. Both are served once the gateway
// reads them, which it does as server 1 takes the bytes ahead of them:
// only the client's own data in the socket buffers between it and the
// gateway, and ServerSendQueueBytes in the gateway, are ahead of a Ping.
func TestPausedClientStillServed(t *testing.T) {
	const rate = 20 << 20
	g := startGW(t, Config{})
	s1, s2 := g.dialServer(t, 1), g.dialServer(t, 2)
	s1.conn.(*net.TCPConn).SetReadBuffer(256 << 10)
	c := g.dialClient(t)
	id1, _ := open(t, c, s1, 1)
	id2, _ := open(t, c, s2, 2)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // server 1: paced reads, discarded
		defer wg.Done()
		p := &pacedReader{r: s1.conn, rate: rate}
		buf := make([]byte, 64<<10)
		for {
			s1.conn.SetReadDeadline(time.Now().Add(waitFor))
			if _, err := p.Read(buf); err != nil {
				return
			}
		}
	}()
	// The client's stream: 4 MiB of flood, then a Ping and a frame to
	// server 2, a few times over.
	const rounds = 3
	flood := proto.EncodeData(nil, id1, make([]byte, 16<<10))
	sent := make(chan time.Time, rounds)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range rounds {
			for range 256 {
				c.conn.SetWriteDeadline(time.Now().Add(4 * waitFor))
				if _, err := c.conn.Write(flood); err != nil {
					return
				}
			}
			var b []byte
			b = proto.Command{Type: proto.CmdPing}.Encode(b)
			b = proto.EncodeData(b, id2, []byte{byte(i)})
			sent <- time.Now()
			if _, err := c.conn.Write(b); err != nil {
				return
			}
		}
		<-stop
	}()
	var pings, others []time.Duration
	for i := range rounds {
		at := <-sent
		for {
			c.conn.SetReadDeadline(time.Now().Add(4 * waitFor))
			f, err := c.fr.ReadFrame()
			if err != nil {
				t.Fatalf("round %d: waiting for the Ping answer: %v", i, err)
			}
			if proto.Header(f).ConnID() == 0 && f[proto.HeaderSize] == byte(proto.CmdPing) {
				break
			}
		}
		pings = append(pings, time.Since(at))
		s2.conn.SetReadDeadline(time.Now().Add(4 * waitFor))
		if f := readData(t, s2, 1)[0]; !bytes.Equal(f, proto.EncodeData(nil, id2, []byte{byte(i)})) {
			t.Fatalf("round %d: server 2 got %x", i, f)
		}
		others = append(others, time.Since(at))
	}
	close(stop)
	c.conn.Close()
	s1.conn.Close()
	wg.Wait()
	t.Logf("a client paused toward server 1 (reading at 20 MiB/s): its Pings answered after %v, its frames to server 2 delivered after %v (from the write of each, behind 4 MiB of its own flood)", pings, others)
	// What is ahead of each: the socket buffers' worth of the client's own
	// flood, a few MiB, at 20 MiB/s.
	for i := range rounds {
		if pings[i] > 2*time.Second || others[i] > 2*time.Second {
			t.Fatalf("round %d: Ping answered after %v, server 2's frame after %v; want under 2s", i, pings[i], others[i])
		}
	}
}

// TestTeardownNotStalledByFullServer: server 1 reads nothing and a flooder
// has filled its queue; a client with virtual connections to both servers
// disconnects. Server 2 gets its Closes at once: the teardown does not wait
// for room at server 1 (it did, one virtual connection at a time, in the
// order of a map).
func TestTeardownNotStalledByFullServer(t *testing.T) {
	// One flooder fills the whole queue: its share is the total.
	g := startGW(t, Config{ServerSendQueueBytes: 256 << 10, ServerSendQueueBytesPerClient: 256 << 10})
	s1, s2 := g.dialServer(t, 1), g.dialServer(t, 2)
	s1.conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	flooder := g.dialClient(t)
	fid, _ := open(t, flooder, s1, 1)
	c := g.dialClient(t)
	var ids2 []uint32
	for range 4 {
		open(t, c, s1, 1)
		id, _ := open(t, c, s2, 2)
		ids2 = append(ids2, id)
	}
	srv1 := g.servers.newest(1)
	floodUntilError(flooder.conn, proto.EncodeData(nil, fid, make([]byte, 16<<10)))
	eventually(t, "server 1's queue full", func() bool { return heldToward(srv1) >= g.Config().ServerSendQueueBytes })
	c.conn.Close()
	got := map[uint32]bool{}
	for len(got) < len(ids2) {
		cmd := s2.readCmd()
		if cmd.Type == proto.CmdClose {
			got[cmd.ConnID] = true
		}
	}
	for _, id := range ids2 {
		if !got[id] {
			t.Fatalf("server 2 got Closes %v, want %v", got, ids2)
		}
	}
}

// TestStalledClientPinsNoReadBuffers: an honest server writes 64 KiB at a
// time, each holding one 4,100-byte frame for a client that does not read
// and 60 KiB of small frames for one that does. Frames of 1 KiB or more go
// to their destination in place, in the server's read buffer; queued to the
// stalled client, each kept a whole 64 KiB buffer (the adversarial pass:
// 16.7 MiB held per such client against its 1 MiB bound). Toward a stalled
// client they are now copied, so it holds about its bound.
func TestStalledClientPinsNoReadBuffers(t *testing.T) {
	pool := &bytesPool{Pool: slab.NewSyncPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor)}
	g := startGW(t, Config{MemPool: pool})
	s := g.dialServer(t, 1)
	victim, reader := g.dialClient(t), g.dialClient(t)
	victim.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	vid, _ := open(t, victim, s, 1)
	rid, _ := open(t, reader, s, 1)
	var chunk []byte
	chunk = proto.EncodeData(chunk, vid, make([]byte, 4100-proto.HeaderSize))
	for len(chunk) < 64<<10-1000 {
		chunk = proto.EncodeData(chunk, rid, make([]byte, 900-proto.HeaderSize))
	}
	perChunk := (len(chunk) - 4100) / 900
	before := pool.resetPeak()
	const rounds, window = 3000, 8
	var progress atomic.Int64 // frames the reading client received
	errc := make(chan error, 1)
	go func() {
		s.conn.SetWriteDeadline(time.Now().Add(4 * waitFor))
		for i := range rounds {
			// The server keeps at most window writes ahead of the
			// reading client (an application's flow control); it does
			// not wait for the stalled one.
			for progress.Load() < int64((i-window)*perChunk) {
				runtime.Gosched()
			}
			if _, err := s.conn.Write(chunk); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := 0
	for got < rounds*perChunk {
		reader.conn.SetReadDeadline(time.Now().Add(4 * waitFor))
		f, err := reader.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reader, %d frames in: %v", got, err)
		}
		if proto.Header(f).ConnID() == rid {
			got++
			progress.Store(int64(got))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	peak := pool.peak.Load() - before
	t.Logf("a stalled client beside a reading one, 64 KiB server writes with one 4,100-byte frame for the stalled one: pool buffers peaked %s above the start; slow-consumer drops %d",
		mib(peak), g.Stats().Disconnected(ReasonSlowConsumer))
	if bound := int64(6 << 20); peak > bound {
		t.Fatalf("buffers peaked %s above the start, above %s", mib(peak), mib(bound))
	}
}

// TestFloodersShareServer: 20 clients flood one server, which reads at
// 20 MiB/s, at full speed. Each client may have only its share of the
// server's queue, so the server's bandwidth is shared: of 32 MiB that arrive
// after the first 8 MiB (what the sockets' kernel buffers took before every
// client was under way), every client got from 0.4 to 2 times an even
// share (0.7 to 1.45 on a quiet box; the bounds leave room for a loaded one).
func TestFloodersShareServer(t *testing.T) {
	const rate, clients, warmup, total = 20 << 20, 20, 8 << 20, 32 << 20
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	s.conn.(*net.TCPConn).SetReadBuffer(256 << 10)
	ids := make([]uint32, clients)
	conns := make([]*peer, clients)
	for i := range clients {
		conns[i] = g.dialClient(t)
		ids[i], _ = open(t, conns[i], s, 1)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		pushUntil(&wg, stop, c.conn, proto.EncodeData(nil, ids[i], make([]byte, 16<<10)), 100*time.Millisecond)
	}
	got := map[uint32]int{}
	fr := proto.NewFrameReader(&pacedReader{r: s.conn, rate: rate}, nil, 64<<10, 1<<20)
	// What the first clients to start put in the sockets' kernel buffers
	// before every client was under way is skipped.
	for n := 0; n < warmup; {
		s.conn.SetReadDeadline(time.Now().Add(waitFor))
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		n += len(f)
	}
	for n := 0; n < total; {
		s.conn.SetReadDeadline(time.Now().Add(waitFor))
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if id := proto.Header(f).ConnID(); id != 0 {
			got[id] += len(f)
			n += len(f)
		}
	}
	if n := g.Stats().Disconnected(ReasonProtocolError); n != 0 {
		t.Fatalf("%d flooders closed as a protocol error: their streams broke", n)
	}
	close(stop)
	for _, c := range conns {
		c.conn.Close()
	}
	wg.Wait()
	even := total / clients
	lo, hi := total, 0
	for _, id := range ids {
		lo, hi = min(lo, got[id]), max(hi, got[id])
	}
	t.Logf("%d clients flooding a server reading at 20 MiB/s: of %s, each got %s to %s (an even share: %s)",
		clients, mib(total), mib(int64(lo)), mib(int64(hi)), mib(int64(even)))
	if lo < even*4/10 || hi > even*2 {
		t.Fatalf("shares from %s to %s, want from 0.4 to 2 times %s", mib(int64(lo)), mib(int64(hi)), mib(int64(even)))
	}
}

// TestPausedClientNotIdle: a client streams 100,000-byte frames to a server
// that stops reading for five times ClientIdleTimeout, so back-pressure
// pauses the client's reader that long. The client was never idle: once
// the server reads again, it is not closed as "idle timeout" (the adversarial
// pass: its reader then read on with the deadline of before the pause, and
// 56 of 98 frames were thrown away with the connection), and every frame
// arrives.
func TestPausedClientNotIdle(t *testing.T) {
	const idle = 300 * time.Millisecond
	g := startGW(t, Config{ClientIdleTimeout: idle})
	s := g.dialServer(t, 1)
	s.conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	c := g.dialClient(t)
	id, _ := open(t, c, s, 1)
	srv := g.servers.newest(1)
	const frames = 80 // 8 MB: far more than the sockets and the queue hold
	frame := proto.EncodeData(nil, id, bytes.Repeat([]byte{7}, 100000-proto.HeaderSize))
	errc := make(chan error, 1)
	go func() {
		c.conn.SetWriteDeadline(time.Now().Add(4 * waitFor))
		for range frames {
			if _, err := c.conn.Write(frame); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	eventually(t, "the client paused", func() bool { return heldToward(srv) >= g.Config().ServerSendQueueBytesPerClient })
	// The server reads nothing for five idle timeouts (the client's reader
	// waits meanwhile); a fixed pause is what the scenario is.
	time.Sleep(5 * idle)
	for i := range frames {
		f := readData(t, s, 1)[0]
		if !bytes.Equal(f, frame) {
			t.Fatalf("frame %d: %d bytes, not the frame sent", i, len(f))
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("client: %v", err)
	}
	c.ping()
	if n := g.Stats().Disconnected(ReasonIdleTimeout); n != 0 {
		t.Fatalf("%d connections closed as idle", n)
	}
}

// TestPausedClientClosedLetsGo: a client floods a server that reads
// nothing, so its reader waits for room, holding a frame; meanwhile the
// server floods the client, which reads nothing either, until the client
// is closed as a slow consumer. Its reader stops waiting at once (the
// frame it held counted as undelivered), while the server still reads
// nothing: a client closed by the gateway does not stay in the wait until
// the server takes more.
func TestPausedClientClosedLetsGo(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	s.conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	c := g.dialClient(t)
	c.conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	id, _ := open(t, c, s, 1)
	srv := g.servers.newest(1)
	floodUntilError(c.conn, proto.EncodeData(nil, id, make([]byte, 16<<10)))
	eventually(t, "the client paused", func() bool { return heldToward(srv) >= g.Config().ServerSendQueueBytesPerClient })
	floodUntilError(s.conn, proto.EncodeData(nil, id, make([]byte, 16<<10)))
	eventually(t, "the client closed and gone", func() bool {
		st := g.Stats()
		return st.Disconnected(ReasonSlowConsumer) == 1 && st.ClientConns == 0
	})
	if u := g.Stats().UndeliveredAt(ReasonSlowConsumer); u.Frames == 0 {
		t.Fatalf("no frame counted undelivered for the slow consumer: %+v", u)
	}
}
