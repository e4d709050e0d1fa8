package gateway

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
)

// The differential test of fan-out: a program of random Join, Leave,
// Publish (GroupID 0 included), Multicast, unicast data and Close, from
// three server links (two of them with server ID 1) and from clients, runs
// through the real gateway over loopback; a plain model (fanModel, maps and
// slices, no sharing, no packing) says what each virtual connection's
// client must receive, in order, and what each server must receive. Every
// client's frames are checked byte for byte per virtual connection (order
// across one client's virtual connections is not defined: several server
// readers feed it), every server's whole stream in order (only its own
// reader and the synced client Closes feed it), the gateway's fan-out
// counters against the model's, and every pool buffer must come back,
// none freed twice.
//
// A program is a byte string (FuzzFanout mutates it); TestFanoutDifferential
// runs random ones.

const (
	diffServers = 3 // links: 0 and 1 have server ID 1, 2 has ID 2
	diffClients = 4
	diffVconns  = 3  // per client
	diffGroups  = 4  // GroupIDs 1..4 (and 0: broadcast)
	diffMaxG    = 3  // ServerMaxGroups
	diffMaxM    = 12 // ServerMaxMemberships
)

// diffVC is one virtual connection of the setup.
type diffVC struct {
	id     uint32
	client int // index of its client
	server int // index of its server link
}

// fanModel is the reference: what the gateway must do, written plainly.
type fanModel struct {
	vcs     []diffVC
	live    []bool
	groups  [diffServers]map[uint32][]int // GroupID -> member vconn indexes, in join order
	recv    [][][]byte                    // per vconn: the payloads its client must receive
	srvRecv [diffServers][][]byte         // per server: the frames it must receive
	stats   FanoutStats
	dropped uint64 // unicast data frames on ConnIDs not live
}

func newFanModel(vcs []diffVC) *fanModel {
	m := &fanModel{vcs: vcs, live: make([]bool, len(vcs)), recv: make([][][]byte, len(vcs))}
	for i := range m.live {
		m.live[i] = true
	}
	for i := range m.groups {
		m.groups[i] = map[uint32][]int{}
	}
	return m
}

// own reports whether ConnID id is a live virtual connection of server s,
// and its index.
func (m *fanModel) own(s int, id uint32) (int, bool) {
	for i, vc := range m.vcs {
		if vc.id == id && vc.server == s && m.live[i] {
			return i, true
		}
	}
	return 0, false
}

func (m *fanModel) deliver(i int, payload []byte) {
	m.recv[i] = append(m.recv[i], payload)
	m.stats.Deliveries++
}

func (m *fanModel) multicast(s int, ids []uint32, payload []byte) {
	for _, id := range ids {
		if i, ok := m.own(s, id); ok {
			m.deliver(i, payload)
		} else {
			m.stats.Skipped++
		}
	}
}

func (m *fanModel) publish(s int, gid, except uint32, payload []byte) {
	if gid == 0 {
		for i, vc := range m.vcs {
			if vc.server == s && m.live[i] && vc.id != except {
				m.deliver(i, payload)
			}
		}
		return
	}
	for _, i := range m.groups[s][gid] {
		if m.vcs[i].id != except {
			m.deliver(i, payload)
		}
	}
}

func (m *fanModel) join(s int, gid, id uint32) {
	i, ok := m.own(s, id)
	if !ok {
		m.stats.Skipped++
		return
	}
	g := m.groups[s]
	if slices.Contains(g[gid], i) {
		return
	}
	members := 0
	for _, ms := range g {
		members += len(ms)
	}
	if _, exists := g[gid]; (!exists && len(g) >= diffMaxG) || members >= diffMaxM {
		m.stats.JoinsRefused++
		return
	}
	g[gid] = append(g[gid], i)
}

func (m *fanModel) leave(s int, gid, id uint32) {
	g := m.groups[s]
	if id == 0 {
		delete(g, gid)
		return
	}
	i, ok := m.own(s, id)
	if !ok {
		m.stats.Skipped++
		return
	}
	if ms := slices.DeleteFunc(g[gid], func(x int) bool { return x == i }); len(ms) > 0 {
		g[gid] = ms
	} else {
		delete(g, gid)
	}
}

