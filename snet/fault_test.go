package snet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// smallBuf bounds the kernel socket buffers in these tests, so the bytes in
// flight stay well below the rewrite buffer (see the package doc).
const smallBuf = 32 << 10

func shrink(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(smallBuf)
		tc.SetWriteBuffer(smallBuf)
	}
}

// smallBufDialer dials addr with small socket buffers.
func smallBufDialer(addr string) func() (net.Conn, error) {
	dial := tcpDialer(addr)
	return func() (net.Conn, error) {
		c, err := dial()
		if err == nil {
			shrink(c)
		}
		return c, err
	}
}

// smallBufListener gives accepted connections small socket buffers.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		shrink(c)
	}
	return c, err
}

func newSmallBufListener(t *testing.T, cfg Config) *Listener {
	t.Helper()
	ln, err := Listen(cfg, func() (net.Listener, error) {
		ln, err := tcpListen()
		return smallBufListener{ln}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*Listener)
}

// faultProxy forwards loopback connections to target and, once armed, cuts
// the client↔server pair after a random number of forwarded bytes: mostly
// mid-stream, sometimes within a few bytes (mid-handshake or mid-replay).
type faultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	rng    *rand.Rand
	armed  bool
	budget int
	cuts   int
	links  map[*proxyLink]struct{}
}

type proxyLink struct {
	a, b net.Conn
	once sync.Once
}

func (l *proxyLink) cut() {
	l.once.Do(func() {
		l.a.Close()
		l.b.Close()
	})
}

func newFaultProxy(t *testing.T, target string, seed uint64) *faultProxy {
	t.Helper()
	ln, err := tcpListen()
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{
		ln:     ln,
		target: target,
		rng:    rand.New(rand.NewPCG(seed, 0)),
		links:  make(map[*proxyLink]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) arm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = true
	p.budget = p.nextBudgetLocked()
}

func (p *faultProxy) cutCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *faultProxy) nextBudgetLocked() int {
	if p.rng.IntN(5) == 0 {
		return p.rng.IntN(200)
	}
	return 100<<10 + p.rng.IntN(500<<10)
}

func (p *faultProxy) acceptLoop() {
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
		shrink(a)
		shrink(b)
		l := &proxyLink{a: a, b: b}
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
func (p *faultProxy) take(n int) (allow int, cut bool) {
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

func (p *faultProxy) pipe(l *proxyLink, src, dst net.Conn) {
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

func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for l := range p.links {
		l.cut()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestFaultProxy sends 10 MiB each way through a proxy that keeps cutting
// the TCP connection; every byte must arrive once, in order.
func TestFaultProxy(t *testing.T) {
	for i, crypt := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "crypt"}[crypt]
		t.Run(name, func(t *testing.T) {
			cfg := Config{
				EnableCrypt:        crypt,
				RewriterBufferSize: 1 << 20,
				HandshakeTimeout:   2 * time.Second,
				ReconnWaitTimeout:  5 * time.Second,
			}
			l := newSmallBufListener(t, cfg)
			p := newFaultProxy(t, l.Addr().String(), uint64(i+1))
			cli, srv := pairVia(t, l, cfg, smallBufDialer(p.addr()))
			p.arm()
			start := time.Now()
			// RC4 under -race on a shared machine is slow: allow for it.
			exchangeWithin(t, cli, srv, 10<<20, uint64(100+i), time.Minute)
			cuts := p.cutCount()
			t.Logf("%s: 2×10 MiB with %d cuts in %v", name, cuts, time.Since(start).Round(time.Millisecond))
			if cuts < 20 {
				t.Fatalf("only %d cuts", cuts)
			}
			if cli.ID() != srv.ID() {
				t.Fatal(fmt.Sprint("IDs differ: ", cli.ID(), srv.ID()))
			}
		})
	}
}
