package gateway

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// TestStatsServersCost (issue 14, finding 8) measures what Stats and
// Servers (behind the ops "stats" command, /metrics and /servers) cost at
// 10,000 virtual connections: Stats walks every link under the gateway's
// mu (which accepts and link ends take, not the forwarding path); Servers
// walks every virtual connection, one route-table shard at a time under
// that shard's lock (which a Dial, a Close, and a data frame that misses
// its reader's route cache take). It logs how long each call and each
// shard's lock took, and the round-trip time of a client↔server echo with
// and without a goroutine calling both in a loop. The figures are in
// docs/reliability.md; the test fails only on an order-of-magnitude
// regression.
func TestStatsServersCost(t *testing.T) {
	clients := scaled(5000, 1000, 500)
	perClient := 10000 / clients
	const servers = 4
	raiseNoFile(t, uint64(2*clients+200))
	g := startGW(t, Config{ClientMaxConn: perClient})
	var srvs []*rawConn
	var drain sync.WaitGroup
	for id := range servers {
		s := dialRawServer(t, g, uint32(id+1))
		srvs = append(srvs, s)
	}
	// Servers 2..4 throw away what comes (the Connects), until the end.
	for _, s := range srvs[1:] {
		drain.Add(1)
		go func() {
			defer drain.Done()
			io.Copy(io.Discard, s.r)
		}()
	}
	// The echo pair: client 0 on server 1, which only it uses.
	echoCl := g.dialClient(t)
	echoSrv := srvs[0]
	echoCl.send(proto.Command{Type: proto.CmdDial, RemoteID: 1})
	acc := echoCl.readCmd()
	if acc.Type != proto.CmdAccept {
		t.Fatalf("got %+v, want Accept", acc)
	}
	echoSrv.SetReadDeadline(time.Now().Add(waitFor))
	if c, err := echoSrv.readCmd(); err != nil || c.Type != proto.CmdConnect {
		t.Fatalf("server 1: %+v, %v", c, err)
	}
	echoSrv.SetReadDeadline(time.Time{})

	var dials []byte
	for range perClient {
		dials = proto.Command{Type: proto.CmdDial, RemoteID: 2}.Encode(dials)
	}
	for i := range clients {
		c := newRawConn(dialRawFrom(t, fmt.Sprintf("127.3.%d.%d", i/250, 1+i%250), g.clientAddr))
		c.SetDeadline(time.Now().Add(waitFor))
		// Spread over servers 2..4.
		for k := range perClient {
			f := proto.Command{Type: proto.CmdDial, RemoteID: uint32(2 + (i+k)%(servers-1))}.Encode(nil)
			copy(dials[k*len(f):], f)
		}
		if _, err := c.Write(dials); err != nil {
			t.Fatal(err)
		}
		for range perClient {
			if a, err := c.readCmd(); err != nil || a.Type != proto.CmdAccept {
				t.Fatalf("client %d: %+v, %v", i, a, err)
			}
		}
		c.SetDeadline(time.Time{})
	}
	vconns := g.Stats().VirtualConns
	if vconns < int64(clients*perClient) {
		t.Fatalf("%d virtual connections, want %d", vconns, clients*perClient)
	}

	// Each call alone.
	var statsTimes, serversTimes, shardTimes []time.Duration
	for range 50 {
		t0 := time.Now()
		g.Stats()
		statsTimes = append(statsTimes, time.Since(t0))
		t0 = time.Now()
		list := g.Servers()
		serversTimes = append(serversTimes, time.Since(t0))
		if len(list) != servers {
			t.Fatalf("Servers listed %d, want %d", len(list), servers)
		}
		// What Servers holds each shard's lock for: its walk of one shard.
		counts := make(map[*link]int)
		for i := range g.routes.shards {
			s := &g.routes.shards[i]
			t0 := time.Now()
			s.mu.Lock()
			for _, vc := range s.m {
				counts[vc.server]++
			}
			s.mu.Unlock()
			shardTimes = append(shardTimes, time.Since(t0))
		}
	}

	// The echo's round trips, quiet and while Stats and Servers run in a
	// loop.
	echo := func(n int) []time.Duration {
		var rtts []time.Duration
		msg := proto.EncodeData(nil, acc.ConnID, []byte("ping"))
		for range n {
			t0 := time.Now()
			echoCl.write(msg)
			echoSrv.SetReadDeadline(time.Now().Add(waitFor))
			f := make([]byte, len(msg))
			if _, err := readFull(echoSrv, f); err != nil {
				t.Fatal(err)
			}
			echoSrv.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := echoSrv.Write(f); err != nil {
				t.Fatal(err)
			}
			echoCl.expect(msg)
			rtts = append(rtts, time.Since(t0))
		}
		return rtts
	}
	const rounds = 2000
	quiet := echo(rounds)
	var polls atomic.Int64
	stop := make(chan struct{})
	var poller sync.WaitGroup
	poller.Add(1)
	go func() {
		defer poller.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			g.Stats()
			g.Servers()
			polls.Add(1)
		}
	}()
	busy := echo(rounds)
	close(stop)
	poller.Wait()
	for _, s := range srvs[1:] {
		s.Close()
	}
	drain.Wait()

	q := func(ds []time.Duration, p float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[min(len(s)-1, int(float64(len(s))*p))]
	}
	t.Logf("%d links, %d virtual connections: Stats p50 %v max %v; Servers p50 %v max %v; one shard's walk (%d entries on average) p50 %v p99 %v max %v",
		clients+servers+1, vconns, q(statsTimes, .5), q(statsTimes, 1), q(serversTimes, .5), q(serversTimes, 1),
		vconns/numShards, q(shardTimes, .5), q(shardTimes, .99), q(shardTimes, 1))
	t.Logf("echo round trip, %d rounds: quiet p50 %v p99 %v max %v; with Stats+Servers in a loop (%d polls) p50 %v p99 %v max %v",
		rounds, q(quiet, .5), q(quiet, .99), q(quiet, 1), polls.Load(), q(busy, .5), q(busy, .99), q(busy, 1))
	if m := q(serversTimes, .5); m > time.Second {
		t.Errorf("Servers takes %v at %d virtual connections", m, vconns)
	}
	if m := q(statsTimes, .5); m > time.Second {
		t.Errorf("Stats takes %v at %d links", m, clients+servers)
	}
}

func readFull(c *rawConn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// dialRawFrom connects to addr from the local address src.
func dialRawFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitFor}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
