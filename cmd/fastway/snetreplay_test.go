package main

import (
	"bytes"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/logfmt"
	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/snet"
)

// snetReconnectSize is an snet reconnect request: 0xff, ID, write count,
// read count, digest (docs/protocol.md §3.4).
const snetReconnectSize = 1 + 8 + 8 + 8 + 16

// wiretap dials through dial and keeps the first snetReconnectSize bytes
// each connection writes: what an eavesdropper on the client's network sees
// of its handshakes.
type wiretap struct {
	dial func() (net.Conn, error)

	mu    sync.Mutex
	first [][]byte
}

func (w *wiretap) dialer() (net.Conn, error) {
	c, err := w.dial()
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.first = append(w.first, nil)
	i := len(w.first) - 1
	w.mu.Unlock()
	return &tappedConn{Conn: c, w: w, i: i}, nil
}

func (w *wiretap) dials() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.first)
}

// reconnect returns the last reconnect request seen, if it is whole.
func (w *wiretap) reconnect() ([]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.first) - 1; i >= 0; i-- {
		if b := w.first[i]; len(b) == snetReconnectSize && b[0] == 0xff {
			return bytes.Clone(b), true
		}
	}
	return nil, false
}

type tappedConn struct {
	net.Conn
	w *wiretap
	i int
}

func (c *tappedConn) Write(p []byte) (int, error) {
	c.w.mu.Lock()
	if need := snetReconnectSize - len(c.w.first[c.i]); need > 0 {
		c.w.first[c.i] = append(c.w.first[c.i], p[:min(need, len(p))]...)
	}
	c.w.mu.Unlock()
	return c.Conn.Write(p)
}

// TestSnetReplayedResume mounts issue 14's finding 5 against the binary
// (snet on the client port, encrypted): capture a real reconnect request
// off the wire, then, while the victim is idle so the counts in it are
// current, replay it three times (hanging up after the reply, or answering
// the challenge wrongly). Before the fix each replay cut the victim's TCP
// connection; now each gets the server's challenge and goes no further:
// the victim dials nothing, keeps its TCP connection, and its virtual
// connection carries data byte-exact both ways.
func TestSnetReplayedResume(t *testing.T) {
	t.Parallel()
	p := startProc(t, t.TempDir(), append(slices.Clone(loopbackArgs), "-ClientSnetEnable", "-ClientSnetEncrypt")...)
	clientAddr, serverAddr := p.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)

	srv, err := proto.DialServerAddr("tcp", serverAddr, proto.EndPointCfg{ServerID: 1, AuthKey: password})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, srv)
	p.waitFrom(0, "server registered", "id", "1")
	tap := &wiretap{dial: func() (net.Conn, error) { return net.DialTimeout("tcp", clientAddr, timeout) }}
	cconn, err := snet.Dial(snet.Config{EnableCrypt: true}, tap.dialer)
	if err != nil {
		t.Fatal(err)
	}
	// No keep-alive: the victim sends nothing while the replays run.
	cli, err := proto.NewClient(cconn, proto.EndPointCfg{PingInterval: -1})
	if err != nil {
		cconn.Close()
		t.Fatal(err)
	}
	closeOnCleanup(t, cli)
	c, s := relay(t, cli, srv, 1, "hello over snet")

	// A real reconnect, as a mobile client makes, seen on the wire.
	cconn.(*snet.Conn).TryReconn()
	var req []byte
	poll.Until(t, timeout, "the reconnect request", func() (ok bool) { req, ok = tap.reconnect(); return ok })
	poll.UntilNil(t, timeout, "the resume", func() error {
		if res := p.run("snet", false).kv["result"]; !strings.Contains(res, "snet.client.resumes=1 ") {
			return errorString(res)
		}
		return nil
	})
	dials, local := tap.dials(), cconn.LocalAddr().String()

	for i, answer := range []bool{false, true, true} {
		raw, err := net.DialTimeout("tcp", clientAddr, timeout)
		if err != nil {
			t.Fatal(err)
		}
		raw.SetDeadline(time.Now().Add(timeout))
		raw.Write(req)
		reply := make([]byte, 24)
		if _, err := io.ReadFull(raw, reply); err != nil {
			t.Fatalf("replay %d: %v", i, err)
		}
		if bytes.Equal(reply, make([]byte, 24)) {
			t.Fatalf("replay %d refused: the counts in it should be current, so the server answers with a challenge", i)
		}
		if answer {
			raw.Write(bytes.Repeat([]byte{0x5a}, 16))
			if _, err := raw.Read(make([]byte, 1)); err == nil {
				t.Fatalf("replay %d: the gateway sent data after a wrong answer", i)
			}
		}
		raw.Close()
	}
	poll.UntilNil(t, timeout, "3 failed handshakes counted", func() error {
		res := p.run("snet", false).kv["result"]
		if n, _ := strconv.Atoi(logfmt.Parse(res)["snet.client.handshakes_failed"]); n < 3 {
			return errorString(res)
		}
		return nil
	})
	roundTrip(t, c, s, "after three replays")
	roundTrip(t, c, s, strings.Repeat("0123456789abcdef", 4<<10))
	if n, after := tap.dials(), cconn.LocalAddr().String(); n != dials || after != local {
		t.Errorf("the victim reconnected: %d dials (was %d), local address %s (was %s)", n, dials, after, local)
	}
	res := p.run("snet", false).kv["result"]
	for _, want := range []string{"snet.client.sessions=1 ", "snet.client.resumes=1 ", "snet.client.resumes_refused=0 "} {
		if !strings.Contains(res, want) {
			t.Errorf("snet %q lacks %q", res, want)
		}
	}
	p.stop()
}

// errorString is a poll condition's last state.
type errorString string

func (e errorString) Error() string { return string(e) }
