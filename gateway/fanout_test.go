package gateway

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
)

// Each test here checks a rule of docs/protocol.md §7 (../shared/PROTOCOL.md
// §5, fan-out) over real loopback sockets through the gateway, with the
// exact bytes it sends.

func join(gid, id uint32) []byte {
	return proto.Fanout{Type: proto.CmdJoin, GroupID: gid, ConnID: id}.Append(nil)
}

func leave(gid, id uint32) []byte {
	return proto.Fanout{Type: proto.CmdLeave, GroupID: gid, ConnID: id}.Append(nil)
}

func publish(gid, except uint32, msg string) []byte {
	return proto.Fanout{Type: proto.CmdPublish, GroupID: gid, ConnID: except, Payload: []byte(msg)}.Append(nil)
}

func multicast(msg string, ids ...uint32) []byte {
	return proto.AppendMulticast(nil, []byte(msg), ids...)
}

// fanClients connects n raw clients to server s (ID sid), one virtual
// connection each, and returns them with their ConnIDs.
func fanClients(t testing.TB, g *testGW, s *peer, sid uint32, n int) ([]*peer, []uint32) {
	t.Helper()
	cs := make([]*peer, n)
	ids := make([]uint32, n)
	for i := range cs {
		cs[i] = g.dialClient(t)
		ids[i], _ = open(t, cs[i], s, sid)
	}
	return cs, ids
}

// quiet checks that c receives nothing more: the answer to its Ping is the
// next frame. Call it after the sending server's own Ping came back, so
// that what the server sent before was queued to c before c's Ping answer.
func quiet(cs ...*peer) {
	for _, c := range cs {
		c.t.Helper()
		c.ping()
	}
}

// TestFanoutGoldenVectors sends the byte examples of §5 and checks what the
// client of ConnID 7 receives for each, byte for byte.
func TestFanoutGoldenVectors(t *testing.T) {
	g := startGW(t, Config{})
	g.nextConnID.Store(6) // the client's reader takes ConnIDs 7, 8, 9, ...
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	for want := uint32(7); want <= 9; want++ {
		if id, _ := open(t, c, s, 1); id != want {
			t.Fatalf("ConnID %d, want %d", id, want)
		}
	}
	delivery7 := mustHex(t, "06000000"+"07000000"+"6869")
	s.write(mustHex(t, "11000000"+"00000000"+"06"+"0200"+"07000000"+"09000000"+"6869")) // Multicast "hi" to 7 and 9
	c.expect(delivery7)
	c.expect(mustHex(t, "06000000"+"09000000"+"6869"))
	s.write(mustHex(t, "0d000000"+"00000000"+"07"+"2a000000"+"07000000"))        // Join group 42, ConnID 7
	s.write(mustHex(t, "0f000000"+"00000000"+"09"+"2a000000"+"00000000"+"6869")) // Publish "hi" to 42
	c.expect(delivery7)
	s.ping()
	quiet(c) // 8 got nothing
	st := g.Stats().Fanout
	if st.Groups != 1 || st.Memberships != 1 || st.Deliveries != 3 || st.Skipped != 0 {
		t.Fatalf("fan-out stats %+v, want 1 group, 1 membership, 3 deliveries", st)
	}
}

// TestFanoutFromClientIsProtocolError: a client sending any of 6-9, well
// formed, is closed as for Accept, and nothing is delivered.
func TestFanoutFromClientIsProtocolError(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	victim := g.dialClient(t)
	id, _ := open(t, victim, s, 1)
	for i, f := range [][]byte{multicast("hi", id), join(42, id), leave(42, id), publish(0, 0, "hi")} {
		typ, _ := proto.FanoutType(f)
		t.Run(typ.String(), func(t *testing.T) {
			bad := g.dialClient(t)
			open(t, bad, s, 1)
			bad.write(f)
			bad.expectEOF()
			s.readCmd() // Close of bad's ConnID
			eventually(t, "protocol error counted", func() bool {
				return g.Stats().Disconnected(ReasonProtocolError) == uint64(i+1)
			})
		})
	}
	s.ping()
	quiet(victim)
	if st := g.Stats().Fanout; st.Deliveries != 0 || st.Groups != 0 {
		t.Fatalf("fan-out stats %+v after clients' fan-out commands, want nothing", st)
	}
}

