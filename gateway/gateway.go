package gateway

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
)

// Gateway routes virtual connections between clients and servers.
type Gateway struct {
	cfg Config
	log *slog.Logger

	routes       table[*vconn] // ConnID -> virtual connection
	clients      table[*link]  // client ID -> client link
	servers      servers       // server ID -> server links
	nextConnID   atomic.Uint32
	nextClientID atomic.Uint32
	counters     counters

	wg      sync.WaitGroup // readers, writers and handshakes
	readers sync.WaitGroup // readers and handshakes only (Shutdown's first phase)

	authLimit *authLimiter
	auth      atomic.Pointer[serverAuth] // the password and per-server keys (SetServerAuth)
	logLimit  logLimiter
	budget    *proto.Budget // LargeFrameBudget, shared by every client link's reader (nil: unlimited)
	shares    *budgetShares // each client source's share of budget (nil: none)

	clock        atomic.Int64    // coarse Unix nanoseconds, see clock.go
	clockRunning bool            // guarded by mu
	reclaimer    *slab.Reclaimer // run by the clock goroutine (nil: MemReleaseInterval < 0)

	mu        sync.Mutex
	links     map[*link]struct{}
	pending   map[net.Conn]struct{} // server connections in their handshake
	listeners map[net.Listener]struct{}
	serving   [2]int // listeners being served, per side
	shutdown  bool
	done      chan struct{} // closed by Shutdown
}

// New returns a gateway with cfg; zero fields take their defaults. Call
// cfg.Validate first to reject a bad config with a clear error; New panics
// on one.
func New(cfg Config) *Gateway {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	var budget *proto.Budget
	var shares *budgetShares
	if cfg.LargeFrameBudget > 0 {
		budget = proto.NewBudget(cfg.LargeFrameBudget)
		if cfg.LargeFrameBudgetPerSource > 0 {
			shares = &budgetShares{budget: budget, limit: cfg.LargeFrameBudgetPerSource, sources: make(map[netip.Prefix]*budgetShare)}
		}
	}
	var reclaimer *slab.Reclaimer
	if cfg.MemReleaseInterval > 0 {
		reclaimer = &slab.Reclaimer{Pool: cfg.MemPool, Idle: cfg.MemReleaseInterval}
	}
	g := &Gateway{
		reclaimer: reclaimer,
		budget:    budget,
		shares:    shares,
		cfg:       cfg,
		log:       cfg.Logger,
		authLimit: newAuthLimiter(cfg.ServerAuthFailBurst, cfg.ServerAuthFailInterval),
		logLimit:  logLimiter{now: time.Now},
		links:     make(map[*link]struct{}),
		pending:   make(map[net.Conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		done:      make(chan struct{}),
	}
	g.SetServerAuth(cfg.ServerAuthPassword, cfg.ServerKeys)
	return g
}

// Config returns the gateway's configuration, defaults filled in.
func (g *Gateway) Config() Config { return g.cfg }

// Servers lists the registered server connections, sorted by ID, oldest
// first within an ID.
func (g *Gateway) Servers() []ServerInfo {
	// Servers keep no table of their virtual connections: count them in
	// the route table (one pass, for every server).
	vconns := make(map[*link]int)
	g.routes.each(func(vc *vconn) { vconns[vc.server]++ })
	list := g.servers.list(vconns)
	slices.SortStableFunc(list, func(a, b ServerInfo) int {
		if c := cmp.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return a.Since.Compare(b.Since)
	})
	return list
}

// Ready reports whether the gateway is serving both a client and a server
// listener and is not shutting down (for a readiness probe).
func (g *Gateway) Ready() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.shutdown && g.serving[sideClient] > 0 && g.serving[sideServer] > 0
}

// ServeClients accepts client connections on ln until Shutdown, then returns
// ErrGatewayClosed. Any other error from ln.Accept that is not temporary is
// returned as is.
func (g *Gateway) ServeClients(ln net.Listener) error {
	return g.serve(ln, sideClient, g.acceptClient)
}

// ServeServers accepts server connections on ln until Shutdown, then returns
// ErrGatewayClosed. Each connection must pass the handshake within
// ServerAuthTimeout.
func (g *Gateway) ServeServers(ln net.Listener) error {
	return g.serve(ln, sideServer, g.acceptServer)
}

func (g *Gateway) serve(ln net.Listener, s side, handle func(net.Conn)) error {
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		ln.Close()
		return ErrGatewayClosed
	}
	g.listeners[ln] = struct{}{}
	g.serving[s]++
	g.startClock()
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.listeners, ln)
		g.serving[s]--
		g.mu.Unlock()
	}()

	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-g.done:
				return ErrGatewayClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: back off, 5 ms
			// doubling to 1 s, as net/http does.
			delay = max(5*time.Millisecond, min(2*delay, time.Second))
			g.log.Warn("accept failed; retrying", slog.String("addr", ln.Addr().String()), slog.String("error", err.Error()), slog.Duration("delay", delay))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-g.done:
				t.Stop()
				return ErrGatewayClosed
			}
			continue
		}
		delay = 0
		handle(conn)
	}
}

