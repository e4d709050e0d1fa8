package gateway

import (
	"context"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// Each test here checks one rule of docs/protocol.md §1-2 over real loopback
// sockets, with the exact bytes the gateway sends.

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDialAcceptConnectAndData(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)

	// The protocol's example: client dials server 1.
	c.write(mustHex(t, "09000000"+"00000000"+"00"+"01000000"))
	a := c.readCmd()
	if a.Type != proto.CmdAccept || a.RemoteID != 1 || a.ConnID == 0 {
		t.Fatalf("got %+v, want Accept(ConnID, 1)", a)
	}
	k := s.readCmd()
	if k.Type != proto.CmdConnect || k.ConnID != a.ConnID || k.RemoteID == 0 {
		t.Fatalf("got %+v, want Connect(%d, clientID)", k, a.ConnID)
	}
	// Data is forwarded byte for byte, both ways.
	c.sendData(a.ConnID, "Hello")
	s.expectData(a.ConnID, "Hello")
	s.sendData(a.ConnID, "World!")
	c.expectData(a.ConnID, "World!")
	if n := g.Stats().VirtualConns; n != 1 {
		t.Fatalf("VirtualConns = %d, want 1", n)
	}
}

func TestAcceptBytesMatchProtocolExample(t *testing.T) {
	// The gateway's Accept for ConnID 9527 from server 1 is the example.
	want := mustHex(t, "0d000000"+"00000000"+"01"+"37250000"+"01000000")
	got := proto.Command{Type: proto.CmdAccept, ConnID: 9527, RemoteID: 1}.Encode(nil)
	if string(got) != string(want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	g := startGW(t, Config{})
	g.nextConnID.Store(9526)
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: 1})
	c.expect(want)
	s.readCmd()
	c.write(mustHex(t, "09000000"+"37250000"+"48656c6c6f"))
	s.expect(mustHex(t, "09000000"+"37250000"+"48656c6c6f"))
}

func TestDialUnknownServerRefused(t *testing.T) {
	g := startGW(t, Config{})
	c := g.dialClient(t)
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: 42})
	c.expect(mustHex(t, "09000000"+"00000000"+"03"+"2a000000"))
	if n := g.Stats().Refused(RefuseUnknownID); n != 1 {
		t.Fatalf("refused(unknown) = %d, want 1", n)
	}
}

// TestServerIDZero: 0 is a valid server ID (docs/protocol.md §1.4), as it is
// for the original gateway. A server with ID 0 registers; a client's Dial(0)
// reaches it and data flows both ways; server 0 dials the client back. A
// server's Dial(0) still gets Refuse(0): no client has ID 0.
func TestServerIDZero(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 0)
	if g.servers.newest(0) == nil {
		t.Fatal("server 0 is not registered")
	}
	c := g.dialClient(t)
	id, clientID := open(t, c, s, 0)
	c.sendData(id, "up")
	s.expectData(id, "up")
	s.sendData(id, "down")
	c.expectData(id, "down")

	// Server 0 dials the client back.
	s.send(proto.Command{Type: proto.CmdDial, RemoteID: clientID})
	a := s.readCmd()
	if a.Type != proto.CmdAccept || a.RemoteID != clientID || a.ConnID == 0 || a.ConnID == id {
		t.Fatalf("got %+v, want Accept of client %d", a, clientID)
	}
	c.expectCmd(proto.Command{Type: proto.CmdConnect, ConnID: a.ConnID, RemoteID: 0})
	s.sendData(a.ConnID, "back")
	c.expectData(a.ConnID, "back")
	c.sendData(a.ConnID, "forth")
	s.expectData(a.ConnID, "forth")

	s.send(proto.Command{Type: proto.CmdDial, RemoteID: 0})
	s.expectCmd(proto.Command{Type: proto.CmdRefuse, RemoteID: 0})
	if n := g.Stats().Refused(RefuseInvalidID); n != 1 {
		t.Fatalf("refused(invalid) = %d, want 1", n)
	}
	c.ping()
	s.ping()
	if st := g.Stats(); st.VirtualConns != 2 || st.Refused(RefuseUnknownID) != 0 {
		t.Fatalf("%d virtual connections, %d unknown-ID refusals; want 2, 0", st.VirtualConns, st.Refused(RefuseUnknownID))
	}
}

// TestDialServerIDZero: the Go endpoint registers as server 0 with
// proto.DialServer and serves a client through the gateway.
func TestDialServerIDZero(t *testing.T) {
	g := startGW(t, Config{})
	srv := g.dialServerEP(t, 0) // proto.DialServer with ServerID 0
	cli := g.dialClientEP(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := cli.DialContext(ctx, 0)
	if err != nil {
		t.Fatalf("Dial(0): %v", err)
	}
	sc, err := srv.AcceptContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		from, to *proto.Conn
		msg      string
	}{{c, sc, "to server 0"}, {sc, c, "from server 0"}} {
		if err := step.from.SendContext(ctx, []byte(step.msg)); err != nil {
			t.Fatal(err)
		}
		m, err := step.to.ReceiveContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.([]byte)) != step.msg {
			t.Fatalf("received %q, want %q", m, step.msg)
		}
	}
}

