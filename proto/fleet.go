package proto

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// GatewayInfo describes one gateway of a fleet as discovery reports it.
// A gateway registered in etcd (package fleet) holds it as JSON under its
// key; static and DNS discovery fill in ID and ServerAddr only.
type GatewayInfo struct {
	ID         string `json:"id"`                    // unique in the fleet
	ServerAddr string `json:"server_addr"`           // where servers dial (host:port)
	ClientAddr string `json:"client_addr,omitempty"` // where players connect (host:port)
	WSAddr     string `json:"ws_addr,omitempty"`     // WebSocket URL for players, if any
	Version    string `json:"version,omitempty"`     // the gateway's build
	// Load, as of the gateway's last refresh (etcd only; 0 otherwise).
	Clients      int64 `json:"clients"`       // client physical connections
	VirtualConns int64 `json:"virtual_conns"` // virtual connections, every server's
}

// Discovery finds the live gateways of a fleet, for NewFleet.
type Discovery interface {
	// Run reports the complete set of live gateways, at once and each
	// time it may have changed, until ctx ends; then it returns, and
	// calls report no more. When it cannot refresh the set (the registry
	// or resolver is unreachable) it reports a nil set and the error: the
	// fleet keeps the gateways it knows. report must not be called
	// concurrently.
	Run(ctx context.Context, report func(set []GatewayInfo, err error))
}

// Static returns a Discovery of a fixed list of gateways. Each entry is a
// server-facing address (host:port), which is also the gateway's ID.
func Static(serverAddrs ...string) Discovery {
	set := make([]GatewayInfo, len(serverAddrs))
	for i, a := range serverAddrs {
		set[i] = GatewayInfo{ID: a, ServerAddr: a}
	}
	return staticDiscovery(set)
}

type staticDiscovery []GatewayInfo

func (s staticDiscovery) Run(ctx context.Context, report func([]GatewayInfo, error)) {
	report(slices.Clone(s), nil)
	<-ctx.Done()
}

// DNS is a Discovery that resolves a name over and over: its A/AAAA
// records (each address with Port), or, when Service is set, its SRV
// records _Service._Proto.Name (each target with the record's port). A
// gateway's ID is its host:port.
type DNS struct {
	Name     string
	Port     int           // for A/AAAA records
	Service  string        // SRV service ("fastway-server"); empty: A/AAAA records
	Proto    string        // SRV protocol; empty: "tcp"
	Network  string        // A/AAAA: "ip" (default), "ip4" or "ip6"
	Interval time.Duration // between lookups; 0: 5 s
	Resolver *net.Resolver // nil: net.DefaultResolver
}

// Run implements Discovery.
func (d DNS) Run(ctx context.Context, report func([]GatewayInfo, error)) {
	every := cmp.Or(d.Interval, 5*time.Second)
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, every)
		set, err := d.lookup(lctx, r)
		cancel()
		if ctx.Err() != nil {
			return
		}
		report(set, err)
		t.Reset(every)
	}
}

func (d DNS) lookup(ctx context.Context, r *net.Resolver) ([]GatewayInfo, error) {
	var addrs []string
	if d.Service != "" {
		_, srvs, err := r.LookupSRV(ctx, d.Service, cmp.Or(d.Proto, "tcp"), d.Name)
		if err != nil {
			return nil, fmt.Errorf("SRV %s: %w", d.Name, err)
		}
		for _, s := range srvs {
			addrs = append(addrs, net.JoinHostPort(s.Target, fmt.Sprint(s.Port)))
		}
	} else {
		ips, err := r.LookupNetIP(ctx, cmp.Or(d.Network, "ip"), d.Name)
		if err != nil {
			return nil, fmt.Errorf("lookup %s: %w", d.Name, err)
		}
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip.Unmap().String(), fmt.Sprint(d.Port)))
		}
	}
	set := make([]GatewayInfo, 0, len(addrs))
	for _, a := range addrs {
		set = append(set, GatewayInfo{ID: a, ServerAddr: a})
	}
	return set, nil
}

