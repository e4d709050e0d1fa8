package gateway

import (
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// dialRawServer connects and authenticates a server that is read with
// rawConn, and waits for its registration (the answer to a Ping).
func dialRawServer(t testing.TB, g *testGW, id uint32) *rawConn {
	t.Helper()
	srv := newRawConn(dialRaw(t, g.serverAddr))
	if err := proto.AuthenticateToGateway(srv, testKey, id, waitFor); err != nil {
		t.Fatal(err)
	}
	srv.SetDeadline(time.Now().Add(waitFor))
	srv.Write(proto.Command{Type: proto.CmdPing}.Encode(nil))
	if c, err := srv.readCmd(); err != nil || c.Type != proto.CmdPing {
		t.Fatalf("server ping: %+v, %v", c, err)
	}
	srv.SetDeadline(time.Time{})
	return srv
}

// countConnects reads srv until it fails, counting the Connects it gets;
// done closes when it stops.
func countConnects(srv *rawConn) (connects *atomic.Int64, done <-chan struct{}) {
	connects = new(atomic.Int64)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			c, err := srv.readCmd()
			if err != nil {
				return
			}
			if c.Type == proto.CmdConnect {
				connects.Add(1)
			}
		}
	}()
	return connects, stopped
}

// TestHardeningBackendKilled: a server carrying 10,000 virtual connections
// (1,000 clients × 10) has its socket reset. Every client gets Close for
// each of its ConnIDs, the tables end empty, and once the clients leave no
// goroutine is left.
func TestHardeningBackendKilled(t *testing.T) {
	clients := scaled(1000, 1000, 200)
	const perClient = 10
	total := clients * perClient
	raiseNoFile(t, uint64(2*clients+1000))
	g := startGW(t, Config{})
	base := goroutineBaseline(t, g)
	srv := dialRawServer(t, g, 1)

	// The server counts the Connects it is told about.
	connects, srvDone := countConnects(srv)

	start := time.Now()
	conns := make([]*rawConn, clients)
	var dials []byte
	for range perClient {
		dials = proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(dials)
	}
	for i := range conns {
		conns[i] = newRawConn(dialRaw(t, g.clientAddr))
		if _, err := conns[i].Write(dials); err != nil {
			t.Fatal(err)
		}
	}
	owned := make([][]uint32, clients)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(waitFor))
		for range perClient {
			a, err := c.readCmd()
			if err != nil || a.Type != proto.CmdAccept {
				t.Fatalf("client %d: %+v, %v", i, a, err)
			}
			owned[i] = append(owned[i], a.ConnID)
		}
	}
	eventually(t, "server told of every connection", func() bool { return connects.Load() == int64(total) })
	if n := g.Stats().VirtualConns; n != int64(total) {
		t.Fatalf("VirtualConns = %d, want %d", n, total)
	}
	setup := time.Since(start)

	// Kill the server: RST, no FIN.
	killed := time.Now()
	srv.Conn.(*net.TCPConn).SetLinger(0)
	srv.Close()
	<-srvDone
	var wg sync.WaitGroup
	var errs collector
	var last atomic.Int64
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(waitFor))
			var got []uint32
			for range perClient {
				cmd, err := c.readCmd()
				if err != nil || cmd.Type != proto.CmdClose {
					errs.fail("client %d: %+v, %v; want Close", i, cmd, err)
					return
				}
				got = append(got, cmd.ConnID)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(owned[i]))
			if !slices.Equal(got, want) {
				errs.fail("client %d: Closes for %v, want %v", i, got, want)
			}
			d := int64(time.Since(killed))
			for {
				old := last.Load()
				if d <= old || last.CompareAndSwap(old, d) {
					break
				}
			}
		}()
	}
	wg.Wait()
	errs.check(t)
	allClosed := time.Duration(last.Load())
	eventually(t, "route table empty", func() bool {
		st := g.Stats()
		return st.VirtualConns == 0 && st.ServerConns == 0 && g.routes.len() == 0
	})
	// Clients are still connected, and their connections still work.
	for _, c := range conns[:10] {
		c.Write(proto.Command{Type: proto.CmdPing}.Encode(nil))
		if cmd, err := c.readCmd(); err != nil || cmd.Type != proto.CmdPing {
			t.Fatalf("client after the kill: %+v, %v", cmd, err)
		}
	}
	if n := g.Stats().ClientConns; n != int64(clients) {
		t.Fatalf("ClientConns = %d, want %d", n, clients)
	}
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "client table empty", func() bool {
		return g.Stats().ClientConns == 0 && g.clients.len() == 0
	})
	settle := settleGoroutines(t, base)
	st := g.Stats()
	t.Logf("%d virtual connections (%d clients × %d) set up in %v; server reset: every client had its %d Closes %v later; tables empty; goroutines back to %d within %v of the clients leaving; disconnects: peer closed %d, read error %d",
		total, clients, perClient, setup.Round(time.Millisecond), perClient, allClosed.Round(time.Millisecond), base, settle.Round(time.Millisecond),
		st.Disconnected(ReasonPeerClosed), st.Disconnected(ReasonReadError))
}

