package snet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
)

// waitFor is how long a test waits for an event before failing.
const waitFor = 10 * time.Second

// fixedRand yields the given u64s (little-endian) in order, for Config.rand.
func fixedRand(vals ...uint64) io.Reader {
	var b bytes.Buffer
	for _, v := range vals {
		binary.Write(&b, binary.LittleEndian, v)
	}
	return &b
}

// tcpListen listens on loopback.
func tcpListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// newListener starts an snet listener on loopback, closed at cleanup.
func newListener(t *testing.T, cfg Config) *Listener {
	t.Helper()
	ln, err := Listen(cfg, tcpListen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*Listener)
}

// tcpDialer dials addr with a timeout.
func tcpDialer(addr string) func() (net.Conn, error) {
	d := net.Dialer{Timeout: time.Second}
	return func() (net.Conn, error) { return d.Dial("tcp", addr) }
}

// gate makes a dialer fail while it is shut.
type gate struct {
	mu   sync.Mutex
	shut bool
	dial func() (net.Conn, error)
}

var errGateShut = errors.New("test: dialer gate shut")

func (g *gate) set(shut bool) {
	g.mu.Lock()
	g.shut = shut
	g.mu.Unlock()
}

func (g *gate) dialer() (net.Conn, error) {
	g.mu.Lock()
	shut := g.shut
	g.mu.Unlock()
	if shut {
		return nil, errGateShut
	}
	return g.dial()
}

