package snet

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// recorder dials through dial and keeps the first bytes each connection
// writes, so a test can capture a real reconnect request as it left the
// client.
type recorder struct {
	dial func() (net.Conn, error)

	mu    sync.Mutex
	dials int
	first [][]byte // per connection, its first reconnRequestSize bytes written
}

func (r *recorder) dialer() (net.Conn, error) {
	c, err := r.dial()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.dials++
	r.first = append(r.first, nil)
	i := len(r.first) - 1
	r.mu.Unlock()
	return &recordedConn{Conn: c, r: r, i: i}, nil
}

// lastReconnect returns the last reconnect request captured, and how many
// connections were dialed.
func (r *recorder) lastReconnect(t *testing.T) (req []byte, dials int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.first) - 1; i >= 0; i-- {
		if b := r.first[i]; len(b) == reconnRequestSize && b[0] == typeReconn {
			return bytes.Clone(b), r.dials
		}
	}
	t.Fatal("no reconnect request captured")
	return nil, 0
}

func (r *recorder) dialCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dials
}

type recordedConn struct {
	net.Conn
	r *recorder
	i int
}

func (c *recordedConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	if need := reconnRequestSize - len(c.r.first[c.i]); need > 0 {
		c.r.first[c.i] = append(c.r.first[c.i], p[:min(need, len(p))]...)
	}
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

// replay sends a captured reconnect request on a new TCP connection to addr
// and returns the server's reply; answer decides what the attacker does
// next: send a wrong answer to the challenge, or hang up.
func replay(t *testing.T, addr string, req []byte, answer bool) [reconnReplySize]byte {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(waitFor))
	if _, err := raw.Write(req); err != nil {
		t.Fatal(err)
	}
	var reply [reconnReplySize]byte
	if _, err := io.ReadFull(raw, reply[:]); err != nil {
		t.Fatalf("replayed request: no reply: %v", err)
	}
	if answer {
		raw.Write(bytes.Repeat([]byte{0xa5}, sizeOfDigest))
		if _, err := raw.Read(make([]byte, 1)); err == nil {
			t.Fatal("the server sent data after a wrong answer to its challenge")
		}
	}
	return reply
}

// TestReplayedResume mounts issue 14's finding 5: capture a real reconnect
// request as the client sends it, then replay it three times while the
// session is live and idle (so its counts are current), once hanging up
// after the reply, twice answering the challenge wrongly. Before the fix
// each replay cut the victim's TCP connection; now the server answers
// (counts and a challenge, as to the real client) and the session keeps its
// connection: no new dial, the same TCP connection on both sides, and data
// flows byte-exact both ways after each replay.
func TestReplayedResume(t *testing.T) {
	for _, crypt := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "crypt"}[crypt], func(t *testing.T) {
			cfg := Config{EnableCrypt: crypt}
			hs := newHandshakeErrors(&cfg)
			l := newListener(t, cfg)
			rec := &recorder{dial: tcpDialer(l.Addr().String())}
			cli, srv := pairVia(t, l, cfg, rec.dialer)
			exchange(t, cli, srv, 10000, 1)
			// A real reconnect, to capture, while idle: the counts in the
			// request stay current for as long as the victim sends nothing.
			cli.TryReconn()
			eventually(t, "the resume", func() bool { return l.Stats().Resumes == 1 && cli.connected() })
			req, dials := rec.lastReconnect(t)

			cliLocal, srvRemote, gen := cli.LocalAddr().String(), srv.RemoteAddr().String(), srv.generation()
			for i, answer := range []bool{false, true, true} {
				reply := replay(t, l.Addr().String(), req, answer)
				if reply == ([reconnReplySize]byte{}) {
					t.Fatalf("replay %d: refused; the server should answer with its counts and a challenge", i)
				}
				if answer {
					hs.want(t, ErrBadDigest)
				} else {
					hs.want(t, io.EOF)
				}
				if got := srv.generation(); got != gen || !srv.connected() || srv.RemoteAddr().String() != srvRemote {
					t.Fatalf("replay %d moved the session: generation %d → %d, remote %s → %s", i, gen, got, srvRemote, srv.RemoteAddr())
				}
			}
			exchange(t, cli, srv, 64<<10, 2)
			if n := rec.dialCount(); n != dials || cli.LocalAddr().String() != cliLocal {
				t.Fatalf("the client reconnected: %d dials (was %d), local address %s (was %s)", n, dials, cli.LocalAddr(), cliLocal)
			}
			if st := l.Stats(); st.Resumes != 1 || st.ResumesRefused != 0 {
				t.Fatalf("stats %+v, want 1 resume and no refusal", st)
			}
		})
	}
}

