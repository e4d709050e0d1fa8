package gateway

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Issue 14, finding 4: the default cap on client connections, and what an
// accept that fails (out of descriptors) does.

// errListener fails its first n Accepts with EMFILE, then hands out conn
// once, then blocks until closed.
type errListener struct {
	n      int
	conn   net.Conn
	mu     sync.Mutex
	closed chan struct{}
	once   sync.Once
}

func (l *errListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *errListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *errListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// TestAcceptErrorsBackOff (finding 4): an Accept that keeps failing (out of
// descriptors: the review saw "accept4: too many open files" logged in a
// loop) backs off, is counted in Stats for each failure, and is logged
// once per acceptLogInterval, then once more when accepting works again.
func TestAcceptErrorsBackOff(t *testing.T) {
	const failures = 6 // 5+10+20+40+80+160 ms of back-off
	rec := &logRecorder{}
	g := New(Config{ServerAuthPassword: testKey, Logger: slog.New(rec)})
	cli, gw := net.Pipe()
	t.Cleanup(func() { cli.Close() })
	ln := &errListener{n: failures, conn: gw, closed: make(chan struct{})}
	served := make(chan error, 1)
	start := time.Now()
	go func() { served <- g.ServeClients(ln) }()
	eventually(t, "the client accepted after the failures", func() bool { return g.Stats().ClientConns == 1 })
	took := time.Since(start)
	g.Stop()
	if err := <-served; !errors.Is(err, ErrGatewayClosed) {
		t.Fatalf("ServeClients: %v", err)
	}
	if n := g.Stats().AcceptErrors; n != [2]uint64{failures, 0} {
		t.Fatalf("AcceptErrors %v, want [%d 0]", n, failures)
	}
	if took < 300*time.Millisecond {
		t.Errorf("%d failures took %v: no back-off", failures, took)
	}
	lines := rec.find("accept failing; backing off")
	if len(lines) != 1 {
		t.Fatalf("%d accept failure lines for %d failures within %v, want 1", len(lines), failures, acceptLogInterval)
	}
	if !strings.Contains(lines[0]["error"].String(), "too many open files") || lines[0]["side"].String() != "client" {
		t.Errorf("accept failure logged as %v", lines[0])
	}
	rec2 := rec.find("accept recovered")
	if len(rec2) != 1 || rec2[0]["failures"].Uint64() != failures {
		t.Fatalf("recovery lines %v, want one with failures=%d", rec2, failures)
	}
}

// TestDefaultClientMaxConns (finding 4): a zero ClientMaxConns is the
// process's descriptor limit less the reserve for servers, the admin port
// and files (64 + ServerMaxHandshakes + 256), never below half the limit;
// an explicit value is kept, a negative one means unlimited.
func TestDefaultClientMaxConns(t *testing.T) {
	limit := fdLimit()
	if limit <= 0 {
		t.Fatal("no descriptor limit read")
	}
	cfg := func(c Config) Config {
		c.ServerAuthPassword, c.Logger = testKey, discard()
		return New(c).Config()
	}
	if got, want := cfg(Config{}).ClientMaxConns, limit-1344; got != want && limit-1344 >= limit/2 {
		t.Errorf("default ClientMaxConns %d with a limit of %d, want %d", got, limit, want)
	}
	if got := cfg(Config{ServerMaxHandshakes: 100}).FDReserve; got != 64+100+256 {
		t.Errorf("FDReserve %d with 100 handshakes, want %d", got, 64+100+256)
	}
	if got := cfg(Config{FDReserve: 5000}).ClientMaxConns; got != max(limit-5000, limit/2) {
		t.Errorf("ClientMaxConns %d with a reserve of 5000, want %d", got, max(limit-5000, limit/2))
	}
	for _, v := range []int{7, -1} {
		if got := cfg(Config{ClientMaxConns: v}).ClientMaxConns; got != v {
			t.Errorf("ClientMaxConns %d became %d", v, got)
		}
	}
	for _, tc := range []struct {
		limit, reserve, want int
		short                bool
	}{{4000, 1344, 2656, false}, {1 << 20, 1344, 1<<20 - 1344, false}, {2000, 1344, 1000, true}, {1, 1344, 1, true}, {0, 1344, -1, false}} {
		if got := deriveFD(tc.limit, tc.reserve); got.ClientMaxConns != tc.want || got.Short != tc.short {
			t.Errorf("limit %d, reserve %d: %+v, want ClientMaxConns %d, short %v", tc.limit, tc.reserve, got, tc.want, tc.short)
		}
	}
}
