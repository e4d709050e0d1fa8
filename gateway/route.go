package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/fastway-go/fastway/proto"
)

// vconn is one virtual connection: a ConnID and the two links it joins.
// The fields but closed never change after the vconn is published in the
// route table.
type vconn struct {
	id       uint32
	client   *link
	server   *link
	byClient bool        // the client dialed it (counts toward ClientMaxConn)
	closed   atomic.Bool // set when it leaves the route table
	// ready is set once the client end has been told of the vconn
	// (Accept or Connect queued to it): fan-out delivers only then, so a
	// client never gets data before it knows the ConnID (groups.go).
	ready atomic.Bool
	// grouped is set when the vconn first joins a group; groups lists its
	// memberships, guarded by its server link's fanState.mu (groups.go).
	grouped atomic.Bool
	groups  *member
}

// routeCacheBits is log2 of the length of a link's route cache, by side: a
// client usually has a few virtual connections, a server many.
var routeCacheBits = [2]uint8{sideClient: 2, sideServer: 8}

// routeSlot is the route cache slot of ConnID id in a cache of 1<<bits
// entries. ConnIDs are handed out in blocks per reader (newConnID), so the
// virtual connections of different clients are connIDBlock apart: the low
// bits alone would put a server's in a few slots. A multiplicative hash
// (Fibonacci hashing) spreads them.
func routeSlot(id uint32, bits uint8) uint32 { return (id * 0x9E3779B1) >> (32 - bits) }

// route returns the live virtual connection id, looking in the reader's
// cache (routeSlot) first. A cached vconn is good while it is not closed: ConnIDs are
// never reused while live, and a closed one is marked before anyone is told
// it closed, so a frame routed by the cache races a Close exactly as one
// routed by the table does. The caller is l's reader.
//
// A cache entry keeps its vconn (and so the links it joins) reachable until
// it is replaced or l is gone; a finished link keeps no buffers, scratch or
// route cache of its own (dropScratch), so that is a link struct at most.
func (g *Gateway) route(l *link, id uint32) (*vconn, bool) {
	slot := &l.routes[routeSlot(id, routeCacheBits[l.side])]
	if vc := *slot; vc != nil && vc.id == id && !vc.closed.Load() {
		return vc, true
	}
	vc, ok := g.routes.get(id)
	if ok {
		*slot = vc
	}
	return vc, ok
}

// other returns the end of vc that is not l.
func (vc *vconn) other(l *link) *link {
	if vc.client == l {
		return vc.server
	}
	return vc.client
}

// modeFor says how a frame from link from is queued to link to: toward a
// client it never blocks (a full client is a slow consumer); toward a server
// it blocks the sending client (back-pressure), except for a server's own
// replies, which may not block the server's own reader.
func modeFor(from, to *link) pushMode {
	switch {
	case to.side == sideClient:
		return pushDrop
	case from == to:
		return pushForce
	default:
		return pushWait
	}
}

// forward routes a data frame read from l. This is the fast path: a large
// frame is queued to the other end as the very buffer it was read into; a
// borrowed one (valid until l's next read) is copied into the other end's
// queue, packed with the small frames queued before it.
func (g *Gateway) forward(l *link, id uint32, frame outFrame, borrowed bool) {
	vc, ok := g.route(l, id)
	if !ok {
		// Not live: drop it and tell the sender the ConnID is gone.
		g.counters.framesDropped.Add(1)
		if !borrowed {
			g.release(frame)
		}
		g.sendClose(l, l, id)
		return
	}
	var dst *link
	switch l {
	case vc.client:
		dst = vc.server
	case vc.server:
		dst = vc.client
	default:
		if !borrowed {
			g.release(frame)
		}
		g.counters.framesDropped.Add(1)
		l.close(ReasonProtocolError, fmt.Errorf("data on ConnID %d, which is not its own", id), false)
		return
	}
	var err error
	if borrowed {
		err = dst.pushCopy(l, frame.b, modeFor(l, dst))
	} else {
		err = dst.pushFrame(l, frame, modeFor(l, dst))
	}
	if err != nil {
		// The other end is closing; its teardown sends l the Close. The
		// frame counts as undelivered by the reason it closed (or, when
		// l was closed while its reader waited for room at dst, by l's).
		reason, _ := dst.closeReason()
		if errors.Is(err, errSenderClosed) {
			reason, _ = l.closeReason()
		}
		g.counters.undelivered[reason].add(1, uint64(len(frame.b)))
	}
}

// command handles a command frame read from l. The frame stays the
// caller's: the answers are built apart from it.
func (g *Gateway) command(l *link, frame []byte) {
	cmd, err := proto.DecodeCommand(frame)
	if err != nil {
		l.close(ReasonProtocolError, err, false)
		return
	}
	switch cmd.Type {
	case proto.CmdPing:
		// A Ping is a Ping both ways.
		l.pushCopy(l, frame, modeFor(l, l))
	case proto.CmdDial:
		g.dial(l, cmd.RemoteID)
	case proto.CmdClose:
		g.closeVC(l, cmd.ConnID, frame)
	default:
		l.close(ReasonProtocolError, fmt.Errorf("%s sent to the gateway", cmd.Type), false)
	}
}

