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
	pending   map[net.Conn]netip.Prefix // server connections in their handshake, and their source (sourceKey)
	perSource map[netip.Prefix]int      // handshakes in progress by source (ServerMaxHandshakesPerSource)
	known     knownSources              // sources servers registered from lately
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
		pending:   make(map[net.Conn]netip.Prefix),
		perSource: make(map[netip.Prefix]int),
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
	var errs acceptErrors
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
			// doubling to 1 s, as net/http does; count every failure,
			// log one line per acceptLogInterval.
			delay = max(5*time.Millisecond, min(2*delay, time.Second))
			g.counters.acceptErrors[s].Add(1)
			errs.failed(g, ln, s, err, delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-g.done:
				t.Stop()
				return ErrGatewayClosed
			}
			continue
		}
		if delay > 0 {
			delay = 0
			errs.recovered(g, ln, s)
		}
		handle(conn)
	}
}

// acceptLogInterval is the least time between two log lines about a
// listener's failing accepts (each failure is counted in Stats).
const acceptLogInterval = 10 * time.Second

// acceptErrors rate-limits one listener's accept failure lines: the first
// failure of a run is logged at once, later ones at most once per
// acceptLogInterval with the count since the last line, and the end of a
// run with its count. Owned by the accept loop.
type acceptErrors struct {
	logged   time.Time // when the last line was written
	unlogged uint64    // failures since then
	run      uint64    // failures since the last successful accept
}

func (e *acceptErrors) failed(g *Gateway, ln net.Listener, s side, err error, delay time.Duration) {
	e.run++
	e.unlogged++
	now := time.Now()
	if e.run > 1 && now.Sub(e.logged) < acceptLogInterval {
		return
	}
	g.log.Warn("accept failing; backing off", slog.String("side", s.String()), slog.String("addr", ln.Addr().String()),
		slog.String("error", err.Error()), slog.Duration("delay", delay), slog.Uint64("failures", e.unlogged))
	e.logged, e.unlogged = now, 0
}

func (e *acceptErrors) recovered(g *Gateway, ln net.Listener, s side) {
	g.log.Info("accept recovered", slog.String("side", s.String()), slog.String("addr", ln.Addr().String()), slog.Uint64("failures", e.run))
	e.run, e.unlogged = 0, 0
}