// closeVC closes vconn i: it leaves its groups.
func (m *fanModel) closeVC(i int) {
	m.live[i] = false
	g := m.groups[m.vcs[i].server]
	for gid, ms := range g {
		if ms = slices.DeleteFunc(ms, func(x int) bool { return x == i }); len(ms) > 0 {
			g[gid] = ms
		} else {
			delete(g, gid)
		}
	}
}

func (m *fanModel) finalStats() FanoutStats {
	st := m.stats
	for _, g := range m.groups {
		st.Groups += int64(len(g))
		for _, ms := range g {
			st.Memberships += int64(len(ms))
		}
	}
	return st
}

// recorder reads every frame of one peer's connection on a goroutine of
// its own, so that nothing it is sent waits, and counts Ping answers.
type recorder struct {
	conn   net.Conn
	mu     sync.Mutex
	cond   sync.Cond
	frames [][]byte
	pings  int
	err    error
	done   chan struct{}
}

func newRecorder(t testing.TB, conn net.Conn) *recorder {
	r := &recorder{conn: conn, done: make(chan struct{})}
	r.cond.L = &r.mu
	go func() {
		defer close(r.done)
		fr := proto.NewFrameReader(conn, nil, 0, 1<<24)
		for {
			f, err := fr.ReadFrame()
			r.mu.Lock()
			if err != nil {
				r.err = err
				r.cond.Broadcast()
				r.mu.Unlock()
				return
			}
			if c, cerr := proto.DecodeCommand(f); cerr == nil && c.Type == proto.CmdPing {
				r.pings++
			} else {
				r.frames = append(r.frames, f)
			}
			r.cond.Broadcast()
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-r.done })
	return r
}

// waitFor waits until cond (called under r.mu) holds, or the connection
// ends or waitFor passes.
func (r *recorder) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	timer := time.AfterFunc(waitFor, func() {
		r.mu.Lock()
		r.err = fmt.Errorf("timed out waiting for %s", what)
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for !cond() {
		if r.err != nil {
			t.Fatalf("waiting for %s: %v", what, r.err)
		}
		r.cond.Wait()
	}
}

// sync writes pending, then a Ping, and waits for the Ping's answer: the
// gateway has then handled every frame written before it.
func (r *recorder) sync(t testing.TB, pending []byte) {
	t.Helper()
	r.mu.Lock()
	want := r.pings + 1
	r.mu.Unlock()
	r.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := r.conn.Write(append(pending, proto.Command{Type: proto.CmdPing}.Encode(nil)...)); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "Ping answer", func() bool { return r.pings >= want })
}

// diffRun is one program's run: the gateway, its peers and the model.
type diffRun struct {
	t         *testing.T
	g         *testGW
	pool      *countingPool
	servers   [diffServers]*recorder
	clients   [diffClients]*recorder
	pending   [diffServers][]byte // server frames not written yet
	m         *fanModel
	seq       int // numbers the payloads
	clientIDs [diffClients]uint32
}

func newDiffRun(t *testing.T) *diffRun {
	pool := newCountingPool(slab.NewSyncPool(64, 64<<10, 2))
	g := startGW(t, Config{MemPool: pool, ServerMaxGroups: diffMaxG, ServerMaxMemberships: diffMaxM})
	r := &diffRun{t: t, g: g, pool: pool}
	var peers [diffServers]*peer
	ids := [diffServers]uint32{1, 1, 2}
	var clients [diffClients]*peer
	for i := range clients {
		clients[i] = g.dialClient(t)
	}
	var vcs []diffVC
	// Server link 0 registers first and takes the Dials of ID 1 until
	// link 1 registers.
	for s := range peers {
		peers[s] = g.dialServer(t, ids[s])
		for c := range clients {
			for range 1 + (c+s)%2 {
				id, clientID := open(t, clients[c], peers[s], ids[s])
				vcs = append(vcs, diffVC{id: id, client: c, server: s})
				r.clientIDs[c] = clientID
			}
		}
	}
	r.m = newFanModel(vcs)
	for s, p := range peers {
		r.servers[s] = newRecorder(t, p.conn)
	}
	for c, p := range clients {
		r.clients[c] = newRecorder(t, p.conn)
	}
	return r
}

