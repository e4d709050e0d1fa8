package gateway

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
)

// maxSpare is the largest queue slice kept between batches when it was
// mostly unused; larger ones are dropped so a burst's memory is given back.
// idleSpare is the largest a client link keeps while idle (a server link,
// one of a few and busy, keeps up to maxSpare, so its queue does not grow
// from nothing at every writer turn).
const (
	maxSpare  = 64
	idleSpare = 8
)

// outFrame is a frame queued for writing: a pooled buffer of its own, or,
// with ref set, a slice of a read buffer shared with other frames (see
// proto.FrameReader.ReadFrameShared), released through ref.
type outFrame struct {
	b   []byte
	ref *proto.Shared
}

// release lets go of f: its reference, or its buffer back to the pool
// (nothing for the zero outFrame).
func (g *Gateway) release(f outFrame) {
	switch {
	case f.ref != nil:
		f.ref.Release()
	case f.b != nil:
		g.free(f.b)
	}
}

// maxUnreadReplies is how far past its byte bound (ServerSendQueueBytes) a
// server's queue may grow with the replies to its own commands (Ping,
// Dial, Close), which are queued without waiting (pushForce), before the
// server is closed as a slow consumer: it sends commands and does not read
// the answers.
const maxUnreadReplies = 1 << 20

// waitRoom waits, holding l.mu, until the writer takes frames or l closes,
// and reports false without waiting if from, the pusher, was closed hard:
// its close wakes this wait (abortWait), so a dead client's reader does not
// stay here holding its frame until the server takes more. Out of line, as
// repliesUnread.
//
//go:noinline
func (l *link) waitRoom(from *link) bool {
	if from != nil {
		from.waitOn.Store(l)
		defer from.waitOn.Store(nil)
		if from.aborted.Load() {
			return false
		}
	}
	l.waiters++
	l.space.Wait()
	l.waiters--
	return true
}

// repliesUnread closes a server that does not read the replies to its
// commands (see maxUnreadReplies). It is kept out of enqueue, which every
// reader runs, so that enqueue's stack frame stays small (an idle client's
// reader then fits in the smallest goroutine stack).
//
//go:noinline
func (l *link) repliesUnread(held int) {
	l.close(ReasonSlowConsumer, fmt.Errorf("%w: %d bytes queued to it", errRepliesUnread, held), false)
}

// pushCopy queues a copy of frame, which the caller keeps (a borrowed frame,
// or one the gateway built on its stack), for writing to l (see enqueue).
func (l *link) pushCopy(from *link, frame []byte, mode pushMode) error {
	return l.enqueue(from, outFrame{}, frame, mode)
}

// pushCmd queues cmd's frame for writing to l (see enqueue).
func (l *link) pushCmd(from *link, cmd proto.Command, mode pushMode) error {
	var buf [proto.MaxCmdSize]byte
	f := buf[:proto.CmdSize(cmd.Type)]
	cmd.Put(f)
	return l.pushCopy(from, f, mode)
}

// pushFrame queues frame for writing to l, taking ownership of it (see
// enqueue).
func (l *link) pushFrame(from *link, frame outFrame, mode pushMode) error {
	return l.enqueue(from, frame, nil, mode)
}

// Small frames are copied into buffers on a link's queue (see enqueue). The
// first buffer of an empty queue takes firstChunk bytes, so a link that
// gets a frame now and then (an idle client's Ping answer) holds little;
// the next ones, once frames pile up, tailChunk bytes by side: a client
// gets a few frames at a time, a server many clients' at once.
const firstChunk = 512

var tailChunk = [2]int{sideClient: 2 << 10, sideServer: 16 << 10}

