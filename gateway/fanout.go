package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/fastway-go/fastway/proto"
)

// Fan-out (docs/protocol.md §7): a server's Multicast or Publish becomes one
// data frame per virtual connection, queued to each client in the order the
// server's reader reads it, exactly as if the server had sent each frame
// itself at that point of its stream; Join and Leave keep the server link's
// groups (groups.go).
//
// The payload is read once. Under fanCopyMax bytes it is copied into each
// member's queue with its header, packed with the member's other small
// frames, as a small unicast frame would be. From fanCopyMax on, every
// member queues an 8-byte header of its own and the one payload buffer,
// which counts its references (proto.Shared): two iovecs of the member's
// writev.

// fanCopyMax is the payload size from which members share the payload
// rather than each copying it (shareMin, less the header: the frames a
// unicast reader would forward in place).
const fanCopyMax = shareMin - proto.HeaderSize

// fanFlushBytes bounds the bytes of deliveries a server's reader queues
// before it writes them out (flushDirty). A read batch of Publishes
// multiplies by the members of each group: 64 KiB of 64-byte Publishes to
// 10,000 members is 570 MB of deliveries. The reader writes its members'
// queues out whenever this much is queued, so the deliveries waiting for
// their turn hold at most this much (plus what members' sockets do not
// take, which their own bounds cover); each member still gets all the
// deliveries queued to it so far in one write.
const fanFlushBytes = 8 << 20

// Log keys of the fan-out events a server can cause, for logLimit (past
// the Reasons, which logEvent uses).
const (
	logKeyJoinRefused uint8 = 200 + iota
	logKeySkipped
)

// fanout handles a fan-out command read from l, which it owns: borrowed
// (valid until l's next read), or a frame of its own to release. A client
// sending one breaks the protocol, as does a malformed one, and Join or
// Leave with GroupID 0.
func (g *Gateway) fanout(l *link, f outFrame, borrowed bool) {
	done := func() {
		if !borrowed {
			g.release(f)
		}
	}
	if l.side != sideServer {
		typ, _ := proto.FanoutType(f.b)
		done()
		l.close(ReasonProtocolError, fmt.Errorf("%s sent by a client", typ), false)
		return
	}
	cmd, err := proto.DecodeFanout(f.b)
	if err != nil {
		done()
		l.close(ReasonProtocolError, err, false)
		return
	}
	fs := l.fanout()
	if cmd.Type == proto.CmdPublish && cmd.GroupID != 0 && len(cmd.Payload) < fanCopyMax {
		// Staged: delivered with the Publishes that follow it to the same
		// group, member by member (see fanStage), before this reader
		// handles any other frame or writes.
		if !fs.rd.stage.fits(cmd.GroupID, len(cmd.Payload)) {
			l.unstage()
		}
		fs.rd.stage.add(cmd)
		l.fanStaged = true
		done()
		return
	}
	l.unstage()
	switch cmd.Type {
	case proto.CmdJoin, proto.CmdLeave:
		done()
		if cmd.GroupID == 0 {
			l.close(ReasonProtocolError, fmt.Errorf("%s with GroupID 0 (every virtual connection of the link)", cmd.Type), false)
			return
		}
		g.joinLeave(l, fs, cmd)
	case proto.CmdMulticast:
		var p payload
		f = p.prepare(g, l, fs, f, borrowed, cmd.Payload)
		var skipped uint64
		for i := range cmd.Count() {
			vc, ok := g.fanTarget(l, cmd.ID(i))
			if !ok {
				skipped++
				continue
			}
			p.deliver(g, l, vc)
		}
		p.finish(fs)
		done()
		g.noteSkipped(l, fs, cmd.Type, skipped)
	case proto.CmdPublish:
		var p payload
		f = p.prepare(g, l, fs, f, borrowed, cmd.Payload)
		if cmd.GroupID == 0 {
			g.broadcast(l, fs, &p, cmd.ConnID)
		} else {
			for _, vc := range fs.snapshot(cmd.GroupID) {
				if vc.id != cmd.ConnID && !vc.closed.Load() {
					p.deliver(g, l, vc)
				}
			}
			fs.rd.release()
		}
		p.finish(fs)
		done()
	}
}

// snapshot returns the members of group gid, in fs.rd.conns (released
// with fs.rd.release): deliveries are queued without holding mu, so that
// a client closing its virtual connection meanwhile does not wait for
// them. A member that closes after the snapshot is skipped (vc.closed); no
// other change can come before this reader's next command. The caller is
// the link's reader.
func (fs *fanState) snapshot(gid uint32) []*vconn {
	rd := &fs.rd
	fs.mu.Lock()
	if gr := fs.groups[gid]; gr != nil {
		for _, m := range gr.members {
			rd.conns = append(rd.conns, m.vc)
		}
	}
	fs.mu.Unlock()
	return rd.conns
}