// prog reads a program's bytes, 0 once they run out.
type prog struct {
	b []byte
	i int
}

func (p *prog) next() byte {
	if p.i >= len(p.b) {
		return 0
	}
	p.i++
	return p.b[p.i-1]
}

func (p *prog) more() bool { return p.i < len(p.b) }

// connID picks a ConnID for server s: mostly one of the setup's (its own,
// another link's, live or closed), sometimes one that never was, or 0.
func (r *diffRun) connID(p *prog, s int) uint32 {
	switch b := p.next(); {
	case b < 150:
		var own []uint32
		for _, vc := range r.m.vcs {
			if vc.server == s {
				own = append(own, vc.id)
			}
		}
		return own[int(b)%len(own)]
	case b < 200:
		return r.m.vcs[int(b)%len(r.m.vcs)].id
	case b < 250:
		return 1<<30 + uint32(b)
	default:
		return 0
	}
}

// payload makes the next payload: numbered, of a size that crosses
// fanCopyMax now and then.
func (r *diffRun) payload(p *prog) []byte {
	r.seq++
	var n int
	switch b := p.next(); b % 8 {
	case 0:
		n = 0
	case 1, 2, 3:
		n = int(b) % 64
	case 4, 5:
		n = fanCopyMax - 2 + int(b)%5
	default:
		n = 1000 + int(b)*37
	}
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(r.seq*7 + i)
	}
	if n >= 4 {
		binary.LittleEndian.PutUint32(out, uint32(r.seq))
	}
	return out
}

