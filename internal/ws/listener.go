// Package ws is the gateway's WebSocket transport for clients
// (docs/protocol.md §8): a net.Listener that upgrades the connections it
// accepts and hands out Conns carrying the §1 byte stream in binary
// messages. The HTTP upgrade is github.com/gobwas/ws's (it upgrades on the
// raw connection, with no per-connection HTTP server state); framing after
// the upgrade is this package's, decoded in place in the reader's buffer.
package ws

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Config is a Listener's configuration.
type Config struct {
	// Path is the request path to upgrade; others get 404. Empty: "/".
	Path string
	// Origins lists the allowed Origin header values (scheme://host[:port],
	// compared case-insensitively). Empty, or an entry "*": any Origin,
	// and requests with none (non-browser clients).
	Origins []string
	// TLS, when set, makes the listener serve wss: the TLS handshake runs
	// before the upgrade, within HandshakeTimeout.
	TLS *tls.Config
	// HandshakeTimeout bounds the TLS handshake and the upgrade request
	// together. Zero: 5 s.
	HandshakeTimeout time.Duration
	// MaxHandshakes caps handshakes in progress. When they are all taken,
	// the oldest one is closed to make room for the new connection
	// (counted FailOverflow): a flood that holds its sockets open cannot
	// keep honest clients, whose upgrades take a round trip or two, out.
	// Zero: 1024.
	MaxHandshakes int
	// MaxHandshakesPerSource caps the handshakes in progress from one
	// source (an IPv4 address, an IPv6 /64); past it new connections from
	// there are closed at once (FailSource). Zero: 256; negative: no cap.
	MaxHandshakesPerSource int
	// MaxRequestBytes caps the upgrade request (request line and
	// headers); larger requests get 431. Zero: 8 KiB.
	MaxRequestBytes int
	// Log gets one line per failed handshake, at most one per second per
	// reason with the count of the ones not logged. Nil: none.
	Log *slog.Logger
}

// Failure is why a handshake failed.
type Failure uint8

const (
	FailTimeout  Failure = iota // no complete request (or TLS handshake) within HandshakeTimeout
	FailTLS                     // the TLS handshake failed
	FailRequest                 // not a valid WebSocket upgrade request
	FailPath                    // the path is not Config.Path
	FailOrigin                  // the Origin is not allowed
	FailTooLarge                // the request passed MaxRequestBytes
	FailIO                      // the connection failed or closed mid-handshake
	FailOverflow                // closed to make room: MaxHandshakes were in progress (the oldest goes)
	FailSource                  // closed at once: MaxHandshakesPerSource were in progress from its source
	numFailures
)

var failureNames = [numFailures]string{"timeout", "tls", "bad_request", "path", "origin", "too_large", "io", "overflow", "source"}

func (f Failure) String() string { return failureNames[f] }

// Failures lists every Failure, for metrics.
func Failures() []Failure {
	f := make([]Failure, numFailures)
	for i := range f {
		f[i] = Failure(i)
	}
	return f
}

// Stats counts a Listener's handshakes.
type Stats struct {
	Upgrades   uint64              // handshakes that succeeded
	Failed     [numFailures]uint64 // handshakes that failed, by Failure
	InProgress int64               // handshakes in progress now
	Subproto   uint64              // upgrades that chose the "fastway" subprotocol
}

// Subprotocol is the WebSocket subprotocol of docs/protocol.md §8.
const Subprotocol = "fastway"

// Listener accepts TCP connections, upgrades them and returns *Conn.
// Handshakes run concurrently, each in its own goroutine, so a slow one
// delays nobody; Accept returns upgraded connections in the order their
// handshakes end.
type Listener struct {
	inner    net.Listener
	cfg      Config
	origins  map[string]bool // nil: any
	ready    chan net.Conn
	errs     chan error
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	mu       sync.Mutex
	pending  map[net.Conn]*pendingHS // connections in handshake, closed by Close
	bySource map[netip.Prefix]int    // handshakes in progress per source
	stats    struct{ upgrades, subproto atomic.Uint64 }
	failed   [numFailures]atomic.Uint64
	inFlight atomic.Int64
	logMu    sync.Mutex
	logged   [numFailures]time.Time
	unlogged [numFailures]uint64
}

