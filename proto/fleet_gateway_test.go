package proto_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

const gwKey = "fleet-gw-secret"

// realGW is an in-process gateway on loopback ports.
type realGW struct {
	g                      *gateway.Gateway
	clientAddr, serverAddr string
	served                 chan error
}

func startRealGW(t *testing.T) *realGW {
	t.Helper()
	g := gateway.New(gateway.Config{ServerAuthPassword: gwKey, Logger: slog.New(slog.DiscardHandler)})
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &realGW{g: g, clientAddr: cl.Addr().String(), serverAddr: sl.Addr().String(), served: make(chan error, 2)}
	go func() { r.served <- g.ServeClients(cl) }()
	go func() { r.served <- g.ServeServers(sl) }()
	t.Cleanup(r.stop)
	return r
}

// stop shuts the gateway down at once (its connections close) and waits
// for both ports to stop serving; it is idempotent.
func (r *realGW) stop() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.g.Shutdown(ctx)
	for range cap(r.served) {
		select {
		case <-r.served:
		default:
		}
	}
}

// fleetPlayer is a client of one gateway with a virtual connection to the
// fleet's server; it counts what it receives.
type fleetPlayer struct {
	ep   *proto.EndPoint
	conn *proto.Conn
	got  chan string
}

func newFleetPlayer(t *testing.T, gw *realGW, serverID uint32) *fleetPlayer {
	t.Helper()
	ep, err := proto.DialClientAddr("tcp", gw.clientAddr, proto.EndPointCfg{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	var c *proto.Conn
	poll.UntilNil(t, 5*time.Second, "a dial to the fleet's server", func() error {
		c, err = ep.Dial(serverID)
		return err
	})
	p := &fleetPlayer{ep: ep, conn: c, got: make(chan string, 1024)}
	go func() {
		defer close(p.got)
		for {
			m, err := c.Receive()
			if err != nil {
				return
			}
			p.got <- string(m.([]byte))
		}
	}()
	return p
}

// expect reads the next message and checks it.
func (p *fleetPlayer) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case m, ok := <-p.got:
		if !ok || m != want {
			t.Fatalf("player got %q (open %v), want %q", m, ok, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("player did not get %q", want)
	}
}

// TestFleetFanoutRealGateways runs a fleet over three in-process gateways,
// two players on each: a fleet-wide Publish, Broadcast and Multicast reach
// players on every gateway; a gateway shut down takes its players out of
// the group, and the others get every message (counted).
func TestFleetFanoutRealGateways(t *testing.T) {
	gws := []*realGW{startRealGW(t), startRealGW(t), startRealGW(t)}
	f, err := proto.NewFleet(proto.FleetConfig{
		EndPoint:   proto.EndPointCfg{ServerID: 7, AuthKey: gwKey},
		Discovery:  proto.Static(gws[0].serverAddr, gws[1].serverAddr, gws[2].serverAddr),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var players []*fleetPlayer
	for _, gw := range gws {
		for range 2 {
			players = append(players, newFleetPlayer(t, gw, 7))
		}
	}
	room := f.NewGroup()
	conns := map[string][]*proto.FleetConn{}
	for range players {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := f.AcceptContext(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		conns[c.Gateway()] = append(conns[c.Gateway()], c)
		if err := room.Join(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, gw := range gws {
		if len(conns[gw.serverAddr]) != 2 {
			t.Fatalf("conns by gateway: %v", conns)
		}
	}

	if err := room.Publish([]byte("hello room"), nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range players {
		p.expect(t, "hello room")
	}
	if err := f.Broadcast([]byte("news")); err != nil {
		t.Fatal(err)
	}
	for _, p := range players {
		p.expect(t, "news")
	}
	// One of each gateway's pair: players 0, 2, 4.
	pick := []*proto.FleetConn{conns[gws[0].serverAddr][0], conns[gws[1].serverAddr][0], conns[gws[2].serverAddr][0]}
	if err := f.Multicast([]byte("picked"), pick...); err != nil {
		t.Fatal(err)
	}
	// A player's ConnID is the fleet conn's at the same gateway (each
	// gateway numbers its own). The others get nothing: their next
	// message below is another.
	got := 0
	for _, p := range players {
		for _, c := range pick {
			if c.Gateway() == gwOf(gws, p) && c.ConnID() == p.conn.ConnID() {
				p.expect(t, "picked")
				got++
			}
		}
	}
	if got != len(pick) {
		t.Fatalf("%d players matched the %d picked", got, len(pick))
	}

	// gws[1] goes down: its two players' connections close, and they leave
	// the group; the other four get every message.
	gws[1].stop()
	for _, p := range players[2:4] {
		select {
		case <-p.ep.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a player of the stopped gateway is still connected")
		}
	}
	poll.Until(t, 5*time.Second, "the stopped gateway's members gone", func() bool { return room.Len() == 4 })
	const n = 200
	for i := range n {
		if err := room.Publish(fmt.Appendf(nil, "m%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	survivors := append(append([]*fleetPlayer{}, players[:2]...), players[4:]...)
	for _, p := range survivors {
		for i := range n {
			p.expect(t, fmt.Sprintf("m%d", i))
		}
	}
	t.Logf("after a gateway went down: %d publishes, each of %d players on the other gateways got all %d", n, len(survivors), n)
	if err := room.Close(); err != nil {
		t.Fatal(err)
	}
}

// gwOf returns the server address of the gateway p is connected to.
func gwOf(gws []*realGW, p *fleetPlayer) string {
	for _, gw := range gws {
		if p.ep.RemoteAddr().String() == gw.clientAddr {
			return gw.serverAddr
		}
	}
	return ""
}
