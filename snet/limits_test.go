package snet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRewriteBufferGrows: a session holds no rewrite buffer until it writes,
// then about what it wrote, up to RewriterBufferSize; the listener reports
// the total.
func TestRewriteBufferGrows(t *testing.T) {
	l := newListener(t, Config{})
	cli, srv := pairVia(t, l, Config{}, TCPDialer(Config{}, l.Addr().String(), waitFor))
	if st := l.Stats(); st.RewriteBytes != 0 || st.Sessions != 1 {
		t.Fatalf("fresh session: %+v, want no rewrite bytes and 1 session", st)
	}
	exchange(t, cli, srv, 100, 1)
	if st := l.Stats(); st.RewriteBytes != minRingAlloc {
		t.Fatalf("after 100 bytes: %d rewrite bytes, want %d", st.RewriteBytes, minRingAlloc)
	}
	exchange(t, cli, srv, 1<<20, 2)
	if st := l.Stats(); st.RewriteBytes != DefaultRewriterBufferSize {
		t.Fatalf("after 1 MiB: %d rewrite bytes, want %d", st.RewriteBytes, DefaultRewriterBufferSize)
	}
}

// logRecorder keeps every record logged through it as "msg k=v ...".
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// all returns the lines so far.
func (r *logRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// find returns the first line that contains every part.
func (r *logRecorder) find(parts ...string) (string, bool) {
	for _, l := range r.all() {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l, true
		}
	}
	return "", false
}

// recordingLogger returns a logger whose lines r keeps.
func recordingLogger(r *logRecorder) *slog.Logger { return slog.New(r) }

// TestMaxHandshakes: past MaxHandshakes connections in their handshake, a new
// connection is closed at once, counted and logged, before anything is read
// from it; once the handshakes in progress end, honest sessions get through.
func TestMaxHandshakes(t *testing.T) {
	rec := &logRecorder{}
	cfg := Config{MaxHandshakes: 2, HandshakeTimeout: waitFor, Logger: recordingLogger(rec)}
	l := newListener(t, cfg)
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	eventually(t, "2 handshakes in progress", func() bool { return l.Stats().Handshaking == 2 })
	extra, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(waitFor))
	if n, err := extra.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a handshake past the limit: read %d, %v; want it closed", n, err)
	}
	if st := l.Stats(); st.HandshakesRefused != 1 || st.Handshaking != 2 {
		t.Fatalf("stats %+v, want 1 refused and 2 in progress", st)
	}
	if line, ok := rec.find("snet handshake refused", "reason=too many handshakes", "max=2"); !ok {
		t.Fatalf("no log line for the refusal; got %q", rec.all())
	} else if !strings.Contains(line, "remote=127.0.0.1:") {
		t.Fatalf("refusal logged as %q, without the remote address", line)
	}
	for _, c := range silent {
		c.Close()
	}
	eventually(t, "the silent handshakes end", func() bool { return l.Stats().Handshaking == 0 })
	cli, srv := pairVia(t, l, Config{}, tcpDialer(l.Addr().String()))
	exchange(t, cli, srv, 1000, 1)
	if st := l.Stats(); st.HandshakesFailed != 2 || st.Sessions != 1 {
		t.Fatalf("stats %+v, want 2 failed handshakes and 1 session", st)
	}
	if _, ok := rec.find("snet handshake failed", "remote=127.0.0.1:", "err="); !ok {
		t.Fatalf("no log line for the failed handshakes; got %q", rec.all())
	}
}

