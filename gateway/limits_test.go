package gateway

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

func TestClientMaxConnsCap(t *testing.T) {
	g := startGW(t, Config{ClientMaxConns: 3})
	s := g.dialServer(t, 1)
	var ids []uint32
	var cs []*peer
	for range 3 {
		c := g.dialClient(t)
		id, _ := open(t, c, s, 1)
		ids = append(ids, id)
		cs = append(cs, c)
	}
	// The fourth is closed at once and counted; the others are untouched.
	extra := g.dialClient(t)
	extra.expectEOF()
	eventually(t, "limit counted", func() bool { return g.Stats().Disconnected(ReasonLimit) == 1 })
	for i, c := range cs {
		c.sendData(ids[i], "still here")
		s.expectData(ids[i], "still here")
	}
	// Room again after one leaves.
	cs[0].conn.Close()
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: ids[0]})
	eventually(t, "client gone", func() bool { return g.Stats().ClientConns == 2 })
	open(t, g.dialClient(t), s, 1)
}

func TestServerMaxHandshakesCap(t *testing.T) {
	g := startGW(t, Config{ServerMaxHandshakes: 2, ServerAuthTimeout: waitFor})
	// Two silent sockets hold both handshake slots.
	for range 2 {
		c := dialRaw(t, g.serverAddr)
		var challenge [proto.ChallengeSize]byte
		c.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := c.Read(challenge[:]); err != nil {
			t.Fatal(err)
		}
	}
	// The third is closed before any challenge.
	c := dialRaw(t, g.serverAddr)
	newPeer(t, c).expectEOF()
	eventually(t, "limit counted", func() bool { return g.Stats().Disconnected(ReasonLimit) == 1 })
}

func TestAuthFailuresThrottled(t *testing.T) {
	g := startGW(t, Config{ServerAuthFailBurst: 3, ServerAuthFailInterval: time.Hour})
	fail := func() {
		conn := dialRaw(t, g.serverAddr)
		if err := proto.AuthenticateToGateway(conn, "wrong", 1, waitFor); err != nil {
			t.Fatal(err)
		}
		newPeer(t, conn).expectEOF()
	}
	for range 3 {
		fail()
	}
	eventually(t, "failures counted", func() bool { return g.Stats().AuthFailures == 3 })
	// The source is out of attempts: its next connection is closed before
	// a challenge, even with the right key.
	conn := dialRaw(t, g.serverAddr)
	conn.SetReadDeadline(time.Now().Add(waitFor))
	var b [1]byte
	if n, err := conn.Read(b[:]); err == nil || n != 0 {
		t.Fatalf("throttled source got %d bytes, err %v; want the connection closed", n, err)
	}
	eventually(t, "throttle counted", func() bool { return g.Stats().Disconnected(ReasonAuthThrottled) == 1 })
}

func TestAuthLimiterRefills(t *testing.T) {
	now := time.Unix(0, 0)
	a := newAuthLimiter(2, time.Second)
	a.now = func() time.Time { return now }
	src := sourceKey(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1})
	other := sourceKey(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 1})
	reserve := func(k netip.Prefix) bool { ok, _ := a.reserve(k); return ok }
	for i := range 2 {
		if !reserve(src) {
			t.Fatalf("attempt %d refused within a burst of 2", i+1)
		}
	}
	// Two handshakes in progress hold the whole burst: a third may not
	// start, though neither has failed yet (finding 1); it may wait for
	// one of them to end.
	ok, wait := a.reserve(src)
	if ok || wait == nil {
		t.Fatalf("a third handshake: ok %v, wait %v; want to wait", ok, wait)
	}
	if !reserve(other) {
		t.Fatal("another source was throttled")
	}
	a.settle(src, true) // one succeeded
	select {
	case <-wait:
	default:
		t.Fatal("a handshake that ended did not wake the waiter")
	}
	if !reserve(src) {
		t.Fatal("a successful handshake's attempt was not given back")
	}
	a.settle(src, false) // both failed: attempts spent, none in progress
	a.settle(src, false)
	if ok, wait := a.reserve(src); ok || wait != nil {
		t.Fatalf("after the burst failed: ok %v, wait %v; want refused, nothing to wait for", ok, wait)
	}
	now = now.Add(time.Second)
	if !reserve(src) {
		t.Fatal("not allowed after one interval")
	}
	if reserve(src) {
		t.Fatal("allowed twice after one interval")
	}
	if ok, _ := newAuthLimiter(-1, time.Second).reserve(src); !ok {
		t.Fatal("a disabled limiter refused")
	}
	if !reserve(netip.Prefix{}) {
		t.Fatal("a source that is not an IP was throttled")
	}
}