// release empties the reader's list of virtual connections, keeping its
// room unless it is large and mostly unused.
func (rd *fanReader) release() {
	clear(rd.conns)
	if cap(rd.conns) > 1024 && len(rd.conns) < cap(rd.conns)/4 {
		rd.conns = nil
	} else {
		rd.conns = rd.conns[:0]
	}
}

// fanStage holds the small Publishes to one group that a server's reader
// has read in a row: it delivers them member by member (deliverStaged),
// each member's copies queued at once and written at once, rather than
// Publish by Publish. For 10,000 members, a Publish after another touched
// every member's link and queue again; staged, a member costs one lock,
// one copy of its run of frames and one write per read batch, which is
// what a bare process writing the same frames costs (docs/benchmarks.md).
// The stage is delivered before the reader handles any other frame, and
// before it writes or waits for the socket (link.unstage), so every copy
// keeps its place in the server's stream. Payloads are copied in, so
// borrowed frames may go.
type fanStage struct {
	gid    uint32
	n      int      // Publishes staged
	buf    []byte   // their payloads, back to back
	ends   []int    // where each payload ends in buf
	except []uint32 // each one's ExceptConnID
	run    []byte   // one member's frames, built for each
}

// fanStageMax bounds the payload bytes staged, and so what one member's
// run of frames holds (and its queue takes at once): far below
// ClientSendQueueBytes.
const fanStageMax = 32 << 10

// fits reports whether a payload of n bytes to group gid can join the stage.
func (st *fanStage) fits(gid uint32, n int) bool {
	return st.n == 0 || st.gid == gid && len(st.buf)+n <= fanStageMax
}

func (st *fanStage) add(cmd proto.Fanout) {
	st.gid = cmd.GroupID
	st.buf = append(st.buf, cmd.Payload...)
	st.ends = append(st.ends, len(st.buf))
	st.except = append(st.except, cmd.ConnID)
	st.n++
}

func (st *fanStage) reset() {
	st.n, st.buf, st.ends, st.except = 0, st.buf[:0], st.ends[:0], st.except[:0]
	if cap(st.buf) > fanStageMax {
		st.buf = nil
	}
	if cap(st.run) > 4*fanStageMax {
		st.run = nil
	}
}

// unstage delivers the Publishes l's reader staged, if any.
func (l *link) unstage() {
	if l.fanStaged {
		l.fanStaged = false
		l.gw.deliverStaged(l, l.fan.Load())
	}
}

// deliverStaged delivers server link l's staged Publishes: to each member
// of the group, the run of its copies in one enqueue, written out at once
// when this reader holds the member's writer turn.
func (g *Gateway) deliverStaged(l *link, fs *fanState) {
	st := &fs.rd.stage
	var delivered uint64
	for _, vc := range fs.snapshot(st.gid) {
		if vc.closed.Load() {
			continue
		}
		run, k, start := st.run[:0], 0, 0
		for i, end := range st.ends {
			if st.except[i] != vc.id {
				run = proto.EncodeData(run, vc.id, st.buf[start:end])
				k++
			}
			start = end
		}
		st.run = run
		if k == 0 {
			continue
		}
		dst := vc.client
		if err := dst.enqueueFanout(l, nil, outFrame{}, run, k); err != nil {
			reason, _ := dst.closeReason()
			g.counters.undelivered[reason].add(uint64(k), uint64(len(run)))
			continue
		}
		delivered += uint64(k)
		l.flushLast(dst)
	}
	fs.rd.release()
	if delivered > 0 {
		fs.deliveries.Add(delivered)
	}
	st.reset()
}

// flushLast writes dst at once if l's reader just took its writer turn
// (dst is the last of l's dirty list): a staged run is all the member has
// to get from this batch, and writing it now keeps no member's copies
// waiting for the other members'.
func (l *link) flushLast(dst *link) {
	if n := len(l.dirty); n > 0 && l.dirty[n-1] == dst {
		l.dirty[n-1] = nil
		l.dirty = l.dirty[:n-1]
		dst.refreshWriteDeadline()
		dst.flushInline()
	}
}

// fanTarget returns the virtual connection id when it takes part in l's
// fan-out: live, ready (its client knows it) and l's own.
func (g *Gateway) fanTarget(l *link, id uint32) (*vconn, bool) {
	vc, ok := g.route(l, id)
	if !ok || vc.server != l || !vc.ready.Load() || vc.closed.Load() {
		return nil, false
	}
	return vc, true
}

