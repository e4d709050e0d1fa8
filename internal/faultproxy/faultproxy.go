// Package faultproxy is a loopback TCP proxy for tests that cuts the
// connections it forwards at random points, to exercise reconnects (snet).
// New cuts after a random number of bytes; NewTimed cuts every connection
// after a random time, with the proxy's own buffering kept to a minimum.
package faultproxy

import (
	"context"
	"github.com/fastway-go/fastway/internal/sockbuf"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// SmallBuf bounds the kernel socket buffers of proxied connections (and is
// what tests give their own sockets with Shrink), so that the bytes in
// flight stay well below an snet rewrite buffer.
const SmallBuf = 32 << 10

// Shrink gives a TCP connection SmallBuf socket buffers.
func Shrink(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(SmallBuf)
		tc.SetWriteBuffer(SmallBuf)
	}
}

// Proxy forwards loopback connections to a target and, once armed, cuts the
// client↔target pair: after a random number of forwarded bytes (New:
// mostly mid-stream, sometimes within a few bytes, mid-handshake or
// mid-replay), or after a random time (NewTimed).
type Proxy struct {
	ln      net.Listener
	target  string
	dialer  net.Dialer
	copyBuf int
	every   time.Duration // NewTimed: mean lifetime of a connection once armed
	wg      sync.WaitGroup

	mu     sync.Mutex
	rng    *rand.Rand
	armed  bool
	budget int
	cuts   int
	links  map[*pair]struct{}
}

type pair struct {
	a, b  net.Conn
	once  sync.Once
	timer *time.Timer // NewTimed: the cut to come; guarded by Proxy.mu
}

func (l *pair) cut() {
	l.once.Do(func() {
		l.a.Close()
		l.b.Close()
	})
}

// TimedSockBuf is what NewTimed sets its own sockets' SO_SNDBUF and
// SO_RCVBUF to, before they connect (Linux doubles it: 8 KiB each), the
// size snet gives its sockets at its default rewrite buffer. With its
// 2 KiB copy buffer the proxy then holds about 14 KiB (up to 18 KiB on a
// loaded box) of each direction that its sender believes delivered
// (TestTimedHolds): a stand-in
// for a short path through one TCP-terminating hop. Smaller buffers stall
// on loopback: with a receive buffer at the kernel's floor (2304 bytes),
// far below the 64 KiB loopback segment, a transfer sits on TCP's
// retransmission and persist timers for tens of seconds.
const TimedSockBuf = 4 << 10

// timedCopyBuf is NewTimed's copy buffer per direction.
const timedCopyBuf = 2 << 10

// New starts a proxy to target on 127.0.0.1:0, with cut points drawn from
// seed; it is closed when the test ends.
func New(t testing.TB, target string, seed uint64) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		ln:      ln,
		target:  target,
		copyBuf: 16 << 10,
		rng:     rand.New(rand.NewPCG(seed, 0)),
		links:   make(map[*pair]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// NewTimed starts a proxy to target on 127.0.0.1:0 that, once armed, cuts
// every connection it forwards after a random lifetime between every/2 and
// 3·every/2 (counted from when it was opened or the proxy armed, whichever
// is later), with lifetimes drawn from seed; it is closed when the test
// ends. Its sockets get TimedSockBuf buffers before they connect (so the
// window each advertises is small from its first segment) and it copies
// through a small buffer, so it holds few bytes of its own.
func NewTimed(t testing.TB, target string, every time.Duration, seed uint64) *Proxy {
	t.Helper()
	lc := net.ListenConfig{Control: sockbuf.Control(TimedSockBuf)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		ln:      ln,
		target:  target,
		dialer:  net.Dialer{Timeout: 5 * time.Second, Control: sockbuf.Control(TimedSockBuf)},
		copyBuf: timedCopyBuf,
		every:   every,
		rng:     rand.New(rand.NewPCG(seed, 0)),
		links:   make(map[*pair]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listening address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Arm starts cutting.
func (p *Proxy) Arm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = true
	p.budget = p.nextBudgetLocked()
	if p.every > 0 {
		for l := range p.links {
			p.scheduleLocked(l)
		}
	}
}

// scheduleLocked arms a NewTimed proxy's cut of l.
func (p *Proxy) scheduleLocked(l *pair) {
	if l.timer != nil {
		return
	}
	life := p.every/2 + time.Duration(p.rng.Int64N(int64(p.every)))
	l.timer = time.AfterFunc(life, func() {
		p.mu.Lock()
		p.cuts++
		p.mu.Unlock()
		l.cut()
	})
}

// Cuts returns how many times the proxy has cut a connection.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *Proxy) nextBudgetLocked() int {
	if p.rng.IntN(5) == 0 {
		return p.rng.IntN(200)
	}
	return 100<<10 + p.rng.IntN(500<<10)
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := p.dialer.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		if p.every == 0 {
			Shrink(a)
			Shrink(b)
		}
		l := &pair{a: a, b: b}
		p.mu.Lock()
		p.links[l] = struct{}{}
		if p.every > 0 && p.armed {
			p.scheduleLocked(l)
		}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, a, b)
		go p.pipe(l, b, a)
	}
}

// take returns how many of n bytes may pass, and whether the link is cut
// after them.
func (p *Proxy) take(n int) (allow int, cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.armed || p.every > 0 || p.budget > n {
		p.budget -= n
		return n, false
	}
	allow = p.budget
	p.budget = p.nextBudgetLocked()
	p.cuts++
	return allow, true
}

func (p *Proxy) pipe(l *pair, src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		l.cut()
		p.mu.Lock()
		delete(p.links, l)
		if l.timer != nil {
			l.timer.Stop()
		}
		p.mu.Unlock()
	}()
	buf := make([]byte, p.copyBuf)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			allow, cut := p.take(n)
			if _, werr := dst.Write(buf[:allow]); werr != nil || cut {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Close stops the proxy and cuts every connection it forwards.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for l := range p.links {
		l.cut()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