// dial opens a virtual connection from l to remoteID, answering l with
// Accept (then the other end with Connect) or Refuse.
func (g *Gateway) dial(l *link, remoteID uint32) {
	refuse := func(r RefuseReason) {
		g.counters.dialsRefused[r].Add(1)
		l.pushCmd(l, proto.Command{Type: proto.CmdRefuse, RemoteID: remoteID}, modeFor(l, l))
	}
	// Server ID 0 is valid; client IDs never are (docs/protocol.md §1.4).
	if remoteID == 0 && l.side == sideServer {
		refuse(RefuseInvalidID)
		return
	}
	vc := &vconn{}
	if l.side == sideClient {
		vc.client, vc.byClient = l, true
		vc.server = g.servers.newest(remoteID)
		if vc.server == nil {
			refuse(RefuseUnknownID)
			return
		}
	} else {
		vc.server = l
		c, ok := g.clients.get(remoteID)
		if !ok {
			refuse(RefuseUnknownID)
			return
		}
		vc.client = c
	}
	if r, ok := g.attach(l, vc, remoteID); !ok {
		refuse(r)
		return
	}
	// Counted on the dialer's link (its reader is the caller), not on a
	// gateway-wide counter every core's dials would fight over; Stats
	// sums the links. Open virtual connections are the route table's size.
	l.stats.dials.Add(1)
	other := vc.other(l)
	if l.side == sideClient {
		vc.ready.Store(true) // the client has its Accept (attach queued it), the server not yet its Connect
	}
	other.pushCmd(l, proto.Command{Type: proto.CmdConnect, ConnID: vc.id, RemoteID: l.id}, modeFor(l, other))
	if l.side == sideServer {
		vc.ready.Store(true) // the client has its Connect
	}
}

// attach assigns vc a ConnID, records it in the route table and on its
// client link, and queues the dialer's Accept, unless either link is torn
// down or closing, or the client is at ClientMaxConn (a Dial of its own) or
// ClientMaxServerConns (a server's Dial to it). l is the dialer, whose
// reader is the caller; remoteID is what it dialed.
//
// The client's vmu is held throughout, so the client's teardown either
// finds vc in its table or makes attach fail. A server keeps no table of
// its own (every client reader would contend for it): its teardown sets
// dead, then collects its virtual connections from the route table, so
// either it finds vc there or attach, looking at dead after inserting,
// sees it and takes vc back out. Teardowns tell the other end with Close
// only after taking the client's vmu, so the Accept, queued here under it,
// always goes out before any Close of the new ConnID. (It is queued to the
// dialer, which never blocks: see modeFor.)
func (g *Gateway) attach(l *link, vc *vconn, remoteID uint32) (RefuseReason, bool) {
	c, s := vc.client, vc.server
	c.vmu.Lock()
	if c.dead.Load() || s.dead.Load() || c.isClosed() || s.isClosed() {
		c.vmu.Unlock()
		return RefusePeerClosing, false
	}
	if vc.byClient && c.dialed >= g.cfg.ClientMaxConn {
		c.vmu.Unlock()
		return RefuseLimit, false
	}
	if max := g.cfg.ClientMaxServerConns; !vc.byClient && max > 0 && c.dialedBy >= max {
		c.vmu.Unlock()
		return RefuseLimit, false
	}
	for {
		// ConnIDs are never 0 and never collide with a live one, also
		// after the 32-bit counter wraps.
		vc.id = g.newConnID(l)
		if vc.id != 0 && g.routes.insert(vc.id, vc) {
			break
		}
	}
	if s.dead.Load() {
		// The server's teardown began: take vc back unless it already
		// found it (then it closes vc as any other, after this returns).
		if _, ok := g.routes.remove(vc.id, func(v *vconn) bool { return v == vc }); ok {
			c.vmu.Unlock()
			return RefusePeerClosing, false
		}
	}
	if c.vconns == nil {
		c.vconns = make(map[uint32]*vconn)
	}
	c.vconns[vc.id] = vc
	if vc.byClient {
		c.dialed++
	} else {
		c.dialedBy++
	}
	l.pushCmd(l, proto.Command{Type: proto.CmdAccept, ConnID: vc.id, RemoteID: remoteID}, modeFor(l, l))
	c.vmu.Unlock()
	return 0, true
}

// connIDBlock is how many ConnIDs a reader takes from the gateway's counter
// at a time.
const connIDBlock = 64

// newConnID returns the next ConnID candidate for a Dial read by l's reader
// (the caller). Each reader takes ConnIDs from the shared counter in blocks,
// so that dials on different cores do not all bump one counter; the
// candidates still run through every 32-bit value before any repeats, and
// attach skips 0 and IDs still live.
func (g *Gateway) newConnID(l *link) uint32 {
	if l.idNext == l.idEnd {
		end := g.nextConnID.Add(connIDBlock)
		l.idNext, l.idEnd = end-connIDBlock+1, end+1
	}
	id := l.idNext
	l.idNext++
	return id
}

