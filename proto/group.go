package proto

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
)

// Fan-out from a server endpoint (docs/protocol.md §7): one frame to the
// gateway, which delivers its payload on many virtual connections. The
// message is encoded once per call (MsgFormat), and the frame joins the
// endpoint's send queue like any other, so it keeps its place among the
// frames sent before and after it. Only gateways that implement §7 accept
// these frames; an older one closes the server as a protocol violation.

// Multicast sends msg on each of conns, this server endpoint's virtual
// connections: one Multicast frame, or several when conns do not fit in
// one (65,535 ConnIDs, and MaxPacket). A Conn listed twice gets msg twice.
// Conns already closed are left out (the gateway would skip them); a Conn
// of another endpoint is ErrForeignConn, and nothing is sent. Like Send it
// waits for room in the send queue.
func (ep *EndPoint) Multicast(msg any, conns ...*Conn) error {
	return ep.MulticastContext(context.Background(), msg, conns...)
}

// MulticastContext is Multicast with a context bounding the wait for room
// in the send queue.
func (ep *EndPoint) MulticastContext(ctx context.Context, msg any, conns ...*Conn) error {
	if !ep.server {
		return ErrNotServer
	}
	payload, err := encodeMsg(ep.cfg.MsgFormat, msg)
	if err != nil {
		return err
	}
	return ep.multicastPayload(ctx, payload, conns)
}

// multicastPayload is MulticastContext with the message encoded already
// (a Fleet encodes it once for all its links).
func (ep *EndPoint) multicastPayload(ctx context.Context, payload []byte, conns []*Conn) error {
	perFrame := min(MaxMulticastCount, (ep.cfg.MaxPacket+SizeOfLength-MulticastHeaderSize-len(payload))/SizeOfConnID)
	if perFrame < 1 {
		return fmt.Errorf("%w: a %d-byte Multicast payload, MaxPacket %d", ErrMsgTooLarge, len(payload), ep.cfg.MaxPacket)
	}
	ids := make([]uint32, 0, len(conns))
	ep.mu.Lock()
	for _, c := range conns {
		if c == nil || c.ep != ep {
			ep.mu.Unlock()
			return fmt.Errorf("%w: Multicast", ErrForeignConn)
		}
		if ep.conns[c.id] == c {
			ids = append(ids, c.id)
		}
	}
	ep.mu.Unlock()
	for len(ids) > 0 {
		n := min(len(ids), perFrame)
		frame := ep.pool.Alloc(MulticastSize(n, len(payload)))
		f := frame[:MulticastHeaderSize]
		PutHeader(frame, 0)
		f[HeaderSize] = byte(CmdMulticast)
		binary.LittleEndian.PutUint16(f[CmdHeaderSize:], uint16(n))
		off := MulticastHeaderSize
		for _, id := range ids[:n] {
			binary.LittleEndian.PutUint32(frame[off:], id)
			off += SizeOfConnID
		}
		copy(frame[off:], payload)
		if err := ep.enqueue(ctx, nil, frame); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// Broadcast sends msg on every virtual connection this server endpoint has
// through the gateway (Publish to GroupID 0): those the gateway knows when
// it reads the frame, including ones whose Connect is still on its way.
func (ep *EndPoint) Broadcast(msg any) error {
	return ep.BroadcastContext(context.Background(), msg)
}

// BroadcastContext is Broadcast with a context bounding the wait for room
// in the send queue.
func (ep *EndPoint) BroadcastContext(ctx context.Context, msg any) error {
	if !ep.server {
		return ErrNotServer
	}
	return ep.publish(ctx, 0, 0, msg)
}

// publish queues a Publish of msg to group gid but except (0: none).
func (ep *EndPoint) publish(ctx context.Context, gid, except uint32, msg any) error {
	payload, err := encodeMsg(ep.cfg.MsgFormat, msg)
	if err != nil {
		return err
	}
	return ep.publishPayload(ctx, gid, except, payload)
}

// publishPayload is publish with the message encoded already.
func (ep *EndPoint) publishPayload(ctx context.Context, gid, except uint32, payload []byte) error {
	if PublishSize(len(payload))-SizeOfLength > ep.cfg.MaxPacket {
		return fmt.Errorf("%w: a %d-byte Publish payload, MaxPacket %d", ErrMsgTooLarge, len(payload), ep.cfg.MaxPacket)
	}
	frame := ep.pool.Alloc(PublishSize(len(payload)))
	PutHeader(frame, 0)
	frame[HeaderSize] = byte(CmdPublish)
	binary.LittleEndian.PutUint32(frame[CmdHeaderSize:], gid)
	binary.LittleEndian.PutUint32(frame[CmdHeaderSize+SizeOfGroupID:], except)
	copy(frame[PublishHeaderSize:], payload)
	return ep.enqueue(ctx, nil, frame)
}

// encodeMsg returns msg's bytes: encoded with f, or msg itself when f is
// nil (msg must then be a []byte).
func encodeMsg(f MsgFormat, msg any) ([]byte, error) {
	if f != nil {
		b, err := f.EncodeMessage(msg)
		if err != nil {
			return nil, fmt.Errorf("fastway: encoding message: %w", err)
		}
		return b, nil
	}
	b, ok := msg.([]byte)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrNotBytes, msg)
	}
	return b, nil
}