// enqueue queues a frame for writing to l on behalf of link from (whose
// reader is the calling goroutine; nil in tests): either frame, whose
// ownership it takes (on every path it is either written and released, or
// released here), or, when small is not nil, a copy of small. Copies go
// into the spare room of the pooled buffer last queued, or into a new one
// (firstChunk or tailChunk bytes), so that small frames queued together
// share one buffer and one iovec, and cost no pool buffer each. The queue is
// bounded in bytes and in frames, however they are packed (see full).
//
// When no writer owns l, the pusher takes ownership. If it has a reader
// (from != nil) and l's socket allows a non-blocking write, l goes on from's
// dirty list: from's reader flushes it itself once it has routed every frame
// it has buffered (flushDirty), so frames read together leave together in
// one writev and no goroutine is started. Otherwise a writer goroutine is
// started at once.
func (l *link) enqueue(from *link, frame outFrame, small []byte, mode pushMode) error {
	size := len(small)
	if small == nil {
		size = len(frame.b)
	}
	l.mu.Lock()
	for !l.closed && mode != pushForce && l.full(from, mode) {
		if from != nil && l.turnOwner == from {
			// This reader holds l's writer turn and has not written yet:
			// what fills the queue is its own batch, not l's peer being
			// slow. Write it out first (flushDirty), then look again.
			l.mu.Unlock()
			from.flushDirty()
			l.mu.Lock()
			continue
		}
		if mode == pushDrop {
			l.mu.Unlock()
			l.gw.release(frame)
			l.close(ReasonSlowConsumer, nil, false)
			return errLinkClosed
		}
		if from != nil && len(from.dirty) > 0 {
			// Flush what this reader owns before waiting: only this
			// reader would write the links on its dirty list.
			l.mu.Unlock()
			from.flushDirty()
			l.mu.Lock()
			continue
		}
		if !l.waitRoom(from) {
			l.mu.Unlock()
			l.gw.release(frame)
			return errSenderClosed
		}
	}
	if l.closed {
		l.mu.Unlock()
		l.gw.release(frame) // nothing, for a copy
		return errLinkClosed
	}
	if mode == pushForce && from == l {
		if held := l.queuedBytes + l.batchBytes; held >= max(l.limitBytes, 0)+maxUnreadReplies {
			// A server's replies to its own commands pass the byte bound
			// (its reader must not wait on its own writer), but a server
			// that sends commands and reads nothing would grow its queue
			// without end: past maxUnreadReplies more, it is closed.
			l.mu.Unlock()
			l.gw.release(frame)
			l.repliesUnread(held)
			return errLinkClosed
		}
	}
	var unshared outFrame
	if small == nil && frame.ref != nil && l.stalled {
		// l's peer is not taking what it is sent: a frame forwarded in
		// place would keep its whole read buffer (up to 16 times the
		// frame, see proto.FrameReader.ReadFrameShared) while it waits.
		// It is copied into the queue instead, and the buffer goes back.
		small, unshared, frame = frame.b, frame, outFrame{}
	}
	if l.queue == nil {
		l.queue, l.spare = l.spare, nil
	}
	if small == nil {
		l.queue = append(l.queue, frame)
	} else if n := len(l.queue); n > 0 && l.queue[n-1].ref == nil && cap(l.queue[n-1].b)-len(l.queue[n-1].b) >= len(small) {
		// The buffer queued last is the queue's own (not shared) and
		// not taken by a writer yet: append to it.
		l.queue[n-1].b = append(l.queue[n-1].b, small...)
	} else {
		size := firstChunk
		if n > 0 {
			size = tailChunk[l.side]
		}
		b := l.gw.cfg.MemPool.Alloc(max(len(small), size))
		l.queue = append(l.queue, outFrame{b: append(b[:0], small...)})
	}
	l.queued++
	l.queuedBytes += size
	if l.shares != nil && from != nil {
		l.shares.note(from, l, size)
	}
	// From here to the end this is enqueueFanout's tail too, and the
	// packing above is packLocked's: written out, not called, because one
	// more call deep on this path, which every reader runs, doubles an
	// idle client's reader stack (a shared tail measured 7.8 KiB per idle
	// client against 6.1; see clientShares).
	if from != l.lastFrom {
		l.lastFrom = from
		l.pushers++
	}
	n := l.queued
	start := !l.writing
	if start {
		l.writing = true
	}
	ownTurn := start && from != nil && l.canWriteNow()
	if ownTurn {
		l.turnOwner = from
	}
	l.mu.Unlock()
	l.gw.release(unshared) // nothing, unless copied out of a shared buffer
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

// full reports whether l's queue has no room for a frame pushed by from in
// mode. The caller holds l.mu.
//
// The byte bound counts what is queued and what the writer holds: the
// memory l's peer makes the gateway keep. A frame is taken while the
// total is under it, so the total stays below limitBytes + MaxPacket.
//
// The frame bound counts queued frames. Toward a client it counts them
// only while its socket is full (stalled: the writer's last attempt could
// not write all it tried; on connections without non-blocking writes,
// such as TLS, while a write is under way): frames a reader queued in one
// batch, to be written at its end, or queued while the client takes what
// it is sent, are not frames the client failed to take (a server writing 1,001 small frames in one burst must not make
// a reading client a slow consumer; neither must two servers each writing
// fewer than the bound). When from itself holds the turn, full reports
// true so that enqueue writes from's batch out and looks again.
func (l *link) full(from *link, mode pushMode) bool {
	if l.limitBytes > 0 && l.queuedBytes+l.batchBytes >= l.limitBytes {
		return true
	}
	if l.shares != nil && from != nil && l.shares.over(from) {
		return true // from's own share of a server's queue is taken
	}
	switch {
	case l.queued < l.limit:
		return false
	case mode == pushWait, l.turnOwner == from:
		return true
	case l.turnOwner != nil:
		return false // another reader writes it at the end of its batch
	}
	return l.stalled
}

// clientShares counts, toward a server, the bytes each client has queued
// or in the batch being written, which limit bounds per client (see full).
// Its fields are guarded by the server link's mu. Its methods are kept out
// of line, so that enqueue's stack frame, which every reader runs, stays
// small (an idle client's reader fits in the smallest goroutine stack).
type clientShares struct {
	limit    int
	bySource map[*link]int
	// contrib is what the queue holds of each client, in the order
	// pushed; batchContrib the same for the batch being written, given
	// back once it is written.
	contrib, batchContrib []contribution
}

// contribution is what one client queued toward a server in a row.
type contribution struct {
	from *link
	n    int
}

// over reports whether from has its whole share queued.
//
//go:noinline
func (s *clientShares) over(from *link) bool { return s.bySource[from] >= s.limit }

// note counts the size bytes from just queued to server l, when they are a
// data frame, the end of l's last queued buffer (a client's commands are a
// few bytes, and counting them would put each new client's Dial through a
// map insert). The caller holds l.mu.
//
//go:noinline
func (s *clientShares) note(from, l *link, size int) {
	last := l.queue[len(l.queue)-1].b
	if proto.Header(last[len(last)-size:]).ConnID() == 0 {
		return
	}
	if s.bySource == nil {
		s.bySource = make(map[*link]int)
	}
	s.bySource[from] += size
	if n := len(s.contrib); n > 0 && s.contrib[n-1].from == from {
		s.contrib[n-1].n += size
		return
	}
	s.contrib = append(s.contrib, contribution{from, size})
}

// written gives back the clients' shares of the batch just written, and
// makes the queue's the batch's.
//
//go:noinline
func (s *clientShares) written() {
	for i, c := range s.batchContrib {
		if left := s.bySource[c.from] - c.n; left > 0 {
			s.bySource[c.from] = left
		} else {
			delete(s.bySource, c.from)
		}
		s.batchContrib[i] = contribution{}
	}
	s.batchContrib, s.contrib = s.contrib, s.batchContrib[:0]
	if len(s.bySource) == 0 && cap(s.contrib) > idleSpare {
		s.reset()
	}
}

// reset forgets every share (the link is closing).
func (s *clientShares) reset() { s.bySource, s.contrib, s.batchContrib = nil, nil, nil }

// setStalled records that l's writer found l's socket full: frames queued
// now wait for l's peer (see full). The caller owns l's writer turn.
func (l *link) setStalled() {
	l.mu.Lock()
	l.stalled = true
	l.mu.Unlock()
}

// flushDirty writes, from the calling reader, the links this reader took
// ownership of (see enqueue). Each gets a few non-blocking writev rounds; what
// cannot be written without blocking goes to a writer goroutine.
func (l *link) flushDirty() {
	for i, d := range l.dirty {
		l.dirty[i] = nil
		// Here, near the top of the reader's stack: setting a deadline
		// runs deep in the runtime (see readLoop).
		d.refreshWriteDeadline()
		d.flushInline()
	}
	l.dirty = l.dirty[:0]
	if cap(l.dirty) > idleSpare {
		l.dirty = nil
	}
	l.fanQueued = 0
}

// inlineRounds bounds how many batches a reader writes for another link
// before it hands the rest to a writer goroutine.
const inlineRounds = 4

// flushInline is one writer turn run by a reader, which holds l's writer
// ownership (l.writing).
func (l *link) flushInline() {
	if l.side == sideServer && l.contended() {
		// Several readers feed this server: a writer goroutine that lets
		// them run first (writeLoop yields) gathers all their frames into
		// one writev, instead of one small write per reader.
		l.startWriter(nil, 0)
		return
	}
	var keep []outFrame // the last batch's slice, emptied: the next queue
	for range inlineRounds {
		batch := l.takeBatch(keep)
		if batch == nil {
			return // the turn is over
		}
		var n int64
		var err error
		if l.wsNow != nil {
			n, err = l.wsWriteNow(batch) // not through writeNow: one frame less deep
		} else {
			n, err = l.writeNow(batch)
		}
		if err != nil {
			l.writeFailed(batch, n, err)
			return
		}
		if total := batchBytes(batch); n < total {
			// The socket is full (or the batch has more frames than one
			// writev takes): a goroutine waits to write the rest.
			if n < iovBytes(batch) {
				l.setStalled()
			}
			l.startWriter(batch, n)
			return
		}
		l.wrote(n)
		l.gw.freeAll(batch)
		keep = batch[:0]
	}
	l.spareQueue(keep)
	l.startWriter(nil, 0)
}

// spareQueue offers keep, an emptied batch slice, as the next queue: it
// becomes the queue if none has been started since the batch was taken, so
// the next frames do not grow a queue from nothing. The caller owns l's
// writer turn.
func (l *link) spareQueue(keep []outFrame) {
	if keep == nil {
		return
	}
	l.mu.Lock()
	if l.queue == nil && l.spare == nil && cap(keep) <= l.spareMax() {
		l.spare = keep
	}
	l.mu.Unlock()
}

// startWriter hands l's writer turn to a writer goroutine. Inline turns run
// on a reader, which the gateway's wait group already counts; only writer
// goroutines are added to it, here.
func (l *link) startWriter(batch []outFrame, skip int64) {
	l.gw.wg.Add(1)
	go l.writeLoop(batch, skip)
}

// contended reports whether several readers have been feeding l lately:
// frames from more than one reader were queued to it between recent
// flushes. The caller owns l's writer turn.
func (l *link) contended() bool {
	l.mu.Lock()
	l.turnOwner = nil // the turn is being run (flushInline)
	n := l.pushers
	l.pushers = 0
	l.lastFrom = nil
	l.mu.Unlock()
	// A decaying score: one flush with a single pusher does not end a
	// busy period, and a quiet link returns to inline writes after a few.
	l.contention -= l.contention / 4
	if n > 1 {
		l.contention += 16
	}
	return l.contention >= 8
}

// takeBatch takes every queued frame for the current writer, leaving keep
// (an emptied slice, or nil) as the new queue. When there is nothing to
// write, or the link is closing hard, it ends the writer's turn instead
// (closing the socket if the link is closing) and returns nil.
func (l *link) takeBatch(keep []outFrame) []outFrame {
	l.mu.Lock()
	batch := l.queue
	l.batchBytes = 0 // the last batch is written
	if l.shares != nil {
		l.shares.written()
	}
	l.stalled = false
	// No reader holds the turn on its dirty list any more: it is being
	// run (flushInline reaches here, or contended, under the same lock
	// flushDirty would otherwise take once more per link).
	l.turnOwner = nil
	if len(batch) == 0 || (l.closed && !l.flush) {
		l.queue, l.queued, l.queuedBytes = nil, 0, 0
		l.writing = false
		if l.waiters > 0 {
			l.space.Broadcast()
		}
		closing, hard := l.closed, l.closed && !l.flush
		if !closing && cap(keep) <= l.spareMax() {
			l.spare = keep // small enough to keep while idle
		}
		done := l.finishedLocked()
		l.mu.Unlock()
		if hard {
			l.lose(batch, 0)
		}
		l.gw.freeAll(batch)
		if hard {
			l.conn.Close()
		} else if closing {
			l.shutWrite() // flushed: see drain.go
		}
		if done {
			l.gw.untrack(l)
		}
		return nil
	}
	l.queue = keep
	l.turnFrames, l.queued = l.queued, 0
	l.batchBytes, l.queuedBytes = l.queuedBytes, 0
	if l.waiters > 0 {
		l.space.Broadcast()
	}
	l.mu.Unlock()
	return batch
}

// spareMax is the largest queue slice l keeps between writer turns.
func (l *link) spareMax() int {
	if l.side == sideServer {
		return maxSpare
	}
	return idleSpare
}

// writeFailed ends the writer's turn after a write error, of which written
// bytes of batch went out: the link closes and every frame still held or
// queued is freed, the data frames among them counted (see lose).
func (l *link) writeFailed(batch []outFrame, written int64, err error) {
	l.stats.bytesOut.Add(uint64(written))
	reason := ReasonWriteError
	switch {
	case errors.Is(err, ws.ErrCloseSent) && errors.Is(err, ws.ErrProtocol):
		reason = ReasonProtocolError // the answer to a malformed Close frame
	case errors.Is(err, ws.ErrCloseSent):
		// The WebSocket client sent its Close frame and was answered
		// (its reader closes the link as peer closed): no data may follow.
		reason = ReasonPeerClosed
	}
	l.close(reason, err, false)
	l.mu.Lock()
	draining := l.flush
	l.flush = false // nothing more can be written: the drain ends here
	l.mu.Unlock()
	if draining {
		// Closing gracefully, the link waited for its writer to shut the
		// writing side (shutWrite), which now never comes: close the
		// socket, or it would stay open until the peer or Shutdown's
		// deadline closed it.
		l.abortWait()
		l.conn.Close()
	}
	l.lose(batch, written)
	l.gw.freeAll(batch)
	l.mu.Lock()
	l.writing = false
	rest := l.queue
	l.queue, l.queued, l.spare = nil, 0, nil
	l.queuedBytes, l.batchBytes = 0, 0
	if l.shares != nil {
		l.shares.reset()
	}
	done := l.finishedLocked()
	l.mu.Unlock()
	l.lose(rest, 0)
	l.gw.freeAll(rest)
	if done {
		l.gw.untrack(l)
	}
}

// wrote counts a batch written in full: n bytes, turnFrames frames.
func (l *link) wrote(n int64) {
	l.stats.bytesOut.Add(uint64(n))
	l.stats.framesOut.Add(uint64(l.turnFrames))
}

// refreshWriteDeadline pushes the write deadline out to the idle timeout
// when it has aged by a sixteenth of it: a peer that takes longer than the
// idle timeout to take a batch is dead. The caller owns the writer turn.
func (l *link) refreshWriteDeadline() {
	if l.idle <= 0 {
		return
	}
	if l.gw.nanotime()-l.lastWrite > int64(l.idle/16) {
		now := time.Now()
		l.conn.SetWriteDeadline(now.Add(l.idle))
		l.lastWrite = now.UnixNano()
	}
}

func batchBytes(batch []outFrame) int64 {
	var n int64
	for _, f := range batch {
		n += int64(len(f.b))
	}
	return n
}

// writeLoop is a writer goroutine: it writes queued frames until the queue is
// empty, then exits. Each round takes the whole queue and writes it with one
// writev (net.Buffers), so a busy link costs one syscall for many frames. It
// may start with a batch of which skip bytes are already written (handed
// over by flushInline); startWriter counted it in the wait group.
func (l *link) writeLoop(batch []outFrame, skip int64) {
	defer l.gw.wg.Done()
	// vec is iovec scratch, reused across rounds; a server link keeps it
	// between writer turns too (vecSpare, touched only by the turn's owner).
	vec := l.vecSpare
	l.vecSpare = nil
	var keep []outFrame // the last batch's slice, emptied, to become the next queue
	for {
		if batch == nil {
			if l.side == sideServer {
				// Let the readers that feed this server queue what they
				// have read before the batch is taken: under load one
				// writev then carries many clients' frames.
				runtime.Gosched()
				l.vecSpare = vec // for the next turn, if this one ends now
			}
			if batch = l.takeBatch(keep); batch == nil {
				return
			}
			if l.side == sideServer {
				vec, l.vecSpare = l.vecSpare, nil // still this turn's
			}
		}
		l.refreshWriteDeadline()
		if skip == 0 && l.canWriteNow() {
			// One non-blocking attempt first: it tells whether the
			// peer's socket is full (see full), and costs no syscall
			// more when it is not.
			n, err := l.writeNow(batch)
			if err != nil {
				l.writeFailed(batch, n, err)
				return
			}
			if n < iovBytes(batch) {
				l.setStalled()
			}
			skip = n
		} else if !l.canWriteNow() {
			l.setStalled() // a blocking write: the peer may not be taking it
		}
		var n int64
		var err error
		if skip < batchBytes(batch) {
			n, vec, err = l.writeBatch(batch, skip, vec)
		}
		if err != nil {
			l.writeFailed(batch, skip+n, err)
			return
		}
		l.wrote(skip + n)
		l.gw.freeAll(batch)
		// Reuse the batch's slice as the next queue unless it is large and
		// was mostly unused: queues grow with use and shrink back.
		keep = nil
		if cap(batch) <= maxSpare || len(batch) >= cap(batch)/4 {
			keep = batch[:0]
		}
		if cap(vec) > maxSpare && len(batch) < cap(vec)/4 {
			vec = nil
		}
		batch, skip = nil, 0
	}
}

// coalesceMax bounds the copy buffer used to merge small frames into one
// Write on connections without writev.
const coalesceMax = 64 << 10

// writeBatch writes batch, but for its first skip bytes, to the connection
// in as few syscalls as it can, blocking until done. A TCP or Unix socket
// gets one writev (net.Buffers); any other net.Conn (TLS, snet) gets the
// frames copied into one buffer of up to coalesceMax bytes per Write, so a
// TLS connection sends one record for many frames. vec is scratch space for
// the iovec, returned for reuse. It returns the bytes written past skip.
func (l *link) writeBatch(batch []outFrame, skip int64, vec [][]byte) (int64, [][]byte, error) {
	// The writes consume the slice they are given, so they get a copy of
	// the batch; the batch itself is kept to free the frames.
	vec = vec[:0]
	for _, f := range batch {
		vec = append(vec, f.b)
	}
	defer clear(vec)
	bufs := skipBytes(vec, skip)
	aligned := skip == 0
	if l.wsNow != nil && skip > 0 {
		// A WebSocket message that writeNow started and did not finish:
		// its rest goes first, without a header of its own. Messages
		// end at frame boundaries, so what follows starts at one.
		n, err := l.wsNow.FinishMessage(bufs)
		if err != nil {
			return n, vec[:0], err
		}
		bufs, aligned = skipBytes(bufs, n), true
		m, err := l.writeCoalesced(bufs, aligned)
		return n + m, vec[:0], err
	}
	switch l.conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		iov := net.Buffers(bufs)
		n, err := iov.WriteTo(l.conn)
		return n, vec[:0], err
	}
	n, err := l.writeCoalesced(bufs, aligned)
	return n, vec[:0], err
}

