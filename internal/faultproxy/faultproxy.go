// Package faultproxy is a loopback TCP proxy for tests that cuts the
// connections it forwards at random points, to exercise reconnects (snet).
package faultproxy

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
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
// client↔target pair after a random number of forwarded bytes: mostly
// mid-stream, sometimes within a few bytes (mid-handshake or mid-replay).
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	rng    *rand.Rand
	armed  bool
	budget int
	cuts   int
	links  map[*pair]struct{}
}

type pair struct {
	a, b net.Conn
	once sync.Once
}

func (l *pair) cut() {
	l.once.Do(func() {
		l.a.Close()
		l.b.Close()
	})
}

// New starts a proxy to target on 127.0.0.1:0, with cut points drawn from
// seed; it is closed when the test ends.
func New(t testing.TB, target string, seed uint64) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		ln:     ln,
		target: target,
		rng:    rand.New(rand.NewPCG(seed, 0)),
		links:  make(map[*pair]struct{}),
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
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		Shrink(a)
		Shrink(b)
		l := &pair{a: a, b: b}
		p.mu.Lock()
		p.links[l] = struct{}{}
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
	if !p.armed || p.budget > n {
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
		p.mu.Unlock()
	}()
	buf := make([]byte, 16<<10)
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
