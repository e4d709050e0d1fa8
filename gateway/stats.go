package gateway

import "sync/atomic"

// Stats is a snapshot of the gateway's counters.
type Stats struct {
	ClientConns  int64 // client physical connections open now
	ServerConns  int64 // authenticated server connections open now
	VirtualConns int64 // virtual connections open now

	Client Traffic // frames and bytes on the client side
	Server Traffic // frames and bytes on the server side

	DialsAccepted uint64                   // Dials that opened a virtual connection
	DialsRefused  [numRefuseReasons]uint64 // Dials refused, by RefuseReason
	Disconnects   [numReasons]uint64       // physical disconnects, by Reason
	// ClientDisconnects is the client side's part of Disconnects.
	ClientDisconnects [numReasons]uint64
	AuthFailures      uint64   // server handshakes that failed
	FramesDropped     uint64   // data frames for a dead, foreign or closing ConnID
	ClosesIgnored     uint64   // Close for an unknown or foreign ConnID
	ClientAccepts     uint64   // client connections accepted in all
	ServerAccepts     uint64   // server connections authenticated in all
	QueueHighWater    [2]int64 // largest send queue seen, [client, server], in frames
	// LargeFrameBytes is what unfinished large client frames hold of
	// LargeFrameBudget now, in bytes (see Config.LargeFrameBudget).
	LargeFrameBytes int64
	// LargeFrameEvictions counts client connections closed (reason
	// "connection limit") because their source was over its fair share of
	// a full LargeFrameBudget when a connection within its share needed
	// room (see proto.Budget).
	LargeFrameEvictions uint64

	// Undelivered counts, by the reason their link closed, the data frames
	// the gateway had accepted for a link and never wrote whole: still
	// queued or partly written when the link closed, or routed to it while
	// it was closing. Undelivered[ReasonShutdown] is what a Shutdown cut
	// short by its deadline lost. Commands (Ping answers, Close notices)
	// are not counted: they go with the connection.
	Undelivered [numReasons]FrameCount
	// Discarded counts the frames (commands included) and bytes that peers
	// sent after Shutdown stopped reading them: the gateway reads them and
	// throws them away until the peer closes, so that closing the socket
	// resets nothing (see docs/reliability.md, "SIGTERM under load"). Bytes
	// include a partial frame left in a read buffer when reading stopped.
	Discarded FrameCount

	// AcceptErrors counts the Accept calls that failed, [client, server]
	// (out of file descriptors, say); each listener backs off, 5 ms
	// doubling to 1 s, and logs one line per 10 s while they fail.
	AcceptErrors [2]uint64

	// MemReleased counts the bytes of pool pages the gateway let go of
	// (MemReleaseInterval), MemReclaims the times it then ran
	// debug.FreeOSMemory.
	MemReleased, MemReclaims uint64

	// Fan-out (docs/protocol.md §7): see FanoutStats.
	Fanout FanoutStats

	// WS is the part of the client side that came over WebSocket
	// (docs/protocol.md §8): included in ClientConns, ClientAccepts,
	// Client and Disconnects too.
	WS TransportStats
}

// TransportStats counts the client connections of one transport.
type TransportStats struct {
	Conns       int64              // open now
	Accepts     uint64             // accepted in all
	Traffic     Traffic            // frames and bytes
	Disconnects [numReasons]uint64 // by Reason
}

// FanoutStats counts the servers' fan-out: Multicast, Join, Leave, Publish.
type FanoutStats struct {
	// Groups and Memberships are the groups of the server connections
	// open now, and their memberships, in all.
	Groups, Memberships int64
	// Deliveries counts the data frames fan-out queued to clients (one
	// per member per Publish, one per listed ConnID per Multicast). A
	// delivery to a client that was closing is counted in Undelivered
	// instead.
	Deliveries uint64
	// Skipped counts the ConnIDs fan-out commands named that were not
	// live, not the sending server's, or closing: skipped without a
	// reply (a race with Close is normal).
	Skipped uint64
	// JoinsRefused counts the Joins ignored because they would have
	// passed ServerMaxGroups or ServerMaxMemberships.
	JoinsRefused uint64
}

// FrameCount is a number of frames and their bytes (headers included).
type FrameCount struct {
	Frames, Bytes uint64
}

// UndeliveredAt returns the undelivered count for links that closed with
// reason r.
func (s Stats) UndeliveredAt(r Reason) FrameCount { return s.Undelivered[r] }

// Traffic counts frames and bytes in both directions on one side.
type Traffic struct {
	FramesIn, FramesOut uint64 // frames read from / written to that side
	BytesIn, BytesOut   uint64 // bytes read from / written to that side
}

// linkCounters are one link's traffic counters, and the Dials it got
// accepted. The reader alone adds to the In fields and dials, and the
// writer alone to the Out fields, so the atomics are never contended; Stats
// sums them over live links at snapshot time.
type linkCounters struct {
	framesIn, bytesIn   atomic.Uint64
	framesOut, bytesOut atomic.Uint64
	dials               atomic.Uint64
}

func (c *linkCounters) addTo(t *Traffic) {
	t.FramesIn += c.framesIn.Load()
	t.BytesIn += c.bytesIn.Load()
	t.FramesOut += c.framesOut.Load()
	t.BytesOut += c.bytesOut.Load()
}

