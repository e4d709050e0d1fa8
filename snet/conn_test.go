package snet

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestRoundTrip(t *testing.T) {
	for _, tr := range transports {
		for _, crypt := range []bool{false, true} {
			name := tr.name + map[bool]string{false: "/plain", true: "/crypt"}[crypt]
			t.Run(name, func(t *testing.T) {
				cli, srv := tr.pair(t, Config{EnableCrypt: crypt})
				if cli.ID() != srv.ID() || cli.ID() == 0 {
					t.Fatalf("IDs %d and %d", cli.ID(), srv.ID())
				}
				if cli.LocalAddr().String() != srv.RemoteAddr().String() {
					t.Fatalf("addresses %v and %v", cli.LocalAddr(), srv.RemoteAddr())
				}
				exchange(t, cli, srv, 1<<20, 1)
				// Resume while idle: with the default 32 KiB buffer and
				// kernel-sized socket buffers, writing into the dropped
				// connection could outrun the buffer (see the package doc).
				gen := srv.generation()
				cli.TryReconn()
				eventually(t, "the session resumes", func() bool { return srv.generation() >= gen+2 && srv.connected() })
				exchange(t, cli, srv, 64<<10, 2)
			})
		}
	}
}

// TestTryReconn resumes on demand from either side, idle and mid-transfer,
// and Accept never sees the resumed session.
func TestTryReconn(t *testing.T) {
	cfg := Config{EnableCrypt: true, RewriterBufferSize: 1 << 20}
	l := newSmallBufListener(t, cfg)
	cli, srv := pairVia(t, l, cfg, smallBufDialer(l.Addr().String()))
	accepted := acceptAsync(l)

	exchange(t, cli, srv, 64<<10, 10)
	before := cli.LocalAddr().String()
	cli.TryReconn()
	exchange(t, cli, srv, 64<<10, 20)
	if cli.LocalAddr().String() == before {
		t.Fatal("client still on its first TCP connection")
	}
	srv.TryReconn() // the server drops; the client notices and comes back
	exchange(t, cli, srv, 64<<10, 30)

	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if i%2 == 0 {
				cli.TryReconn()
			} else {
				srv.TryReconn()
			}
		}
	}()
	exchange(t, cli, srv, 2<<20, 40)
	close(stop)
	<-done

	select {
	case c, ok := <-accepted:
		if ok {
			t.Fatalf("Accept returned a resumed session %v", c.(*Conn).ID())
		}
	default:
	}
}