// TestFanoutMalformedIsProtocolError: a server's fan-out command of the
// wrong size, Count 0, or Join/Leave with GroupID 0, closes that server
// only; its clients get Close.
func TestFanoutMalformedIsProtocolError(t *testing.T) {
	cases := []struct{ name, hex string }{
		{"Multicast Count 0", "07000000 00000000 06 0000"},
		{"Multicast too short for its Count", "0e000000 00000000 06 0200 07000000 090000"},
		{"Multicast without Count", "05000000 00000000 06"},
		{"Join one byte short", "0c000000 00000000 07 2a000000 070000"},
		{"Join one byte long", "0e000000 00000000 07 2a000000 07000000 00"},
		{"Leave one byte long", "0e000000 00000000 08 2a000000 07000000 00"},
		{"Publish too short", "0c000000 00000000 09 2a000000 000000"},
		{"Join GroupID 0", "0d000000 00000000 07 00000000 07000000"},
		{"Leave GroupID 0", "0d000000 00000000 08 00000000 00000000"},
	}
	g := startGW(t, Config{})
	honest := g.dialServer(t, 2)
	hc := g.dialClient(t)
	hid, _ := open(t, hc, honest, 2)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := g.dialServer(t, 1)
			c := g.dialClient(t)
			id, _ := open(t, c, s, 1)
			s.write(mustHex(t, strings.ReplaceAll(tc.hex, " ", "")))
			c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
			s.drainToEOF()
			eventually(t, "protocol error counted", func() bool {
				return g.Stats().Disconnected(ReasonProtocolError) == uint64(i+1)
			})
			honest.write(multicast("still here", hid))
			hc.expectData(hid, "still here")
		})
	}
}

// TestFanoutEmptyPayload: a payload may be empty; the delivery is a data
// frame of Length 4.
func TestFanoutEmptyPayload(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	cs, ids := fanClients(t, g, s, 1, 2)
	s.write(multicast("", ids[0]))
	cs[0].expect(proto.EncodeData(nil, ids[0], nil))
	s.write(join(5, ids[1]))
	s.write(publish(5, 0, ""))
	cs[1].expect(proto.EncodeData(nil, ids[1], nil))
}

// TestFanoutOrderWithUnicast: a delivery is queued exactly where the
// server's stream puts it: data sent before a Publish arrives before it, a
// Join read before a Publish includes the new member, a Leave read before
// it excludes it; all in one write from the server.
func TestFanoutOrderWithUnicast(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	cs, ids := fanClients(t, g, s, 1, 2)
	var b []byte
	b = proto.EncodeData(b, ids[0], []byte("before"))
	b = append(b, join(1, ids[0])...)
	b = append(b, join(1, ids[1])...)
	b = append(b, publish(1, 0, "pub1")...)
	b = proto.EncodeData(b, ids[1], []byte("between"))
	b = append(b, leave(1, ids[1])...)
	b = append(b, publish(1, 0, "pub2")...)
	b = append(b, multicast("mc", ids[1], ids[0])...)
	b = proto.EncodeData(b, ids[0], []byte("after"))
	s.write(b)
	cs[0].expectData(ids[0], "before")
	cs[0].expectData(ids[0], "pub1")
	cs[0].expectData(ids[0], "pub2")
	cs[0].expectData(ids[0], "mc")
	cs[0].expectData(ids[0], "after")
	cs[1].expectData(ids[1], "pub1")
	cs[1].expectData(ids[1], "between")
	cs[1].expectData(ids[1], "mc")
	s.ping()
	quiet(cs...)
}

