package gateway

import (
	"net"
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
	src := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	other := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 1}
	a.failed(src)
	if !a.allow(src) {
		t.Fatal("refused after one failure of a burst of 2")
	}
	a.failed(src)
	if a.allow(src) {
		t.Fatal("allowed after the burst was spent")
	}
	if !a.allow(other) {
		t.Fatal("another source was throttled")
	}
	now = now.Add(time.Second)
	if !a.allow(src) {
		t.Fatal("not allowed after one interval")
	}
	a.failed(src)
	if a.allow(src) {
		t.Fatal("allowed right after failing again")
	}
	if newAuthLimiter(-1, time.Second).allow(src) != true {
		t.Fatal("a disabled limiter refused")
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

// TestLargeFrameBudget: peers that announce large frames and trickle their
// bodies hold at most LargeFrameBudget bytes together; the one that would
// pass it is closed (reason "connection limit"), the others are untouched,
// and a completed frame gives its bytes back.
func TestLargeFrameBudget(t *testing.T) {
	const frameLen = 256 << 10 // Length of each large frame
	g := startGW(t, Config{MaxPacket: 512 << 10, LargeFrameBudget: 2*(frameLen+4) + 100})
	s := g.dialServer(t, 1)
	var holders []*peer
	var ids []uint32
	for range 2 {
		c := g.dialClient(t)
		id, _ := open(t, c, s, 1)
		frame := proto.EncodeData(nil, id, make([]byte, frameLen-proto.SizeOfConnID))
		c.write(frame[:100]) // header and a little body: the frame is reserved
		holders, ids = append(holders, c), append(ids, id)
	}
	eventually(t, "budget used", func() bool { return g.budget.Used() == 2*(frameLen+4) })
	third := g.dialClient(t)
	third.write(proto.EncodeData(nil, 99, make([]byte, frameLen-proto.SizeOfConnID))[:100])
	third.expectEOF()
	eventually(t, "limit counted", func() bool { return g.Stats().Disconnected(ReasonLimit) == 1 })
	// The holders finish their frames; they arrive whole and the budget
	// is free again.
	for i, c := range holders {
		frame := proto.EncodeData(nil, ids[i], make([]byte, frameLen-proto.SizeOfConnID))
		c.write(frame[100:])
		s.expect(frame)
	}
	eventually(t, "budget released", func() bool { return g.budget.Used() == 0 })
}