// acceptClient registers a new client link and starts its reader.
func (g *Gateway) acceptClient(conn net.Conn) {
	if max := g.cfg.ClientMaxConns; max > 0 && g.counters.clientConns.Load() >= int64(max) {
		g.refuseConn(conn, sideClient, ReasonLimit, slog.String("limit", "ClientMaxConns"))
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
	if l.ws {
		g.counters.wsConns.Add(1)
		g.counters.wsAccepts.Add(1)
	}
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
// before it became a link, and counts and logs it, with attrs saying which
// limit (a "limit" key naming its Config field) or rule ("error").
func (g *Gateway) refuseConn(conn net.Conn, s side, reason Reason, attrs ...any) {
	conn.Close()
	g.counters.disconnects[reason].Add(1)
	if s == sideClient {
		g.counters.clientDisconnects[reason].Add(1)
		if isWS(conn) {
			g.counters.wsDisconnects[reason].Add(1)
		}
	}
	attrs = append([]any{slog.String("side", s.String()), slog.String("remote", conn.RemoteAddr().String()), slog.String("reason", reason.String())}, attrs...)
	g.logEvent(reason, slog.LevelWarn, "connection refused", attrs...)
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
// goroutine, which then becomes the link's reader. Before that it applies,
// in order: the loopback rule of an empty password, the global cap on
// handshakes in progress (whose last eighth admits only the sources servers
// registered from lately, see knownSources), the per-source cap, and the
// auth throttle, which
// takes one attempt from the source's bucket for the handshake (given back
// if it succeeds; see authLimiter). When the source's attempts are all
// held by its handshakes in progress, the handshake waits for one of them
// to end (awaitAttempt).
func (g *Gateway) acceptServer(conn net.Conn) {
	if a := g.auth.Load(); a.password == "" && a.keys == nil && !loopbackPeer(conn) {
		g.counters.authFailures.Add(1)
		g.refuseConn(conn, sideServer, ReasonAuthFailed, slog.String("error", "no server password is set: only loopback servers may register"))
		return
	}
	deadline := time.Now().Add(g.cfg.ServerAuthTimeout)
	src := sourceKey(conn.RemoteAddr())
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		conn.Close()
		return
	}
	if max := g.cfg.ServerMaxHandshakes; max > 0 && (len(g.pending) >= max || len(g.pending) >= max-max/knownShare && !g.known.has(src)) {
		// The last slots are kept for hosts servers registered from
		// (knownSources).
		g.mu.Unlock()
		g.refuseConn(conn, sideServer, ReasonLimit, slog.String("limit", "ServerMaxHandshakes"))
		return
	}
	if max := g.cfg.ServerMaxHandshakesPerSource; max > 0 && src.IsValid() && g.perSource[src] >= max {
		g.mu.Unlock()
		g.refuseConn(conn, sideServer, ReasonLimit, slog.String("limit", "ServerMaxHandshakesPerSource"))
		return
	}
	reserved, wait := g.authLimit.reserve(src)
	if !reserved && wait == nil {
		g.mu.Unlock()
		g.refuseConn(conn, sideServer, ReasonAuthThrottled, slog.String("limit", "ServerAuthFailBurst"))
		return
	}
	g.pending[conn] = src
	if src.IsValid() {
		g.perSource[src]++
	}
	g.wg.Add(1)
	g.readers.Add(1)
	g.mu.Unlock()
	go g.handshake(conn, src, reserved, wait, deadline)
}

// awaitAttempt waits, until deadline, for an attempt of src to be free and
// reserves it. It reports false when the deadline passes, when src runs
// out of attempts with no handshake left to give one back, or when the
// gateway shuts down.
func (g *Gateway) awaitAttempt(src netip.Prefix, wait <-chan struct{}, deadline time.Time) bool {
	for {
		// Attempts also come back with time: look again at least once
		// per interval.
		d := min(time.Until(deadline), g.cfg.ServerAuthFailInterval)
		if d <= 0 {
			return false
		}
		t := time.NewTimer(d)
		select {
		case <-wait:
		case <-t.C:
		case <-g.done:
			t.Stop()
			return false
		}
		t.Stop()
		var ok bool
		if ok, wait = g.authLimit.reserve(src); ok {
			return true
		}
		if wait == nil {
			return false
		}
	}
}

// loopbackPeer reports whether conn comes from this host: from a loopback
// IP, or over a transport without IP addresses (a Unix socket, a pipe).
// It looks at the addresses the socket has, not at any name.
func loopbackPeer(conn net.Conn) bool {
	a, ok := sourceOf(conn.RemoteAddr())
	return !ok || a.IsLoopback()
}

// handshake runs a server connection's handshake, from its goroutine,
// within deadline (ServerAuthTimeout from the accept), first waiting for
// an attempt unless reserved (see acceptServer).
func (g *Gateway) handshake(conn net.Conn, src netip.Prefix, reserved bool, wait <-chan struct{}, deadline time.Time) {
	throttled := !reserved && !g.awaitAttempt(src, wait, deadline)
	var id uint32
	err := errThrottled
	if !throttled {
		id, err = proto.AuthenticateServerKeys(conn, g.serverKey, max(time.Until(deadline), time.Millisecond))
	}
	g.mu.Lock()
	delete(g.pending, conn)
	if n := g.perSource[src] - 1; n > 0 {
		g.perSource[src] = n
	} else {
		delete(g.perSource, src)
	}
	shutdown := g.shutdown
	var l *link
	if err == nil && !shutdown {
		l = newLink(g, conn, sideServer, id)
		g.links[l] = struct{}{}
		// Registered before its first frame is read: a server may take the
		// answer to its first Ping as proof that it is dialable.
		g.servers.add(l)
		g.known.add(src)
	}
	g.mu.Unlock()
	if !throttled {
		// Only a failure keeps the attempt it reserved.
		g.authLimit.settle(src, err == nil || shutdown)
	}
	if l == nil {
		conn.Close()
		if throttled && !shutdown {
			// It waited for an attempt that did not come: refused before
			// its challenge, like one refused at once.
			g.refuseConn(conn, sideServer, ReasonAuthThrottled, slog.String("limit", "ServerAuthFailBurst"))
		} else if shutdown {
			// Cut by Shutdown (or finished just as it began): not the
			// server's failure.
			g.counters.disconnects[ReasonShutdown].Add(1)
		} else if err != nil {
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
		g.counters.retire(l.side, l.ws, &l.stats)
		g.counters.fan.retire(l.fan.Load())
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