// joinLeave handles Join and Leave (GroupID != 0) from server link l.
func (g *Gateway) joinLeave(l *link, fs *fanState, cmd proto.Fanout) {
	if cmd.Type == proto.CmdLeave && cmd.ConnID == 0 {
		fs.mu.Lock()
		fs.endGroup(cmd.GroupID)
		fs.mu.Unlock()
		return
	}
	vc, ok := g.fanTarget(l, cmd.ConnID)
	if !ok {
		// Not live, not l's, or closing (a race with Close is normal):
		// a member no more, if it was one.
		g.noteSkipped(l, fs, cmd.Type, 1)
		return
	}
	fs.mu.Lock()
	if cmd.Type == proto.CmdLeave {
		fs.leave(cmd.GroupID, vc)
		fs.mu.Unlock()
		return
	}
	r := fs.join(cmd.GroupID, vc, g.cfg.ServerMaxGroups, g.cfg.ServerMaxMemberships)
	fs.mu.Unlock()
	switch r {
	case joinClosed:
		g.noteSkipped(l, fs, cmd.Type, 1)
	case joinMaxGroups, joinMaxMembers:
		fs.joinsRefused.Add(1)
		limit, bound := "ServerMaxGroups", g.cfg.ServerMaxGroups
		if r == joinMaxMembers {
			limit, bound = "ServerMaxMemberships", g.cfg.ServerMaxMemberships
		}
		g.logKeyed(logKeyJoinRefused, slog.LevelWarn, "join ignored", slog.Uint64("id", uint64(l.id)), slog.String("remote", l.conn.RemoteAddr().String()),
			slog.Uint64("group", uint64(cmd.GroupID)), slog.Uint64("conn_id", uint64(cmd.ConnID)), slog.String("limit", limit), slog.Int("bound", bound))
	}
}

// broadcast delivers p to every virtual connection of l but except
// (Publish to GroupID 0). Server links keep no table of their virtual
// connections (every client's Dial would lock it): they are collected from
// the route table, one shard at a time.
func (g *Gateway) broadcast(l *link, fs *fanState, p *payload, except uint32) {
	rd := &fs.rd
	g.routes.each(func(vc *vconn) {
		if vc.server == l {
			rd.conns = append(rd.conns, vc)
		}
	})
	for _, vc := range rd.conns {
		if vc.id != except && vc.ready.Load() && !vc.closed.Load() {
			p.deliver(g, l, vc)
		}
	}
	rd.release()
}

// noteSkipped counts ConnIDs a fan-out command from l skipped (not live,
// not l's, or closing) and logs them, rate-limited, at debug level: a race
// with Close is normal.
func (g *Gateway) noteSkipped(l *link, fs *fanState, c proto.Cmd, n uint64) {
	if n == 0 {
		return
	}
	fs.skipped.Add(n)
	g.logKeyed(logKeySkipped, slog.LevelDebug, "fan-out skipped ConnIDs", slog.Uint64("id", uint64(l.id)), slog.String("remote", l.conn.RemoteAddr().String()),
		slog.String("command", c.String()), slog.Uint64("skipped", n), slog.String("reason", "not live or not the server's"))
}

