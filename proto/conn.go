package proto

import (
	"context"
	"fmt"
	"sync"
)

// Conn is one virtual connection of an EndPoint, opened by Dial or received
// by Accept. Its methods are safe for concurrent use.
type Conn struct {
	ep        *EndPoint
	id        uint32
	remoteID  uint32
	q         recvQueue
	closeOnce sync.Once
	groups    []*Group // the groups it is in (group.go); guarded by ep.mu
}

func (ep *EndPoint) newConn(id, remoteID uint32) *Conn {
	c := &Conn{ep: ep, id: id, remoteID: remoteID}
	c.q.init(ep.cfg.RecvChanSize)
	return c
}

// ConnID returns the virtual connection's ID, assigned by the gateway.
func (c *Conn) ConnID() uint32 { return c.id }

// RemoteID returns the ID of the peer at the other end: the server dialed,
// or the client (or server) that dialed us.
func (c *Conn) RemoteID() uint32 { return c.remoteID }

// Send sends msg as one data frame: encoded with the endpoint's MsgFormat, or
// as is when there is none (msg must then be a []byte, which Send does not
// keep). A message longer than MaxPacket-4 bytes is ErrMsgTooLarge. Send
// queues the frame for the endpoint's writer and returns; when the send
// queue is full it waits for room, and returns ErrClosed if the virtual
// connection or the endpoint closes first. A nil error means the frame is
// queued, not that the peer got it.
func (c *Conn) Send(msg any) error {
	return c.SendContext(context.Background(), msg)
}

// SendContext is Send with a context bounding the wait for room in the send
// queue; it returns ctx.Err() when ctx ends first.
func (c *Conn) SendContext(ctx context.Context, msg any) error {
	select {
	case <-c.q.closed:
		return fmt.Errorf("%w: conn %d", ErrClosed, c.id)
	default:
	}
	frame, err := c.encode(msg)
	if err != nil {
		return err
	}
	if err := c.ep.enqueue(ctx, c.q.closed, frame); err != nil {
		if err == ErrClosed {
			err = fmt.Errorf("%w: conn %d", ErrClosed, c.id)
		}
		return err
	}
	return nil
}

// encode returns msg's data frame in one buffer from the pool.
func (c *Conn) encode(msg any) ([]byte, error) {
	var b []byte
	if f := c.ep.cfg.MsgFormat; f != nil {
		var err error
		if b, err = f.EncodeMessage(msg); err != nil {
			return nil, fmt.Errorf("fastway: encoding message for conn %d: %w", c.id, err)
		}
	} else {
		var ok bool
		if b, ok = msg.([]byte); !ok {
			return nil, fmt.Errorf("%w: %T", ErrNotBytes, msg)
		}
	}
	if SizeOfConnID+len(b) > c.ep.cfg.MaxPacket {
		return nil, fmt.Errorf("%w: %d-byte message, MaxPacket %d", ErrMsgTooLarge, len(b), c.ep.cfg.MaxPacket)
	}
	frame := c.ep.pool.Alloc(HeaderSize + len(b))
	PutHeader(frame, c.id)
	copy(frame[HeaderSize:], b)
	return frame, nil
}

// Receive returns the next message, waiting for one: decoded with the
// endpoint's MsgFormat, or a []byte that the caller owns when there is none.
// A message that fails to decode is dropped and its error returned; the
// virtual connection stays open.
//
// After the gateway closed the virtual connection (or the endpoint closed),
// Receive returns the messages already queued, then io.EOF. After its receive
// queue overflowed (see EndPointCfg.RecvChanSize) it returns the messages
// queued before, then ErrRecvOverflow. After Close it returns io.EOF at once.
func (c *Conn) Receive() (any, error) {
	return c.ReceiveContext(context.Background())
}

// ReceiveContext is Receive with a context; it returns ctx.Err() when ctx
// ends before a message arrives.
func (c *Conn) ReceiveContext(ctx context.Context) (any, error) {
	frame, err := c.q.pop(ctx)
	if err != nil {
		return nil, err
	}
	payload := frame[HeaderSize:]
	if f := c.ep.cfg.MsgFormat; f != nil {
		msg, err := f.DecodeMessage(payload)
		c.ep.pool.Free(frame)
		if err != nil {
			return nil, fmt.Errorf("fastway: decoding message on conn %d: %w", c.id, err)
		}
		return msg, nil
	}
	if c.ep.noPool {
		return payload, nil // a plain allocation nobody else holds
	}
	msg := make([]byte, len(payload))
	copy(msg, payload)
	c.ep.pool.Free(frame)
	return msg, nil
}

// Close closes the virtual connection: messages still queued are dropped,
// Receive returns io.EOF, Send returns ErrClosed. Unless the gateway closed
// it already, Close(ConnID) is queued to the gateway behind the frames
// already sent, so they are delivered first; like Send, that may wait for
// room in the send queue. Data the gateway sends before it acknowledges is
// dropped. Close is idempotent and always returns nil.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		ep := c.ep
		ep.mu.Lock()
		live := ep.conns[c.id] == c
		if live {
			delete(ep.conns, c.id)
			c.goneLocked()
		}
		ep.mu.Unlock()
		for _, f := range c.q.closeDrop() {
			ep.pool.Free(f)
		}
		if live {
			frame := ep.pool.Alloc(CloseSize)
			Command{Type: CmdClose, ConnID: c.id}.Put(frame)
			_ = ep.enqueue(context.Background(), nil, frame)
		}
	})
	return nil
}
