package proto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

const fleetKey = "fleet-secret"

// fleetGW is a fake gateway's server port on loopback: it authenticates
// servers (the real handshake) and hands each link to the test, which
// reads the frames the fleet sends and writes commands back.
type fleetGW struct {
	t     *testing.T
	ln    net.Listener
	links chan *gwLink
	gate  sync.Mutex // held by a test: the gateway's links read nothing
}

// gwLink is one server link to a fake gateway. Its reader answers Pings
// and queues every other frame on frames; closed is closed at EOF.
type gwLink struct {
	t      *testing.T
	gate   *sync.Mutex
	conn   net.Conn
	wmu    sync.Mutex
	frames chan []byte
	closed chan struct{}
}

func newFleetGW(t *testing.T) *fleetGW {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &fleetGW{t: t, ln: ln, links: make(chan *gwLink, 16)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := AuthenticateServer(c, fleetKey, 2*time.Second); err != nil {
				c.Close()
				continue
			}
			l := &gwLink{t: t, gate: &g.gate, conn: c, frames: make(chan []byte, 1024), closed: make(chan struct{})}
			t.Cleanup(func() { c.Close() })
			wg.Add(1)
			go func() { defer wg.Done(); l.read() }()
			g.links <- l
		}
	}()
	return g
}

func (g *fleetGW) addr() string { return g.ln.Addr().String() }

// link waits for the next server link.
func (g *fleetGW) link() *gwLink {
	g.t.Helper()
	return recvWithin(g.t, g.links, "a server link on "+g.addr())
}

func (l *gwLink) read() {
	defer close(l.closed)
	for {
		l.gate.Lock()
		l.gate.Unlock() //lint:ignore SA2001 waits while a test holds the gate
		var h [SizeOfLength]byte
		if _, err := io.ReadFull(l.conn, h[:]); err != nil {
			return
		}
		f := make([]byte, SizeOfLength+int(binary.LittleEndian.Uint32(h[:])))
		copy(f, h[:])
		if _, err := io.ReadFull(l.conn, f[SizeOfLength:]); err != nil {
			return
		}
		if Header(f).ConnID() == 0 && Cmd(f[HeaderSize]) == CmdPing {
			l.write(Command{Type: CmdPing}.Encode(nil))
			continue
		}
		l.frames <- f
	}
}

func (l *gwLink) write(b []byte) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.conn.Write(b)
}

// connect opens virtual connection id from client remote to the server.
func (l *gwLink) connect(id, remote uint32) {
	l.write(Command{Type: CmdConnect, ConnID: id, RemoteID: remote}.Encode(nil))
}

// next returns the next frame the server sent on l.
func (l *gwLink) next() []byte {
	l.t.Helper()
	return recvWithin(l.t, l.frames, "a frame from the server")
}

// nextFanout returns the next frame, which must be a fan-out command.
func (l *gwLink) nextFanout() Fanout {
	l.t.Helper()
	f := l.next()
	fo, err := DecodeFanout(f)
	if err != nil {
		l.t.Fatalf("frame % x: %v, want a fan-out command", f, err)
	}
	return fo
}

// chanDiscovery reports what the test puts on sets.
type chanDiscovery struct {
	sets chan []GatewayInfo
	errs chan error
}

func newChanDiscovery() *chanDiscovery {
	return &chanDiscovery{sets: make(chan []GatewayInfo), errs: make(chan error)}
}

func (d *chanDiscovery) Run(ctx context.Context, report func([]GatewayInfo, error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-d.sets:
			report(s, nil)
		case err := <-d.errs:
			report(nil, err)
		}
	}
}

// countingFormat is a MsgFormat of strings that counts its encodes.
type countingFormat struct{ encodes atomic.Int64 }

func (f *countingFormat) EncodeMessage(msg any) ([]byte, error) {
	s, ok := msg.(string)
	if !ok {
		return nil, fmt.Errorf("not a string: %T", msg)
	}
	f.encodes.Add(1)
	return []byte(s), nil
}