func TestDialOverClientMaxConnRefused(t *testing.T) {
	g := startGW(t, Config{ClientMaxConn: 2})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	first, _ := open(t, c, s, 1)
	open(t, c, s, 1)
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: 1})
	c.expectCmd(proto.Command{Type: proto.CmdRefuse, RemoteID: 1})
	if n := g.Stats().Refused(RefuseLimit); n != 1 {
		t.Fatalf("refused(limit) = %d, want 1", n)
	}
	// Closing one frees a slot.
	c.send(proto.Command{Type: proto.CmdClose, ConnID: first})
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: first})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: first})
	_, cid := open(t, c, s, 1) // c is at its limit again
	// A server's dials to the client do not count toward the client's
	// limit: the server still gets through to c.
	s.send(proto.Command{Type: proto.CmdDial, RemoteID: cid})
	a := s.readCmd()
	if a.Type != proto.CmdAccept || a.RemoteID != cid {
		t.Fatalf("server's Dial to a client at its limit: got %+v, want Accept", a)
	}
	c.expectCmd(proto.Command{Type: proto.CmdConnect, ConnID: a.ConnID, RemoteID: 1})
}

func TestDialClosingPeerRefused(t *testing.T) {
	// A peer that is closing but not yet torn down refuses new dials. The
	// window is too short to hit over sockets, so this drives attach
	// directly with a closed link.
	g := New(Config{})
	near, far := net.Pipe()
	defer far.Close()
	client := newLink(g, nil, sideClient, 1)
	server := newLink(g, near, sideServer, 1)
	server.close(ReasonShutdown, nil, false) // a closing link, not yet torn down
	if r, ok := g.attach(client, &vconn{client: client, server: server, byClient: true}, 1); ok || r != RefusePeerClosing {
		t.Fatalf("attach to closing server = %v, %v; want RefusePeerClosing", r, ok)
	}
	server = newLink(g, nil, sideServer, 1)
	server.dead.Store(true) // torn down (servers keep no table: see attach)
	if r, ok := g.attach(client, &vconn{client: client, server: server, byClient: true}, 1); ok || r != RefusePeerClosing {
		t.Fatalf("attach to torn-down server = %v, %v; want RefusePeerClosing", r, ok)
	}
	server = newLink(g, nil, sideServer, 1)
	client.dead.Store(true)
	if r, ok := g.attach(server, &vconn{client: client, server: server}, 1); ok || r != RefusePeerClosing {
		t.Fatalf("attach to dead client = %v, %v; want RefusePeerClosing", r, ok)
	}
	if n := g.routes.len(); n != 0 {
		t.Fatalf("route table holds %d entries after refused attaches", n)
	}
}

func TestPipelinedDialsAnsweredInOrder(t *testing.T) {
	g := startGW(t, Config{})
	s1 := g.dialServer(t, 1)
	s2 := g.dialServer(t, 2)
	c := g.dialClient(t)
	// Three Dials in one write: known, unknown, known.
	var b []byte
	b = proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(b)
	b = proto.Command{Type: proto.CmdDial, RemoteID: 99}.Encode(b)
	b = proto.Command{Type: proto.CmdDial, RemoteID: 2}.Encode(b)
	c.write(b)
	if a := c.readCmd(); a.Type != proto.CmdAccept || a.RemoteID != 1 {
		t.Fatalf("first reply %+v, want Accept from 1", a)
	}
	c.expectCmd(proto.Command{Type: proto.CmdRefuse, RemoteID: 99})
	if a := c.readCmd(); a.Type != proto.CmdAccept || a.RemoteID != 2 {
		t.Fatalf("third reply %+v, want Accept from 2", a)
	}
	s1.readCmd()
	s2.readCmd()
}

func TestServerDialsClient(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 7)
	c := g.dialClient(t)
	_, clientID := open(t, c, s, 7)

	s.send(proto.Command{Type: proto.CmdDial, RemoteID: clientID})
	a := s.readCmd()
	if a.Type != proto.CmdAccept || a.RemoteID != clientID || a.ConnID == 0 {
		t.Fatalf("got %+v, want Accept(ConnID, %d)", a, clientID)
	}
	c.expectCmd(proto.Command{Type: proto.CmdConnect, ConnID: a.ConnID, RemoteID: 7})
	c.sendData(a.ConnID, "from client")
	s.expectData(a.ConnID, "from client")
	s.sendData(a.ConnID, "from server")
	c.expectData(a.ConnID, "from server")

	// An unknown client ID is refused.
	s.send(proto.Command{Type: proto.CmdDial, RemoteID: clientID + 1000})
	s.expectCmd(proto.Command{Type: proto.CmdRefuse, RemoteID: clientID + 1000})
}