// TestFanoutSkipsWhatIsNotTheSenders: only live virtual connections of the
// sending link take part; others are skipped without a reply and counted.
// A ConnID listed twice gets two copies. GroupIDs are each link's own,
// also between two links of one server ID.
func TestFanoutSkipsWhatIsNotTheSenders(t *testing.T) {
	g := startGW(t, Config{})
	a := g.dialServer(t, 1)
	other := g.dialServer(t, 2)
	ac, aid := fanClients(t, g, a, 1, 1)
	oc, oid := fanClients(t, g, other, 2, 1)

	// Not live (never was), another server's, and a ConnID twice.
	a.write(multicast("x", 0xdead, oid[0], aid[0], aid[0]))
	ac[0].expectData(aid[0], "x")
	ac[0].expectData(aid[0], "x")
	a.ping() // no reply of any kind came before the Ping answer
	quiet(ac[0], oc[0])
	if st := g.Stats().Fanout; st.Skipped != 2 || st.Deliveries != 2 {
		t.Fatalf("stats %+v, want 2 skipped, 2 deliveries", st)
	}
	// Join of another link's ConnID is skipped: other's Publish to the
	// group reaches nobody of a's.
	other.write(join(42, aid[0]))
	other.write(publish(42, 0, "foreign"))
	a.write(join(42, aid[0]))
	other.ping()
	a.ping()
	quiet(ac[0], oc[0])
	if st := g.Stats().Fanout; st.Skipped != 3 || st.Groups != 1 || st.Memberships != 1 {
		t.Fatalf("stats %+v, want 3 skipped, 1 group (a's), 1 membership", st)
	}

	// A second link with server ID 1 has groups of its own: its Publish to
	// a's group 42 delivers nothing, and a's still reaches a's member.
	a2 := g.dialServer(t, 1) // the newest of ID 1 now
	c2, id2 := fanClients(t, g, a2, 1, 1)
	a2.write(publish(42, 0, "a2's 42"))
	a2.write(join(42, id2[0]))
	a.write(publish(42, 0, "a's 42"))
	ac[0].expectData(aid[0], "a's 42")
	a2.write(publish(42, 0, "a2's 42 again"))
	c2[0].expectData(id2[0], "a2's 42 again")
	a.ping()
	a2.ping()
	quiet(ac[0], c2[0], oc[0])
	var groups []int64
	for _, si := range g.Servers() {
		groups = append(groups, si.Groups)
	}
	if fmt.Sprint(groups) != "[1 1 0]" {
		t.Fatalf("groups per server link %v, want [1 1 0] (a, a2, other)", groups)
	}
}

// TestFanoutGroupRules: joining twice is a no-op, Leave takes one member
// out, Leave with ConnID 0 ends the group, Publish to an unknown or empty
// group delivers nothing, and the exception is honoured.
func TestFanoutGroupRules(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	cs, ids := fanClients(t, g, s, 1, 3)
	for _, id := range ids {
		s.write(join(7, id))
	}
	s.write(join(7, ids[0])) // twice: a no-op
	s.write(publish(7, ids[1], "all but 1"))
	cs[0].expectData(ids[0], "all but 1")
	cs[2].expectData(ids[2], "all but 1")
	s.write(leave(7, ids[2]))
	s.write(leave(7, ids[2])) // not a member any more: nothing
	s.write(publish(7, 0, "0 and 1"))
	cs[0].expectData(ids[0], "0 and 1")
	cs[1].expectData(ids[1], "0 and 1")
	if st := g.Stats().Fanout; st.Groups != 1 || st.Memberships != 2 {
		t.Fatalf("stats %+v, want 1 group of 2", st)
	}
	s.write(leave(7, 0)) // the group ends
	s.write(publish(7, 0, "nobody"))
	s.write(publish(8, 0, "unknown"))
	s.ping()
	quiet(cs...)
	if st := g.Stats().Fanout; st.Groups != 0 || st.Memberships != 0 {
		t.Fatalf("stats %+v, want no group", st)
	}
}