// NewListener serves WebSocket on inner, which it owns from now on.
func NewListener(inner net.Listener, cfg Config) *Listener {
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = 1024
	}
	if cfg.MaxHandshakesPerSource == 0 {
		cfg.MaxHandshakesPerSource = 256
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 8 << 10
	}
	l := &Listener{inner: inner, cfg: cfg, ready: make(chan net.Conn), errs: make(chan error),
		done: make(chan struct{}), pending: make(map[net.Conn]*pendingHS), bySource: make(map[netip.Prefix]int)}
	for _, o := range cfg.Origins {
		if o == "*" {
			l.origins = nil
			break
		}
		if l.origins == nil {
			l.origins = make(map[string]bool)
		}
		l.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next upgraded connection, a *Conn. A failing accept
// of the inner listener (out of file descriptors, say) is returned as is,
// and the listener accepts again at the next call; after Close it returns
// net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, ends the handshakes in progress and waits for
// their goroutines. Connections already returned by Accept are the
// caller's.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
		l.mu.Lock()
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
	})
	l.wg.Wait()
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Stats returns the handshake counters.
func (l *Listener) Stats() Stats {
	s := Stats{Upgrades: l.stats.upgrades.Load(),
		InProgress: l.inFlight.Load(), Subproto: l.stats.subproto.Load()}
	for i := range s.Failed {
		s.Failed[i] = l.failed[i].Load()
	}
	return s
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case l.errs <- err: // the caller backs off before it accepts again
				continue
			case <-l.done:
				return
			}
		}
		src := sourceOf(c)
		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			c.Close()
			return
		default:
		}
		if n := l.cfg.MaxHandshakesPerSource; n > 0 && l.bySource[src] >= n {
			l.mu.Unlock()
			c.Close()
			l.fail(FailSource, c, fmt.Errorf("%d handshakes in progress from %s", n, src))
			continue
		}
		if len(l.pending) >= l.cfg.MaxHandshakes {
			// Full: the oldest handshake makes room. Its goroutine
			// finds its connection closed and counts it (overflow).
			var oldest net.Conn
			var at time.Time
			for pc, p := range l.pending {
				if !p.evicted && (oldest == nil || p.start.Before(at)) {
					oldest, at = pc, p.start
				}
			}
			if oldest == nil {
				l.mu.Unlock()
				c.Close()
				l.fail(FailOverflow, c, fmt.Errorf("%d handshakes in progress", l.cfg.MaxHandshakes))
				continue
			}
			l.pending[oldest].evicted = true
			oldest.Close()
		}
		l.pending[c] = &pendingHS{start: time.Now(), src: src}
		l.bySource[src]++
		l.inFlight.Add(1)
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handshake(c)
	}
}

// handshake upgrades c and hands it to Accept, or closes it.
func (l *Listener) handshake(c net.Conn) {
	defer l.wg.Done()
	raw := c
	wc, f, err := l.upgrade(c)
	l.mu.Lock()
	p := l.pending[raw]
	delete(l.pending, raw)
	if l.bySource[p.src]--; l.bySource[p.src] <= 0 {
		delete(l.bySource, p.src)
	}
	l.mu.Unlock()
	l.inFlight.Add(-1)
	if p.evicted {
		// Closed to make room for a newer connection.
		if wc != nil {
			wc.c.Close()
		}
		raw.Close()
		l.fail(FailOverflow, raw, fmt.Errorf("the oldest of %d handshakes in progress, closed for a new connection", l.cfg.MaxHandshakes))
		return
	}
	if err != nil {
		raw.Close()
		l.fail(f, raw, err)
		return
	}
	l.stats.upgrades.Add(1)
	select {
	case l.ready <- wc:
	case <-l.done:
		wc.c.Close()
	}
}