// TestResumeRacesReplays: while the client resumes for real, replays of its
// own request race it, several at once. The real resume wins every round
// and no byte is lost or repeated; a replay never makes it fail.
func TestResumeRacesReplays(t *testing.T) {
	cfg := Config{EnableCrypt: true}
	l := newListener(t, cfg)
	rec := &recorder{dial: tcpDialer(l.Addr().String())}
	cli, srv := pairVia(t, l, cfg, rec.dialer)
	exchange(t, cli, srv, 1000, 1)
	offered := 0
	for round := range 8 {
		resumes, dials := l.Stats().Resumes, rec.dialCount()
		cli.TryReconn()
		// The request is on its way; replay it as soon as it is captured,
		// three times in parallel, while the real handshake runs.
		var req []byte
		eventually(t, "the reconnect request", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.first) <= dials {
				return false
			}
			b := rec.first[len(rec.first)-1]
			if len(b) == reconnRequestSize {
				req = bytes.Clone(b)
				return true
			}
			return false
		})
		var wg sync.WaitGroup
		var mu sync.Mutex
		for k := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				raw, err := net.DialTimeout("tcp", l.Addr().String(), waitFor)
				if err != nil {
					return
				}
				defer raw.Close()
				raw.SetDeadline(time.Now().Add(waitFor))
				raw.Write(req)
				var reply [reconnReplySize]byte
				if _, err := io.ReadFull(raw, reply[:]); err != nil || reply == ([reconnReplySize]byte{}) {
					return
				}
				mu.Lock()
				offered++
				mu.Unlock()
				if k == 0 {
					return // hang up
				}
				raw.Write(make([]byte, sizeOfDigest))
				raw.Read(make([]byte, 1))
			}()
		}
		wg.Wait()
		eventually(t, "the real resume", func() bool { return l.Stats().Resumes == resumes+1 && cli.connected() })
		exchange(t, cli, srv, 30000, uint64(100+round))
	}
	// The victim is idle while each round's replays run, so each reaches
	// the challenge, before or after the real resume.
	if offered != 8*3 {
		t.Errorf("%d of %d replays got a challenge, want all", offered, 8*3)
	}
	if st := l.Stats(); st.Resumes != 8 {
		t.Fatalf("%d resumes, want 8", st.Resumes)
	}
}

// rawSession opens a plain snet session to addr by hand and returns its TCP
// connection, ID and key.
func rawSession(t *testing.T, addr string) (net.Conn, uint64, [sizeOfKey]byte) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(waitFor))
	const priv = 0x1234567
	hello := encodeNewRequest(DH64PublicKey(priv))
	raw.Write(hello[:])
	var reply [newReplySize]byte
	if _, err := io.ReadFull(raw, reply[:]); err != nil {
		t.Fatal(err)
	}
	pub, encID, challenge := decodeNewReply(reply)
	key := sessionKey(DH64Secret(priv, pub))
	id := decryptID(encID, newCipher(key))
	d := challengeDigest(challenge, key)
	raw.Write(d[:])
	return raw, id, key
}

// TestResumeSkipsWhatArrivedMeanwhile: the old TCP connection is still
// alive while a reconnect waits for its answer, and bytes the client had
// sent on it arrive after the server replied with its read count. The
// client replays from that count as §3.4 says; the server drops the bytes
// it already read, so the stream holds each byte once.
func TestResumeSkipsWhatArrivedMeanwhile(t *testing.T) {
	l := newListener(t, Config{})
	accepted := acceptAsync(l)
	raw1, id, key := rawSession(t, l.Addr().String())
	srv := (<-accepted).(*Conn)
	defer srv.Close()
	read := func(want string) {
		t.Helper()
		srv.SetReadDeadline(time.Now().Add(waitFor))
		got := make([]byte, len(want))
		if _, err := io.ReadFull(srv, got); err != nil || string(got) != want {
			t.Fatalf("server read %q, %v; want %q", got, err, want)
		}
	}
	raw1.Write([]byte("abc"))
	read("abc")

	// The client has written "abcdef" (the last 3 still in flight on the
	// old connection) and read nothing.
	raw2, err := net.DialTimeout("tcp", l.Addr().String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	raw2.SetDeadline(time.Now().Add(waitFor))
	req := encodeReconnRequest(id, 6, 0, key)
	raw2.Write(req[:])
	var reply [reconnReplySize]byte
	if _, err := io.ReadFull(raw2, reply[:]); err != nil {
		t.Fatal(err)
	}
	sw, sr, challenge, ok := decodeReconnReply(reply)
	if !ok || sw != 0 || sr != 3 {
		t.Fatalf("reply: write %d read %d ok %v, want 0, 3, true", sw, sr, ok)
	}
	raw1.Write([]byte("def")) // arrives on the old connection, which still works
	read("def")
	d := challengeDigest(challenge, key)
	raw2.Write(d[:])
	raw2.Write([]byte("def" + "ghi")) // the replay from 3, then new data
	read("ghi")
	srv.Write([]byte("ok"))
	got := make([]byte, 2)
	if _, err := io.ReadFull(raw2, got); err != nil || string(got) != "ok" {
		t.Fatalf("client read %q, %v on the new connection", got, err)
	}
	raw1.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.Copy(io.Discard, raw1); err != nil {
		t.Fatalf("old connection: %v, want it closed by the server", err)
	}
}
