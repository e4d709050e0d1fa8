package gateway

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// Issue 14, findings 1 and 2: the server-port attacks of the adversarial
// review, mounted over loopback against a gateway with the default auth
// throttle.

// dialFromAddr connects to addr from the local address src (any of
// 127.0.0.0/8 reaches a gateway on 127.0.0.1).
func dialFromAddr(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitFor}
	return d.Dial("tcp", addr)
}

// waves runs attack once on each of parallel goroutines at the start of
// every period, until stop; each run gets the wave's deadline. It returns
// once every run has returned.
func waves(parallel int, period time.Duration, stop time.Time, attack func(deadline time.Time)) {
	var wg sync.WaitGroup
	for at := time.Now(); at.Before(stop); at = at.Add(period) {
		if d := time.Until(at); d > 0 {
			time.Sleep(d) // pacing the load, not waiting for a state
		}
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				attack(at.Add(period))
			}()
		}
	}
	wg.Wait()
}

// TestAuthThrottleParallelGuesses (finding 1): waves of 1,000 parallel
// handshakes from 127.0.0.1, each answering its challenge with a wrong
// digest at once. The review counted 1,493 guesses checked in 10 s with
// the default throttle (burst 5, then 1 a second), which allows 15: the
// bucket was checked at accept but charged only when a handshake failed.
// Each handshake now reserves its attempt when it is accepted, so the
// source gets at most burst + elapsed/interval challenges, and as many
// password checks.
func TestAuthThrottleParallelGuesses(t *testing.T) {
	const parallel = 1000
	attack := 2 * time.Second
	raiseNoFile(t, 3*parallel+200)
	g := startGW(t, Config{})
	cfg := g.Config()
	var dials, challenged, dialErrs atomic.Int64
	start := time.Now()
	waves(parallel, attack/8, start.Add(attack), func(deadline time.Time) {
		c, err := dialFromAddr("127.0.0.1", g.serverAddr)
		if err != nil {
			dialErrs.Add(1)
			return
		}
		defer c.Close()
		dials.Add(1)
		c.SetDeadline(time.Now().Add(waitFor))
		var ch [proto.ChallengeSize]byte
		if _, err := io.ReadFull(c, ch[:]); err != nil {
			return // closed before a challenge: no guess
		}
		challenged.Add(1)
		reply := proto.EncodeAuthReply(ch[:], "wrong guess", 1)
		c.Write(reply[:])
		io.Copy(io.Discard, c) // until the gateway closes it
	})
	elapsed := time.Since(start)
	eventually(t, "handshakes over", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.pending) == 0
	})
	s := g.Stats()
	allowed := int64(cfg.ServerAuthFailBurst) + int64(elapsed/cfg.ServerAuthFailInterval) + 1
	t.Logf("%d connections from one address in %v (%d dials failed): %d got a challenge, %d password checks failed, %d refused as throttled, %d by a handshake cap; allowed %d",
		dials.Load(), elapsed.Round(time.Millisecond), dialErrs.Load(), challenged.Load(), s.AuthFailures,
		s.Disconnected(ReasonAuthThrottled), s.Disconnected(ReasonLimit), allowed)
	if n := challenged.Load(); n > allowed {
		t.Errorf("%d handshakes got a challenge, want at most burst %d + %v/%v = %d", n, cfg.ServerAuthFailBurst, elapsed, cfg.ServerAuthFailInterval, allowed)
	}
	if int64(s.AuthFailures) > allowed {
		t.Errorf("%d password checks, want at most %d", s.AuthFailures, allowed)
	}
	if dials.Load() < parallel {
		t.Errorf("only %d connections made; the attack did not run", dials.Load())
	}
}

