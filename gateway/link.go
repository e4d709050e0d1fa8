package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
)

// side says which port a link came in on.
type side uint8

const (
	sideClient side = iota
	sideServer
)

func (s side) String() string {
	if s == sideClient {
		return "client"
	}
	return "server"
}

// pushMode says what a push does when the destination's queue is full.
type pushMode uint8

const (
	// pushDrop disconnects the destination as a slow consumer. Used toward
	// clients: a slow client must never stall the server feeding it.
	pushDrop pushMode = iota
	// pushWait blocks the pusher until there is room (back-pressure). Used
	// by a client's reader toward a server.
	pushWait
	// pushForce queues past the limit. Used for a server's replies to itself
	// (Ping, Accept), which its own reader generates at its own pace, and
	// for the Close a client's teardown sends each of its servers (one per
	// virtual connection), which must not wait behind one full server.
	pushForce
)

// link is one physical connection: a client or an authenticated server.
//
// Goroutines: one reader (readLoop), which also tears the link down when it
// ends, and a writer (writeLoop) that runs only while frames are queued, so an
// idle link costs one goroutine. See docs/architecture.md.
type link struct {
	gw         *Gateway
	conn       net.Conn
	side       side
	id         uint32 // client ID (gateway-assigned) or server ID
	idle       time.Duration
	limit      int // send queue limit, in frames
	limitBytes int // send queue limit, in bytes (queued and being written)
	stats      linkCounters
	since      time.Time    // when the link was accepted (servers: authenticated)
	share      *budgetShare // a client's source's share of LargeFrameBudget, or nil

	lastDeadline int64                // reader only: when the read deadline was last pushed out (Unix ns)
	lastWrite    int64                // writer only: when the write deadline was last pushed out (Unix ns)
	stopRead     atomic.Bool          // set by stopReading: the reader must not route again
	draining     bool                 // reader only: stopped, reading on to throw away (drainInput)
	closing      atomic.Bool          // mirrors closed, for the reader's per-frame check without the lock
	aborted      atomic.Bool          // closed hard (not flushed): a wait for room at a server ends (abortWait)
	waitOn       atomic.Pointer[link] // the server whose room this link's reader waits for, or nil

	// Lazy reads (ReadLazy): the socket's RawConn, the callback given to
	// it (made once per link), and the state it works on.
	raw     syscall.RawConn
	rawRead func(fd uintptr) bool
	lazyGet func() []byte
	lazyPut func()
	lazyN   int
	lazyErr error
	tryRead func(fd uintptr) bool // TryRead's callback, made on first use
	tryBuf  []byte
	wstate  *writeState // non-blocking write scratch, made on first use
	// lazy is conn itself when it reads lazily on its own (a WebSocket
	// connection decodes its frames in the reader's buffer, see
	// internal/ws); ws says conn is a WebSocket connection.
	lazy proto.LazyReader
	ws   bool
	// wsNow is conn when it writes a WebSocket message without blocking
	// (plain TCP): the readers then write to this link inline, as to a
	// TCP link (flushInline), and its writer tries a non-blocking write
	// first.
	wsNow wsNowWriter

	// idNext..idEnd-1 are the ConnIDs this link's reader has taken for the
	// Dials it reads (see newConnID). Reader only.
	idNext, idEnd uint32

	// fan is a server link's fan-out state, made at its first fan-out
	// command (groups.go); fanQueued counts the bytes of the deliveries
	// its reader queued since it last flushed (see fanout.go). Reader
	// only but for fan's pointer, which closers and Stats load.
	fan       atomic.Pointer[fanState]
	fanQueued int
	fanStaged bool // Publishes are staged, to be delivered before anything else (fanout.go)

	// dirty lists the links whose writer turn this link's reader took
	// (enqueue) and must still flush (flushDirty). Reader only.
	dirty []*link
	// routes caches the virtual connections this link's reader looked up
	// last, by a hash of the ConnID (routeSlot), so that data on
	// a live virtual connection takes no lock on the shared route table.
	// Reader only; see route.
	routes []*vconn

	// mu guards the send queue and the closing state.
	mu      sync.Mutex
	space   sync.Cond  // signalled when the writer takes frames or the link closes
	waiters int        // pushers blocked on space
	queue   []outFrame // frames waiting for the writer (small ones packed together, see enqueue)
	queued  int        // frames in queue
	// queuedBytes is the bytes of the frames in queue; batchBytes those of
	// the batch the writer holds, until it is written (takeBatch). Their
	// sum is what the link's peer makes the gateway hold; limitBytes
	// bounds it.
	queuedBytes, batchBytes int
	// shares bounds what each client has queued toward a server
	// (ServerSendQueueBytesPerClient; nil for clients, and when unbounded).
	shares *clientShares
	// turnOwner is the reader whose dirty list holds l's writer turn, to
	// be flushed when that reader's batch ends (see enqueue), or nil.
	turnOwner *link
	// stalled is set when l's writer found l's socket full, until it
	// writes a batch in full (see full).
	stalled  bool
	pushers  int   // changes of pushing reader since contended() last asked
	lastFrom *link // the reader that pushed last
	// contention scores how many readers feed this link (writer turn
	// owner only; see contended).
	contention int
	spare      []outFrame // the writer's previous batch, reused as the next queue
	turnFrames int        // frames in the batch the writer holds (turn owner only)
	vecSpare   [][]byte   // a server's writer scratch, kept between turns (turn owner only)
	writing    bool       // a writer goroutine is running
	closed     bool       // no more frames are accepted
	torn       bool       // teardown has run: the reader is done with the link
	gone       bool       // untracked: counted into the totals, see finishedLocked
	flush      bool       // closed gracefully: the writer drains the queue first
	wshut      bool       // closed gracefully and the queue written: the writing side is shut (shutWrite)
	rdone      bool       // the reader will not read again (readEnded)
	reason     Reason
	cause      error

	// lostFrames and lostBytes count the data frames this link closed
	// with unwritten (see lose), for its log line.
	lostFrames, lostBytes atomic.Uint64

	// vmu guards a client link's virtual connections (a server link's are
	// found in the route table; see attach).
	vmu      sync.Mutex
	vconns   map[uint32]*vconn
	dialed   int         // virtual connections this client dialed (ClientMaxConn)
	dialedBy int         // virtual connections servers dialed to this client (ClientMaxServerConns)
	dead     atomic.Bool // torn down: no virtual connection may be added (a client's is set under vmu)
}