func TestCloseFromClientAcknowledgedToBoth(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	id, _ := open(t, c, s, 1)
	c.send(proto.Command{Type: proto.CmdClose, ConnID: id})
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	eventually(t, "empty route table", func() bool { return g.routes.len() == 0 })
}

func TestCloseFromServerAcknowledgedToBoth(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	id, _ := open(t, c, s, 1)
	s.send(proto.Command{Type: proto.CmdClose, ConnID: id})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	// A second Close for the same ID is ignored: no reply.
	s.send(proto.Command{Type: proto.CmdClose, ConnID: id})
	s.ping()
	c.ping()
}

func TestClientDisconnectClosesItsVirtualConns(t *testing.T) {
	g := startGW(t, Config{})
	s1 := g.dialServer(t, 1)
	s2 := g.dialServer(t, 2)
	c := g.dialClient(t)
	id1, _ := open(t, c, s1, 1)
	id2, _ := open(t, c, s2, 2)
	c.conn.Close()
	s1.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id1})
	s2.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id2})
	eventually(t, "client gone", func() bool {
		st := g.Stats()
		return st.ClientConns == 0 && st.VirtualConns == 0 && g.routes.len() == 0 && g.clients.len() == 0
	})
	if n := g.Stats().Disconnected(ReasonPeerClosed); n != 1 {
		t.Fatalf("disconnects(peer closed) = %d, want 1", n)
	}
}

func TestServerDisconnectClosesItsVirtualConns(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	c1, c2 := g.dialClient(t), g.dialClient(t)
	id1, _ := open(t, c1, s, 1)
	id2, _ := open(t, c2, s, 1)
	id3, _ := open(t, c2, s, 1)
	s.conn.Close()
	c1.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id1})
	got := map[uint32]bool{}
	for range 2 {
		cmd := c2.readCmd()
		if cmd.Type != proto.CmdClose {
			t.Fatalf("got %+v, want Close", cmd)
		}
		got[cmd.ConnID] = true
	}
	if !got[id2] || !got[id3] {
		t.Fatalf("closes %v, want %d and %d", got, id2, id3)
	}
	eventually(t, "server gone", func() bool { return g.Stats().ServerConns == 0 && g.routes.len() == 0 })
	// The server is no longer dialable.
	c1.send(proto.Command{Type: proto.CmdDial, RemoteID: 1})
	c1.expectCmd(proto.Command{Type: proto.CmdRefuse, RemoteID: 1})
}

func TestPingAnswered(t *testing.T) {
	g := startGW(t, Config{})
	c := g.dialClient(t)
	c.write(mustHex(t, "05000000"+"00000000"+"05"))
	c.expect(mustHex(t, "05000000"+"00000000"+"05"))
	s := g.dialServer(t, 3) // dialServer itself pings
	s.ping()
}

func TestClientIdleTimeout(t *testing.T) {
	g := startGW(t, Config{ClientIdleTimeout: 150 * time.Millisecond})
	c := g.dialClient(t)
	start := time.Now()
	c.expectEOF()
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
	eventually(t, "idle disconnect counted", func() bool { return g.Stats().Disconnected(ReasonIdleTimeout) == 1 })
}

func TestActivityKeepsClientAlive(t *testing.T) {
	g := startGW(t, Config{ClientIdleTimeout: 200 * time.Millisecond})
	c := g.dialClient(t)
	// Pings every 50 ms for 3 idle timeouts keep it open.
	deadline := time.Now().Add(600 * time.Millisecond)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		<-tick.C
		c.ping()
	}
	if n := g.Stats().Disconnected(ReasonIdleTimeout); n != 0 {
		t.Fatalf("%d idle disconnects, want 0", n)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	g := startGW(t, Config{ServerIdleTimeout: 150 * time.Millisecond})
	s := g.dialServer(t, 1)
	s.expectEOF()
	eventually(t, "server unregistered", func() bool { return g.servers.newest(1) == nil })
}

func TestDuplicateServerIDNewestTakesDials(t *testing.T) {
	g := startGW(t, Config{})
	old := g.dialServer(t, 1)
	c := g.dialClient(t)
	oldID, _ := open(t, c, old, 1)

	newer := g.dialServer(t, 1)
	newID, _ := open(t, c, newer, 1) // the new Dial goes to the newer server
	// The older one keeps its virtual connection.
	c.sendData(oldID, "to old")
	old.expectData(oldID, "to old")
	old.sendData(oldID, "from old")
	c.expectData(oldID, "from old")
	c.sendData(newID, "to new")
	newer.expectData(newID, "to new")

	// When the newest leaves, the survivor takes new Dials again.
	newer.conn.Close()
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: newID})
	eventually(t, "newer unregistered", func() bool {
		return g.servers.newest(1) != nil && g.servers.newest(1).conn.RemoteAddr().String() == old.conn.LocalAddr().String()
	})
	open(t, c, old, 1)
}