// TestServerWaitTimeout: the server gives up after ReconnWaitTimeout, and the
// client that comes back later is refused.
func TestServerWaitTimeout(t *testing.T) {
	l := newListener(t, Config{ReconnWaitTimeout: 100 * time.Millisecond})
	g := &gate{dial: tcpDialer(l.Addr().String())}
	cli, srv := pairVia(t, l, Config{}, g.dialer)
	g.set(true)
	cli.TryReconn()
	start := time.Now()
	if err := readErr(t, srv); !errors.Is(err, ErrReconnTimeout) {
		t.Fatalf("server Read: %v, want ErrReconnTimeout", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Fatalf("server gave up after %v", d)
	}
	var ne net.Error
	if err := srv.Err(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("server Err %v is not a timeout net.Error", err)
	}
	g.set(false)
	if err := readErr(t, cli); !errors.Is(err, ErrRefused) {
		t.Fatalf("client Read: %v, want ErrRefused", err)
	}
	if _, err := cli.Write([]byte("x")); !errors.Is(err, ErrRefused) {
		t.Fatalf("client Write: %v, want ErrRefused", err)
	}
}

// TestClientReconnTimeout: the client stops trying after ReconnWaitTimeout.
func TestClientReconnTimeout(t *testing.T) {
	l := newListener(t, Config{})
	g := &gate{dial: tcpDialer(l.Addr().String())}
	cli, _ := pairVia(t, l, Config{ReconnWaitTimeout: 150 * time.Millisecond}, g.dialer)
	g.set(true)
	cli.TryReconn()
	err := readErr(t, cli)
	if !errors.Is(err, ErrReconnTimeout) {
		t.Fatalf("client Read: %v, want ErrReconnTimeout", err)
	}
	if !errors.Is(err, ErrReconnTimeout) || !isTimeout(err) {
		t.Fatalf("%v is not a timeout", err)
	}
}

// TestForgedReconnect: unknown IDs, wrong keys and impossible counts are
// refused with 24 zero bytes and leave the real session alone; a valid
// request with a wrong challenge answer leaves it alone too.
func TestForgedReconnect(t *testing.T) {
	cfg := Config{EnableCrypt: true, RewriterBufferSize: 1 << 20}
	hs := newHandshakeErrors(&cfg)
	l := newListener(t, cfg)
	cli, srv := pairVia(t, l, cfg, tcpDialer(l.Addr().String()))
	exchange(t, cli, srv, 100, 1)
	srvRemote := srv.RemoteAddr().String()

	forge := func(req [reconnRequestSize]byte) net.Conn {
		t.Helper()
		raw, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		raw.Write(req[:])
		return raw
	}
	refused := func(req [reconnRequestSize]byte, reason error) {
		t.Helper()
		raw := forge(req)
		rawExpect(t, raw, "refusal", "000000000000000000000000000000000000000000000000")
		if _, err := raw.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after refusal: %v, want EOF", err)
		}
		hs.want(t, reason)
	}
	wrongKey := sessionKey(DH64Secret(DH64PrivateKey(), DH64PublicKey(DH64PrivateKey())))
	refused(encodeReconnRequest(srv.ID()+1000, 100, 100, srv.key), ErrUnknownID)
	refused(encodeReconnRequest(srv.ID(), 100, 100, wrongKey), ErrBadDigest)
	refused(encodeReconnRequest(srv.ID(), 100, 200, srv.key), ErrBadCounts) // read more than written
	refused(encodeReconnRequest(srv.ID(), 50, 100, srv.key), ErrBadCounts)  // wrote less than the server read

	// A forged new-connection digest never reaches Accept.
	accepted := acceptAsync(l)
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	hello := encodeNewRequest(DH64PublicKey(DH64PrivateKey()))
	raw.Write(hello[:])
	io.ReadFull(raw, make([]byte, newReplySize))
	raw.Write(make([]byte, sizeOfDigest))
	hs.want(t, ErrBadDigest)
	// A zero public key is refused without a reply.
	raw0, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw0.Close()
	raw0.Write(make([]byte, newRequestSize))
	hs.want(t, ErrBadHandshake)

	exchange(t, cli, srv, 64<<10, 2)
	if srv.RemoteAddr().String() != srvRemote {
		t.Fatal("the session was moved by a refused request")
	}
	select {
	case <-accepted:
		t.Fatal("Accept returned a session")
	default:
	}

	// A request signed with the key (as if replayed) but a wrong answer to
	// the challenge: the server answers, then drops only the new TCP
	// connection; the session stays on its own.
	cli.mu.Lock()
	wc, rc := cli.writeCount, cli.readCount
	cli.mu.Unlock()
	gen := srv.generation()
	rp := forge(encodeReconnRequest(srv.ID(), wc, rc, srv.key))
	io.ReadFull(rp, make([]byte, reconnReplySize))
	rp.Write(make([]byte, sizeOfDigest))
	hs.want(t, ErrBadDigest)
	if srv.generation() != gen || srv.RemoteAddr().String() != srvRemote {
		t.Fatal("a reconnect that failed its challenge moved the session")
	}
	exchange(t, cli, srv, 64<<10, 3)
}

// TestGapTooLarge: a reconnect that would need more bytes than a buffer holds
// fails with a named error on the side that finds out. The connections are
// opaque to snet, so their kernel buffers are not sized and hold far more
// than the 1 KiB buffers.
func TestGapTooLarge(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		cli, _ := opaquePair(t, Config{}, Config{RewriterBufferSize: 1024})
		cli.Write(make([]byte, 64<<10)) // the server reads none of it
		cli.TryReconn()
		if err := readErr(t, cli); !errors.Is(err, ErrGapTooLarge) {
			t.Fatalf("client Read: %v, want ErrGapTooLarge", err)
		}
	})
	t.Run("server", func(t *testing.T) {
		scfg := Config{RewriterBufferSize: 1024}
		hs := newHandshakeErrors(&scfg)
		cli, srv := opaquePair(t, scfg, Config{})
		srv.Write(make([]byte, 64<<10)) // the client reads none of it
		cli.TryReconn()
		hs.want(t, ErrGapTooLarge)
		if err := readErr(t, cli); !errors.Is(err, ErrRefused) {
			t.Fatalf("client Read: %v, want ErrRefused", err)
		}
	})
}