func (f *countingFormat) DecodeMessage(b []byte) (any, error) { return string(b), nil }

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestFleet(t *testing.T, d Discovery, format MsgFormat) *Fleet {
	t.Helper()
	f, err := NewFleet(FleetConfig{
		EndPoint:   EndPointCfg{ServerID: 5, AuthKey: fleetKey, MsgFormat: format},
		Discovery:  d,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: quietLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func status(f *Fleet, id string) (GatewayStatus, bool) {
	for _, g := range f.Gateways() {
		if g.ID == id {
			return g, true
		}
	}
	return GatewayStatus{}, false
}

func isAttached(f *Fleet, id string) bool {
	s, ok := status(f, id)
	return ok && s.Attached && !s.Leaving
}

// acceptFrom takes the next virtual connection from f and checks its
// gateway (any when gateway is empty).
func acceptFrom(t *testing.T, f *Fleet, gateway string) *FleetConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := f.AcceptContext(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if gateway != "" && c.Gateway() != gateway {
		t.Fatalf("conn %d from gateway %q, want %q", c.ConnID(), c.Gateway(), gateway)
	}
	return c
}

func gi(id, addr string) GatewayInfo { return GatewayInfo{ID: id, ServerAddr: addr} }

// TestFleetDiscoveryChanges follows one fleet through discovery reports: a
// gateway reported is attached, one no longer reported is left (at once
// without virtual connections, after the last one closes otherwise), a
// failed report keeps the set, a new address replaces the link.
func TestFleetDiscoveryChanges(t *testing.T) {
	a, b, b2 := newFleetGW(t), newFleetGW(t), newFleetGW(t)
	d := newChanDiscovery()
	f := newTestFleet(t, d, nil)
	d.sets <- []GatewayInfo{gi("a", a.addr()), gi("b", b.addr())}
	la, lb := a.link(), b.link()
	waitFor(t, "a and b attached", func() bool { return isAttached(f, "a") && isAttached(f, "b") })
	if err := f.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Discovery fails: nothing changes.
	d.errs <- errors.New("registry down")
	waitFor(t, "the error counted", func() bool { return f.Stats().DiscoveryErrors == 1 })
	if !isAttached(f, "a") || !isAttached(f, "b") {
		t.Fatalf("after a failed discovery: %+v", f.Gateways())
	}

	// b has a virtual connection: left, but only once it closes.
	lb.connect(7, 1001)
	cb := acceptFrom(t, f, "b")
	d.sets <- []GatewayInfo{gi("a", a.addr())}
	waitFor(t, "b leaving", func() bool { s, ok := status(f, "b"); return ok && s.Leaving && s.Attached })
	if err := cb.Send([]byte("still served")); err != nil {
		t.Fatal(err)
	}
	if got := lb.next(); Header(got).ConnID() != 7 {
		t.Fatalf("frame on the leaving gateway: % x", got)
	}
	select {
	case <-lb.closed:
		t.Fatal("link to b closed while a virtual connection was open")
	default:
	}
	cb.Close()
	<-recvWithinClosed(t, lb.closed, "the link to b closed after its last virtual connection")
	waitFor(t, "b dropped", func() bool { _, ok := status(f, "b"); return !ok && f.Stats().Drops == 1 })

	// Reported again under a new address: a new gateway behind the old ID.
	d.sets <- []GatewayInfo{gi("a", a.addr()), gi("b", b2.addr())}
	b2.link()
	waitFor(t, "b attached at its new address", func() bool { s, ok := status(f, "b"); return ok && s.Attached && s.ServerAddr == b2.addr() })

	// a without virtual connections is left at once.
	d.sets <- []GatewayInfo{gi("b", b2.addr())}
	<-recvWithinClosed(t, la.closed, "the link to a closed")
	waitFor(t, "a dropped", func() bool { _, ok := status(f, "a"); return !ok })
	if st := f.Stats(); st.Discovered != 3 || st.Drops != 2 || st.Attaches != 3 {
		t.Fatalf("stats %+v, want 3 discovered, 3 attaches, 2 drops", st)
	}
}

// recvWithinClosed waits for ch to be closed and returns it.
func recvWithinClosed(t *testing.T, ch <-chan struct{}, what string) <-chan struct{} {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	return ch
}

// TestFleetReconnect: a link the gateway cuts is dialled again, counted.
func TestFleetReconnect(t *testing.T) {
	a := newFleetGW(t)
	f := newTestFleet(t, Static(a.addr()), nil)
	l := a.link()
	waitFor(t, "attached", func() bool { return isAttached(f, a.addr()) })
	l.connect(3, 9)
	c := acceptFrom(t, f, a.addr())
	l.conn.Close()
	a.link()
	waitFor(t, "attached again", func() bool { return isAttached(f, a.addr()) && f.Stats().Reconnects == 1 })
	if _, err := c.Receive(); err != io.EOF {
		t.Fatalf("Receive on a conn of the lost link: %v, want io.EOF", err)
	}
	if st := f.Stats(); st.LinksLost != 1 || st.Attaches != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFleetBackoff checks the waits between attempts to reach a gateway
// that refuses: each within [b/2, b] of a backoff b doubling from
// MinBackoff to MaxBackoff (synctest's clock, so the bounds are exact).
func TestFleetBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Time
		f, err := NewFleet(FleetConfig{
			EndPoint:   EndPointCfg{ServerID: 1, AuthKey: fleetKey},
			Discovery:  Static("gw:1"),
			MinBackoff: 100 * time.Millisecond, MaxBackoff: 800 * time.Millisecond,
			Logger: quietLog(),
			Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				mu.Lock()
				at = append(at, time.Now())
				mu.Unlock()
				return nil, errors.New("refused")
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		f.Close()
		mu.Lock()
		defer mu.Unlock()
		if len(at) < 10 {
			t.Fatalf("%d attempts in 20 s", len(at))
		}
		b := 100 * time.Millisecond
		distinct := map[time.Duration]bool{}
		for i := 1; i < len(at); i++ {
			w := at[i].Sub(at[i-1])
			if w < b/2 || w > b {
				t.Fatalf("wait %d: %v, want within [%v, %v]", i, w, b/2, b)
			}
			if b == 800*time.Millisecond {
				distinct[w] = true
			}
			b = min(2*b, 800*time.Millisecond)
		}
		if len(distinct) < 2 {
			t.Fatalf("waits at MaxBackoff all equal (%v): no jitter", distinct)
		}
		if st := f.Stats(); st.DialFailures != uint64(len(at)) {
			t.Fatalf("DialFailures %d, attempts %d", st.DialFailures, len(at))
		}
	})
}

// TestJitterBounds: jitter(d) is within [d/2, d] and spreads over it.
func TestJitterBounds(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, 3, time.Millisecond, 5 * time.Second} {
		lo, hi := d, time.Duration(0)
		for range 2000 {
			j := jitter(d)
			if j < d/2 || j > d {
				t.Fatalf("jitter(%v) = %v", d, j)
			}
			lo, hi = min(lo, j), max(hi, j)
		}
		if d >= time.Millisecond && (lo > d/2+d/20 || hi < d-d/20) {
			t.Fatalf("jitter(%v) spread over [%v, %v] only", d, lo, hi)
		}
	}
}

// TestFleetClientAddrs: the lobby helper lists attached gateways with a
// client address, least loaded first (registered clients, then this
// server's virtual connections).
func TestFleetClientAddrs(t *testing.T) {
	gws := []*fleetGW{newFleetGW(t), newFleetGW(t), newFleetGW(t), newFleetGW(t)}
	d := newChanDiscovery()
	f := newTestFleet(t, d, nil)
	set := []GatewayInfo{
		{ID: "busy", ServerAddr: gws[0].addr(), ClientAddr: "10.0.0.1:4000", Clients: 900},
		{ID: "idle", ServerAddr: gws[1].addr(), ClientAddr: "10.0.0.2:4000", WSAddr: "wss://gw2.example/ws", Clients: 10},
		{ID: "idle-but-conns", ServerAddr: gws[2].addr(), ClientAddr: "10.0.0.3:4000", Clients: 10},
		{ID: "no-client-addr", ServerAddr: gws[3].addr(), Clients: 0},
		{ID: "down", ServerAddr: "127.0.0.1:1", ClientAddr: "10.0.0.9:4000"},
	}
	d.sets <- set
	links := make([]*gwLink, 4)
	for i, g := range gws {
		links[i] = g.link()
	}
	links[2].connect(1, 50)
	acceptFrom(t, f, "idle-but-conns")
	waitFor(t, "four attached", func() bool {
		n := 0
		for _, g := range f.Gateways() {
			if g.Attached {
				n++
			}
		}
		return n == 4
	})
	got := f.ClientAddrs()
	want := []GatewayLoad{
		{ID: "idle", ClientAddr: "10.0.0.2:4000", WSAddr: "wss://gw2.example/ws", Clients: 10},
		{ID: "idle-but-conns", ClientAddr: "10.0.0.3:4000", Clients: 10, Conns: 1},
		{ID: "busy", ClientAddr: "10.0.0.1:4000", Clients: 900},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ClientAddrs:\n got %+v\nwant %+v", got, want)
	}
	// A refreshed record re-sorts them.
	set[0].Clients = 1
	d.sets <- set
	waitFor(t, "busy first", func() bool { l := f.ClientAddrs(); return len(l) == 3 && l[0].ID == "busy" })
}

// TestFleetDialClient: a client reference carries its gateway, and the
// fleet dials the client back through that gateway.
func TestFleetDialClient(t *testing.T) {
	a, b := newFleetGW(t), newFleetGW(t)
	d := newChanDiscovery()
	f := newTestFleet(t, d, &countingFormat{})
	d.sets <- []GatewayInfo{gi("a", a.addr()), gi("b", b.addr())}
	a.link()
	lb := b.link()
	lb.connect(4, 321)
	c := acceptFrom(t, f, "b")
	ref := c.Ref()
	if ref != (ClientRef{Gateway: "b", ClientID: 321}) || ref.String() != "321@b" {
		t.Fatalf("Ref: %+v %q", ref, ref)
	}
	type res struct {
		c   *FleetConn
		err error
	}
	done := make(chan res, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := f.DialClient(ctx, ref)
		done <- res{c, err}
	}()
	dial, err := DecodeCommand(lb.next())
	if err != nil || dial != (Command{Type: CmdDial, RemoteID: 321}) {
		t.Fatalf("gateway b got %+v, %v; want Dial 321", dial, err)
	}
	lb.write(Command{Type: CmdAccept, ConnID: 8, RemoteID: 321}.Encode(nil))
	r := recvWithin(t, done, "DialClient")
	if r.err != nil || r.c.Gateway() != "b" || r.c.ConnID() != 8 || r.c.RemoteID() != 321 {
		t.Fatalf("DialClient: %+v, %v", r.c, r.err)
	}
	if err := r.c.Send("back"); err != nil {
		t.Fatal(err)
	}
	if got := lb.next(); string(got[HeaderSize:]) != "back" || Header(got).ConnID() != 8 {
		t.Fatalf("gateway b got % x", got)
	}
	if _, err := f.DialClient(context.Background(), ClientRef{Gateway: "nowhere", ClientID: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("DialClient to an unknown gateway: %v, want ErrClosed", err)
	}
}

// TestFleetFanout checks Multicast, Broadcast and FleetGroup over three
// gateways: one command per gateway that has members, none to the others,
// the message encoded once per call; members leave when their virtual
// connection closes or their link is lost.
func TestFleetFanout(t *testing.T) {
	gws := []*fleetGW{newFleetGW(t), newFleetGW(t), newFleetGW(t)}
	d := newChanDiscovery()
	format := &countingFormat{}
	f := newTestFleet(t, d, format)
	d.sets <- []GatewayInfo{gi("a", gws[0].addr()), gi("b", gws[1].addr()), gi("c", gws[2].addr())}
	la, lb, lc := gws[0].link(), gws[1].link(), gws[2].link()
	waitFor(t, "three attached", func() bool { return isAttached(f, "a") && isAttached(f, "b") && isAttached(f, "c") })
	la.connect(11, 1)
	la.connect(12, 2)
	lb.connect(21, 3)
	byID := map[uint32]*FleetConn{}
	for range 3 {
		c := acceptFrom(t, f, "")
		byID[c.ConnID()] = c
	}
	a1, a2, b1 := byID[11], byID[12], byID[21]
	if a1.Gateway() != "a" || a2.Gateway() != "a" || b1.Gateway() != "b" {
		t.Fatalf("gateways %q %q %q", a1.Gateway(), a2.Gateway(), b1.Gateway())
	}

	encodes := func(want int64) {
		t.Helper()
		if n := format.encodes.Swap(0); n != want {
			t.Fatalf("%d encodes, want %d", n, want)
		}
	}
	ids := func(fo Fanout) []uint32 {
		var out []uint32
		for i := range fo.Count() {
			out = append(out, fo.ID(i))
		}
		return out
	}

	// Multicast: a gets a1 and a2 in one frame, b gets b1, c nothing.
	if err := f.Multicast("m", a1, b1, a2); err != nil {
		t.Fatal(err)
	}
	encodes(1)
	if fo := la.nextFanout(); fo.Type != CmdMulticast || !slices.Equal(ids(fo), []uint32{11, 12}) || string(fo.Payload) != "m" {
		t.Fatalf("a got %+v", fo)
	}
	if fo := lb.nextFanout(); fo.Type != CmdMulticast || !slices.Equal(ids(fo), []uint32{21}) {
		t.Fatalf("b got %+v", fo)
	}

	// Broadcast: a Publish to group 0 on a and b; c has no virtual
	// connection of this server.
	if err := f.Broadcast("all"); err != nil {
		t.Fatal(err)
	}
	encodes(1)
	for _, l := range []*gwLink{la, lb} {
		if fo := l.nextFanout(); fo.Type != CmdPublish || fo.GroupID != 0 || fo.ConnID != 0 || string(fo.Payload) != "all" {
			t.Fatalf("got %+v, want Publish to 0", fo)
		}
	}

	// A group over a and b.
	g := f.NewGroup()
	for _, c := range []*FleetConn{a1, a2, b1} {
		if err := g.Join(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Join(a1); err != nil { // a member already: nothing sent
		t.Fatal(err)
	}
	j1, j2, jb := la.nextFanout(), la.nextFanout(), lb.nextFanout()
	ga, gb := j1.GroupID, jb.GroupID
	if j1.Type != CmdJoin || j1.ConnID != 11 || j2.Type != CmdJoin || j2.GroupID != ga || j2.ConnID != 12 || jb.Type != CmdJoin || jb.ConnID != 21 {
		t.Fatalf("joins: %+v %+v %+v", j1, j2, jb)
	}
	if g.Len() != 3 || len(g.Members()) != 3 {
		t.Fatalf("Len %d, Members %d, want 3", g.Len(), len(g.Members()))
	}
	for _, m := range g.Members() {
		if m.Gateway() != map[uint32]string{11: "a", 12: "a", 21: "b"}[m.ConnID()] {
			t.Fatalf("member %d on %q", m.ConnID(), m.Gateway())
		}
	}
	if err := g.Publish("p1", a1); err != nil {
		t.Fatal(err)
	}
	encodes(1)
	if fo := la.nextFanout(); fo.Type != CmdPublish || fo.GroupID != ga || fo.ConnID != 11 || string(fo.Payload) != "p1" {
		t.Fatalf("a got %+v", fo)
	}
	if fo := lb.nextFanout(); fo.Type != CmdPublish || fo.GroupID != gb || fo.ConnID != 0 {
		t.Fatalf("b got %+v", fo)
	}

	// Except b's only member: b gets nothing (the next frame on b is a
	// marker sent after).
	if err := g.Publish("p2", b1); err != nil {
		t.Fatal(err)
	}
	if fo := la.nextFanout(); fo.Type != CmdPublish || fo.ConnID != 0 || string(fo.Payload) != "p2" {
		t.Fatalf("a got %+v", fo)
	}
	b1.Send("marker")
	if got := lb.next(); Header(got).ConnID() != 21 || string(got[HeaderSize:]) != "marker" {
		t.Fatalf("b got % x, want the marker only", got)
	}

	// b1 closed by the gateway: it leaves the group; b gets nothing more.
	lb.write(Command{Type: CmdClose, ConnID: 21}.Encode(nil))
	waitFor(t, "b1 out of the group", func() bool { return g.Len() == 2 })
	format.encodes.Store(0)
	if err := g.Publish("p3", nil); err != nil {
		t.Fatal(err)
	}
	encodes(1)
	if fo := la.nextFanout(); fo.Type != CmdPublish || string(fo.Payload) != "p3" {
		t.Fatalf("a got %+v", fo)
	}

	// a2 closed by the server: a Leave is not needed (Close does it at the
	// gateway), the group has a1 only.
	a2.Close()
	if got, err := DecodeCommand(la.next()); err != nil || got != (Command{Type: CmdClose, ConnID: 12}) {
		t.Fatalf("a got %+v, %v; want Close 12", got, err)
	}
	if g.Len() != 1 {
		t.Fatalf("Len %d after a2 closed", g.Len())
	}

	// The link to a is lost: a1 leaves with it. The fleet reconnects; a
	// new virtual connection there joins a new group on the new link.
	la.conn.Close()
	waitFor(t, "a's members gone", func() bool { return g.Len() == 0 })
	la = gws[0].link()
	waitFor(t, "a attached again", func() bool { return isAttached(f, "a") })
	if err := g.Publish("nobody", nil); err != nil {
		t.Fatal(err)
	}
	la.connect(13, 4)
	a3 := acceptFrom(t, f, "a")
	if err := g.Join(a3); err != nil {
		t.Fatal(err)
	}
	if fo := la.nextFanout(); fo.Type != CmdJoin || fo.ConnID != 13 {
		t.Fatalf("a got %+v", fo)
	}
	if err := g.Publish("p4", nil); err != nil {
		t.Fatal(err)
	}
	if fo := la.nextFanout(); fo.Type != CmdPublish || string(fo.Payload) != "p4" {
		t.Fatalf("a got %+v (the Publish of nobody must not have been sent)", fo)
	}

	// Close: Leave 0 on every link with a part.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*gwLink{la, lb} {
		if fo := l.nextFanout(); fo.Type != CmdLeave || fo.ConnID != 0 {
			t.Fatalf("got %+v, want Leave 0", fo)
		}
	}
	if err := g.Publish("x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if err := g.Join(a3); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Close: %v", err)
	}

	// c got nothing all along: its first frame is this Multicast.
	lc.connect(31, 5)
	c1 := acceptFrom(t, f, "c")
	if err := f.Multicast("to c", c1); err != nil {
		t.Fatal(err)
	}
	if fo := lc.nextFanout(); fo.Type != CmdMulticast || string(fo.Payload) != "to c" {
		t.Fatalf("c got %+v", fo)
	}

	// Bad calls send nothing.
	other := newTestFleet(t, Static(), nil)
	foreign := &FleetConn{Conn: a3.Conn, gateway: "a", fleet: other}
	if err := f.Multicast("x", a3, foreign); !errors.Is(err, ErrForeignConn) {
		t.Fatalf("Multicast of a foreign conn: %v", err)
	}
	if err := f.NewGroup().Join(foreign); !errors.Is(err, ErrForeignConn) {
		t.Fatalf("Join of a foreign conn: %v", err)
	}
	if err := f.Broadcast(42); err == nil {
		t.Fatal("Broadcast of a message the format refuses: no error")
	}
	if err := f.Multicast(string(make([]byte, DefaultMaxPacket)), a3); !errors.Is(err, ErrMsgTooLarge) {
		t.Fatalf("Multicast too large: %v", err)
	}
	a3.Send("end")
	if got := la.next(); string(got[HeaderSize:]) != "end" {
		t.Fatalf("a got % x after the bad calls, want only the marker", got)
	}
}

// TestFleetFanoutStalledGateway: a gateway that stops reading holds up only
// its own part of a fan-out call. Gateway a's links read nothing until its
// send queue and socket buffers are full; then each Multicast to a member on
// a and one on b, with a listed first, reaches b while the call still waits
// for room on a. (Sent to one gateway after the other, b would get nothing
// until a's wait ended.)
func TestFleetFanoutStalledGateway(t *testing.T) {
	gws := []*fleetGW{newFleetGW(t), newFleetGW(t)}
	d := newChanDiscovery()
	f := newTestFleet(t, d, nil)
	d.sets <- []GatewayInfo{gi("a", gws[0].addr()), gi("b", gws[1].addr())}
	la, lb := gws[0].link(), gws[1].link()
	waitFor(t, "both attached", func() bool { return isAttached(f, "a") && isAttached(f, "b") })
	la.connect(11, 1)
	lb.connect(21, 2)
	byID := map[uint32]*FleetConn{}
	for range 2 {
		c := acceptFrom(t, f, "")
		byID[c.ConnID()] = c
	}
	a1, b1 := byID[11], byID[21]

	gws[0].gate.Lock()
	gateHeld := true
	defer func() {
		if gateHeld {
			gws[0].gate.Unlock()
		}
	}()
	// Fill a: Multicasts to a1 alone until one finds no room within 50 ms.
	big := make([]byte, 64<<10)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := f.MulticastContext(ctx, big, a1)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a's send queue never filled")
		}
	}

	type result struct{ err error }
	var pending []chan result
	for i := range 4 {
		done := make(chan result, 1)
		pending = append(pending, done)
		msg := fmt.Appendf(nil, "m%d", i)
		go func() { done <- result{f.Multicast(msg, a1, b1)} }()
		fo := lb.nextFanout()
		if fo.Type != CmdMulticast || fo.Count() != 1 || fo.ID(0) != 21 || string(fo.Payload) != string(msg) {
			t.Fatalf("b got %+v, want Multicast %q to 21", fo, msg)
		}
		select {
		case r := <-done:
			t.Fatalf("Multicast %d returned (%v) while a had no room", i, r.err)
		default:
		}
	}

	// a reads again: every call returns, and a gets the backlog.
	go func() {
		for {
			select {
			case <-la.frames:
			case <-la.closed:
				return
			}
		}
	}()
	gws[0].gate.Unlock()
	gateHeld = false
	for i, done := range pending {
		if r := recvWithin(t, done, fmt.Sprintf("Multicast %d to return", i)); r.err != nil {
			t.Fatalf("Multicast %d: %v", i, r.err)
		}
	}
}