// TestAuthLimiterTable (finding 8): IPv6 sources are throttled by /64, and
// the table past its bound forgets the least recently used source, not
// everyone: the review found it cleared whole past 100,000 sources, which
// gave every throttled source its burst back.
func TestAuthLimiterTable(t *testing.T) {
	now := time.Unix(0, 0)
	a := newAuthLimiter(1, time.Hour)
	a.now = func() time.Time { return now }
	a.max = 100
	key := func(ip string) netip.Prefix { return sourceKey(&net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}) }
	// Each reserve is a handshake that then fails (settle), except where
	// a test keeps one in progress.
	reserve := func(k netip.Prefix) bool {
		ok, _ := a.reserve(k)
		if ok {
			a.settle(k, false)
		}
		return ok
	}

	// Two addresses of one /64 share a bucket; another /64 has its own.
	if !reserve(key("2001:db8:1:2::1")) {
		t.Fatal("first attempt of a /64 refused")
	}
	if reserve(key("2001:db8:1:2:ffff::9")) {
		t.Fatal("another address of the same /64 had attempts of its own")
	}
	if !reserve(key("2001:db8:1:3::1")) {
		t.Fatal("the next /64 was throttled")
	}
	if k := key("::ffff:10.1.2.3"); k != key("10.1.2.3") || k.Bits() != 32 {
		t.Fatalf("an IPv4-mapped address keys as %v, want 10.1.2.3/32", k)
	}

	// The attacker: 10.0.0.1 spends its attempt, then 10.0.0.2 touches
	// the table after it; a flood of new sources fills it.
	attacker, recent := key("10.0.0.1"), key("10.0.0.2")
	reserve(attacker)
	reserve(recent)
	for i := range a.max - 2 - 2 {
		reserve(key(fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250)))
	}
	if n := a.len(); n != a.max {
		t.Fatalf("%d sources in the table, want it full (%d)", n, a.max)
	}
	if reserve(attacker) {
		t.Fatal("a full table forgot a throttled source")
	}
	// One more source: the least recently used goes (the first /64), the
	// rest stay throttled.
	reserve(key("10.9.9.9"))
	if n := a.len(); n != a.max {
		t.Fatalf("%d sources in the table, want %d", n, a.max)
	}
	if reserve(attacker) || reserve(recent) {
		t.Fatal("sources used lately were forgotten")
	}
	if !reserve(key("2001:db8:1:2::1")) {
		t.Fatal("the least recently used source was not the one forgotten")
	}
	// A source with a handshake in progress is never forgotten: the next
	// least recently used one goes instead.
	busy := key("10.7.7.7")
	a.reserve(busy) // in progress
	for i := range a.max {
		reserve(key(fmt.Sprintf("10.2.%d.%d", i/250, 1+i%250)))
	}
	if _, ok := a.sources[busy]; !ok {
		t.Fatal("a source with a handshake in progress was forgotten")
	}
	// A bucket that fills again leaves the table.
	n := a.len()
	a.settle(busy, true)
	if a.len() != n-1 {
		t.Fatalf("%d sources after a success filled a bucket, want %d", a.len(), n-1)
	}
}

func TestLogLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	ll := logLimiter{now: func() time.Time { return now }}
	for i := range logBurst {
		if ok, _ := ll.allow(1); !ok {
			t.Fatalf("line %d of the burst suppressed", i)
		}
	}
	for range 5 {
		if ok, _ := ll.allow(1); ok {
			t.Fatal("line past the burst let through")
		}
	}
	if ok, _ := ll.allow(2); !ok {
		t.Fatal("another key was limited")
	}
	now = now.Add(time.Second / logRate)
	ok, suppressed := ll.allow(1)
	if !ok || suppressed != 5 {
		t.Fatalf("after refill: %v, suppressed %d; want true, 5", ok, suppressed)
	}
}

// dialClientFrom connects a raw client from source address src (any
// 127.0.0.0/8 address is this host's).
func (g *testGW) dialClientFrom(t testing.TB, src string) *peer {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitFor}
	c, err := d.Dial("tcp", g.clientAddr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	return newPeer(t, c)
}

// TestLargeFrameBudget mounts the review's attack on LargeFrameBudget:
// attackers announce 512 KiB frames and send 100 bytes of each. They hold
// what they sent (plus the 16 KiB a frame's buffer starts with), not what
// they announced, so 128 of them from one address, and 1,000 from 1,000
// addresses, leave room for everyone else: a fresh client's 3 KiB frame,
// an existing client's 100 KiB frame and the server's 100 KiB frame all
// arrive. A source that really sends more than its share (two 400 KiB
// partial frames past a 512 KiB share) loses the connection that passes
// it, while every other connection keeps its frame.
func TestLargeFrameBudget(t *testing.T) {
	attackers := scaled(1000, 300, 200)
	raiseNoFile(t, uint64(3*attackers+200))
	setup := func(t *testing.T, cfg Config) (g *testGW, s, honest *peer, hid uint32) {
		g = startGW(t, cfg)
		s = g.dialServer(t, 1)
		honest = g.dialClientFrom(t, "127.0.0.2")
		hid, _ = open(t, honest, s, 1)
		return g, s, honest, hid
	}
	announce := func(c *peer, id uint32, sent int) []byte {
		frame := proto.EncodeData(nil, id, make([]byte, 512<<10-proto.SizeOfConnID))
		c.write(frame[:sent])
		return frame
	}
	// fillBudget fills an 8 MiB budget from ten sources, eight connections
	// each, with partial frames of which 72 KiB were really sent.
	fillBudget := func(t *testing.T, g *testGW) {
		for src := range 10 {
			for range 8 {
				c := g.dialClientFrom(t, fmt.Sprintf("127.6.%d.1", src))
				announce(c, 99, 73792)
			}
		}
		eventually(t, "the budget full", func() bool { return g.budget.Used() > 8<<20-256<<10 })
	}
	for _, tc := range []struct {
		name    string
		n       int
		sources int
	}{{"128 from one address", 128, 1}, {fmt.Sprintf("%d from %d addresses", attackers, attackers), attackers, attackers}} {
		t.Run(tc.name, func(t *testing.T) {
			g, s, honest, hid := setup(t, Config{})
			for i := range tc.n {
				k := i % tc.sources
				src := fmt.Sprintf("127.1.%d.%d", k/250, 1+k%250)
				announce(g.dialClientFrom(t, src), 99, 100)
			}
			eventually(t, "attackers holding", func() bool { return g.budget.Used() >= int64(tc.n)*(16<<10) })
			if used := g.budget.Used(); used > int64(tc.n)*(100+16<<10+64) {
				t.Fatalf("%d attackers hold %s of the budget", tc.n, mib(used))
			}
			fresh := g.dialClientFrom(t, "127.0.0.3")
			fid, _ := open(t, fresh, s, 1)
			for _, f := range []struct {
				from, to *peer
				id       uint32
				size     int
			}{{fresh, s, fid, 3 << 10}, {honest, s, hid, 100 << 10}, {s, honest, hid, 100 << 10}} {
				frame := proto.EncodeData(nil, f.id, make([]byte, f.size))
				f.from.write(frame)
				f.to.expect(frame)
			}
			if n := g.Stats().Disconnected(ReasonLimit); n != 0 {
				t.Fatalf("%d connections closed as over a limit", n)
			}
			t.Logf("%d attackers hold %s of the large-frame budget; honest frames pass", tc.n, mib(g.budget.Used()))
		})
	}
	t.Run("budget filled with real bytes", func(t *testing.T) {
		// Ten sources each hold partial frames of which they really sent
		// 72 KiB, until the budget is full (the adversarial pass: then
		// honest frames of 20 KB and 64 KiB, sent whole, were refused).
		// A frame whose bytes keep arriving costs no budget: they pass.
		g, s, _, _ := setup(t, Config{LargeFrameBudget: 8 << 20})
		fillBudget(t, g)
		for i, size := range []int{65536, 20000, 8192, 300 << 10} {
			c := g.dialClientFrom(t, fmt.Sprintf("127.7.0.%d", i+1))
			id, _ := open(t, c, s, 1)
			frame := proto.EncodeData(nil, id, make([]byte, size))
			c.write(frame)
			checkFrames(t, readData(t, s, 1), [][]byte{frame})
		}
		t.Logf("budget used %s of 8 MiB; honest frames of 64 KiB, 20 KB, 8 KiB and 300 KiB sent whole all passed", mib(g.budget.Used()))
	})
	t.Run("an honest frame that must wait in a full budget", func(t *testing.T) {
		// Ten sources, each within its share, fill the budget with
		// partial frames. An honest client from another source then
		// sends half a 300 KiB frame and pauses, so its reader must wait
		// holding the frame: the budget is full, but the honest source is
		// within its fair share (an eleventh), so the refusal falls on an
		// attacking source over it, not on the honest client.
		g, s, _, _ := setup(t, Config{LargeFrameBudget: 8 << 20})
		fillBudget(t, g)
		c := g.dialClientFrom(t, "127.7.1.1")
		id, _ := open(t, c, s, 1)
		before := g.Stats()
		frame := proto.EncodeData(nil, id, bytes.Repeat([]byte{5}, 300<<10))
		c.write(frame[:150<<10])
		eventually(t, "an attacker evicted", func() bool { return g.Stats().LargeFrameEvictions > before.LargeFrameEvictions })
		c.write(frame[150<<10:])
		checkFrames(t, readData(t, s, 1), [][]byte{frame})
		c.ping()
		after := g.Stats()
		t.Logf("budget full (%s of 8 MiB; while it filled, %d attacking connections were refused and %d evicted by each other): a 300 KiB honest frame that waited half-way passed, %d attacking connections evicted for it",
			mib(g.budget.Used()), before.Disconnected(ReasonLimit)-before.LargeFrameEvictions, before.LargeFrameEvictions, after.LargeFrameEvictions-before.LargeFrameEvictions)
	})
	t.Run("a source over its share", func(t *testing.T) {
		g, s, honest, _ := setup(t, Config{LargeFrameBudgetPerSource: 512<<10 + 8})
		a, b := g.dialClientFrom(t, "127.0.0.4"), g.dialClientFrom(t, "127.0.0.4")
		aid, _ := open(t, a, s, 1)
		bid, _ := open(t, b, s, 1)
		fa := announce(a, aid, 400<<10)
		eventually(t, "the first frame held", func() bool { return g.budget.Used() >= 400<<10 })
		announce(b, bid, 400<<10)
		b.drainToEOF()
		eventually(t, "limit counted", func() bool { return g.Stats().Disconnected(ReasonLimit) == 1 })
		a.write(fa[400<<10:])
		checkFrames(t, readData(t, s, 1), [][]byte{fa})
		honest.ping()
	})
}