// Group is a group of a server endpoint's virtual connections, kept by the
// gateway (Join, Leave, Publish of docs/protocol.md §7): Publish sends one
// frame, which the gateway delivers to every member. The endpoint keeps
// the same membership on its side: a virtual connection that closes, by
// either end or with the endpoint, leaves its groups on both sides (the
// gateway drops it when the virtual connection closes). Its methods are
// safe for concurrent use.
type Group struct {
	ep *EndPoint
	id uint32
	// mu keeps this group's Join, Leave and Close frames in the order
	// its membership changed.
	mu sync.Mutex
	// Guarded by ep.mu.
	members map[*Conn]struct{}
	closed  bool
}

// NewGroup returns a new, empty group of this server endpoint, with a
// GroupID of its own (never 0; the endpoint's GroupIDs are its own at the
// gateway, even beside other servers).
func (ep *EndPoint) NewGroup() (*Group, error) {
	if !ep.server {
		return nil, ErrNotServer
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed {
		return nil, ErrClosed
	}
	if ep.groups == nil {
		ep.groups = make(map[uint32]*Group)
	}
	for {
		ep.nextGroup++
		if _, taken := ep.groups[ep.nextGroup]; ep.nextGroup != 0 && !taken {
			break
		}
	}
	g := &Group{ep: ep, id: ep.nextGroup, members: make(map[*Conn]struct{})}
	ep.groups[g.id] = g
	return g, nil
}

// ID returns the group's GroupID.
func (g *Group) ID() uint32 { return g.id }

// Len returns how many members the group has. A member Len counts has its
// Join queued on the link already: a Publish sent after Len returns
// reaches it, whichever goroutine joined it.
func (g *Group) Len() int {
	// g.mu first: a Join or Leave in progress holds it until its command
	// is queued, so what Len counts is what the gateway will have seen
	// before any frame sent after Len returns.
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ep.mu.Lock()
	defer g.ep.mu.Unlock()
	return len(g.members)
}

// Members returns the group's members, in no particular order.
func (g *Group) Members() []*Conn {
	g.mu.Lock() // see Len
	defer g.mu.Unlock()
	g.ep.mu.Lock()
	defer g.ep.mu.Unlock()
	out := make([]*Conn, 0, len(g.members))
	for c := range g.members {
		out = append(out, c)
	}
	return out
}

// Join adds c to the group (nothing if it is a member already). It returns
// ErrClosed when the group or c is closed, ErrForeignConn for a Conn of
// another endpoint. Like Send it may wait for room in the send queue.
func (g *Group) Join(c *Conn) error { return g.change(c, CmdJoin) }

// Leave takes c out of the group (nothing if it is not a member).
func (g *Group) Leave(c *Conn) error { return g.change(c, CmdLeave) }

func (g *Group) change(c *Conn, cmd Cmd) error {
	ep := g.ep
	if c == nil || c.ep != ep {
		return fmt.Errorf("%w: %s", ErrForeignConn, cmd)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ep.mu.Lock()
	switch {
	case g.closed:
		ep.mu.Unlock()
		return fmt.Errorf("%w: group %d", ErrClosed, g.id)
	case cmd == CmdJoin && ep.conns[c.id] != c:
		ep.mu.Unlock()
		return fmt.Errorf("%w: conn %d", ErrClosed, c.id)
	}
	_, member := g.members[c]
	if member == (cmd == CmdJoin) {
		ep.mu.Unlock()
		return nil // a member already, or not one
	}
	if cmd == CmdJoin {
		g.members[c] = struct{}{}
		c.groups = append(c.groups, g)
	} else {
		delete(g.members, c)
		c.leftLocked(g)
	}
	ep.mu.Unlock()
	return g.send(cmd, c.id)
}

// send queues Join, Leave (of id; 0: every member) for the group.
func (g *Group) send(cmd Cmd, id uint32) error {
	frame := g.ep.pool.Alloc(GroupCmdSize)
	PutHeader(frame, 0)
	frame[HeaderSize] = byte(cmd)
	binary.LittleEndian.PutUint32(frame[CmdHeaderSize:], g.id)
	binary.LittleEndian.PutUint32(frame[CmdHeaderSize+SizeOfGroupID:], id)
	return g.ep.enqueue(context.Background(), nil, frame)
}

// Publish sends msg to every member of the group but except (nil: none),
// encoded once and carried to the gateway in one frame. It returns
// ErrClosed after Close. Like Send it waits for room in the send queue.
func (g *Group) Publish(msg any, except *Conn) error {
	return g.PublishContext(context.Background(), msg, except)
}

// PublishContext is Publish with a context bounding the wait for room in
// the send queue.
func (g *Group) PublishContext(ctx context.Context, msg any, except *Conn) error {
	var id uint32
	if except != nil {
		if except.ep != g.ep {
			return fmt.Errorf("%w: Publish", ErrForeignConn)
		}
		id = except.id
	}
	g.ep.mu.Lock()
	closed := g.closed
	g.ep.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: group %d", ErrClosed, g.id)
	}
	return g.ep.publish(ctx, g.id, id, msg)
}

// Close ends the group: every member leaves (Leave with ConnID 0). Close
// is idempotent and returns nil, or the error of queueing the Leave.
func (g *Group) Close() error {
	ep := g.ep
	g.mu.Lock()
	defer g.mu.Unlock()
	ep.mu.Lock()
	if g.closed {
		ep.mu.Unlock()
		return nil
	}
	g.closed = true
	for c := range g.members {
		c.leftLocked(g)
	}
	g.members = nil
	delete(ep.groups, g.id)
	endpointClosed := ep.closed
	ep.mu.Unlock()
	if endpointClosed {
		return nil // the gateway dropped the groups with the connection
	}
	return g.send(CmdLeave, 0)
}

// leftLocked forgets that c is in g. The caller holds ep.mu.
func (c *Conn) leftLocked(g *Group) {
	for i, x := range c.groups {
		if x == g {
			c.groups = append(c.groups[:i], c.groups[i+1:]...)
			return
		}
	}
}

// goneLocked takes c, which just left ep.conns (closed by either end, or
// with the endpoint), out of its groups, as the gateway does. The caller
// holds ep.mu.
func (c *Conn) goneLocked() {
	for _, g := range c.groups {
		delete(g.members, c)
	}
	c.groups = nil
}