// FleetConfig configures NewFleet.
type FleetConfig struct {
	// EndPoint configures every link: ServerID and AuthKey for the
	// handshake, queues, keep-alive (docs/protocol.md §2).
	EndPoint EndPointCfg
	// Discovery finds the gateways: Static, DNS, or etcd (package fleet).
	Discovery Discovery
	// Dial connects to a gateway's server address; nil: TCP with
	// DialTimeout. Wrap the connection in TLS here for a TLS server port.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// DialTimeout bounds a connection attempt, handshake included; 0: 3 s.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between two attempts to
	// reach a gateway, doubling from the first to the second, each wait
	// drawn at random in its upper half (jitter); 0: 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives attaches, reconnects, drops and discovery failures;
	// nil: slog.Default().
	Logger *slog.Logger
}

// Fleet is one logical server over a whole fleet of gateways: it keeps one
// authenticated link (DialServer) to every live gateway its Discovery
// reports, reconnects a lost one with backoff and jitter, and leaves a
// gateway that is no longer reported once its virtual connections have
// closed (so a drained gateway's players finish their sessions). Accept
// merges the virtual connections of every gateway.
//
// Goroutines: one for discovery, and per gateway one that dials and
// watches its link and one that accepts on it; Close stops and waits for
// all of them.
type Fleet struct {
	cfg       FleetConfig
	log       *slog.Logger
	maxPacket int // cfg.EndPoint's, default filled in (fleet_fanout.go)

	ctx       context.Context
	cancel    context.CancelFunc
	acceptq   chan *FleetConn
	closeOnce sync.Once
	discEnd   chan struct{}
	wg        sync.WaitGroup

	mu      sync.Mutex
	members map[string]*member   // by gateway ID: reported by the last discovery
	leaving map[*member]struct{} // no longer reported, links still open
	ready   chan struct{}        // closed after the first successful discovery
	readyOK bool

	stats struct {
		attaches, reconnects, dialFailures, linksLost, drops, discoveryErrors, discovered atomic.Uint64
	}
}

// member is one gateway the fleet knows.
type member struct {
	id, addr string      // info.ID and info.ServerAddr, which never change for a member
	info     GatewayInfo // guarded by Fleet.mu
	ep       *EndPoint   // the live link, nil while there is none; guarded by Fleet.mu
	since    time.Time   // when ep was attached
	leaving  bool        // no longer reported; guarded by Fleet.mu
	gone     chan struct{}
}

// FleetConn is a virtual connection of a Fleet: a *Conn that knows the
// gateway it runs through.
type FleetConn struct {
	*Conn
	gateway string
	fleet   *Fleet
}

// Gateway returns the ID of the gateway the virtual connection runs
// through (GatewayInfo.ID), for Fleet.Dial.
func (c *FleetConn) Gateway() string { return c.gateway }

// ClientRef names a client of the fleet: the gateway it is connected to
// and its client ID there. A server that learned of a client (through a
// virtual connection the client opened) keeps its ClientRef to dial it
// back later (Fleet.DialClient), through the same gateway.
type ClientRef struct {
	Gateway  string `json:"gateway"`   // GatewayInfo.ID
	ClientID uint32 `json:"client_id"` // the client's ID at that gateway
}

// String returns "clientID@gateway".
func (r ClientRef) String() string { return fmt.Sprintf("%d@%s", r.ClientID, r.Gateway) }

// Ref returns the reference of the peer that opened c, with c's gateway:
// for a virtual connection a client opened, the client.
func (c *FleetConn) Ref() ClientRef { return ClientRef{Gateway: c.gateway, ClientID: c.RemoteID()} }

// GatewayStatus is a gateway as the fleet sees it.
type GatewayStatus struct {
	GatewayInfo
	Attached bool      // a link is up
	Since    time.Time // when the link came up
	Leaving  bool      // no longer reported: left once its virtual connections close
	Conns    int       // this server's virtual connections through it
}

// GatewayLoad is a gateway's client-facing address with its load, for a
// login or lobby service to hand a player the least loaded gateway.
type GatewayLoad struct {
	ID         string
	ClientAddr string
	WSAddr     string
	Clients    int64 // as the gateway last reported it (etcd); 0 otherwise
	Conns      int   // this server's virtual connections through it
}