func newLink(g *Gateway, conn net.Conn, s side, id uint32) *link {
	l := &link{gw: g, conn: conn, side: s, id: id, since: time.Now()}
	if s == sideClient {
		l.idle, l.limit, l.limitBytes = g.cfg.ClientIdleTimeout, g.cfg.ClientSendChanSize, g.cfg.ClientSendQueueBytes
	} else {
		l.idle, l.limit, l.limitBytes = g.cfg.ServerIdleTimeout, g.cfg.ServerSendChanSize, g.cfg.ServerSendQueueBytes
		if n := g.cfg.ServerSendQueueBytesPerClient; n > 0 {
			l.shares = &clientShares{limit: n}
		}
	}
	l.space.L = &l.mu
	l.routes = make([]*vconn, 1<<routeCacheBits[s])
	if wc, ok := conn.(transportConn); ok && wc.Transport() != "tcp" {
		l.ws = true
		if lr, ok := conn.(proto.LazyReader); ok {
			l.lazy = lr
		}
		if wn, ok := conn.(wsNowWriter); ok && wn.CanWriteNow() {
			l.wsNow = wn
		}
		if ac, ok := conn.(activityConn); ok {
			// Control frames and empty messages count as activity
			// (docs/protocol.md §8): they push the idle deadline out.
			ac.SetActivityHook(l.refreshReadDeadline)
		}
	}
	if sc, ok := conn.(syscall.Conn); ok && lazyReads {
		if raw, err := sc.SyscallConn(); err == nil {
			l.raw = raw
			l.rawRead = l.readReady
		}
	}
	return l
}