// skipBytes drops the first skip bytes of bufs, reslicing (not copying).
func skipBytes(bufs [][]byte, skip int64) [][]byte {
	for skip > 0 && len(bufs) > 0 {
		if n := int64(len(bufs[0])); n <= skip {
			bufs, skip = bufs[1:], skip-n
			continue
		}
		bufs[0] = bufs[0][skip:]
		skip = 0
	}
	return bufs
}

// writeCoalesced writes bufs to a connection without writev, copying runs
// of small frames into one pooled buffer per Write. When bufs start at a
// frame (aligned), a Write never ends inside a frame: a fan-out delivery's
// header and its shared payload are two buffers, and a WebSocket client
// must get whole frames in each message (docs/protocol.md §6).
func (l *link) writeCoalesced(bufs [][]byte, aligned bool) (int64, error) {
	var total int64
	var cur frameCursor
	for i := 0; i < len(bufs); {
		// Gather frames [i, j) that fit in one copy buffer, and the rest
		// of a frame that does not end in bufs[j-1].
		j, size, whole := i, 0, true
		for j < len(bufs) && (j == i || !whole || size+len(bufs[j]) <= coalesceMax) {
			size += len(bufs[j])
			whole = !aligned || cur.advance(bufs[j])
			j++
		}
		if j == i+1 {
			n, err := l.conn.Write(bufs[i])
			total += int64(n)
			if err != nil {
				return total, err
			}
			i = j
			continue
		}
		buf := l.gw.cfg.MemPool.Alloc(size)
		off := 0
		for _, f := range bufs[i:j] {
			off += copy(buf[off:], f)
		}
		n, err := l.conn.Write(buf)
		l.gw.free(buf)
		total += int64(n)
		if err != nil {
			return total, err
		}
		i = j
	}
	return total, nil
}

// free returns a frame buffer to the pool.
func (g *Gateway) free(frame []byte) { g.cfg.MemPool.Free(frame) }

// freeAll releases every frame in batch and clears batch.
func (g *Gateway) freeAll(batch []outFrame) {
	for i, f := range batch {
		g.release(f)
		batch[i] = outFrame{}
	}
}
