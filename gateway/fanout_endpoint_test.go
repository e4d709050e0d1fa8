package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fastway-go/fastway/proto"
)

// The Go server endpoint's fan-out (proto: Multicast, Group, Broadcast)
// through the real gateway.

// countingFormat is a MsgFormat of strings that counts its encodes.
type countingFormat struct{ encodes atomic.Int64 }

func (f *countingFormat) EncodeMessage(msg any) ([]byte, error) {
	f.encodes.Add(1)
	s, ok := msg.(string)
	if !ok {
		return nil, fmt.Errorf("not a string: %T", msg)
	}
	return []byte(s), nil
}

func (f *countingFormat) DecodeMessage(b []byte) (any, error) { return string(b), nil }

// epPair is one client endpoint's virtual connection to the server
// endpoint, seen from both ends.
type epPair struct {
	client *proto.Conn // the client's end
	server *proto.Conn // the server's end
}

// epFanout connects a server endpoint with format and n client endpoints,
// one virtual connection each.
func epFanout(t *testing.T, g *testGW, format proto.MsgFormat, n int) (*proto.EndPoint, []epPair) {
	t.Helper()
	cfg := serverCfg(1)
	cfg.MsgFormat = format
	srv, err := proto.DialServerAddr("tcp", g.serverAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	eventually(t, "server registered", func() bool { return g.servers.newest(1) != nil })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pairs := make([]epPair, n)
	for i := range pairs {
		ccfg := clientCfg()
		ccfg.MsgFormat = format
		cli, err := proto.DialClientAddr("tcp", g.clientAddr, ccfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		if pairs[i].client, err = cli.DialContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if pairs[i].server, err = srv.AcceptContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return srv, pairs
}

// receive returns the next message on c, failing after waitFor.
func receive(t *testing.T, c *proto.Conn) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	m, err := c.ReceiveContext(ctx)
	if err != nil {
		t.Fatalf("Receive on conn %d: %v", c.ConnID(), err)
	}
	return m
}

// expectMsgs checks c receives exactly msgs, then nothing before a marker
// sent unicast by the server's end.
func expectMsgs(t *testing.T, p epPair, msgs ...string) {
	t.Helper()
	if err := p.server.Send("marker"); err != nil {
		t.Fatal(err)
	}
	for _, w := range append(msgs, "marker") {
		if m := receive(t, p.client); m != w {
			t.Fatalf("conn %d received %q, want %q", p.client.ConnID(), m, w)
		}
	}
}

func TestEndPointMulticast(t *testing.T) {
	g := startGW(t, Config{})
	format := &countingFormat{}
	srv, ps := epFanout(t, g, format, 3)
	before := format.encodes.Load()
	if err := srv.Multicast("hi", ps[0].server, ps[2].server, ps[2].server); err != nil {
		t.Fatal(err)
	}
	if n := format.encodes.Load() - before; n != 1 {
		t.Fatalf("MsgFormat ran %d times for one Multicast, want 1", n)
	}
	expectMsgs(t, ps[0], "hi")
	expectMsgs(t, ps[1])
	expectMsgs(t, ps[2], "hi", "hi")
	// A closed Conn is left out; one of another endpoint is refused.
	ps[1].server.Close()
	if err := srv.Multicast("after close", ps[1].server, ps[0].server); err != nil {
		t.Fatal(err)
	}
	expectMsgs(t, ps[0], "after close")
	if err := srv.Multicast("x", ps[0].client); !errors.Is(err, proto.ErrForeignConn) {
		t.Fatalf("Multicast to another endpoint's Conn: %v, want ErrForeignConn", err)
	}
}

// TestEndPointMulticastSplits: ConnIDs that do not fit one frame's
// MaxPacket go out in several Multicasts.
func TestEndPointMulticastSplits(t *testing.T) {
	const maxPacket = 64 // Length 7 + 4·Count + payload: 10 ConnIDs of a 17-byte payload per frame
	g := startGW(t, Config{MaxPacket: 1024})
	cfg := serverCfg(1)
	cfg.MaxPacket = maxPacket
	srv, err := proto.DialServerAddr("tcp", g.serverAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	eventually(t, "server registered", func() bool { return g.servers.newest(1) != nil })
	cli := g.dialClientEP(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var conns, server []*proto.Conn
	for range 12 {
		c, err := cli.DialContext(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		s, err := srv.AcceptContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns, server = append(conns, c), append(server, s)
	}
	list := slices.Concat(server, server) // 24 deliveries: three frames
	if err := srv.Multicast([]byte("seventeen bytes!!"), list...); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		for range 2 {
			if m := receive(t, c); string(m.([]byte)) != "seventeen bytes!!" {
				t.Fatalf("got %q", m)
			}
		}
	}
	if err := srv.Multicast(make([]byte, maxPacket), server[0]); !errors.Is(err, proto.ErrMsgTooLarge) {
		t.Fatalf("Multicast of a payload past MaxPacket: %v, want ErrMsgTooLarge", err)
	}
	if n := g.Stats().Fanout.Deliveries; n != 24 {
		t.Fatalf("%d deliveries, want 24", n)
	}
}

func TestEndPointGroup(t *testing.T) {
	g := startGW(t, Config{})
	format := &countingFormat{}
	srv, ps := epFanout(t, g, format, 3)
	room, err := srv.NewGroup()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := srv.NewGroup()
	if room.ID() == 0 || other.ID() == room.ID() {
		t.Fatalf("GroupIDs %d and %d", room.ID(), other.ID())
	}
	for _, p := range ps {
		if err := room.Join(p.server); err != nil {
			t.Fatal(err)
		}
	}
	room.Join(ps[0].server) // twice: nothing
	before := format.encodes.Load()
	if err := room.Publish("everyone but 1", ps[1].server); err != nil {
		t.Fatal(err)
	}
	if n := format.encodes.Load() - before; n != 1 {
		t.Fatalf("MsgFormat ran %d times for one Publish, want 1", n)
	}
	expectMsgs(t, ps[0], "everyone but 1")
	expectMsgs(t, ps[1])
	expectMsgs(t, ps[2], "everyone but 1")
	if err := room.Leave(ps[2].server); err != nil {
		t.Fatal(err)
	}
	room.Publish("0 and 1", nil)
	expectMsgs(t, ps[0], "0 and 1")
	expectMsgs(t, ps[1], "0 and 1")
	expectMsgs(t, ps[2])
	if room.Len() != 2 || g.Stats().Fanout.Memberships != 2 {
		t.Fatalf("Len %d, gateway memberships %d; want 2, 2", room.Len(), g.Stats().Fanout.Memberships)
	}
	// Broadcast reaches every virtual connection, in a group or not.
	if err := srv.Broadcast("announcement"); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		expectMsgs(t, p, "announcement")
	}
	// Close ends the group on both sides.
	if err := room.Close(); err != nil {
		t.Fatal(err)
	}
	if err := room.Publish("closed", nil); !errors.Is(err, proto.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := room.Join(ps[0].server); !errors.Is(err, proto.ErrClosed) {
		t.Fatalf("Join after Close: %v, want ErrClosed", err)
	}
	expectMsgs(t, ps[0])
	if st := g.Stats().Fanout; st.Groups != 0 || st.Memberships != 0 {
		t.Fatalf("gateway %+v after Close, want no group", st)
	}
}

// TestEndPointGroupMembershipFollowsClose: a virtual connection closed by
// either end, or whose client goes away, is gone from its groups on both
// sides.
func TestEndPointGroupMembershipFollowsClose(t *testing.T) {
	g := startGW(t, Config{})
	srv, ps := epFanout(t, g, &countingFormat{}, 3)
	a, _ := srv.NewGroup()
	b, _ := srv.NewGroup()
	for _, p := range ps {
		a.Join(p.server)
		b.Join(p.server)
	}
	expectMsgs(t, ps[0]) // the Joins are through
	both := func(want int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d members on both sides", want), func() bool {
			return a.Len() == want && b.Len() == want && g.Stats().Fanout.Memberships == int64(2*want)
		})
	}
	both(3)
	ps[0].client.Close() // by the client: the server's Conn reads EOF
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := ps[0].server.ReceiveContext(ctx); err == nil {
		t.Fatal("server's Conn still open")
	}
	both(2)
	ps[1].server.Close() // by the server
	both(1)
	a.Publish("last", nil)
	if m := receive(t, ps[2].client); m != "last" {
		t.Fatalf("got %q", m)
	}
	if err := a.Join(ps[1].server); !errors.Is(err, proto.ErrClosed) {
		t.Fatalf("Join of a closed Conn: %v, want ErrClosed", err)
	}
}

func TestEndPointFanoutNeedsServer(t *testing.T) {
	g := startGW(t, Config{})
	cli := g.dialClientEP(t)
	if err := cli.Multicast([]byte("x")); !errors.Is(err, proto.ErrNotServer) {
		t.Fatalf("client Multicast: %v", err)
	}
	if err := cli.Broadcast([]byte("x")); !errors.Is(err, proto.ErrNotServer) {
		t.Fatalf("client Broadcast: %v", err)
	}
	if _, err := cli.NewGroup(); !errors.Is(err, proto.ErrNotServer) {
		t.Fatalf("client NewGroup: %v", err)
	}
	srv := g.dialServerEP(t, 1)
	if err := srv.Broadcast(strings.Repeat("x", 3)); !errors.Is(err, proto.ErrNotBytes) {
		t.Fatalf("Broadcast of a string without MsgFormat: %v", err)
	}
}