// accept returns the next conn from l, failing the test on error.
func acceptAsync(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// pairVia dials l through dialer and returns both ends, closed at cleanup.
func pairVia(t *testing.T, l net.Listener, cfg Config, dialer func() (net.Conn, error)) (cli, srv *Conn) {
	t.Helper()
	accepted := acceptAsync(l)
	c, err := Dial(cfg, dialer)
	if err != nil {
		t.Fatal(err)
	}
	cli = c.(*Conn)
	t.Cleanup(func() { cli.Close() })
	select {
	case s, ok := <-accepted:
		if !ok {
			t.Fatal("accept failed")
		}
		srv = s.(*Conn)
		t.Cleanup(func() { srv.Close() })
	case <-time.After(waitFor):
		t.Fatal("no session accepted")
	}
	return cli, srv
}

// opaqueConn hides a TCP connection from snet, as TLS does: snet can
// neither size its sockets nor see what they hold, so its rewrite buffer
// stays at RewriterBufferSize whatever the kernel buffers.
type opaqueConn struct{ net.Conn }

// opaqueListener accepts opaqueConns; Listen cannot size its socket.
type opaqueListener struct{ net.Listener }

func (l opaqueListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return opaqueConn{c}, nil
}

// opaquePair is pair over opaque connections with the kernel's default
// (autotuned) socket buffers.
func opaquePair(t *testing.T, scfg, ccfg Config) (cli, srv *Conn) {
	t.Helper()
	ln, err := Listen(scfg, func() (net.Listener, error) {
		ln, err := tcpListen()
		return opaqueListener{ln}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	dial := tcpDialer(ln.Addr().String())
	return pairVia(t, ln, ccfg, func() (net.Conn, error) {
		c, err := dial()
		if err != nil {
			return nil, err
		}
		return opaqueConn{c}, nil
	})
}

// pair starts a listener with scfg and dials it with ccfg.
func pair(t *testing.T, scfg, ccfg Config) (cli, srv *Conn, l *Listener) {
	t.Helper()
	l = newListener(t, scfg)
	cli, srv = pairVia(t, l, ccfg, tcpDialer(l.Addr().String()))
	return cli, srv, l
}

// patternPeriod is prime, so the pattern does not line up with chunk sizes.
const patternPeriod = 65521

// pattern is a deterministic byte stream: byte i is tbl[i % patternPeriod].
type pattern struct {
	tbl  []byte // the period twice, so any window up to a period is one slice
	seed uint64
}

func newPattern(seed uint64) *pattern {
	r := rand.New(rand.NewPCG(seed, 1))
	tbl := make([]byte, 2*patternPeriod)
	for i := range patternPeriod {
		tbl[i] = byte(r.Uint32())
	}
	copy(tbl[patternPeriod:], tbl[:patternPeriod])
	return &pattern{tbl: tbl, seed: seed}
}

// at returns the n ≤ patternPeriod bytes from stream offset off.
func (p *pattern) at(off, n int) []byte {
	i := off % patternPeriod
	return p.tbl[i : i+n]
}

// send writes the first total bytes of the pattern in random pieces.
func (p *pattern) send(w io.Writer, total int) error {
	r := rand.New(rand.NewPCG(p.seed, 2))
	for off := 0; off < total; {
		n := min(total-off, 1+r.IntN(patternPeriod))
		m, err := w.Write(p.at(off, n))
		off += m
		if err != nil {
			return fmt.Errorf("send at %d: %w", off, err)
		}
	}
	return nil
}

// expect reads total bytes and checks that they are the pattern's.
func (p *pattern) expect(rd io.Reader, total int) error {
	r := rand.New(rand.NewPCG(p.seed, 3))
	buf := make([]byte, 64<<10)
	for off := 0; off < total; {
		want := min(total-off, 1+r.IntN(len(buf)))
		n, err := rd.Read(buf[:want])
		if n > 0 && !bytes.Equal(buf[:n], p.at(off, n)) {
			return fmt.Errorf("stream differs in [%d, %d)", off, off+n)
		}
		off += n
		if err != nil {
			return fmt.Errorf("expect at %d of %d: %w", off, total, err)
		}
	}
	return nil
}

// exchange sends n pattern bytes each way between a and b at once and checks
// them, within waitFor.
func exchange(t *testing.T, a, b net.Conn, n int, seed uint64) {
	t.Helper()
	exchangeWithin(t, a, b, n, seed, waitFor)
}

// exchangeWithin is exchange with a time limit.
func exchangeWithin(t *testing.T, a, b net.Conn, n int, seed uint64, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	pa, pb := newPattern(seed), newPattern(seed+1)
	errc := make(chan error, 4)
	go func() { errc <- pa.send(a, n) }()
	go func() { errc <- pb.send(b, n) }()
	go func() { errc <- pa.expect(b, n) }()
	go func() { errc <- pb.expect(a, n) }()
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	a.SetDeadline(time.Time{})
	b.SetDeadline(time.Time{})
}

// eventually waits for cond to hold, failing the test after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, waitFor, what, cond)
}

// readErrAsync reads from c until it fails and sends the error.
func readErrAsync(c net.Conn) <-chan error {
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 1024)
		for {
			if _, err := c.Read(buf); err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

// waitErr waits for an error from readErrAsync.
func waitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(waitFor):
		t.Fatal("Read did not fail")
		return nil
	}
}

// readErr reads from c until it fails and returns the error.
func readErr(t *testing.T, c net.Conn) error {
	t.Helper()
	return waitErr(t, readErrAsync(c))
}

// handshakeErrors collects a listener's failed handshakes.
type handshakeErrors struct{ ch chan error }

func newHandshakeErrors(cfg *Config) *handshakeErrors {
	h := &handshakeErrors{ch: make(chan error, 64)}
	cfg.onHandshakeError = func(err error) { h.ch <- err }
	return h
}

// want waits for the next failed handshake and checks it matches target.
func (h *handshakeErrors) want(t *testing.T, target error) {
	t.Helper()
	select {
	case err := <-h.ch:
		if !errors.Is(err, target) {
			t.Fatalf("handshake error %v, want %v", err, target)
		}
	case <-time.After(waitFor):
		t.Fatalf("no handshake error, want %v", target)
	}
}

// pipeListener hands out the server ends of the net.Pipe connections its
// dial makes: snet over a transport with no buffering and no writev.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		c.Close()
		s.Close()
		return nil, net.ErrClosed
	}
}

// transports run a scenario over real TCP and over net.Pipe.
var transports = []struct {
	name string
	pair func(t *testing.T, cfg Config) (cli, srv *Conn)
}{
	{"tcp", func(t *testing.T, cfg Config) (*Conn, *Conn) {
		cli, srv, _ := pair(t, cfg, cfg)
		return cli, srv
	}},
	{"pipe", func(t *testing.T, cfg Config) (*Conn, *Conn) {
		pl := newPipeListener()
		ln, err := Listen(cfg, func() (net.Listener, error) { return pl, nil })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return pairVia(t, ln, cfg, pl.dial)
	}},
}

// generation is c's connection generation: it grows by 2 per resume.
func (c *Conn) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// connected reports whether c has a TCP connection.
func (c *Conn) connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateConnected
}
