package gateway

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestHardeningSlowloris: 1,000 sockets on the server port that never finish
// the handshake (half send nothing, half one byte a second) are closed at the
// auth timeout; 1,000 sockets on the client port that send nothing or one
// byte a second are closed at the idle timeout. Meanwhile a genuine server
// authenticates and a genuine client is served. The auth-failure throttle is
// off here (ServerAuthFailBurst -1): with it on, every socket from
// 127.0.0.1 after the fifth failure would be refused before its challenge
// instead, which TestHardeningAuthThrottle covers.
func TestHardeningSlowloris(t *testing.T) {
	n := scaled(1000, 1000, 200)
	const timeout = 300 * time.Millisecond
	raiseNoFile(t, uint64(4*n+1000))
	g := startGW(t, Config{
		ServerAuthTimeout:   timeout,
		ServerMaxHandshakes: 2000,
		ServerAuthFailBurst: -1,
		// All 1,000 come from 127.0.0.1: no per-source cap either.
		ServerMaxHandshakesPerSource: -1,
		ClientIdleTimeout:            timeout,
	})
	for _, side := range []string{"server", "client"} {
		t.Run(side, func(t *testing.T) {
			addr := g.serverAddr
			if side == "client" {
				addr = g.clientAddr
			}
			lifetimes := make([]time.Duration, n)
			var lastConnect time.Time
			var mu sync.Mutex
			var wg sync.WaitGroup
			var errs collector
			for i := range n {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatalf("socket %d: %v", i, err)
				}
				connected := time.Now()
				mu.Lock()
				lastConnect = connected
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					done := make(chan struct{})
					if i%2 == 1 {
						// One byte a second (the first at once).
						go func() {
							tick := time.NewTicker(time.Second)
							defer tick.Stop()
							for {
								if _, err := c.Write([]byte{0}); err != nil {
									return
								}
								select {
								case <-tick.C:
								case <-done:
									return
								}
							}
						}()
					}
					defer close(done)
					if err := readToEOF(c, timeout+waitFor); err != nil {
						errs.fail("socket %d not closed: %v", i, err)
					}
					lifetimes[i] = time.Since(connected)
				}()
			}
			// The gateway still serves genuine peers meanwhile.
			if side == "server" {
				g.dialServer(t, 1).conn.Close()
			} else {
				c := g.dialClient(t)
				c.ping()
				c.conn.Close()
			}
			wg.Wait()
			allClosed := time.Since(lastConnect)
			errs.check(t)
			slices.Sort(lifetimes)
			lo, med, hi := lifetimes[0], lifetimes[n/2], lifetimes[n-1]
			// The gateway computes deadlines from its coarse clock (10 ms
			// ticks), which lags behind under load: a socket may go up
			// to that lag early. Half the timeout is a bound the lag
			// never reached here (worst seen: 54 ms early, load average 7).
			if lo < timeout/2 {
				t.Fatalf("a socket was closed after %v, before the %v timeout", lo, timeout)
			}
			if hi > timeout+3*time.Second {
				t.Fatalf("a socket lived %v with a %v timeout", hi, timeout)
			}
			reason := ReasonAuthFailed
			if side == "client" {
				reason = ReasonIdleTimeout
			}
			eventually(t, "disconnects counted", func() bool { return g.Stats().Disconnected(reason) == uint64(n) })
			t.Logf("%d %s-port sockets (timeout %v): lifetime min %v, median %v, max %v; all closed %v after the last one connected",
				n, side, timeout, lo.Round(time.Millisecond), med.Round(time.Millisecond), hi.Round(time.Millisecond), allClosed.Round(time.Millisecond))
		})
	}
	st := g.Stats()
	if st.ClientConns != 0 || st.ServerConns != 0 {
		t.Fatalf("after the sockets closed: %d clients, %d servers", st.ClientConns, st.ServerConns)
	}
}