// TestExpiredAfterRefusal: a session whose client's reconnect was refused
// for a gap too large closes when ReconnWaitTimeout passes, with an error
// that says so; refusal and expiry are counted and logged.
func TestExpiredAfterRefusal(t *testing.T) {
	rec := &logRecorder{}
	scfg := Config{RewriterBufferSize: 1024, ReconnWaitTimeout: 300 * time.Millisecond, Logger: recordingLogger(rec)}
	ln, err := Listen(scfg, func() (net.Listener, error) {
		ln, err := tcpListen()
		return opaqueListener{ln}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := ln.(*Listener)
	dial := tcpDialer(l.Addr().String())
	cli, srv := pairVia(t, l, Config{}, func() (net.Conn, error) {
		c, err := dial()
		return opaqueConn{c}, err
	})
	srvErr := readErrAsync(srv)
	srv.Write(make([]byte, 64<<10)) // the client reads none of it
	cli.TryReconn()
	if err := readErr(t, cli); !errors.Is(err, ErrRefused) {
		t.Fatalf("client: %v, want ErrRefused", err)
	}
	err = waitErr(t, srvErr)
	if !errors.Is(err, ErrReconnTimeout) || !strings.Contains(err.Error(), ErrGapTooLarge.Error()) {
		t.Fatalf("server session closed with %v, want ErrReconnTimeout naming the gap", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v is not a timeout", err)
	}
	st := l.Stats()
	if st.ResumesRefused != 1 || st.GapsTooLarge != 1 || st.Expired != 1 || st.Resumes != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, parts := range [][]string{
		{"snet resume refused", "conn_id=", "reason=", "rewrite buffer"},
		{"snet session expired", "conn_id=", "reason=", "rewrite buffer"},
	} {
		if _, ok := rec.find(parts...); !ok {
			t.Errorf("no log line with %q; got %q", parts, rec.all())
		}
	}
}

// TestResumesCounted: every resume the listener completes is counted.
func TestResumesCounted(t *testing.T) {
	l := newListener(t, Config{})
	cli, srv := pairVia(t, l, Config{}, TCPDialer(Config{}, l.Addr().String(), waitFor))
	for i := range 3 {
		cli.TryReconn()
		exchange(t, cli, srv, 1000, uint64(i))
	}
	eventually(t, "3 resumes", func() bool { return l.Stats().Resumes == 3 })
}

// floodConn opens one TCP connection to addr and misbehaves in one of four
// ways: garbage for a first byte; a "new" hello, then silence; a whole new
// handshake, then garbage; a reconnect for a session that does not exist.
// It leaves the connection open, returned, for the caller to close.
func floodConn(addr string, kind int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(waitFor))
	switch kind {
	case 0:
		_, err = c.Write([]byte("GET / HTTP/1.1\r\n"))
	case 1:
		req := encodeNewRequest(DH64PublicKey(12345))
		_, err = c.Write(req[:])
	case 2:
		err = floodHandshake(c)
		if err == nil {
			_, err = c.Write(bytes.Repeat([]byte{0xee}, 64))
		}
	case 3:
		req := encodeReconnRequest(uint64(kind)<<40, 1, 1, [sizeOfKey]byte{})
		_, err = c.Write(req[:])
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// floodHandshake completes a new-session handshake on c by hand, as any
// client can: nothing in it is secret.
func floodHandshake(c net.Conn) error {
	const priv = 12345
	req := encodeNewRequest(DH64PublicKey(priv))
	if _, err := c.Write(req[:]); err != nil {
		return err
	}
	var reply [newReplySize]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return err
	}
	pub, _, challenge := decodeNewReply(reply)
	d := challengeDigest(challenge, sessionKey(DH64Secret(priv, pub)))
	_, err := c.Write(d[:])
	return err
}

// heapInUse returns the bytes of live heap objects after a GC.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestFloodHoldsLittle: 2,000 connections that misbehave in their handshake
// (see floodConn), up to MaxHandshakes at a time, with the sessions that do
// complete left for the listener's owner to drop (as the gateway drops a
// server that fails its authentication), hold little heap: rewrite buffers
// are allocated only as a session writes. An honest session works
// alongside.
func TestFloodHoldsLittle(t *testing.T) {
	const conns = 2000
	cfg := Config{RewriterBufferSize: 1 << 20, HandshakeTimeout: waitFor, Logger: slog.New(slog.DiscardHandler)}
	l := newListener(t, cfg)
	// The owner: holds every session it accepts, as the gateway does until
	// its authentication fails or times out.
	var held []*Conn
	var hmu sync.Mutex
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hmu.Lock()
			held = append(held, c.(*Conn))
			hmu.Unlock()
		}
	}()
	session := func(id uint64) *Conn {
		hmu.Lock()
		defer hmu.Unlock()
		for _, c := range held {
			if c.ID() == id {
				return c
			}
		}
		return nil
	}
	before := heapInUse()
	var raws []net.Conn
	for i := range conns {
		c, err := floodConn(l.Addr().String(), i%4)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		raws = append(raws, c)
	}
	eventually(t, "the completed handshakes accepted", func() bool {
		hmu.Lock()
		defer hmu.Unlock()
		return len(held) >= conns/4-int(l.Stats().HandshakesRefused)
	})
	grown := int64(heapInUse()) - int64(before)
	st := l.Stats()
	t.Logf("%d flood connections: heap +%.1f MiB (%.0f B each), %d sessions, %d refused at the handshake limit, %d rewrite bytes",
		conns, float64(grown)/(1<<20), float64(grown)/conns, st.Sessions, st.HandshakesRefused, st.RewriteBytes)
	if grown > floodHeapBound {
		t.Errorf("heap grew by %d bytes, want under %d", grown, floodHeapBound)
	}
	if st.RewriteBytes != 0 {
		t.Errorf("sessions that never wrote hold %d rewrite bytes", st.RewriteBytes)
	}
	// An honest session gets through during the flood.
	c, err := Dial(Config{}, TCPDialer(Config{}, l.Addr().String(), waitFor))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cli := c.(*Conn)
	eventually(t, "the honest session accepted", func() bool { return session(cli.ID()) != nil })
	exchange(t, cli, session(cli.ID()), 64<<10, 1)
	for _, c := range raws {
		c.Close()
	}
	hmu.Lock()
	for _, c := range held {
		c.Close()
	}
	hmu.Unlock()
	l.Close()
	<-acceptDone
}

// floodHeapBound bounds TestFloodHoldsLittle's heap growth: 20 MiB for
// 2,000 connections (with -race; a 1 MiB buffer each would be 500 MiB for
// the quarter that complete their handshake).
const floodHeapBound = 20 << 20

// TestIdleSessionMemory opens 1,000 sessions (200 with -race) at the default buffer size and
// measures the heap each side of an idle one holds: after a ping-sized
// exchange (64 bytes each way) its rewrite buffer is 1 KiB, not 32; after
// 64 KiB each way it is full (32 KiB), as a session that has written more
// than its buffer keeps its last 32 KiB.
func TestIdleSessionMemory(t *testing.T) {
	n := 1000
	if raceEnabled {
		n = 200
	}
	for _, tc := range []struct {
		wrote int
		bound float64 // KiB per session side
	}{{64, 8}, {64 << 10, 40}} {
		l := newListener(t, Config{})
		before := heapInUse()
		var all []net.Conn
		for range n {
			cli, srv := pairVia(t, l, Config{}, TCPDialer(Config{}, l.Addr().String(), waitFor))
			exchange(t, cli, srv, tc.wrote, 1)
			all = append(all, cli, srv)
		}
		perSide := float64(int64(heapInUse())-int64(before)) / float64(2*n) / 1024
		t.Logf("%d idle sessions that wrote %d bytes each way: %.1f KiB of heap per session side (rewrite buffers: %d KiB on the server side)",
			n, tc.wrote, perSide, l.Stats().RewriteBytes>>10)
		if perSide > tc.bound {
			t.Errorf("%.1f KiB per session side, want at most %.0f", perSide, tc.bound)
		}
		for _, c := range all {
			c.Close()
		}
		l.Close()
	}
}