// fail counts a failed handshake and logs it, rate-limited per Failure.
func (l *Listener) fail(f Failure, c net.Conn, err error) {
	l.failed[f].Add(1)
	if l.cfg.Log == nil {
		return
	}
	l.logMu.Lock()
	now := time.Now()
	if now.Sub(l.logged[f]) < time.Second {
		l.unlogged[f]++
		l.logMu.Unlock()
		return
	}
	suppressed := l.unlogged[f]
	l.logged[f], l.unlogged[f] = now, 0
	l.logMu.Unlock()
	attrs := []any{slog.String("remote", c.RemoteAddr().String()), slog.String("reason", f.String()), slog.String("error", err.Error())}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	l.cfg.Log.Warn("websocket handshake failed", attrs...)
}

// upgrade runs the TLS handshake (wss) and the WebSocket upgrade on c
// within the handshake timeout.
func (l *Listener) upgrade(c net.Conn) (*Conn, Failure, error) {
	deadline := time.Now().Add(l.cfg.HandshakeTimeout)
	c.SetDeadline(deadline)
	if l.cfg.TLS != nil {
		tc := tls.Server(c, l.cfg.TLS)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			return nil, classify(err, FailTLS), err
		}
		c = tc
	}
	req, early, err := readRequest(c, l.cfg.MaxRequestBytes)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			writeStatus(c, http.StatusRequestHeaderFieldsTooLarge, "request too large")
			return nil, FailTooLarge, err
		}
		return nil, classify(err, FailIO), err
	}
	fail := FailRequest
	chose := false
	u := ws.Upgrader{
		ReadBufferSize: len(req),
		OnRequest: func(uri []byte) error {
			path := uri
			if i := bytes.IndexByte(path, '?'); i >= 0 {
				path = path[:i]
			}
			if string(path) != l.cfg.Path {
				fail = FailPath
				return ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound), ws.RejectionReason("no WebSocket endpoint at this path"))
			}
			return nil
		},
		OnHeader: func(key, value []byte) error {
			if l.origins != nil && strings.EqualFold(string(key), "Origin") &&
				!l.origins[strings.ToLower(strings.TrimRight(string(value), "/"))] {
				fail = FailOrigin
				return ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden), ws.RejectionReason("origin not allowed"))
			}
			return nil
		},
		Protocol: func(p []byte) bool {
			if string(p) == Subprotocol {
				chose = true
				return true
			}
			return false
		},
	}
	if _, err := u.Upgrade(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(req), c}); err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			// Writing the response failed (the request was read whole):
			// the client went away, or did not take it in time.
			fail = classify(err, FailIO)
		}
		return nil, fail, err
	}
	if chose {
		l.stats.subproto.Add(1)
	}
	c.SetDeadline(time.Time{})
	return newConn(c, early), 0, nil
}

// pendingHS is a handshake in progress.
type pendingHS struct {
	start   time.Time
	src     netip.Prefix
	evicted bool // closed to make room (under Listener.mu)
}

// sourceOf is c's source for MaxHandshakesPerSource: its IPv4 address, or
// its IPv6 /64.
func sourceOf(c net.Conn) netip.Prefix {
	var a netip.Addr
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a = ta.AddrPort().Addr().Unmap()
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// classify tells a timeout from other I/O failures.
func classify(err error, other Failure) Failure {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return FailTimeout
	}
	return other
}

var errTooLarge = errors.New("upgrade request too large")

// readRequest reads an HTTP request head (through its blank line) of at
// most max bytes from c, and returns it with any bytes read past it (a
// client that sent frames right behind its request: they are not lost).
func readRequest(c net.Conn, max int) (req, early []byte, err error) {
	buf := make([]byte, 0, 1024)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= max {
				return nil, nil, errTooLarge
			}
			buf = append(buf, make([]byte, min(2*cap(buf), max)-len(buf))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		from := max0(len(buf) - 3)
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf[from:], []byte("\r\n\r\n")); i >= 0 {
			end := from + i + 4
			if end > max {
				return nil, nil, errTooLarge
			}
			if end < len(buf) {
				early = append([]byte(nil), buf[end:]...)
			}
			return buf[:end], early, nil
		}
		if len(buf) >= max {
			return nil, nil, errTooLarge
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
	}
}

func max0(n int) int { return max(n, 0) }

// writeStatus writes a minimal HTTP error response.
func writeStatus(c net.Conn, code int, msg string) {
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(msg), msg)
}