// acceptClient registers a new client link and starts its reader.
func (g *Gateway) acceptClient(conn net.Conn) {
	if max := g.cfg.ClientMaxConns; max > 0 && g.counters.clientConns.Load() >= int64(max) {
		g.refuseConn(conn, sideClient, ReasonLimit)
		return
	}
	l := newLink(g, conn, sideClient, 0)
	l.share = g.shares.get(conn.RemoteAddr())
	for {
		// Client IDs are never 0 and never collide with a live one.
		l.id = g.nextClientID.Add(1)
		if l.id != 0 && g.clients.insert(l.id, l) {
			break
		}
	}
	if !g.track(l) {
		g.clients.remove(l.id, nil)
		g.shares.put(l.share)
		conn.Close()
		return
	}
	g.counters.clientConns.Add(1)
	g.counters.clientAccepts.Add(1)
	go l.readLoop()
}

// track adds l to the live links and counts its reader in the wait group,
// unless the gateway is shutting down.
func (g *Gateway) track(l *link) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shutdown {
		return false
	}
	g.links[l] = struct{}{}
	g.wg.Add(1)
	g.readers.Add(1)
	return true
}

// refuseConn closes a connection that a cap or the auth limiter turned away
// before it became a link, and counts and logs it.
func (g *Gateway) refuseConn(conn net.Conn, s side, reason Reason) {
	conn.Close()
	g.counters.disconnects[reason].Add(1)
	g.logEvent(reason, slog.LevelWarn, "connection refused", slog.String("side", s.String()), slog.String("remote", conn.RemoteAddr().String()), slog.String("reason", reason.String()))
}

// logEvent logs a line a peer can trigger, rate-limited per reason.
func (g *Gateway) logEvent(reason Reason, level slog.Level, msg string, attrs ...any) {
	if !g.log.Enabled(context.Background(), level) {
		return
	}
	ok, suppressed := g.logLimit.allow(uint8(reason))
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	g.log.Log(context.Background(), level, msg, attrs...)
}

// acceptServer runs the handshake of a new server connection in its own
// goroutine, which then becomes the link's reader.
func (g *Gateway) acceptServer(conn net.Conn) {
	if !g.authLimit.allow(conn.RemoteAddr()) {
		g.refuseConn(conn, sideServer, ReasonAuthThrottled)
		return
	}
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		conn.Close()
		return
	}
	if max := g.cfg.ServerMaxHandshakes; max > 0 && len(g.pending) >= max {
		g.mu.Unlock()
		g.refuseConn(conn, sideServer, ReasonLimit)
		return
	}
	g.pending[conn] = struct{}{}
	g.wg.Add(1)
	g.readers.Add(1)
	g.mu.Unlock()
	go g.handshake(conn)
}