// Read implements io.Reader for the frame reader: it pushes the read
// deadline out before reading, but only when it has aged by a sixteenth of
// the idle timeout, so the timer is not reset on every syscall. Any byte
// received counts as activity.
func (l *link) Read(p []byte) (int, error) {
	if err := l.beforeRead(); err != nil {
		return 0, err
	}
	return l.conn.Read(p)
}

// beforeRead pushes the read deadline out and checks the link is still to
// be read.
func (l *link) beforeRead() error {
	if err := l.refreshReadDeadline(); err != nil {
		return err
	}
	if l.stopped() {
		return errStopped
	}
	return nil
}

// refreshReadDeadline pushes the read deadline out when it has aged by a
// sixteenth of the idle timeout. Every read of the link calls it (Read,
// ReadLazy, TryRead): a reader that waited a while elsewhere (paused by
// back-pressure toward a full server) must not find its deadline passed
// when it reads on, for its peer was not idle.
func (l *link) refreshReadDeadline() error {
	if l.draining || l.idle <= 0 {
		return nil // drainInput sets its own deadlines
	}
	// The coarse clock decides when to refresh; the deadline itself is
	// set from the precise time, so a lagging clock never ends an idle
	// timeout early.
	if l.gw.nanotime()-l.lastDeadline > int64(l.idle/16) {
		now := time.Now()
		if err := l.conn.SetReadDeadline(now.Add(l.idle)); err != nil {
			return err
		}
		l.lastDeadline = now.UnixNano()
	}
	return nil
}