// TestFanoutBroadcast: Publish to GroupID 0 reaches every live virtual
// connection of the sending link (but the exception), whoever dialed it,
// and none of another link's.
func TestFanoutBroadcast(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	other := g.dialServer(t, 2)
	cs, ids := fanClients(t, g, s, 1, 3)
	oc, _ := fanClients(t, g, other, 2, 1)
	// A virtual connection the server dialed to a client takes part too.
	cid, _ := open(t, cs[0], s, 1)
	s.send(proto.Command{Type: proto.CmdDial, RemoteID: clientIDOf(t, g, cs[1])})
	acc := s.readCmd()
	cs[1].expectCmd(proto.Command{Type: proto.CmdConnect, ConnID: acc.ConnID, RemoteID: 1})
	s.write(publish(0, ids[2], "everyone"))
	// Order is kept per virtual connection, not across a client's.
	expectSet := func(c *peer, frames ...[]byte) {
		t.Helper()
		want := map[string]bool{}
		for _, f := range frames {
			want[string(f)] = true
		}
		for range frames {
			if f := c.read(); !want[string(f)] {
				t.Fatalf("got frame %x, want one of %x", f, frames)
			} else {
				delete(want, string(f))
			}
		}
	}
	expectSet(cs[0], proto.EncodeData(nil, ids[0], []byte("everyone")), proto.EncodeData(nil, cid, []byte("everyone")))
	expectSet(cs[1], proto.EncodeData(nil, ids[1], []byte("everyone")), proto.EncodeData(nil, acc.ConnID, []byte("everyone")))
	s.ping()
	quiet(cs[2], oc[0])
	// A closed one is gone.
	cs[0].send(proto.Command{Type: proto.CmdClose, ConnID: cid})
	cs[0].expectCmd(proto.Command{Type: proto.CmdClose, ConnID: cid})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: cid})
	s.write(publish(0, 0, "again"))
	cs[0].expectData(ids[0], "again")
	s.ping()
	quiet(cs[0])
}

// clientIDOf finds c's gateway-assigned client ID.
func clientIDOf(t testing.TB, g *testGW, c *peer) uint32 {
	t.Helper()
	var id uint32
	g.clients.each(func(l *link) {
		if l.conn.RemoteAddr().String() == c.conn.LocalAddr().String() {
			id = l.id
		}
	})
	if id == 0 {
		t.Fatal("client not found")
	}
	return id
}

// TestFanoutCloseLeavesGroups: a virtual connection that closes, from
// either end or with its client, leaves every group; a server link's
// groups end with it.
func TestFanoutCloseLeavesGroups(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	cs, ids := fanClients(t, g, s, 1, 3)
	for gid := uint32(1); gid <= 3; gid++ {
		for _, id := range ids {
			s.write(join(gid, id))
		}
	}
	s.ping()
	memberships := func(want int64) {
		t.Helper()
		if st := g.Stats().Fanout; st.Memberships != want {
			t.Fatalf("%d memberships, want %d", st.Memberships, want)
		}
	}
	memberships(9)
	cs[0].send(proto.Command{Type: proto.CmdClose, ConnID: ids[0]}) // by the client
	cs[0].expectCmd(proto.Command{Type: proto.CmdClose, ConnID: ids[0]})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: ids[0]})
	memberships(6)
	s.send(proto.Command{Type: proto.CmdClose, ConnID: ids[1]}) // by the server
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: ids[1]})
	cs[1].expectCmd(proto.Command{Type: proto.CmdClose, ConnID: ids[1]})
	memberships(3)
	cs[2].conn.Close() // the client goes
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: ids[2]})
	memberships(0)
	if st := g.Stats().Fanout; st.Groups != 0 {
		t.Fatalf("%d groups, want 0", st.Groups)
	}
	// A server link's groups end with it.
	c, id := fanClients(t, g, s, 1, 1)
	s.write(join(1, id[0]))
	s.ping()
	memberships(1)
	s.conn.Close()
	c[0].expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id[0]})
	eventually(t, "groups gone", func() bool { st := g.Stats().Fanout; return st.Groups == 0 && st.Memberships == 0 })
}