// TestHandshakeTimeout: a silent or half handshake is closed after
// HandshakeTimeout, without holding up other sessions.
func TestHandshakeTimeout(t *testing.T) {
	cfg := Config{HandshakeTimeout: 200 * time.Millisecond}
	hs := newHandshakeErrors(&cfg)
	l := newListener(t, cfg)
	var raws []net.Conn
	for _, first := range [][]byte{nil, {typeNew, 1, 2}, {typeReconn}} {
		raw, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.Write(first)
		raws = append(raws, raw)
	}
	start := time.Now()
	cli, srv := pairVia(t, l, Config{}, tcpDialer(l.Addr().String()))
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Fatalf("a new session waited %v behind silent handshakes", d)
	}
	exchange(t, cli, srv, 1000, 1)
	for _, raw := range raws {
		raw.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := raw.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("silent handshake: %v, want EOF", err)
		}
		hs.want(t, ErrHandshakeTimeout)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("silent handshakes closed after %v", d)
	}

	// A silent server fails Dial in time too.
	ln, err := tcpListen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	if _, err := Dial(cfg, tcpDialer(ln.Addr().String())); !errors.Is(err, ErrHandshakeTimeout) {
		t.Fatalf("Dial: %v, want ErrHandshakeTimeout", err)
	}
}

// TestDeadlines: deadlines time out Reads and Writes, also while a reconnect
// is pending, and the stream carries on afterwards.
func TestDeadlines(t *testing.T) {
	l := newListener(t, Config{})
	g := &gate{dial: tcpDialer(l.Addr().String())}
	cli, srv := pairVia(t, l, Config{}, g.dialer)
	buf := make([]byte, 10)

	cli.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := cli.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
		t.Fatalf("Read: %v, want a timeout", err)
	}
	g.set(true)
	cli.TryReconn()
	cli.SetDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := cli.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read while reconnecting: %v, want a timeout", err)
	}
	if _, err := cli.Write(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write while reconnecting: %v, want a timeout", err)
	}
	// A deadline moved later wakes nothing early; cleared, the call waits
	// for the reconnect.
	cli.SetDeadline(time.Time{})
	g.set(false)
	exchange(t, cli, srv, 10000, 1)
	srv.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := srv.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("server Read past deadline: %v", err)
	}
	srv.SetReadDeadline(time.Time{})
	exchange(t, cli, srv, 10000, 2)
}

// TestClose: Close is idempotent, Read and Write then fail with
// ErrConnClosed, and the peer sees a break.
func TestClose(t *testing.T) {
	cli, srv, _ := pair(t, Config{ReconnWaitTimeout: 100 * time.Millisecond}, Config{})
	blocked := make(chan error, 1)
	go func() {
		_, err := cli.Read(make([]byte, 1))
		blocked <- err
	}()
	srv.Close()
	if err := srv.Close(); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := srv.Read(make([]byte, 1)); !errors.Is(err, ErrConnClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := srv.Write([]byte("x")); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	// The client finds its session gone when it reconnects.
	if err := <-blocked; !errors.Is(err, ErrRefused) {
		t.Fatalf("client Read: %v, want ErrRefused", err)
	}
}

// TestListenerClose: closing the listener aborts handshakes, closes waiting
// sessions, lets connected ones run (closing when they break), and leaves no
// goroutine behind.
func TestListenerClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	func() {
		l := newListener(t, Config{})
		addr := l.Addr().String()
		g := &gate{dial: tcpDialer(addr)}
		live, liveSrv := pairVia(t, l, Config{ReconnWaitTimeout: 200 * time.Millisecond}, tcpDialer(addr))
		waiting, waitingSrv := pairVia(t, l, Config{}, g.dialer)
		waitingErr := readErrAsync(waitingSrv) // the server learns of a break by reading
		g.set(true)
		waiting.TryReconn()
		eventually(t, "server notices the break", func() bool { return !waitingSrv.connected() })
		silent, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()

		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); !errors.Is(err, ErrListenerClosed) {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := l.Accept(); !errors.Is(err, ErrListenerClosed) || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept: %v", err)
		}
		if err := waitErr(t, waitingErr); !errors.Is(err, ErrListenerClosed) {
			t.Fatalf("waiting session: %v, want ErrListenerClosed", err)
		}
		silent.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("handshake in progress: %v, want EOF", err)
		}
		exchange(t, live, liveSrv, 10000, 1)
		live.TryReconn()
		if err := readErr(t, liveSrv); !errors.Is(err, ErrListenerClosed) {
			t.Fatalf("connected session after a break: %v, want ErrListenerClosed", err)
		}
		if err := readErr(t, live); !errors.Is(err, ErrReconnTimeout) {
			t.Fatalf("its client: %v, want ErrReconnTimeout", err)
		}
		waiting.Close()
	}()
}