// detach forgets vc on its client link l (servers keep no table).
func (l *link) detach(vc *vconn) {
	l.vmu.Lock()
	if l.vconns[vc.id] == vc {
		delete(l.vconns, vc.id)
		switch {
		case vc.client != l:
		case vc.byClient:
			l.dialed--
		default:
			l.dialedBy--
		}
	}
	l.vmu.Unlock()
}

// closeVC handles Close(id) from l, given as frame: if id is live and l is
// one of its ends, it is removed and both ends get Close (l gets a copy of
// its own frame, which is byte for byte the Close it is owed). Anything
// else is ignored silently, as the protocol requires (nobody can close
// someone else's connection).
func (g *Gateway) closeVC(l *link, id uint32, frame []byte) {
	// One locked lookup finds and removes it; if another Close won, or id
	// is not live or not l's, there is nothing to do.
	vc, ok := g.routes.remove(id, func(v *vconn) bool { return v.client == l || v.server == l })
	if !ok {
		g.counters.closesIgnored.Add(1)
		return
	}
	vc.closed.Store(true)
	vc.leaveGroups()
	vc.client.detach(vc)
	other := vc.other(l)
	l.pushCopy(l, frame, modeFor(l, l))
	g.sendClose(l, other, id)
}

// sendClose queues Close(id) to link to, on behalf of link from.
func (g *Gateway) sendClose(from, to *link, id uint32) {
	to.pushCmd(from, proto.Command{Type: proto.CmdClose, ConnID: id}, modeFor(from, to))
}

// teardown runs once per link, from its reader after the link closed (or,
// during Shutdown, from Shutdown once every reader has stopped): it
// closes the link's virtual connections (telling the other ends), removes the
// link from the registries, and counts and logs the disconnect.
func (g *Gateway) teardown(l *link) {
	var closed int
	if l.side == sideClient {
		l.vmu.Lock()
		if l.dead.Load() {
			l.vmu.Unlock()
			return // torn down already (by its reader, or by Shutdown)
		}
		l.dead.Store(true)
		vcs := l.vconns
		l.vconns = nil
		l.vmu.Unlock()
		for id, vc := range vcs {
			if _, ok := g.routes.remove(id, func(v *vconn) bool { return v == vc }); !ok {
				continue // closed concurrently by the other end
			}
			vc.closed.Store(true)
			vc.leaveGroups()
			// Never waiting for room: a teardown must not stall behind
			// one full server while its other servers wait for their
			// Close. Bounded by the client's virtual connections.
			vc.server.pushCmd(l, proto.Command{Type: proto.CmdClose, ConnID: id}, pushForce)
			closed++
		}
	} else {
		if l.dead.Swap(true) {
			return // torn down already
		}
		// dead is set before the route table is searched (see attach).
		vcs := g.routes.removeAll(func(v *vconn) bool { return v.server == l })
		l.endGroups() // its groups end with it
		for _, vc := range vcs {
			vc.closed.Store(true)
			vc.client.detach(vc)
			g.sendClose(l, vc.client, vc.id)
		}
		closed = len(vcs)
	}

	if l.side == sideClient {
		g.clients.remove(l.id, func(v *link) bool { return v == l })
		g.counters.clientConns.Add(-1)
		if l.ws {
			g.counters.wsConns.Add(-1)
		}
	} else {
		g.servers.remove(l)
		g.counters.serverConns.Add(-1)
	}
	// The link leaves the live set when it is also closed and its writer
	// has finished, so Stats counts every byte (finishedLocked).
	l.mu.Lock()
	l.torn = true
	done := l.finishedLocked()
	l.mu.Unlock()
	if done {
		g.untrack(l)
	}

	reason, cause := l.closeReason()
	if reason == ReasonNone {
		reason = ReasonShutdown // stopped by Shutdown, which closes it next
	}
	g.counters.disconnects[reason].Add(1)
	if l.side == sideClient {
		g.counters.clientDisconnects[reason].Add(1)
	}
	if l.ws {
		g.counters.wsDisconnects[reason].Add(1)
	}
	attrs := []any{slog.String("side", l.side.String()), slog.String("transport", l.transport()), slog.Uint64("id", uint64(l.id)), slog.String("remote", l.conn.RemoteAddr().String()), slog.String("reason", reason.String()), slog.Int("vconns", closed)}
	if cause != nil {
		attrs = append(attrs, slog.String("error", cause.Error()))
	}
	if reason == ReasonPeerClosed || reason == ReasonShutdown {
		// A clean close: not rate-limited, at debug level.
		if g.log.Enabled(context.Background(), slog.LevelDebug) {
			g.log.Debug("disconnect", attrs...)
		}
		return
	}
	g.logEvent(reason, slog.LevelInfo, "disconnect", attrs...)
}