// ReadLazy implements proto.LazyReader: the reader waits for the socket to
// be readable holding no buffer, and takes one from the pool only to read.
// An idle link therefore costs no read buffer.
func (l *link) ReadLazy(get func() []byte, put func()) (int, error) {
	if l.lazy != nil {
		if l.stopped() {
			return 0, errStopped
		}
		return l.lazy.ReadLazy(get, put)
	}
	if l.raw == nil {
		return l.Read(get())
	}
	if l.stopped() {
		return 0, errStopped
	}
	l.lazyGet, l.lazyPut = get, put
	err := l.raw.Read(l.rawRead)
	n, rerr := l.lazyN, l.lazyErr
	l.lazyGet, l.lazyPut, l.lazyN, l.lazyErr = nil, nil, 0, nil
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readLoop reads frames until the connection ends, then tears the link down.
//
// It is kept small on purpose: an idle link's reader sits blocked at the
// bottom of readLoop → ReadFrame → ReadLazy, and when those frames are
// small the goroutine fits in the minimum 2 KiB stack. For the same reason
// the read deadline is pushed out here, at the top, rather than inside
// ReadLazy (setting a deadline runs deep in the runtime and would grow the
// stack for good).
func (l *link) readLoop() {
	defer l.gw.wg.Done()
	fr := l.newFrameReader()
	// Frames and bytes read are counted here and added to the link's
	// counters once per batch of frames, not per frame.
	var frames, bytes uint64
	ahead := 0 // reads since the last flush that ReadMore added
	for {
		if err := l.beforeRead(); err != nil && (err != errStopped || !fr.HasFrame()) {
			// Stopped by Shutdown: the frames already buffered whole are
			// routed first (HasFrame), since the next ReadFrame returns
			// them without reading.
			l.readFailed(err)
			break
		}
		frame, ref, borrowed, err := fr.ReadFrameBorrowed(shareMin)
		if err != nil {
			l.readFailed(err)
			break
		}
		frames++
		bytes += uint64(len(frame))
		if !l.handle(outFrame{frame, ref}, borrowed) {
			break
		}
		// A read that filled the buffer likely left more in the socket:
		// read it (without waiting) before writing, so that each
		// destination gets one write for all of it; but never more than
		// maxReadAhead reads in a row.
		for ahead < maxReadAhead && !fr.HasFrame() && fr.ReadMore() {
			ahead++
		}
		if !fr.HasFrame() {
			// The next read would wait on the socket: first write out
			// what the frames read so far queued to other links.
			ahead = 0
			l.countIn(frames, bytes)
			frames, bytes = 0, 0
			l.unstage()
			l.flushDirty()
		}
	}
	l.unstage()
	l.countIn(frames, bytes)
	if l.stopRead.Load() {
		// Stopped by Shutdown, which tears every link down itself once
		// all readers have stopped routing, so that no reader routes a
		// frame to a virtual connection another reader's teardown just
		// closed. The reader then reads on, throwing away what the peer
		// still sends, until the link closes (see drain.go).
		l.flushDirty()
		l.gw.readers.Done()
		l.drainInput(fr)
		fr.Release()
		return
	}
	fr.Release()
	l.gw.teardown(l)
	l.flushDirty()
	l.gw.readers.Done()
}

func (l *link) newFrameReader() *proto.FrameReader {
	cfg := &l.gw.cfg
	bufSize := cfg.ClientBufferSize
	if l.side == sideServer {
		bufSize = cfg.ServerBufferSize
	}
	fr := proto.NewFrameReader(l, cfg.MemPool, bufSize, cfg.MaxPacket)
	// Servers are authenticated, and their frames are what clients wait
	// for: only clients reserve in LargeFrameBudget, each in its source's
	// share when there is one.
	switch {
	case l.side == sideServer:
	case l.share != nil:
		fr.SetBudgetShare(l.share.BudgetShare)
		fr.OnBudgetEvict(l.evictLarge)
	default:
		fr.SetBudget(l.gw.budget)
		fr.OnBudgetEvict(l.evictLarge)
	}
	return fr
}

// evictLarge closes a client whose partial large frame the budget took back
// for a client within its fair share (see proto.Budget): its reader, blocked
// waiting for the frame's body, then fails and gives the buffer back.
func (l *link) evictLarge() { l.close(ReasonLimit, errBudgetEvicted, false) }

// readFailed closes the link after a read error, unless the reader was
// stopped by Shutdown, which closes the link itself once every reader has
// stopped (so that frames other readers still route to it are not lost).
func (l *link) readFailed(err error) {
	if l.stopRead.Load() {
		return
	}
	l.close(classify(err), err, false)
}

// maxReadAhead bounds the reads a reader makes, past one that filled its
// buffer, before it writes out what it has queued (see readLoop).
const maxReadAhead = 4

// countIn adds frames and bytes read to the link's counters.
func (l *link) countIn(frames, bytes uint64) {
	if frames > 0 {
		l.stats.framesIn.Add(frames)
		l.stats.bytesIn.Add(bytes)
	}
}

// shareMin is the size from which a data frame is forwarded in the read
// buffer it arrived in (proto.FrameReader.ReadFrameBorrowed), rather than
// copied out of it into its destination's queue (packed with other small
// frames, see enqueue): copying a large frame costs more than sharing the
// buffer, a small one less.
const shareMin = 1 << 10

// handle routes one frame read from l and reports whether to read on. A
// borrowed frame stays valid only until l's next read.
func (l *link) handle(f outFrame, borrowed bool) bool {
	if id := proto.Header(f.b).ConnID(); id != 0 {
		l.unstage()
		l.gw.forward(l, id, f, borrowed)
	} else if _, ok := proto.FanoutType(f.b); ok {
		l.gw.fanout(l, f, borrowed) // fanout.go; it owns f
	} else {
		l.unstage()
		l.gw.command(l, f.b)
		if !borrowed {
			l.gw.release(f)
		}
	}
	return !l.isClosed()
}

// classify maps a read error to a disconnect reason.
func classify(err error) Reason {
	var ne net.Error
	switch {
	case errors.Is(err, ws.ErrControlWrite):
		return ReasonWriteError // a Pong the client did not take in time
	case errors.Is(err, proto.ErrShortFrame), errors.Is(err, proto.ErrFrameTooLarge), errors.Is(err, ws.ErrProtocol):
		return ReasonProtocolError
	case errors.Is(err, proto.ErrBudgetExceeded):
		return ReasonLimit
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonIdleTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return ReasonPeerClosed
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return ReasonPeerClosed
	}
	return ReasonReadError
}

// transportConn is a connection that names its transport: "ws" or "wss"
// for internal/ws's.
type transportConn interface{ Transport() string }

// activityConn is a connection that reads frames carrying no payload
// (WebSocket control frames) and reports them through a hook.
type activityConn interface{ SetActivityHook(func() error) }

// wsNowWriter is a WebSocket connection whose messages the link may write
// itself with a non-blocking writev on its socket, between BeginMessage
// and EndMessage, and that finishes a message such a write left unfinished
// (see internal/ws.Conn.BeginMessage).
type wsNowWriter interface {
	CanWriteNow() bool
	BeginMessage(n int) ([]byte, bool)
	EndMessage(n int, w int64, err error) int64
	RawConn() syscall.RawConn
	FinishMessage(bufs [][]byte) (int64, error)
}

// canWriteNow reports whether l's socket takes non-blocking writes
// (writeNow): a TCP socket, or a WebSocket connection on one.
func (l *link) canWriteNow() bool { return l.raw != nil || l.wsNow != nil }

// isWS reports whether conn is a WebSocket connection.
func isWS(conn net.Conn) bool {
	tc, ok := conn.(transportConn)
	return ok && tc.Transport() != "tcp"
}

// transport names l's transport for the log: tcp, ws or wss.
func (l *link) transport() string {
	if tc, ok := l.conn.(transportConn); ok {
		return tc.Transport()
	}
	return "tcp"
}

func (l *link) isClosed() bool { return l.closing.Load() }

// close marks the link closed with reason and cause; the first call wins.
// With flush, frames already queued are written before the socket closes
// (graceful shutdown: see drain.go); otherwise the socket closes at once,
// which also ends the reader, which tears the link down.
func (l *link) close(reason Reason, cause error, flush bool) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed, l.flush, l.reason, l.cause = true, flush, reason, cause
	l.closing.Store(true)
	writing := l.writing
	if l.waiters > 0 {
		l.space.Broadcast()
	}
	done := l.finishedLocked()
	l.mu.Unlock()
	if !flush {
		l.abortWait()
		l.conn.Close()
	} else if !writing {
		l.shutWrite()
	}
	if done {
		l.gw.untrack(l)
	}
	// With flush and a writer running, the writer shuts the writing side
	// when the queue is empty (shutWrite).
}

