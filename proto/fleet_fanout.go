package proto

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Fan-out over a fleet (docs/protocol.md §7, docs/scaling.md): each call
// encodes its message once (MsgFormat), then sends one command per gateway
// that has members, on the link to that gateway. A link lost meanwhile is
// skipped: its virtual connections closed with it, so it has no member
// left to deliver to.

// checkFanoutSize returns ErrMsgTooLarge when a payload of n bytes does not
// fit a Multicast to one ConnID (and so a Publish) within MaxPacket.
func (f *Fleet) checkFanoutSize(what string, n int) error {
	if MulticastSize(1, n)-SizeOfLength > f.maxPacket {
		return fmt.Errorf("%w: a %d-byte %s payload, MaxPacket %d", ErrMsgTooLarge, n, what, f.maxPacket)
	}
	return nil
}

// link returns the endpoint c runs on, checking that c is one of f's.
func (f *Fleet) link(c *FleetConn, what string) (*EndPoint, error) {
	if c == nil || c.fleet != f {
		return nil, fmt.Errorf("%w: %s", ErrForeignConn, what)
	}
	return c.Conn.ep, nil
}

// skippable reports whether err only says that a link closed under a
// fan-out call, which then had nothing left to deliver there.
func skippable(err error) bool { return errors.Is(err, ErrClosed) }

