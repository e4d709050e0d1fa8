//go:build unix

package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
)

// FuzzWritePath is the differential fuzzer of a link's write path
// (queue.go): frames pushed as a reader pushes them (small ones copied and
// packed into chunks, pooled ones and ones shared in a read buffer queued by
// reference, flushes inline from the reader's dirty list or by writer
// goroutines) come out of the socket, read by a slow reader, as exactly
// their concatenation in order. conf picks the connection: TCP or a Unix
// socketpair with small socket buffers, so that non-blocking writes are cut
// short and the rest is written past the bytes already sent (skipBytes); or
// a connection without writev (coalesced writes), optionally failing after
// some bytes; or a reader that hangs up part way. After a failure the bytes
// out must be a prefix. In every case each buffer goes back to the pool.
//
// plan steers the pushes (writeOps); what it leaves open comes from PCG
// generators seeded by seed.
func FuzzWritePath(f *testing.F) {
	f.Add(uint64(1), uint32(0), []byte{})
	f.Add(uint64(2), uint32(1|1<<3), []byte{0, 0, 0, 5, 3, 3, 5, 4, 5})
	f.Add(uint64(3), uint32(2|2<<3|1<<5), []byte{7, 7, 7})
	f.Add(uint64(4), uint32(3|1<<5|1<<6), []byte{})
	f.Add(uint64(5), uint32(4|1<<6), []byte{4, 4, 4, 4, 5})
	f.Add(uint64(6), uint32(0|2<<3|1<<11), []byte{7, 5, 7, 5})
	f.Add(uint64(7), uint32(1|1<<5|1<<6|3<<7|1<<11), []byte{3, 0x83, 9, 5})
	f.Fuzz(func(t *testing.T, seed uint64, conf uint32, plan []byte) {
		pool := &syncTrackPool{inner: writePools[(conf>>3&3)%3], live: map[*byte]int{}}
		g := New(Config{MemPool: pool, Logger: discard()})
		mode := int(conf&7) % 5
		conn, peer := writePathConns(t, mode, seed)
		s := sideClient
		if conf>>5&1 != 0 {
			s = sideServer
		}
		l := newLink(g, conn, s, 1)
		l.limit = 1 << 20
		pushMode := pushForce
		if conf>>6&1 != 0 {
			l.limit, pushMode = 1+int(conf>>7&15), pushWait // back-pressure
		}
		// Readers pushing to l: one steered by plan, and with conf bit 11 a
		// second one at the same time. Their frames carry the reader's
		// number as ConnID.
		pushers := []*pusher{{from: newLink(g, nil, sideClient, 2),
			ops: writeOps(steer{b: plan, rng: rand.New(rand.NewPCG(seed, 1))}, 1)}}
		if conf>>11&1 != 0 {
			pushers = append(pushers, &pusher{from: newLink(g, nil, sideClient, 3),
				ops: writeOps(steer{rng: rand.New(rand.NewPCG(seed, 5))}, 2)})
		}
		total := 0
		for _, p := range pushers {
			for _, op := range p.ops {
				for _, f := range op.frames {
					p.want = append(p.want, f)
					total += len(f)
				}
			}
		}
		stuck := time.AfterFunc(4*waitFor, func() { panic("FuzzWritePath: the write path is stuck") })
		defer stuck.Stop()

		got := make(chan []byte, 1)
		hangUp := -1
		if mode == 4 {
			hangUp = rand.New(rand.NewPCG(seed, 2)).IntN(total + 1)
		}
		go func() { got <- slowRead(peer, total, hangUp, rand.New(rand.NewPCG(seed, 3))) }()
		errs := make(chan error, len(pushers))
		var wg sync.WaitGroup
		for _, p := range pushers {
			wg.Go(func() { errs <- pushAll(g, l, p.from, p.ops, pushMode) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		out := <-got

		eventually(t, "the writer turn to end", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return !l.writing
		})
		g.wg.Wait()
		// After a failure, or once the reader hung up, the stream may stop
		// anywhere.
		failed := l.isClosed()
		cut := failed || hangUp >= 0 && hangUp < total
		if err := checkStream(out, pushers, !cut); err != nil {
			t.Fatal(err)
		}
		if failed && mode < 3 {
			reason, err := l.closeReason()
			t.Fatalf("the link closed (%v, %v) with nothing wrong with its connection", reason, err)
		}
		l.close(ReasonPeerClosed, nil, false)
		pool.checkBalanced(t)
	})
}

// pusher is a reader feeding the link: its link (for its dirty list), its
// pushes, and the frames they push, in order.
type pusher struct {
	from *link
	ops  []writeOp
	want [][]byte
}

// checkStream parses out into frames and checks that each is the next of
// its pusher's (by ConnID), and, when complete, that every frame came. A
// stream cut short by a failure may end in part of a frame.
func checkStream(out []byte, pushers []*pusher, complete bool) error {
	next := make([]int, len(pushers))
	for off, i := 0, 0; off < len(out); i++ {
		rest := out[off:]
		if len(rest) < proto.HeaderSize {
			if complete {
				return fmt.Errorf("frame %d at byte %d: %d bytes, too short for a header", i, off, len(rest))
			}
			break
		}
		h := proto.Header(rest)
		p := int(h.ConnID()) - 1
		if p < 0 || p >= len(pushers) || next[p] >= len(pushers[p].want) {
			return fmt.Errorf("frame %d at byte %d: header %x belongs to no frame still to come (next %v)", i, off, rest[:proto.HeaderSize], next)
		}
		want := pushers[p].want[next[p]]
		f := rest[:min(len(rest), proto.SizeOfLength+int(h.Length()))]
		if len(f) < len(want) && !complete && bytes.HasPrefix(want, f) {
			break // the end of a stream cut short
		}
		if !bytes.Equal(f, want) {
			return fmt.Errorf("frame %d at byte %d, pusher %d's frame %d: %s", i, off, p+1, next[p], frameDiff(f, want))
		}
		next[p]++
		off += len(f)
	}
	for p, ps := range pushers {
		if complete && next[p] != len(ps.want) {
			return fmt.Errorf("%d of pusher %d's %d frames came out (%d bytes)", next[p], p+1, len(ps.want), len(out))
		}
	}
	return nil
}

// writeOp is one step of a reader feeding a link: frames to push in one way,
// or a flush of the reader's dirty list (no frames, flush set).
type writeOp struct {
	how    int // one of the push constants
	frames [][]byte
}

const (
	pushCopied  = iota // pushCopy of a buffer scribbled over right after
	pushPooled         // pushFrame of pooled buffers of their own
	pushShared         // pushFrame of frames in place in one read buffer
	pushNoOwner        // pushCopy with no reader (a writer goroutine starts)
	flushReader        // the reader's flushDirty, as readLoop's before it waits
)

// writeOps decodes the pushes of frames on ConnID id: each op is a kind
// byte, then sizes. Frames
// are mostly small (< 1 KiB), some up to 64 KiB and a few up to 256 KiB;
// some ops push runs of hundreds of tiny pooled frames (past writev's 1024
// buffers).
func writeOps(s steer, id uint32) []writeOp {
	var ops []writeOp
	total := 0
	rng := s.rng
	for total < 384<<10 && (s.explicit() || len(ops) < 48) {
		var op writeOp
		n := 1
		switch k := s.byte(); k % 8 {
		case 0, 1, 2:
			op.how = pushCopied
		case 3:
			op.how, n = pushPooled, 1+int(s.byte()%4)
			if k&0x80 != 0 {
				n = 100 * int(1+s.byte()%15) // many tiny ones
			}
		case 4:
			op.how, n = pushShared, 1+int(s.byte()%8)
		case 5:
			ops = append(ops, writeOp{how: flushReader})
			continue
		case 6:
			op.how = pushNoOwner
		case 7:
			op.how, n = pushCopied, 1+int(s.byte()%32) // a run of small ones
		}
		for range n {
			var size int
			switch k := s.byte(); {
			case n >= 100:
				size = proto.HeaderSize + int(k%32)
			case k < 200:
				size = proto.HeaderSize + s.uint(2)%(1<<10)
			case k < 250:
				size = 1<<10 + s.uint(2)
			default:
				size = 64<<10 + s.uint(3)%(192<<10)
			}
			op.frames = append(op.frames, gwFrame(rng, id, size))
			total += size
		}
		ops = append(ops, op)
	}
	return append(ops, writeOp{how: flushReader})
}

// steer hands out the input's bytes, then bytes of rng once they run out.
type steer struct {
	b   []byte
	rng *rand.Rand
}

func (s *steer) explicit() bool { return len(s.b) > 0 }

func (s *steer) byte() byte {
	if len(s.b) == 0 {
		return byte(s.rng.Uint32())
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

// uint returns the next n bytes as a little-endian number.
func (s *steer) uint(n int) int {
	v := 0
	for i := range n {
		v |= int(s.byte()) << (8 * i)
	}
	return v
}

// pushAll pushes ops to l, as from's reader would.
func pushAll(g *Gateway, l, from *link, ops []writeOp, mode pushMode) error {
	var scratch []byte
	for _, op := range ops {
		switch op.how {
		case flushReader:
			from.flushDirty()
		case pushCopied, pushNoOwner:
			for _, f := range op.frames {
				scratch = append(scratch[:0], f...)
				if op.how == pushNoOwner {
					l.pushCopy(nil, scratch, pushForce)
				} else {
					l.pushCopy(from, scratch, mode)
				}
				for i := range scratch {
					scratch[i] = 0xAB // the queue must hold a copy
				}
			}
		case pushPooled:
			for _, f := range op.frames {
				b := g.cfg.MemPool.Alloc(len(f))
				copy(b, f)
				l.pushFrame(from, outFrame{b: b}, mode)
			}
		case pushShared:
			// The frames, read from one buffer as a link's reader does,
			// are handed out in place where they may be.
			data := bytes.Join(op.frames, nil)
			fr := proto.NewFrameReader(bytes.NewReader(data), g.cfg.MemPool, len(data), 0)
			for range op.frames {
				b, ref, err := fr.ReadFrameShared(1)
				if err != nil {
					return err
				}
				l.pushFrame(from, outFrame{b, ref}, mode)
			}
			fr.Release()
		}
	}
	return nil
}

// writePathConns returns the link's end and the reading peer's of a
// connection: 0, 1 TCP and a Unix socketpair with small buffers; 2 a
// connection without writev (coalesced writes); 3 the same, failing after
// some bytes; 4 TCP again (the peer hangs up part way).
func writePathConns(t *testing.T, mode int, seed uint64) (conn, peer net.Conn) {
	rng := rand.New(rand.NewPCG(seed, 4))
	switch mode {
	case 1:
		conn, peer = unixPair(t)
	default:
		conn, peer = tcpPair(t)
	}
	// Small socket buffers cut non-blocking writes short. (A receive
	// buffer below about two of loopback's 64 KiB segments stalls the
	// stream until TCP's zero-window probe, for seconds.)
	type buffered interface {
		SetWriteBuffer(int) error
		SetReadBuffer(int) error
	}
	conn.(buffered).SetWriteBuffer(4<<10 + rng.IntN(60<<10))
	peer.(buffered).SetReadBuffer(128<<10 + rng.IntN(128<<10))
	switch mode {
	case 2:
		conn = &plainConn{Conn: conn, failAfter: -1}
	case 3:
		conn = &plainConn{Conn: conn, failAfter: rng.IntN(1 << 20)}
	}
	return conn, peer
}

// unixPair returns the two ends of a Unix socketpair, closed when the test
// ends.
func unixPair(t *testing.T) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}

// plainConn is a connection that is neither TCP nor Unix, as a TLS or snet
// one is: the link writes to it without writev, coalescing frames. With
// failAfter >= 0 its writes fail once that many bytes went through.
type plainConn struct {
	net.Conn
	failAfter int
}

var errWriteFault = errors.New("fuzz: write fault")

func (c *plainConn) Write(p []byte) (int, error) {
	if c.failAfter < 0 || len(p) <= c.failAfter {
		n, err := c.Conn.Write(p)
		if c.failAfter >= 0 {
			c.failAfter -= n
		}
		return n, err
	}
	n, _ := c.Conn.Write(p[:c.failAfter])
	c.failAfter = 0
	c.Conn.Close()
	return n, errWriteFault
}

// slowRead reads n bytes from c in random pieces, pausing now and then,
// until EOF, an error or (hangUp >= 0) after hangUp bytes, when it closes c.
func slowRead(c net.Conn, n, hangUp int, rng *rand.Rand) []byte {
	c.SetReadDeadline(time.Now().Add(2 * waitFor))
	out := make([]byte, 0, n)
	buf := make([]byte, 64<<10)
	for len(out) < n {
		if hangUp >= 0 && len(out) >= hangUp {
			c.Close()
			break
		}
		m, err := c.Read(buf[:1+rng.IntN(len(buf))])
		out = append(out, buf[:m]...)
		if err != nil {
			break
		}
		if rng.IntN(8) == 0 {
			time.Sleep(time.Duration(rng.IntN(100)) * time.Microsecond)
		}
	}
	// Anything past n would be a frame written twice.
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	if m, _ := io.ReadAtLeast(c, buf, 1); m > 0 {
		out = append(out, buf[:m]...)
	}
	return out
}

var writePools = [...]slab.Pool{
	slab.NewSyncPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor),
	slab.NewAtomPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor, slab.DefaultPageSize),
	slab.NoPool{},
}

// syncTrackPool is a pool over another that records what it hands out,
// poisons what comes back before passing it on, and passes on nothing it
// did not hand out (or a second time). Writers free concurrently.
type syncTrackPool struct {
	inner slab.Pool
	mu    sync.Mutex
	live  map[*byte]int
	bad   int
}

func (p *syncTrackPool) Alloc(size int) []byte {
	b := p.inner.Alloc(size)
	if cap(b) == 0 {
		b = make([]byte, size, 1)
	}
	p.mu.Lock()
	p.live[&b[:1][0]] = size
	p.mu.Unlock()
	return b
}

func (p *syncTrackPool) Free(b []byte) {
	if cap(b) == 0 {
		p.mu.Lock()
		p.bad++
		p.mu.Unlock()
		return
	}
	ptr := &b[:1][0]
	p.mu.Lock()
	_, ok := p.live[ptr]
	delete(p.live, ptr)
	if !ok {
		p.bad++
	}
	p.mu.Unlock()
	if ok {
		b = b[:cap(b)]
		for i := range b {
			b[i] = 0xEE
		}
		p.inner.Free(b)
	}
}

func (p *syncTrackPool) checkBalanced(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.live) != 0 || p.bad != 0 {
		tb.Errorf("pool: %d buffers never freed, %d foreign or double frees", len(p.live), p.bad)
	}
}