// TestFanoutBounds: a Join past ServerMaxGroups or ServerMaxMemberships is
// ignored and counted; the link goes on.
func TestFanoutBounds(t *testing.T) {
	g := startGW(t, Config{ServerMaxGroups: 2, ServerMaxMemberships: 3})
	s := g.dialServer(t, 1)
	cs, ids := fanClients(t, g, s, 1, 2)
	s.write(join(1, ids[0]))
	s.write(join(2, ids[0]))
	s.write(join(3, ids[0])) // a third group: ignored
	s.write(join(1, ids[1]))
	s.write(join(2, ids[1])) // a fourth membership: ignored
	s.write(publish(3, 0, "3"))
	s.write(publish(2, 0, "2"))
	s.write(publish(1, 0, "1"))
	cs[0].expectData(ids[0], "2")
	cs[0].expectData(ids[0], "1")
	cs[1].expectData(ids[1], "1")
	s.ping()
	quiet(cs...)
	if st := g.Stats().Fanout; st.JoinsRefused != 2 || st.Groups != 2 || st.Memberships != 3 {
		t.Fatalf("stats %+v, want 2 joins refused, 2 groups, 3 memberships", st)
	}
}

// TestFanoutLargePayloadShared: payloads from fanCopyMax on are shared by
// the members' queues (header + payload, two iovecs); what each member
// receives is byte for byte a data frame, mixed with small ones, and the
// payload buffer goes back to the pool once every member has written it.
func TestFanoutLargePayloadShared(t *testing.T) {
	pool := newCountingPool(slab.NewSyncPool(64, 64<<10, 2))
	g := startGW(t, Config{MemPool: pool})
	s := g.dialServer(t, 1)
	cs, ids := fanClients(t, g, s, 1, 3)
	for _, id := range ids {
		s.write(join(1, id))
	}
	s.ping()
	sizes := []int{fanCopyMax, fanCopyMax - 1, 4 << 10, 1, 60 << 10, 200 << 10, 0, 3000}
	var b []byte
	var want [][]byte
	for i, n := range sizes {
		msg := bytes.Repeat([]byte{byte('a' + i)}, n)
		switch i % 3 {
		case 0:
			b = append(b, proto.Fanout{Type: proto.CmdPublish, GroupID: 1, Payload: msg}.Append(nil)...)
		case 1:
			b = append(b, proto.AppendMulticast(nil, msg, ids...)...)
		default:
			b = append(b, proto.Fanout{Type: proto.CmdPublish, GroupID: 1, Payload: msg}.Append(nil)...)
			b = proto.EncodeData(b, ids[1], msg[:min(len(msg), 10)])
		}
		want = append(want, msg)
	}
	s.write(b)
	for j, c := range cs {
		for i, msg := range want {
			c.expectData(ids[j], string(msg))
			if i%3 == 2 && j == 1 {
				c.expectData(ids[j], string(msg[:min(len(msg), 10)]))
			}
		}
	}
	s.ping()
	quiet(cs...)
	pool.buffersBack(t) // and none freed twice
}