// eachLink runs send for every link in eps at once, so that a gateway whose
// send queue is full (one that reads slowly, or stopped) holds up only its
// own part of a fan-out call, and returns the first error that is not
// skippable. It returns when every send has.
func eachLink(eps []*EndPoint, send func(*EndPoint) error) error {
	if len(eps) == 1 {
		if err := send(eps[0]); err != nil && !skippable(err) {
			return err
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := send(ep); err != nil && !skippable(err) {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// Multicast sends msg on each of conns, virtual connections of this fleet
// through any of its gateways: msg is encoded once, and each gateway gets
// one Multicast (or several, see EndPoint.Multicast) listing its own
// ConnIDs. A FleetConn of another fleet is ErrForeignConn, and nothing is
// sent. Conns already closed, and those of a link that closes meanwhile,
// are left out. Like Send it waits for room in each link's send queue; the
// links are sent to at once, so a gateway that reads slowly delays only its
// own members.
func (f *Fleet) Multicast(msg any, conns ...*FleetConn) error {
	return f.MulticastContext(context.Background(), msg, conns...)
}

// MulticastContext is Multicast with a context bounding the waits for room
// in the send queues; when it ends, the gateways that had no room by then
// get nothing.
func (f *Fleet) MulticastContext(ctx context.Context, msg any, conns ...*FleetConn) error {
	var order []*EndPoint // links in the order their first conn was listed
	by := make(map[*EndPoint][]*Conn)
	for _, c := range conns {
		ep, err := f.link(c, "Multicast")
		if err != nil {
			return err
		}
		if _, ok := by[ep]; !ok {
			order = append(order, ep)
		}
		by[ep] = append(by[ep], c.Conn)
	}
	payload, err := encodeMsg(f.cfg.EndPoint.MsgFormat, msg)
	if err != nil {
		return err
	}
	if err := f.checkFanoutSize("Multicast", len(payload)); err != nil {
		return err
	}
	return eachLink(order, func(ep *EndPoint) error { return ep.multicastPayload(ctx, payload, by[ep]) })
}

// Broadcast sends msg on every virtual connection this server has through
// the fleet: one Publish to GroupID 0 per gateway where it has any, msg
// encoded once. A gateway on which the server has no virtual connection
// (as its link knows them) gets nothing.
func (f *Fleet) Broadcast(msg any) error { return f.BroadcastContext(context.Background(), msg) }

// BroadcastContext is Broadcast with a context bounding the waits for room
// in the send queues.
func (f *Fleet) BroadcastContext(ctx context.Context, msg any) error {
	payload, err := encodeMsg(f.cfg.EndPoint.MsgFormat, msg)
	if err != nil {
		return err
	}
	if err := f.checkFanoutSize("Broadcast", len(payload)); err != nil {
		return err
	}
	var eps []*EndPoint
	for _, ep := range f.links() {
		if ep.liveConns() > 0 {
			eps = append(eps, ep)
		}
	}
	return eachLink(eps, func(ep *EndPoint) error { return ep.publishPayload(ctx, 0, 0, payload) })
}

// links returns the fleet's live links, those of gateways being left
// included.
func (f *Fleet) links() []*EndPoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	eps := make([]*EndPoint, 0, len(f.members)+len(f.leaving))
	for _, m := range f.members {
		if m.ep != nil {
			eps = append(eps, m.ep)
		}
	}
	for m := range f.leaving {
		if m.ep != nil {
			eps = append(eps, m.ep)
		}
	}
	return eps
}

// FleetGroup is a group of a fleet's virtual connections, whichever
// gateways they run through: on each gateway with members it is one Group
// of the link to that gateway (made at the first Join there), so Publish
// sends one frame per gateway that has members. A virtual connection that
// closes leaves the group; so do all those of a gateway whose link is
// lost or left. Its methods are safe for concurrent use.
type FleetGroup struct {
	f *Fleet
	// mu guards parts and closed; never held while a frame is queued.
	mu     sync.Mutex
	parts  map[*EndPoint]groupPart
	closed bool
}

// groupPart is a FleetGroup's Group on one link.
type groupPart struct {
	g       *Group
	gateway string // the link's gateway ID, for Members
}

// NewGroup returns a new, empty group spanning the fleet.
func (f *Fleet) NewGroup() *FleetGroup {
	return &FleetGroup{f: f, parts: make(map[*EndPoint]groupPart)}
}

// Join adds c to the group (nothing if it is a member already). It returns
// ErrClosed when the group or c is closed, ErrForeignConn for a FleetConn
// of another fleet. Like Send it may wait for room in the send queue.
func (g *FleetGroup) Join(c *FleetConn) error {
	ep, err := g.f.link(c, "Join")
	if err != nil {
		return err
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return fmt.Errorf("%w: fleet group", ErrClosed)
	}
	part, ok := g.parts[ep]
	if !ok {
		gr, err := ep.NewGroup()
		if err != nil {
			g.mu.Unlock()
			return fmt.Errorf("%w: conn %d (its link closed)", ErrClosed, c.id)
		}
		g.pruneLocked()
		part = groupPart{g: gr, gateway: c.gateway}
		g.parts[ep] = part
	}
	g.mu.Unlock()
	return part.g.Join(c.Conn)
}

// pruneLocked forgets the parts of links that closed: their groups ended
// with them. The caller holds g.mu.
func (g *FleetGroup) pruneLocked() {
	for ep := range g.parts {
		select {
		case <-ep.Done():
			delete(g.parts, ep)
		default:
		}
	}
}

// Leave takes c out of the group (nothing if it is not a member).
func (g *FleetGroup) Leave(c *FleetConn) error {
	ep, err := g.f.link(c, "Leave")
	if err != nil {
		return err
	}
	g.mu.Lock()
	part, ok := g.parts[ep]
	g.mu.Unlock()
	if !ok {
		return nil
	}
	return part.g.Leave(c.Conn)
}

// snapshot returns the group's parts, or ErrClosed.
func (g *FleetGroup) snapshot() (map[*EndPoint]groupPart, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, fmt.Errorf("%w: fleet group", ErrClosed)
	}
	g.pruneLocked()
	parts := make(map[*EndPoint]groupPart, len(g.parts))
	for ep, p := range g.parts {
		parts[ep] = p
	}
	return parts, nil
}

// Len returns how many members the group has, over every gateway.
func (g *FleetGroup) Len() int {
	parts, _ := g.snapshot()
	n := 0
	for _, p := range parts {
		n += p.g.Len()
	}
	return n
}

// Members returns the group's members, in no particular order (FleetConn
// values of their own around the members' *Conn).
func (g *FleetGroup) Members() []*FleetConn {
	parts, _ := g.snapshot()
	var out []*FleetConn
	for _, p := range parts {
		for _, c := range p.g.Members() {
			out = append(out, &FleetConn{Conn: c, gateway: p.gateway, fleet: g.f})
		}
	}
	return out
}

// Publish sends msg to every member of the group but except (nil: none),
// encoded once: one Publish frame to each gateway that has a member other
// than except. It returns ErrClosed after Close. Like Send it waits for
// room in each link's send queue, on all the links at once.
func (g *FleetGroup) Publish(msg any, except *FleetConn) error {
	return g.PublishContext(context.Background(), msg, except)
}

// PublishContext is Publish with a context bounding the waits for room in
// the send queues; when it ends, the gateways that had no room by then get
// nothing.
func (g *FleetGroup) PublishContext(ctx context.Context, msg any, except *FleetConn) error {
	var exceptEP *EndPoint
	if except != nil {
		ep, err := g.f.link(except, "Publish")
		if err != nil {
			return err
		}
		exceptEP = ep
	}
	parts, err := g.snapshot()
	if err != nil {
		return err
	}
	payload, err := encodeMsg(g.f.cfg.EndPoint.MsgFormat, msg)
	if err != nil {
		return err
	}
	if err := g.f.checkFanoutSize("Publish", len(payload)); err != nil {
		return err
	}
	var eps []*EndPoint
	for ep, p := range parts {
		if p.g.hasOthers(except) {
			eps = append(eps, ep)
		}
	}
	return eachLink(eps, func(ep *EndPoint) error {
		var exceptID uint32
		if ep == exceptEP {
			exceptID = except.id
		}
		return ep.publishPayload(ctx, parts[ep].g.id, exceptID, payload)
	})
}

// Close ends the group on every gateway (Leave with ConnID 0 on each
// link). Close is idempotent and returns nil, or the first error of
// queueing a Leave on a link that is still open.
func (g *FleetGroup) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	parts := g.parts
	g.parts = nil
	g.mu.Unlock()
	var first error
	for _, p := range parts {
		if err := p.g.Close(); err != nil && !skippable(err) && first == nil {
			first = err
		}
	}
	return first
}

// hasOthers reports whether g is open and has a member other than except
// (which may be nil, or a FleetConn of another link).
func (g *Group) hasOthers(except *FleetConn) bool {
	g.mu.Lock() // a Join in progress is queued before the Publish that asks (see Len)
	defer g.mu.Unlock()
	g.ep.mu.Lock()
	defer g.ep.mu.Unlock()
	if g.closed {
		return false
	}
	n := len(g.members)
	if except != nil {
		if _, ok := g.members[except.Conn]; ok {
			n--
		}
	}
	return n > 0
}