// step runs one operation of the program.
func (r *diffRun) step(p *prog) {
	op, s := p.next(), int(p.next())%diffServers
	m := r.m
	// Weights: Publish 6, Join 5, Leave 2, Multicast 4, unicast 3, Close
	// by the server 1, by the client 1, a server's Dial 1, a run of
	// Publishes to one group 2.
	switch []int{0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 4, 4, 5, 5, 5, 5, 7, 7, 7, 8, 9, 10, 11, 11}[op%25] {
	case 0: // Publish
		gid := uint32(p.next()) % (diffGroups + 1)
		except := uint32(0)
		if p.next()%3 == 0 {
			except = r.connID(p, s)
		}
		pl := r.payload(p)
		r.pending[s] = proto.Fanout{Type: proto.CmdPublish, GroupID: gid, ConnID: except, Payload: pl}.Append(r.pending[s])
		m.publish(s, gid, except, pl)
	case 2: // Join
		gid, id := 1+uint32(p.next())%diffGroups, r.connID(p, s)
		r.pending[s] = proto.Fanout{Type: proto.CmdJoin, GroupID: gid, ConnID: id}.Append(r.pending[s])
		m.join(s, gid, id)
	case 4: // Leave (ConnID 0: the group ends)
		gid, id := 1+uint32(p.next())%diffGroups, r.connID(p, s)
		r.pending[s] = proto.Fanout{Type: proto.CmdLeave, GroupID: gid, ConnID: id}.Append(r.pending[s])
		m.leave(s, gid, id)
	case 5: // Multicast
		n := 1 + int(p.next())%6
		ids := make([]uint32, n)
		for i := range ids {
			ids[i] = r.connID(p, s)
		}
		pl := r.payload(p)
		r.pending[s] = proto.AppendMulticast(r.pending[s], pl, ids...)
		m.multicast(s, ids, pl)
	case 7: // unicast data from the server on one of its own ConnIDs, live or not
		vi := int(p.next()) % len(m.vcs)
		vc := m.vcs[vi]
		pl := r.payload(p)
		r.pending[vc.server] = proto.EncodeData(r.pending[vc.server], vc.id, pl)
		if m.live[vi] {
			m.recv[vi] = append(m.recv[vi], pl)
		} else {
			m.dropped++
			m.srvRecv[vc.server] = append(m.srvRecv[vc.server], proto.Command{Type: proto.CmdClose, ConnID: vc.id}.Encode(nil))
		}
	case 8: // Close from the server (of its own, live or not)
		vi := int(p.next()) % len(m.vcs)
		vc := m.vcs[vi]
		r.pending[vc.server] = proto.Command{Type: proto.CmdClose, ConnID: vc.id}.Encode(r.pending[vc.server])
		if m.live[vi] {
			m.closeVC(vi)
			m.srvRecv[vc.server] = append(m.srvRecv[vc.server], proto.Command{Type: proto.CmdClose, ConnID: vc.id}.Encode(nil))
		}
	case 9: // Close from the client, once every server's frames so far are handled
		vi := int(p.next()) % len(m.vcs)
		vc := m.vcs[vi]
		if !m.live[vi] {
			return
		}
		r.syncServers()
		c := r.clients[vc.client]
		c.conn.Write(proto.Command{Type: proto.CmdClose, ConnID: vc.id}.Encode(nil))
		closeFrame := proto.Command{Type: proto.CmdClose, ConnID: vc.id}.Encode(nil)
		srv := r.servers[vc.server]
		want := len(m.srvRecv[vc.server]) + 1
		srv.wait(r.t, "Close at the server", func() bool { return len(srv.frames) >= want })
		m.closeVC(vi)
		m.srvRecv[vc.server] = append(m.srvRecv[vc.server], closeFrame)
	case 11: // Publishes in a row to one group, some with an exception (the gateway stages them)
		gid := uint32(p.next()) % (diffGroups + 1)
		for range 2 + int(p.next())%8 {
			except := uint32(0)
			if p.next()%4 == 0 {
				except = r.connID(p, s)
			}
			pl := r.payload(p)
			r.pending[s] = proto.Fanout{Type: proto.CmdPublish, GroupID: gid, ConnID: except, Payload: pl}.Append(r.pending[s])
			m.publish(s, gid, except, pl)
		}
	case 10: // server s dials a client: a new virtual connection
		c := int(p.next()) % diffClients
		srv := r.servers[s]
		srv.sync(r.t, r.pending[s])
		r.pending[s] = nil
		want := len(m.srvRecv[s]) + 1
		srv.conn.Write(proto.Command{Type: proto.CmdDial, RemoteID: r.clientIDs[c]}.Encode(nil))
		srv.wait(r.t, "Accept", func() bool { return len(srv.frames) >= want })
		srv.mu.Lock()
		f := srv.frames[want-1]
		srv.mu.Unlock()
		a, err := proto.DecodeCommand(f)
		if err != nil || a.Type != proto.CmdAccept {
			r.t.Fatalf("server link %d got %x for its Dial, want Accept", s, f)
		}
		m.srvRecv[s] = append(m.srvRecv[s], f)
		m.vcs = append(m.vcs, diffVC{id: a.ConnID, client: c, server: s})
		m.live = append(m.live, true)
		m.recv = append(m.recv, nil)
	}
	if p.next()%4 == 0 {
		r.flush(s)
	}
}

// flush writes server s's pending frames, in random pieces.
func (r *diffRun) flush(s int) {
	b := r.pending[s]
	r.pending[s] = nil
	conn := r.servers[s].conn
	conn.SetWriteDeadline(time.Now().Add(waitFor))
	for len(b) > 0 {
		n := min(len(b), 1+int(b[0])*13)
		if _, err := conn.Write(b[:n]); err != nil {
			r.t.Fatal(err)
		}
		b = b[n:]
	}
}

func (r *diffRun) syncServers() {
	for s, srv := range r.servers {
		srv.sync(r.t, r.pending[s])
		r.pending[s] = nil
	}
}