// TestFanoutSlowMemberDropped: a member that does not read is dropped as a
// slow consumer, exactly as for unicast frames, while the other members
// get every delivery in order and the server is never paused.
func TestFanoutSlowMemberDropped(t *testing.T) {
	g := startGW(t, Config{ClientSendQueueBytes: 256 << 10})
	s := g.dialServer(t, 1)
	cs, ids := fanClients(t, g, s, 1, 3)
	if tc, ok := cs[0].conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10) // the slow member: never reads
	}
	for _, id := range ids {
		s.write(join(1, id))
	}
	s.ping()
	// Publish numbered 4 KiB messages until the slow member is dropped
	// (the kernel's socket buffers take a few MB first), then an end mark;
	// never more than window messages ahead of the reading members, which
	// a loaded box may let fall behind.
	const window = 16
	var mu sync.Mutex
	progress := sync.NewCond(&mu)
	read := [2]int{}
	stop := make(chan struct{})
	wrote := make(chan int, 1)
	go func() {
		pad := strings.Repeat("x", 4<<10)
		i := 0
		for {
			select {
			case <-stop:
				s.conn.Write(publish(1, 0, "end"))
				wrote <- i
				return
			default:
			}
			mu.Lock()
			for min(read[0], read[1]) < i-window {
				progress.Wait()
			}
			mu.Unlock()
			s.conn.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := s.conn.Write(publish(1, 0, fmt.Sprintf("%06d%s", i, pad))); err != nil {
				wrote <- -1
				return
			}
			i++
		}
	}()
	errs := make(chan error, 2)
	for k, c := range cs[1:] {
		go func() {
			for i := 0; ; i++ {
				c.conn.SetReadDeadline(time.Now().Add(waitFor))
				f, err := c.fr.ReadFrame()
				if err != nil {
					errs <- err
					mu.Lock()
					read[k] = 1 << 30 // do not hold the publisher
					progress.Broadcast()
					mu.Unlock()
					return
				}
				mu.Lock()
				read[k] = i + 1
				progress.Broadcast()
				mu.Unlock()
				if got := string(f[proto.HeaderSize:min(len(f), proto.HeaderSize+6)]); got == "end" {
					errs <- nil
					return
				} else if got != fmt.Sprintf("%06d", i) {
					errs <- fmt.Errorf("member got message %s, want %06d", got, i)
					return
				}
			}
		}()
	}
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: ids[0]})
	close(stop)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := <-wrote; n <= 0 {
		t.Fatalf("the server wrote %d messages", n)
	}
	if n := g.Stats().Disconnected(ReasonSlowConsumer); n != 1 {
		t.Fatalf("%d slow consumers, want 1", n)
	}
	eventually(t, "slow member left the group", func() bool { return g.Stats().Fanout.Memberships == 2 })
}

// TestFanoutThousandPublishes: 1,000 Publishes to a group of 1,000
// members, with unicast frames to some members between them, arrive
// complete and in order at every member.
func TestFanoutThousandPublishes(t *testing.T) {
	members, publishes := 1000, 1000
	if testing.Short() {
		members, publishes = 200, 200
	}
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	cs, ids := fanClients(t, g, s, 1, members)
	var b []byte
	for _, id := range ids {
		b = append(b, join(3, id)...)
	}
	s.write(b)
	s.ping()
	unicastTo := func(i, j int) bool { return (i+j)%50 == 0 }
	// The server writes in chunks of 10 messages; members read at once.
	errs := make(chan error, members)
	for j, c := range cs {
		go func() {
			c.conn.SetReadDeadline(time.Now().Add(4 * waitFor))
			for i := range publishes {
				want := []string{fmt.Sprintf("P%d", i)}
				if unicastTo(i, j) {
					// Before the Publish for odd i, after it for even.
					u := fmt.Sprintf("U%d", i)
					if i%2 == 1 {
						want = []string{u, want[0]}
					} else {
						want = append(want, u)
					}
				}
				for _, w := range want {
					f, err := c.fr.ReadFrame()
					if err != nil {
						errs <- fmt.Errorf("member %d: %w", j, err)
						return
					}
					if proto.Header(f).ConnID() != ids[j] || string(f[proto.HeaderSize:]) != w {
						errs <- fmt.Errorf("member %d: got %x, want %q on ConnID %d", j, f, w, ids[j])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	b = b[:0]
	for i := range publishes {
		pub := publish(3, 0, fmt.Sprintf("P%d", i))
		if i%2 == 0 {
			b = append(b, pub...)
		}
		for j, id := range ids {
			if unicastTo(i, j) {
				b = proto.EncodeData(b, id, []byte(fmt.Sprintf("U%d", i)))
			}
		}
		if i%2 == 1 {
			b = append(b, pub...)
		}
		if i%10 == 9 {
			s.write(b)
			b = b[:0]
		}
	}
	s.write(b)
	for range members {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := g.Stats()
	if want := uint64(members * publishes); st.Fanout.Deliveries != want || st.Disconnects != [numReasons]uint64{} {
		t.Fatalf("%d deliveries (want %d), disconnects %v", st.Fanout.Deliveries, want, st.Disconnects)
	}
}