// TestAuthFloodHonestServer (finding 2): 1,100 silent sockets from
// 127.0.0.1, opened again as soon as the gateway closes them, while an
// honest server registers from 127.0.0.2 twenty times in a row. The review
// saw such a flood take every handshake slot (ServerMaxHandshakes, 1024)
// for the auth timeout each time the bucket refilled, and the honest
// server fail 41 of 67 attempts. One address now holds at most
// ServerMaxHandshakesPerSource handshakes (and, with the throttle, only as
// many as it has attempts left), so the honest server registers every
// time; with the throttle off too.
func TestAuthFloodHonestServer(t *testing.T) {
	const flood = 1100
	raiseNoFile(t, 3*flood+200)
	for _, tc := range []struct {
		name  string
		burst int
	}{{"throttle", 0}, {"no throttle", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			// A short auth timeout makes the silent sockets come back
			// often: the attack's waves are faster, not weaker.
			const authTimeout = 500 * time.Millisecond
			g := startGW(t, Config{ServerAuthTimeout: authTimeout, ServerAuthFailBurst: tc.burst})
			var held, peak atomic.Int64
			done := make(chan struct{})
			var floodWG sync.WaitGroup
			floodWG.Add(1)
			go func() {
				defer floodWG.Done()
				stop := time.Now().Add(3 * authTimeout)
				waves(flood, authTimeout/4, stop, func(time.Time) {
					c, err := dialFromAddr("127.0.0.1", g.serverAddr)
					if err != nil {
						return
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(waitFor))
					var b [proto.ChallengeSize]byte
					if _, err := io.ReadFull(c, b[:]); err != nil {
						return
					}
					n := held.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					io.Copy(io.Discard, c) // silent until the auth timeout closes it
					held.Add(-1)
				})
				close(done)
			}()
			// The gateway's own count of 127.0.0.1's handshakes, sampled
			// (the attacker's count above runs a little behind the
			// gateway's closes).
			var gwPeak atomic.Int64
			sampling := make(chan struct{})
			go func() {
				defer close(sampling)
				src := sourceKey(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
				for {
					g.mu.Lock()
					n := int64(g.perSource[src])
					g.mu.Unlock()
					if n > gwPeak.Load() {
						gwPeak.Store(n)
					}
					select {
					case <-done:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
			// The flood is under way once the gateway refuses some of it.
			eventually(t, "the flood to begin", func() bool {
				s := g.Stats()
				return s.Disconnected(ReasonLimit)+s.Disconnected(ReasonAuthThrottled) > 0
			})
			const attempts = 20
			failed := 0
			tick := time.NewTicker(3 * authTimeout / attempts)
			defer tick.Stop()
			for i := range attempts {
				if err := registerFrom(g, "127.0.0.2", uint32(100+i)); err != nil {
					failed++
					t.Errorf("attempt %d of the honest server: %v", i, err)
				}
				<-tick.C // spread the attempts over the flood
			}
			<-done
			floodWG.Wait()
			<-sampling
			s := g.Stats()
			t.Logf("flood of %d silent sockets from one address: at most %d held a handshake at once (%d by the attacker's count); %d refused by a handshake cap, %d throttled, %d timed out; the honest server from another address failed %d of %d",
				flood, gwPeak.Load(), peak.Load(), s.Disconnected(ReasonLimit), s.Disconnected(ReasonAuthThrottled), s.Disconnected(ReasonAuthFailed), failed, attempts)
			if p, max := gwPeak.Load(), int64(g.Config().ServerMaxHandshakesPerSource); p > max {
				t.Errorf("one address held %d handshakes at once, want at most %d", p, max)
			}
		})
	}
}

// registerFrom registers a server with id from the local address src,
// proves it is registered (the answer to its first Ping) and closes it.
func registerFrom(g *testGW, src string, id uint32) error {
	c, err := dialFromAddr(src, g.serverAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := proto.AuthenticateToGateway(c, testKey, id, waitFor); err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(waitFor))
	if _, err := c.Write(proto.Command{Type: proto.CmdPing}.Encode(nil)); err != nil {
		return err
	}
	f, err := proto.NewFrameReader(c, nil, 0, 0).ReadFrame()
	if err != nil {
		return err
	}
	if cmd, err := proto.DecodeCommand(f); err != nil || cmd.Type != proto.CmdPing {
		return errors.New("first frame is not the answer to its Ping")
	}
	return nil
}

// remoteListener hands out connections that report remote as their peer,
// to try the gateway's address rules over real loopback sockets.
type remoteListener struct {
	net.Listener
	remote net.Addr
}

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c, l.remote}, nil
}

type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// TestEmptyPasswordLoopbackOnly (finding 8): without a password only
// servers whose address is loopback may register. The decision is the
// peer's IP, not a name: the binary's check trusted the name "localhost".
// A connection from 192.0.2.7 is closed before a challenge and counted as
// an auth failure; one from 127.0.0.1 or ::1 registers.
func TestEmptyPasswordLoopbackOnly(t *testing.T) {
	rec := &logRecorder{}
	g := New(Config{Logger: slog.New(rec)})
	t.Cleanup(g.Stop)
	serve := func(remote net.Addr) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var l net.Listener = ln
		if remote != nil {
			l = remoteListener{ln, remote}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			g.ServeServers(l)
		}()
		t.Cleanup(func() { ln.Close(); <-done })
		return ln.Addr().String()
	}
	far := serve(&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4000})
	conn := dialRaw(t, far)
	conn.SetReadDeadline(time.Now().Add(waitFor))
	var b [proto.ChallengeSize]byte
	if n, err := conn.Read(b[:]); err == nil || n != 0 {
		t.Fatalf("a server from 192.0.2.7 got %d challenge bytes (%v) with no password set; want the connection closed", n, err)
	}
	eventually(t, "the refusal counted", func() bool {
		s := g.Stats()
		return s.Disconnected(ReasonAuthFailed) == 1 && s.AuthFailures == 1
	})
	if len(rec.find("connection refused")) != 1 {
		t.Fatal("the refusal was not logged")
	}
	for i, remote := range []net.Addr{nil, &net.TCPAddr{IP: net.IPv6loopback, Port: 4000}} {
		c := dialRaw(t, serve(remote))
		if err := proto.AuthenticateToGateway(c, "", uint32(10+i), waitFor); err != nil {
			t.Fatal(err)
		}
		id := uint32(10 + i)
		eventually(t, "the loopback server registered", func() bool { return g.servers.newest(id) != nil })
	}
}