// TestServerKilledWhileDialed: clients keep dialing a server, and closing
// their oldest connections, while it is reset. Every Dial is answered
// (Accept, or Refuse once the server is gone), every ConnID a client was
// given is closed exactly once (acknowledged, or closed by the reset), and
// no client ever sees a Close for a ConnID before its Accept: the server's
// teardown and the Dials racing it agree on which virtual connections
// existed.
func TestServerKilledWhileDialed(t *testing.T) {
	const clients, inFlight, keep = 50, 4, 32
	g := startGW(t, Config{ClientMaxConn: 2 * keep})
	srv := dialRawServer(t, g, 1)
	connects, srvDone := countConnects(srv)

	var errs collector
	var wg sync.WaitGroup
	var resetCloses atomic.Int64 // Closes the clients did not ask for
	for i := range clients {
		c := newRawConn(dialRaw(t, g.clientAddr)) // closed by dialRaw's cleanup
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetDeadline(time.Now().Add(waitFor))
			dial := proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil)
			var open []uint32            // oldest first
			closing := map[uint32]bool{} // Close sent, acknowledgement due
			pending, refused := 0, false // Dials unanswered; the server is gone
			for !refused || pending > 0 || len(open) > 0 || len(closing) > 0 {
				var out []byte
				for !refused && len(open) >= keep {
					closing[open[0]] = true
					out = proto.Command{Type: proto.CmdClose, ConnID: open[0]}.Encode(out)
					open = open[1:]
				}
				for ; !refused && pending < inFlight; pending++ {
					out = append(out, dial...)
				}
				if len(out) > 0 {
					if _, err := c.Write(out); err != nil {
						errs.fail("client %d: write: %v", i, err)
						return
					}
				}
				cmd, err := c.readCmd()
				if err != nil {
					errs.fail("client %d: %v with %d Dials unanswered and %d connections open", i, err, pending, len(open))
					return
				}
				switch cmd.Type {
				case proto.CmdAccept:
					pending--
					open = append(open, cmd.ConnID)
				case proto.CmdRefuse:
					pending--
					refused = true
				case proto.CmdClose:
					if closing[cmd.ConnID] {
						delete(closing, cmd.ConnID)
						break
					}
					k := slices.Index(open, cmd.ConnID)
					if k < 0 {
						errs.fail("client %d: Close for ConnID %d, which it was never given (or was closed already)", i, cmd.ConnID)
						return
					}
					open = slices.Delete(open, k, k+1)
					resetCloses.Add(1)
				default:
					errs.fail("client %d: unexpected %+v", i, cmd)
					return
				}
			}
		}()
	}
	eventually(t, "dials under way", func() bool { return connects.Load() >= 40*clients })
	srv.Conn.(*net.TCPConn).SetLinger(0)
	srv.Close()
	<-srvDone
	wg.Wait()
	errs.check(t)
	eventually(t, "route table empty", func() bool {
		st := g.Stats()
		return st.VirtualConns == 0 && st.ServerConns == 0 && g.routes.len() == 0
	})
	if resetCloses.Load() == 0 {
		t.Fatal("no virtual connection was open at the reset")
	}
	t.Logf("%d Connects; %d virtual connections closed by the reset", connects.Load(), resetCloses.Load())
}

// churnCycles is how many Dial/Close cycles TestHardeningConnIDChurn runs:
// 1,000,000 normally, fewer under -race or -short, or $FASTWAY_CHURN_CYCLES.
func churnCycles(t testing.TB) int {
	if s := os.Getenv("FASTWAY_CHURN_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("FASTWAY_CHURN_CYCLES=%q", s)
		}
		return n
	}
	return scaled(1_000_000, 100_000, 20_000)
}