// FleetStats counts what a Fleet did since it started.
type FleetStats struct {
	Discovered      uint64 // gateways discovered (each new ID, or new address)
	Attaches        uint64 // links opened, reconnects included
	Reconnects      uint64 // links opened again after one was lost
	DialFailures    uint64 // attempts to open a link that failed
	LinksLost       uint64 // links that closed while their gateway was live
	Drops           uint64 // gateways left after discovery stopped reporting them
	DiscoveryErrors uint64 // discovery refreshes that failed (the set was kept)
}

// NewFleet starts a fleet endpoint. It returns at once; links come up in
// the background (WaitReady waits for the first discovery).
func NewFleet(cfg FleetConfig) (*Fleet, error) {
	if cfg.Discovery == nil {
		return nil, errors.New("fastway: FleetConfig.Discovery is nil")
	}
	if err := cfg.EndPoint.Validate(); err != nil {
		return nil, err
	}
	cfg.DialTimeout = cmp.Or(cfg.DialTimeout, 3*time.Second)
	cfg.MinBackoff = cmp.Or(cfg.MinBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = max(cmp.Or(cfg.MaxBackoff, 5*time.Second), cfg.MinBackoff)
	f := &Fleet{
		cfg:       cfg,
		log:       cmp.Or(cfg.Logger, slog.Default()),
		maxPacket: cfg.EndPoint.withDefaults().MaxPacket,
		acceptq:   make(chan *FleetConn, AcceptBacklog),
		discEnd:   make(chan struct{}),
		members:   make(map[string]*member),
		leaving:   make(map[*member]struct{}),
		ready:     make(chan struct{}),
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	go func() {
		defer close(f.discEnd)
		cfg.Discovery.Run(f.ctx, f.apply)
	}()
	return f, nil
}

// WaitReady waits until discovery has reported the gateways once, or ctx
// ends.
func (f *Fleet) WaitReady(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case <-f.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// apply takes in a discovery report.
func (f *Fleet) apply(set []GatewayInfo, err error) {
	if err != nil {
		n := f.stats.discoveryErrors.Add(1)
		f.log.Warn("fastway fleet: gateway discovery failed; keeping the gateways known", "err", err, "failures", n)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() != nil {
		return
	}
	seen := make(map[string]bool, len(set))
	for _, gi := range set {
		if gi.ID == "" || gi.ServerAddr == "" || seen[gi.ID] {
			continue
		}
		seen[gi.ID] = true
		if m, ok := f.members[gi.ID]; ok {
			if m.addr == gi.ServerAddr {
				m.info = gi
				continue
			}
			// A new address: a new gateway under the old ID.
			f.leaveLocked(m, "address changed to "+gi.ServerAddr)
		}
		m := &member{id: gi.ID, addr: gi.ServerAddr, info: gi, gone: make(chan struct{})}
		f.members[gi.ID] = m
		n := f.stats.discovered.Add(1)
		f.log.Info("fastway fleet: gateway discovered", "gateway", gi.ID, "addr", gi.ServerAddr, "discovered", n)
		f.wg.Add(1)
		go f.runMember(m)
	}
	for id, m := range f.members {
		if !seen[id] {
			f.leaveLocked(m, "no longer registered")
		}
	}
	if !f.readyOK {
		f.readyOK = true
		close(f.ready)
	}
}

// leaveLocked marks m as leaving: its goroutine stops reconnecting and
// closes the link once its virtual connections are closed.
func (f *Fleet) leaveLocked(m *member, why string) {
	delete(f.members, m.id)
	f.leaving[m] = struct{}{}
	m.leaving = true
	conns := 0
	if m.ep != nil {
		conns = m.ep.liveConns()
	}
	f.log.Info("fastway fleet: leaving gateway once its virtual connections close", "gateway", m.id, "addr", m.addr, "reason", why, "conns", conns)
	close(m.gone)
}

// runMember keeps m's link up until m is left or the fleet closes.
func (f *Fleet) runMember(m *member) {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.leaving, m)
		f.mu.Unlock()
	}()
	backoff := f.cfg.MinBackoff
	lost := false
	for {
		ep, err := f.dial(m)
		if err != nil {
			if f.ctx.Err() != nil {
				return
			}
			n := f.stats.dialFailures.Add(1)
			wait := jitter(backoff)
			select {
			case <-m.gone:
				f.drop(m, "left before a link came up")
				return
			default:
			}
			f.log.Warn("fastway fleet: cannot attach to gateway; retrying", "gateway", m.id, "addr", m.addr, "err", err, "retry_in", wait.Round(time.Millisecond), "dial_failures", n)
			backoff = min(2*backoff, f.cfg.MaxBackoff)
			if !f.sleep(m, wait) {
				return
			}
			continue
		}
		backoff = f.cfg.MinBackoff
		f.stats.attaches.Add(1)
		f.mu.Lock()
		m.ep, m.since = ep, time.Now()
		f.mu.Unlock()
		if lost {
			n := f.stats.reconnects.Add(1)
			f.log.Info("fastway fleet: attached to gateway again", "gateway", m.id, "addr", m.addr, "reconnects", n)
		} else {
			f.log.Info("fastway fleet: attached to gateway", "gateway", m.id, "addr", m.addr)
		}
		acceptDone := make(chan struct{})
		go func() {
			defer close(acceptDone)
			f.acceptLoop(m, ep)
		}()
		select {
		case <-ep.Done():
		case <-m.gone:
			f.leave(m, ep)
		case <-f.ctx.Done():
		}
		f.mu.Lock()
		m.ep = nil
		f.mu.Unlock()
		ep.Close()
		<-acceptDone
		if f.ctx.Err() != nil {
			return
		}
		select {
		case <-m.gone:
			f.drop(m, "left")
			return
		default:
		}
		lost = true
		n := f.stats.linksLost.Add(1)
		wait := jitter(backoff)
		f.log.Warn("fastway fleet: lost the link to a gateway; reconnecting", "gateway", m.id, "addr", m.addr, "err", ep.Err(), "retry_in", wait.Round(time.Millisecond), "links_lost", n)
		if !f.sleep(m, wait) {
			return
		}
	}
}

// leave waits until ep has no virtual connection left (or closes, or the
// fleet closes).
func (f *Fleet) leave(m *member, ep *EndPoint) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for ep.liveConns() > 0 {
		select {
		case <-ep.Done():
			return
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drop logs and counts that the fleet left m.
func (f *Fleet) drop(m *member, why string) {
	n := f.stats.drops.Add(1)
	f.log.Info("fastway fleet: left gateway", "gateway", m.id, "addr", m.addr, "reason", why, "drops", n)
}

// sleep waits d; it returns false if the fleet closed, or m was left
// meanwhile (and then drops it).
func (f *Fleet) sleep(m *member, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.gone:
		f.drop(m, "left while unreachable")
		return false
	case <-f.ctx.Done():
		return false
	}
}

// jitter returns a random duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// dial opens and authenticates a link to m's gateway.
func (f *Fleet) dial(m *member) (*EndPoint, error) {
	f.mu.Lock()
	addr := m.addr
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.DialTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if f.cfg.Dial != nil {
		conn, err = f.cfg.Dial(ctx, addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	// The handshake ends with the fleet or the timeout.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	ep, err := DialServer(conn, f.cfg.EndPoint)
	if !stop() {
		if ep != nil {
			ep.Close()
		}
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return ep, nil
}

// acceptLoop hands the virtual connections peers open on ep to Accept.
func (f *Fleet) acceptLoop(m *member, ep *EndPoint) {
	for {
		c, err := ep.AcceptContext(f.ctx)
		if err != nil {
			return
		}
		select {
		case f.acceptq <- &FleetConn{Conn: c, gateway: m.id, fleet: f}:
		case <-f.ctx.Done():
			c.Close()
			return
		}
	}
}

// Accept returns the next virtual connection a peer opened through any
// gateway, waiting for one; ErrClosed once the fleet is closed.
func (f *Fleet) Accept() (*FleetConn, error) { return f.AcceptContext(context.Background()) }

// AcceptContext is Accept with a context.
func (f *Fleet) AcceptContext(ctx context.Context) (*FleetConn, error) {
	select {
	case <-f.ctx.Done():
		return nil, ErrClosed
	default:
	}
	select {
	case c := <-f.acceptq:
		return c, nil
	case <-f.ctx.Done():
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Dial opens a virtual connection to remoteID (a client's ID) through the
// gateway gatewayID, as a client reference (FleetConn.Gateway and
// RemoteID) names it. It fails with ErrClosed when that gateway has no
// link.
func (f *Fleet) Dial(ctx context.Context, gatewayID string, remoteID uint32) (*FleetConn, error) {
	f.mu.Lock()
	var ep *EndPoint
	if m, ok := f.members[gatewayID]; ok {
		ep = m.ep
	} else {
		for m := range f.leaving {
			if m.info.ID == gatewayID && m.ep != nil {
				ep = m.ep
			}
		}
	}
	f.mu.Unlock()
	if ep == nil {
		return nil, fmt.Errorf("%w: no link to gateway %q", ErrClosed, gatewayID)
	}
	c, err := ep.DialContext(ctx, remoteID)
	if err != nil {
		return nil, err
	}
	return &FleetConn{Conn: c, gateway: gatewayID, fleet: f}, nil
}

// DialClient opens a virtual connection to the client ref names, through
// its gateway (Dial).
func (f *Fleet) DialClient(ctx context.Context, ref ClientRef) (*FleetConn, error) {
	return f.Dial(ctx, ref.Gateway, ref.ClientID)
}

// Gateways lists the gateways the fleet knows, leaving ones included,
// sorted by ID.
func (f *Fleet) Gateways() []GatewayStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := make([]GatewayStatus, 0, len(f.members)+len(f.leaving))
	add := func(m *member) {
		s := GatewayStatus{GatewayInfo: m.info, Leaving: m.leaving}
		if m.ep != nil {
			s.Attached, s.Since, s.Conns = true, m.since, m.ep.liveConns()
		}
		list = append(list, s)
	}
	for _, m := range f.members {
		add(m)
	}
	for m := range f.leaving {
		add(m)
	}
	slices.SortFunc(list, func(a, b GatewayStatus) int { return cmp.Compare(a.ID, b.ID) })
	return list
}

// ClientAddrs lists the live gateways (reported by discovery, link up)
// that have a client-facing address, least loaded first: by the clients
// they last reported, then by this server's virtual connections on them.
func (f *Fleet) ClientAddrs() []GatewayLoad {
	var list []GatewayLoad
	for _, g := range f.Gateways() {
		if g.Attached && !g.Leaving && (g.ClientAddr != "" || g.WSAddr != "") {
			list = append(list, GatewayLoad{ID: g.ID, ClientAddr: g.ClientAddr, WSAddr: g.WSAddr, Clients: g.Clients, Conns: g.Conns})
		}
	}
	slices.SortStableFunc(list, func(a, b GatewayLoad) int {
		return cmp.Or(cmp.Compare(a.Clients, b.Clients), cmp.Compare(a.Conns, b.Conns))
	})
	return list
}

// Stats returns the fleet's counters.
func (f *Fleet) Stats() FleetStats {
	return FleetStats{
		Discovered:      f.stats.discovered.Load(),
		Attaches:        f.stats.attaches.Load(),
		Reconnects:      f.stats.reconnects.Load(),
		DialFailures:    f.stats.dialFailures.Load(),
		LinksLost:       f.stats.linksLost.Load(),
		Drops:           f.stats.drops.Load(),
		DiscoveryErrors: f.stats.discoveryErrors.Load(),
	}
}

// Close closes every link (as EndPoint.Close does) and stops discovery,
// waiting for every goroutine. Virtual connections accepted but not yet
// taken by Accept are closed. Close is idempotent and returns nil.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		f.cancel()
		<-f.discEnd
		f.wg.Wait()
		for {
			select {
			case c := <-f.acceptq:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// liveConns counts ep's live virtual connections.
func (ep *EndPoint) liveConns() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.conns)
}