// logKeyed logs a line a peer can trigger, rate-limited per key.
func (g *Gateway) logKeyed(key uint8, level slog.Level, msg string, attrs ...any) {
	if !g.log.Enabled(context.Background(), level) {
		return
	}
	ok, suppressed := g.logLimit.allow(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	g.log.Log(context.Background(), level, msg, attrs...)
}

// payload is a fan-out command's payload, ready to be queued to members.
type payload struct {
	small []byte // under fanCopyMax: header and payload, the ConnID rewritten per member
	hdr   [proto.HeaderSize]byte
	data  []byte        // from fanCopyMax: the payload every member shares
	ref   *proto.Shared // holds data
	size  int           // the delivery's size, header included
	n     uint64        // deliveries queued
}

// prepare readies payload, the payload of command frame f (read from l;
// borrowed, or l's to release), and returns what the caller still
// releases of f: f itself, or nothing when the payload took f's buffer.
func (p *payload) prepare(g *Gateway, l *link, fs *fanState, f outFrame, borrowed bool, payload []byte) outFrame {
	p.size = proto.DeliverySize(len(payload))
	if len(payload) < fanCopyMax {
		rd := &fs.rd
		rd.small = proto.EncodeData(rd.small[:0], 0, payload)
		p.small = rd.small
		return f
	}
	binary.LittleEndian.PutUint32(p.hdr[:], uint32(p.size-proto.SizeOfLength))
	if !borrowed && f.ref == nil && len(f.b) <= 2*len(payload) {
		// A frame in a buffer of its own, mostly payload: shared as it is.
		p.data, p.ref = payload, proto.NewShared(f.b, g.cfg.MemPool)
		return outFrame{}
	}
	// A slice of l's read buffer (which it would keep whole, up to 16
	// times the payload, while one member has not written it), or a
	// Multicast frame mostly made of ConnIDs: the payload is copied once,
	// into a buffer of its own.
	b := g.cfg.MemPool.Alloc(len(payload))
	p.data = b[:copy(b, payload)]
	p.ref = proto.NewShared(b, g.cfg.MemPool)
	return f
}

// deliver queues p to vc's client end on behalf of server link l (whose
// reader is the caller), as a unicast frame from the server would be: a
// client whose queue is full is a slow consumer (pushDrop), and nobody
// waits for it.
func (p *payload) deliver(g *Gateway, l *link, vc *vconn) {
	dst := vc.client
	var err error
	if p.ref == nil {
		binary.LittleEndian.PutUint32(p.small[proto.SizeOfLength:], vc.id)
		err = dst.pushCopy(l, p.small, pushDrop)
	} else {
		binary.LittleEndian.PutUint32(p.hdr[proto.SizeOfLength:], vc.id)
		p.ref.Retain(1) // the member's, released once it is written (or dropped)
		err = dst.enqueueFanout(l, p.hdr[:], outFrame{b: p.data, ref: p.ref}, nil, 1)
	}
	if err != nil {
		// The member is closing; its teardown tells the server. The
		// delivery counts as undelivered by the reason it closed.
		reason, _ := dst.closeReason()
		g.counters.undelivered[reason].add(1, uint64(p.size))
		return
	}
	p.n++
	if l.fanQueued += p.size; l.fanQueued >= fanFlushBytes {
		l.flushDirty() // see fanFlushBytes; resets fanQueued
	}
}

// finish counts p's deliveries and lets go of the payload's own reference.
func (p *payload) finish(fs *fanState) {
	if p.n > 0 {
		fs.deliveries.Add(p.n)
	}
	if p.ref != nil {
		p.ref.Release()
	}
}

// enqueueFanout queues, on behalf of server link from (whose reader is the
// caller), one delivery as two parts, hdr (copied) and frame (a shared
// payload), or a run of frames whole (copied) counting frames. Both are
// queued under one lock, so nothing comes between a header and its payload.
// It is enqueue for what only fan-out queues, toward a client (pushDrop):
// kept apart so that enqueue, which every reader runs (an idle client's
// Ping answer), keeps its small stack frame (docs/benchmarks.md, "An idle
// client's 2 KiB").
func (l *link) enqueueFanout(from *link, hdr []byte, frame outFrame, run []byte, frames int) error {
	size := len(hdr) + len(frame.b) + len(run)
	l.mu.Lock()
	for !l.closed && l.full(from, pushDrop) {
		if l.turnOwner == from {
			// from's own batch fills the queue: write it out first.
			l.mu.Unlock()
			from.flushDirty()
			l.mu.Lock()
			continue
		}
		l.mu.Unlock()
		l.gw.release(frame)
		l.close(ReasonSlowConsumer, nil, false)
		return errLinkClosed
	}
	if l.closed {
		l.mu.Unlock()
		l.gw.release(frame)
		return errLinkClosed
	}
	if l.queue == nil {
		l.queue, l.spare = l.spare, nil
	}
	if run != nil {
		l.packLocked(nil, run) // in queue chunks, as small frames are
	} else {
		l.packLocked(hdr, nil)
		l.queue = append(l.queue, frame)
	}
	l.queued += frames
	l.queuedBytes += size
	// The same tail as enqueue's, written out there (see the note there).
	if from != l.lastFrom {
		l.lastFrom = from
		l.pushers++
	}
	n := l.queued
	start := !l.writing
	if start {
		l.writing = true
	}
	ownTurn := start && l.canWriteNow()
	if ownTurn {
		l.turnOwner = from
	}
	l.mu.Unlock()
	if n > 1 {
		l.gw.counters.noteQueueLen(l.side, n)
	}
	switch {
	case ownTurn:
		from.dirty = append(from.dirty, l)
	case start:
		l.startWriter(nil, 0)
	}
	return nil
}

// packLocked copies a, then b, into the spare room of the buffer queued
// last if it is the queue's own (not shared) and not taken by a writer yet,
// or else into a new pooled buffer: firstChunk bytes for an empty queue,
// tailChunk after, so that small frames queued together share a buffer; or
// just len(a) bytes when b is nil (a delivery's header, which a shared
// payload follows: nothing can be packed after it). The caller holds l.mu.
func (l *link) packLocked(a, b []byte) {
	need := len(a) + len(b)
	if n := len(l.queue); n > 0 && l.queue[n-1].ref == nil && cap(l.queue[n-1].b)-len(l.queue[n-1].b) >= need {
		last := &l.queue[n-1]
		last.b = append(append(last.b, a...), b...)
		return
	}
	size := firstChunk
	switch {
	case b == nil:
		size = need
	case len(l.queue) > 0:
		size = tailChunk[l.side]
	}
	buf := l.gw.cfg.MemPool.Alloc(max(need, size))
	l.queue = append(l.queue, outFrame{b: append(append(buf[:0], a...), b...)})
}