func TestForeignCloseReachesNobody(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	victim, attacker := g.dialClient(t), g.dialClient(t)
	id, _ := open(t, victim, s, 1)
	attacker.send(proto.Command{Type: proto.CmdClose, ConnID: id})
	attacker.ping() // no reply to the ignored Close came before the Pong
	victim.sendData(id, "still here")
	s.expectData(id, "still here")
	s.ping()
	victim.ping()
	if n := g.Stats().ClosesIgnored; n != 1 {
		t.Fatalf("ClosesIgnored = %d, want 1", n)
	}
}

func TestForeignDataClosesSenderOnly(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	victim, attacker := g.dialClient(t), g.dialClient(t)
	id, _ := open(t, victim, s, 1)
	attacker.sendData(id, "injected")
	attacker.expectEOF()
	// The frame went nowhere: the server's next frame is the victim's.
	victim.sendData(id, "genuine")
	s.expectData(id, "genuine")
	eventually(t, "protocol error counted", func() bool { return g.Stats().Disconnected(ReasonProtocolError) == 1 })
}

func TestDataOnDeadConnIDAnsweredWithClose(t *testing.T) {
	g := startGW(t, Config{})
	c := g.dialClient(t)
	c.sendData(12345, "late")
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: 12345})
	c.ping()
}

// TestDataAfterCloseDropped sends data on a virtual connection (so both
// readers have it in their route caches), closes it, and sends again from
// both ends: the late frames reach nobody and each sender gets a Close.
func TestDataAfterCloseDropped(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	id, _ := open(t, c, s, 1)
	c.sendData(id, "up")
	s.expectData(id, "up")
	s.sendData(id, "down")
	c.expectData(id, "down")
	c.send(proto.Command{Type: proto.CmdClose, ConnID: id})
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	c.sendData(id, "late up")
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	s.sendData(id, "late down")
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	// Nothing else came: the next frames are the Pongs.
	c.ping()
	s.ping()
	if n := g.Stats().FramesDropped; n != 2 {
		t.Fatalf("FramesDropped = %d, want 2", n)
	}
}

func TestServerAuth(t *testing.T) {
	g := startGW(t, Config{ServerAuthTimeout: 200 * time.Millisecond})
	t.Run("wrong key", func(t *testing.T) {
		conn := dialRaw(t, g.serverAddr)
		if err := proto.AuthenticateToGateway(conn, "wrong", 1, waitFor); err != nil {
			t.Fatal(err)
		}
		newPeer(t, conn).expectEOF()
	})
	t.Run("silent", func(t *testing.T) {
		conn := dialRaw(t, g.serverAddr)
		start := time.Now()
		p := newPeer(t, conn)
		var challenge [proto.ChallengeSize]byte
		conn.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := conn.Read(challenge[:]); err != nil {
			t.Fatal(err)
		}
		p.expectEOF()
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("closed after %v, before the auth timeout", d)
		}
	})
	eventually(t, "auth failures counted", func() bool { return g.Stats().AuthFailures == 2 })
	if g.servers.newest(1) != nil {
		t.Fatal("a failed server was registered")
	}
}

func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRouteCacheSpreadsConnIDBlocks: ConnIDs come in blocks of connIDBlock
// per reader, so one virtual connection each from 100 clients has IDs
// connIDBlock apart; a server's route cache must still hold most of them
// (the low bits alone would use 4 of its 256 slots).
func TestRouteCacheSpreadsConnIDBlocks(t *testing.T) {
	bits := routeCacheBits[sideServer]
	used := map[uint32]bool{}
	for k := range uint32(100) {
		slot := routeSlot(k*connIDBlock+1, bits)
		if slot >= 1<<bits {
			t.Fatalf("slot %d outside a cache of %d", slot, 1<<bits)
		}
		used[slot] = true
	}
	if len(used) < 75 {
		t.Fatalf("100 connections in %d of %d slots, want at least 75", len(used), 1<<bits)
	}
	// Consecutive IDs (one client's) use distinct slots of a client's cache.
	cbits := routeCacheBits[sideClient]
	used = map[uint32]bool{}
	for id := range uint32(1 << cbits) {
		used[routeSlot(id+1, cbits)] = true
	}
	if len(used) < 1<<cbits-1 {
		t.Fatalf("%d consecutive IDs in %d of %d client slots", 1<<cbits, len(used), 1<<cbits)
	}
}