func (g *Gateway) handshake(conn net.Conn) {
	id, err := proto.AuthenticateServerKeys(conn, g.serverKey, g.cfg.ServerAuthTimeout)
	g.mu.Lock()
	delete(g.pending, conn)
	shutdown := g.shutdown
	var l *link
	if err == nil && !shutdown {
		l = newLink(g, conn, sideServer, id)
		g.links[l] = struct{}{}
		// Registered before its first frame is read: a server may take the
		// answer to its first Ping as proof that it is dialable.
		g.servers.add(l)
	}
	g.mu.Unlock()
	if l == nil {
		conn.Close()
		if shutdown {
			// Cut by Shutdown (or finished just as it began): not the
			// server's failure.
			g.counters.disconnects[ReasonShutdown].Add(1)
		} else if err != nil {
			g.authLimit.failed(conn.RemoteAddr())
			g.counters.authFailures.Add(1)
			g.counters.disconnects[ReasonAuthFailed].Add(1)
			g.logEvent(ReasonAuthFailed, slog.LevelWarn, "server auth failed", slog.String("remote", conn.RemoteAddr().String()), slog.String("reason", ReasonAuthFailed.String()), slog.String("error", err.Error()))
		}
		g.readers.Done()
		g.wg.Done()
		return
	}
	g.counters.serverConns.Add(1)
	g.counters.serverAccepts.Add(1)
	g.log.Info("server registered", slog.Uint64("id", uint64(id)), slog.String("remote", conn.RemoteAddr().String()))
	l.readLoop() // its deferred Dones balance the Adds in acceptServer
}

// untrack removes a finished link from the live links, folding its traffic
// counters into the totals.
func (g *Gateway) untrack(l *link) {
	g.mu.Lock()
	_, ok := g.links[l]
	if ok {
		delete(g.links, l)
		g.counters.retire(l.side, &l.stats)
	}
	g.mu.Unlock()
	if ok {
		g.shares.put(l.share)
	}
	l.dropScratch()
	if frames := l.lostFrames.Load(); frames > 0 {
		// Counted in Stats.Undelivered already. Shutdown logs one line
		// for all the links it cut.
		if reason, _ := l.closeReason(); reason != ReasonShutdown {
			g.logEvent(reason, slog.LevelWarn, "frames undelivered", slog.String("side", l.side.String()), slog.Uint64("id", uint64(l.id)),
				slog.String("remote", l.conn.RemoteAddr().String()), slog.String("reason", reason.String()),
				slog.Uint64("frames", frames), slog.Uint64("bytes", l.lostBytes.Load()))
		}
	}
}