// counters are the gateway-wide counters of rare events, and the traffic of
// links that have closed.
type counters struct {
	clientConns, serverConns     atomic.Int64
	dialsRefused                 [numRefuseReasons]atomic.Uint64
	disconnects                  [numReasons]atomic.Uint64
	authFailures                 atomic.Uint64
	framesDropped, closesIgnored atomic.Uint64
	clientAccepts, serverAccepts atomic.Uint64
	wsConns                      atomic.Int64
	wsAccepts                    atomic.Uint64
	wsDisconnects                [numReasons]atomic.Uint64
	clientDisconnects            [numReasons]atomic.Uint64
	wsClosed                     linkCounters // traffic of closed WebSocket links
	highWater                    [2]atomic.Int64
	acceptErrors                 [2]atomic.Uint64 // failed Accepts, [client, server]
	closed                       [2]linkCounters  // traffic of closed links, [client, server]
	undelivered                  [numReasons]frameCounter
	discarded                    frameCounter
	memReleased, memReclaims     atomic.Uint64
	fan                          fanCounters // of server links that have closed
}

// fanCounters are the fan-out counters of server links that have closed.
type fanCounters struct{ deliveries, skipped, joinsRefused atomic.Uint64 }

// retire folds a closing link's fan-out counters into the totals.
func (c *fanCounters) retire(fs *fanState) {
	if fs != nil {
		c.deliveries.Add(fs.deliveries.Load())
		c.skipped.Add(fs.skipped.Load())
		c.joinsRefused.Add(fs.joinsRefused.Load())
	}
}

// addTo adds the fan-out figures of fs (a live server link's) to s.
func (fs *fanState) addTo(s *FanoutStats) {
	if fs != nil {
		s.Groups += fs.nGroups.Load()
		s.Memberships += fs.nMembers.Load()
		s.Deliveries += fs.deliveries.Load()
		s.Skipped += fs.skipped.Load()
		s.JoinsRefused += fs.joinsRefused.Load()
	}
}

// frameCounter is a FrameCount that is added to concurrently.
type frameCounter struct{ frames, bytes atomic.Uint64 }

func (c *frameCounter) add(frames, bytes uint64) {
	if frames > 0 || bytes > 0 {
		c.frames.Add(frames)
		c.bytes.Add(bytes)
	}
}

func (c *frameCounter) load() FrameCount {
	return FrameCount{Frames: c.frames.Load(), Bytes: c.bytes.Load()}
}

// noteQueueLen records a send queue length for the high-water mark.
func (c *counters) noteQueueLen(s side, n int) {
	hw := &c.highWater[s]
	for {
		old := hw.Load()
		if int64(n) <= old || hw.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}

// retire folds a closing link's traffic into the closed-link totals.
func (c *counters) retire(s side, ws bool, lc *linkCounters) {
	if ws {
		c.wsClosed.addFrom(lc)
	}
	c.closed[s].addFrom(lc)
}

// addFrom adds lc's counts to dst.
func (dst *linkCounters) addFrom(lc *linkCounters) {
	dst.framesIn.Add(lc.framesIn.Load())
	dst.bytesIn.Add(lc.bytesIn.Load())
	dst.framesOut.Add(lc.framesOut.Load())
	dst.bytesOut.Add(lc.bytesOut.Load())
	dst.dials.Add(lc.dials.Load())
}

// Stats returns a snapshot of the gateway's counters.
func (g *Gateway) Stats() Stats {
	c := &g.counters
	s := Stats{
		ClientConns:   c.clientConns.Load(),
		ServerConns:   c.serverConns.Load(),
		VirtualConns:  int64(g.routes.len()),
		AuthFailures:  c.authFailures.Load(),
		FramesDropped: c.framesDropped.Load(),
		ClosesIgnored: c.closesIgnored.Load(),
		ClientAccepts: c.clientAccepts.Load(),
		ServerAccepts: c.serverAccepts.Load(),
	}
	for i := range c.dialsRefused {
		s.DialsRefused[i] = c.dialsRefused[i].Load()
	}
	for i := range c.disconnects {
		s.Disconnects[i] = c.disconnects[i].Load()
		s.WS.Disconnects[i] = c.wsDisconnects[i].Load()
		s.ClientDisconnects[i] = c.clientDisconnects[i].Load()
	}
	s.WS.Conns, s.WS.Accepts = c.wsConns.Load(), c.wsAccepts.Load()
	for i := range c.highWater {
		s.QueueHighWater[i] = c.highWater[i].Load()
		s.AcceptErrors[i] = c.acceptErrors[i].Load()
	}
	for i := range c.undelivered {
		s.Undelivered[i] = c.undelivered[i].load()
	}
	s.Discarded = c.discarded.load()
	if g.budget != nil {
		s.LargeFrameBytes = g.budget.Used()
		s.LargeFrameEvictions = g.budget.Evictions()
	}
	s.MemReleased, s.MemReclaims = c.memReleased.Load(), c.memReclaims.Load()
	// Sum live links under the links lock, so a link is counted either
	// live or retired, never both and never neither.
	g.mu.Lock()
	c.closed[sideClient].addTo(&s.Client)
	c.closed[sideServer].addTo(&s.Server)
	s.DialsAccepted = c.closed[sideClient].dials.Load() + c.closed[sideServer].dials.Load()
	s.Fanout = FanoutStats{Deliveries: c.fan.deliveries.Load(), Skipped: c.fan.skipped.Load(), JoinsRefused: c.fan.joinsRefused.Load()}
	c.wsClosed.addTo(&s.WS.Traffic)
	for l := range g.links {
		if l.side == sideClient {
			l.stats.addTo(&s.Client)
			if l.ws {
				l.stats.addTo(&s.WS.Traffic)
			}
		} else {
			l.stats.addTo(&s.Server)
			l.fan.Load().addTo(&s.Fanout)
		}
		s.DialsAccepted += l.stats.dials.Load()
	}
	g.mu.Unlock()
	return s
}

// Refused returns the refused-dial count for reason r.
func (s Stats) Refused(r RefuseReason) uint64 { return s.DialsRefused[r] }

// Disconnected returns the disconnect count for reason r.
func (s Stats) Disconnected(r Reason) uint64 { return s.Disconnects[r] }