// TestHardeningConnIDChurn: many Dial/Close cycles, pipelined in batches by
// a few clients at once, leave the tables empty and the heap where it was
// after a warm-up. The server checks that no ConnID is announced twice while
// live.
func TestHardeningConnIDChurn(t *testing.T) {
	const clients, batch = 4, 256
	cycles := churnCycles(t)
	rounds := max(1, (cycles+clients*batch-1)/(clients*batch))
	cycles = rounds * clients * batch
	g := startGW(t, Config{ClientMaxConn: batch})
	srv := dialRawServer(t, g, 1)

	var connects, closes atomic.Int64
	var errs collector
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		live := make(map[uint32]bool, clients*batch)
		for {
			c, err := srv.readCmd()
			if err != nil {
				return
			}
			switch c.Type {
			case proto.CmdConnect:
				if live[c.ConnID] || c.ConnID == 0 {
					errs.fail("ConnID %d announced while live", c.ConnID)
				}
				live[c.ConnID] = true
				connects.Add(1)
			case proto.CmdClose:
				if !live[c.ConnID] {
					errs.fail("Close for ConnID %d, which is not live", c.ConnID)
				}
				delete(live, c.ConnID)
				closes.Add(1)
			}
		}
	}()
	conns := make([]*rawConn, clients)
	for i := range conns {
		conns[i] = newRawConn(dialRaw(t, g.clientAddr))
	}
	// churn runs n rounds of batch Dials then batch Closes on every client.
	churn := func(n int) {
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var dials, closeBuf []byte
				for range batch {
					dials = proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(dials)
				}
				ids := make([]uint32, batch)
				for range n {
					c.SetDeadline(time.Now().Add(waitFor))
					if _, err := c.Write(dials); err != nil {
						errs.fail("client %d: %v", i, err)
						return
					}
					closeBuf = closeBuf[:0]
					for k := range batch {
						a, err := c.readCmd()
						if err != nil || a.Type != proto.CmdAccept || a.ConnID == 0 {
							errs.fail("client %d: %+v, %v; want Accept", i, a, err)
							return
						}
						ids[k] = a.ConnID
						closeBuf = proto.Command{Type: proto.CmdClose, ConnID: a.ConnID}.Encode(closeBuf)
					}
					if _, err := c.Write(closeBuf); err != nil {
						errs.fail("client %d: %v", i, err)
						return
					}
					for k := range batch {
						a, err := c.readCmd()
						if err != nil || a.Type != proto.CmdClose || a.ConnID != ids[k] {
							errs.fail("client %d: %+v, %v; want Close(%d)", i, a, err, ids[k])
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		errs.check(t)
	}
	settled := func() bool {
		st := g.Stats()
		want := int64(st.DialsAccepted)
		return connects.Load() == want && closes.Load() == want && st.VirtualConns == 0 && g.routes.len() == 0
	}
	warm := max(1, rounds/20)
	churn(warm)
	eventually(t, "warm-up settled", settled)
	before := heapInuse()
	start := time.Now()
	churn(rounds)
	elapsed := time.Since(start)
	eventually(t, "churn settled", settled)
	after := heapInuse()
	srv.Close()
	<-srvDone
	errs.check(t)
	growth := int64(after) - int64(before)
	t.Logf("%d Dial/Close cycles (%d clients × %d pipelined) in %v: %.0f cycles/s; tables empty; heap in use %s before, %s after (%+d B)",
		cycles, clients, batch, elapsed.Round(time.Millisecond), float64(cycles)/elapsed.Seconds(), mib(int64(before)), mib(int64(after)), growth)
	if growth > 4<<20 {
		t.Fatalf("heap in use grew by %s over %d cycles", mib(growth), cycles)
	}
}

// TestHardeningConnIDWrap: the ConnID counter wraps past 2^32-1 without
// yielding 0 or an ID that is still live, and so does the client-ID counter.
func TestHardeningConnIDWrap(t *testing.T) {
	g := startGW(t, Config{ClientMaxConn: 64})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	var ids []uint32
	openN := func(c *peer, n int) {
		for range n {
			id, _ := open(t, c, s, 1)
			ids = append(ids, id)
		}
	}
	openN(c, 3) // ConnIDs 1, 2, 3 stay live across the wrap
	g.nextConnID.Store(math.MaxUint32 - 5)
	// A new client's reader takes the next block of ConnIDs, which wraps:
	// 2^32-4 .. 2^32-1, then (0, 1, 2, 3 skipped) 4 .. 8.
	c2 := g.dialClient(t)
	openN(c2, 10)
	want := []uint32{1, 2, 3, math.MaxUint32 - 4, math.MaxUint32 - 3, math.MaxUint32 - 2, math.MaxUint32 - 1, math.MaxUint32, 4, 5, 6, 7, 8}
	if !slices.Equal(ids, want) {
		t.Fatalf("ConnIDs %v, want %v", ids, want)
	}
	seen := map[uint32]bool{}
	for _, id := range ids {
		if id == 0 || seen[id] {
			t.Fatalf("ConnID %d handed out twice or zero: %v", id, ids)
		}
		seen[id] = true
	}
	// Every one of them carries its own traffic, both ways.
	for i, id := range ids {
		cl := c
		if i >= 3 {
			cl = c2
		}
		cl.sendData(id, fmt.Sprint(id))
		s.expectData(id, fmt.Sprint(id))
		s.sendData(id, fmt.Sprint(id))
		cl.expectData(id, fmt.Sprint(id))
	}

	// Client IDs: the test's clients are IDs 1 and 2; the counter wraps
	// past them.
	g.nextClientID.Store(math.MaxUint32 - 2)
	var clientIDs []uint32
	for range 4 {
		_, cid := open(t, g.dialClient(t), s, 1)
		clientIDs = append(clientIDs, cid)
	}
	if want := []uint32{math.MaxUint32 - 1, math.MaxUint32, 3, 4}; !slices.Equal(clientIDs, want) {
		t.Fatalf("client IDs %v, want %v", clientIDs, want)
	}
	t.Logf("ConnIDs across the wrap: %v; client IDs across the wrap: %v", ids, clientIDs)
}