// Shutdown stops the gateway gracefully, in phases. First the listeners
// and pending handshakes close, and every reader stops routing: each
// finishes routing the frames it holds, those already in its read buffer
// included (waiting for room in a server's queue if it must). No link is
// closed and no virtual connection is torn down meanwhile, so no frame the
// gateway has read is lost. Once every reader has stopped routing,
// Shutdown closes every virtual connection (queueing Close to both ends)
// and closes every link gracefully: its writer writes what is queued, then
// shuts the writing side (the peer reads EOF after the last frame), while
// its reader reads on and throws away what the peer still sends (counted
// in Stats.Discarded), so that no socket is closed with unread bytes,
// which would reset it and lose what the peer has not read yet. A link
// closes when its peer closes in turn or (on Linux) has acknowledged every
// byte written to it. See drain.go.
//
// When ctx ends first, whatever is left is closed hard: the data frames
// not written whole are counted in Stats.Undelivered[ReasonShutdown], and
// logged in one line with the links that were cut and the bytes their
// peers had not acknowledged. Shutdown returns once every goroutine has
// exited: nil, or ctx's error when it had to close hard (also when all was
// written but a peer had neither closed nor acknowledged it by then).
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if !g.shutdown {
		g.shutdown = true
		close(g.done)
	}
	lns := make([]net.Listener, 0, len(g.listeners))
	for ln := range g.listeners {
		lns = append(lns, ln)
	}
	links := make([]*link, 0, len(g.links))
	for l := range g.links {
		links = append(links, l)
	}
	for c := range g.pending {
		c.Close()
	}
	g.mu.Unlock()
	start := time.Now()
	lostBefore, discardedBefore := g.counters.undelivered[ReasonShutdown].load(), g.counters.discarded.load()

	for _, ln := range lns {
		ln.Close()
	}
	for _, l := range links {
		l.stopReading()
	}
	readersDone, ok := waitCtx(ctx, &g.readers)
	hard := !ok
	var cut int
	var unackedBytes int64
	if hard {
		// Readers stuck waiting for room in a server queue wake up when
		// their links close.
		cut, unackedBytes = closeHard(links)
	}
	<-readersDone
	// Every reader has stopped: close the virtual connections (telling
	// the other ends, whose links are all still open for flushing).
	for _, l := range links {
		g.teardown(l)
		l.flushDirty()
	}
	for _, l := range links {
		l.close(ReasonShutdown, nil, !hard)
	}
	if !hard {
		var allDone <-chan struct{}
		if allDone, ok = waitCtx(ctx, &g.wg); !ok {
			hard = true
			cut, unackedBytes = closeHard(links)
		}
		<-allDone
	}
	g.wg.Wait()
	lost, discarded := g.counters.undelivered[ReasonShutdown].load(), g.counters.discarded.load()
	lost.Frames -= lostBefore.Frames
	lost.Bytes -= lostBefore.Bytes
	discarded.Frames -= discardedBefore.Frames
	discarded.Bytes -= discardedBefore.Bytes
	attrs := []any{slog.Int("links", len(links)), slog.Duration("took", time.Since(start)),
		slog.Uint64("undelivered_frames", lost.Frames), slog.Uint64("undelivered_bytes", lost.Bytes),
		slog.Uint64("discarded_frames", discarded.Frames), slog.Uint64("discarded_bytes", discarded.Bytes)}
	level := slog.LevelInfo
	if len(links) == 0 {
		level = slog.LevelDebug // nothing to say (a Stop after Shutdown)
	}
	if hard {
		if lost.Frames > 0 || unackedBytes > 0 || cut > 0 {
			level = slog.LevelWarn
		}
		attrs = append(attrs, slog.Int("links_cut", cut), slog.Int64("unacked_bytes", unackedBytes), slog.String("reason", ReasonShutdown.String()))
		g.log.Log(context.Background(), level, "shutdown cut short by its deadline", attrs...)
		return ctx.Err()
	}
	g.log.Log(context.Background(), level, "shutdown complete", attrs...)
	return nil
}

// closeHard closes the sockets of links at once (Shutdown's deadline). It
// returns how many were still open (being read or written), and how many
// bytes their peers had not acknowledged then (on Linux; see unacked):
// those are in the kernel, which still delivers them unless the peer sends
// more before it has read them all (the closed socket then answers with a
// reset).
func closeHard(links []*link) (cut int, unackedBytes int64) {
	for _, l := range links {
		l.mu.Lock()
		open := !l.rdone || !(l.wshut || (l.closed && !l.flush))
		l.mu.Unlock()
		if open {
			cut++
		}
		if n := unacked(l.conn); n > 0 {
			unackedBytes += int64(n)
		}
		l.close(ReasonShutdown, nil, false)
		l.conn.Close()
	}
	return cut, unackedBytes
}

// waitCtx waits for wg, or for ctx to end; it reports whether wg finished
// first, and returns a channel closed once wg is done.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) (<-chan struct{}, bool) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return done, true
	case <-ctx.Done():
		// The caller closes everything hard, then receives from done, so
		// the waiter goroutine has ended before Shutdown returns.
		return done, false
	}
}

// Stop closes every listener and connection at once, without flushing, and
// waits for the gateway's goroutines to exit.
func (g *Gateway) Stop() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.Shutdown(ctx)
}