// check syncs everyone and compares what each peer received with the model.
func (r *diffRun) check() {
	t := r.t
	r.syncServers()
	for _, c := range r.clients {
		c.sync(t, nil)
	}
	m := r.m
	for s, srv := range r.servers {
		srv.mu.Lock()
		got := srv.frames
		srv.mu.Unlock()
		if len(got) != len(m.srvRecv[s]) {
			t.Fatalf("server link %d received %d frames, want %d:\n got %x\nwant %x", s, len(got), len(m.srvRecv[s]), got, m.srvRecv[s])
		}
		for i := range got {
			if !bytes.Equal(got[i], m.srvRecv[s][i]) {
				t.Fatalf("server link %d frame %d = %x, want %x", s, i, got[i], m.srvRecv[s][i])
			}
		}
	}
	for ci, c := range r.clients {
		c.mu.Lock()
		frames := c.frames
		c.mu.Unlock()
		got := map[uint32][][]byte{}
		closed := map[uint32]bool{}
		for _, f := range frames {
			id := proto.Header(f).ConnID()
			if id == 0 {
				cmd, err := proto.DecodeCommand(f)
				switch {
				case err == nil && cmd.Type == proto.CmdClose:
					closed[cmd.ConnID] = true
				case err == nil && cmd.Type == proto.CmdConnect && len(got[cmd.ConnID]) == 0:
				default:
					t.Fatalf("client %d got %x", ci, f)
				}
				continue
			}
			if closed[id] {
				t.Fatalf("client %d got data on ConnID %d after its Close", ci, id)
			}
			got[id] = append(got[id], f[proto.HeaderSize:])
		}
		for vi, vc := range m.vcs {
			if vc.client != ci {
				continue
			}
			want := m.recv[vi]
			if len(got[vc.id]) != len(want) {
				t.Fatalf("client %d ConnID %d got %d messages, want %d", ci, vc.id, len(got[vc.id]), len(want))
			}
			for k := range want {
				if !bytes.Equal(got[vc.id][k], want[k]) {
					t.Fatalf("client %d ConnID %d message %d: got %d bytes %x..., want %d bytes %x...", ci, vc.id, k,
						len(got[vc.id][k]), got[vc.id][k][:min(16, len(got[vc.id][k]))], len(want[k]), want[k][:min(16, len(want[k]))])
				}
			}
			if closed[vc.id] != !m.live[vi] {
				t.Fatalf("client %d ConnID %d closed %v, want %v", ci, vc.id, closed[vc.id], !m.live[vi])
			}
		}
	}
	if got, want := r.g.Stats().Fanout, m.finalStats(); got != want {
		t.Fatalf("fan-out stats %+v, model %+v", got, want)
	}
	live := 0
	for _, l := range m.live {
		if l {
			live++
		}
	}
	t.Logf("model: %+v, %d frames dropped, %d of %d virtual connections live", m.finalStats(), m.dropped, live, len(m.vcs))
	if n := r.g.Stats().FramesDropped; n != m.dropped {
		t.Fatalf("%d frames dropped, model %d", n, m.dropped)
	}
	r.pool.buffersBack(t)
}

// runDiff runs program b.
func runDiff(t *testing.T, b []byte) {
	r := newDiffRun(t)
	p := &prog{b: b}
	for p.more() {
		r.step(p)
	}
	r.check()
}

func FuzzFanout(f *testing.F) {
	f.Add([]byte{2, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 1})
	f.Add([]byte{2, 0, 1, 0, 3, 0, 2, 0, 1, 1, 4, 0, 9, 0, 0, 0, 0, 0, 0, 3, 1, 0, 6, 0, 1, 7})
	f.Add([]byte{5, 1, 3, 1, 2, 3, 7, 7, 5, 8, 1, 1, 2, 1, 2, 9, 1, 5, 0, 0, 1, 2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4096 {
			return
		}
		runDiff(t, b)
	})
}

// TestFanoutDifferential runs random programs (fewer and shorter under
// -race or -short).
func TestFanoutDifferential(t *testing.T) {
	runs, ops := 20, 300
	if raceEnabled || testing.Short() {
		runs, ops = 6, 150
	}
	rng := rand.New(rand.NewPCG(18, uint64(time.Now().UnixNano())))
	for i := range runs {
		b := make([]byte, ops*8)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("program: %x", b)
				}
			}()
			runDiff(t, b)
		})
	}
}