// abortWait marks a link closed hard and wakes its reader if it waits for
// room at a server (see enqueue): the frame it holds is then dropped, and
// counted as undelivered, rather than kept until the server takes more.
func (l *link) abortWait() {
	l.aborted.Store(true)
	if w := l.waitOn.Load(); w != nil {
		w.mu.Lock()
		w.space.Broadcast()
		w.mu.Unlock()
	}
}

// finishedLocked reports, once, that the link is over for good: closed,
// torn down by its reader, and with no writer turn running. The caller holds
// mu and, when it returns true, untracks the link after unlocking, so the
// link's traffic counters are folded into the totals exactly once, after
// the last byte was counted.
func (l *link) finishedLocked() bool {
	if l.gone || !l.closed || !l.torn || l.writing {
		return false
	}
	l.gone = true
	return true
}

// dropScratch lets go of what a finished link kept for reuse: its route
// cache, spare queue and write scratch. Other links' route caches may keep
// a closed virtual connection, and through it this link, until their entry
// is replaced; this keeps that to the link itself, and stops a chain of
// caches keeping closed links alive. It runs once the link is finished
// (finishedLocked): its reader has torn it down, so no longer routes, and
// no writer turn runs.
func (l *link) dropScratch() {
	l.mu.Lock()
	l.routes, l.spare, l.vecSpare, l.wstate = nil, nil, nil, nil
	l.mu.Unlock()
}

// closeReason returns why the link closed.
func (l *link) closeReason() (Reason, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reason, l.cause
}

// stopReading makes the reader return at its next read: it sets a flag the
// Read wrapper checks after pushing its deadline, then expires the deadline.
func (l *link) stopReading() {
	l.stopRead.Store(true)
	l.conn.SetReadDeadline(time.Now())
}
