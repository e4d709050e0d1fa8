package proto

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// writeBatch is the most frames the writer gathers for one write.
const writeBatch = 256

// readLoop reads frames until the connection fails or the gateway breaks the
// protocol, then closes the endpoint. It never waits on a virtual connection.
func (ep *EndPoint) readLoop() {
	defer ep.wg.Done()
	fr := NewFrameReader(ep.conn, ep.pool, ep.cfg.BufferSize, ep.cfg.MaxPacket)
	defer fr.Release()
	var count uint64
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			ep.shutdown(readError(err))
			return
		}
		count++
		ep.recvCount.Store(count)
		if id := Header(frame).ConnID(); id != 0 {
			ep.deliver(id, frame)
			continue
		}
		cmd, err := DecodeCommand(frame)
		ep.pool.Free(frame)
		if err == nil {
			err = ep.handle(cmd)
		}
		if err != nil {
			ep.shutdown(fmt.Errorf("%w: %w", ErrProtocol, err))
			return
		}
	}
}

// readError describes why reading from the gateway stopped.
func readError(err error) error {
	switch {
	case err == io.EOF:
		return fmt.Errorf("fastway: gateway closed the connection: %w", err)
	case errors.Is(err, ErrShortFrame), errors.Is(err, ErrFrameTooLarge):
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return fmt.Errorf("fastway: reading from gateway: %w", err)
}

// deliver queues a data frame to its virtual connection; the queue now owns
// it. Data for a ConnID that is not live (typically late data after a local
// Close) is dropped silently.
func (ep *EndPoint) deliver(id uint32, frame []byte) {
	ep.mu.Lock()
	c := ep.conns[id]
	ep.mu.Unlock()
	if c == nil {
		ep.pool.Free(frame)
		return
	}
	switch c.q.push(frame) {
	case pushed:
	case pushClosed:
		ep.pool.Free(frame)
	case pushFull:
		ep.pool.Free(frame)
		ep.overflow(c)
	}
}

// overflow closes a virtual connection whose receive queue is full, on both
// sides, so that the reader never waits for its receiver.
func (ep *EndPoint) overflow(c *Conn) {
	ep.mu.Lock()
	live := ep.conns[c.id] == c
	if live {
		delete(ep.conns, c.id)
		c.goneLocked()
	}
	ep.mu.Unlock()
	if live {
		c.q.closeKeep(ErrRecvOverflow)
		ep.sendCtrl(Command{Type: CmdClose, ConnID: c.id})
	}
}

// handle acts on a command from the gateway. An error is a protocol
// violation.
func (ep *EndPoint) handle(cmd Command) error {
	switch cmd.Type {
	case CmdPing:
		// The gateway's answer to our Ping: arriving was all it had to do.
		return nil
	case CmdClose:
		// The gateway closed it, or acknowledges our Close (then it is gone
		// already and this is ignored).
		ep.mu.Lock()
		c := ep.conns[cmd.ConnID]
		if c != nil {
			delete(ep.conns, cmd.ConnID)
			c.goneLocked()
		}
		ep.mu.Unlock()
		if c != nil {
			c.q.closeKeep(io.EOF)
		}
		return nil
	case CmdAccept, CmdRefuse:
		return ep.dialReply(cmd)
	case CmdConnect:
		return ep.connect(cmd)
	}
	return fmt.Errorf("gateway sent %s", cmd.Type)
}

// dialReply matches Accept or Refuse with the oldest pending Dial.
func (ep *EndPoint) dialReply(cmd Command) error {
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		return nil
	}
	if len(ep.pending) == 0 {
		ep.mu.Unlock()
		return fmt.Errorf("%s without a pending Dial", cmd.Type)
	}
	p := ep.pending[0]
	if cmd.RemoteID != p.remoteID {
		ep.mu.Unlock()
		return fmt.Errorf("%s for remote %d, oldest pending Dial is to %d", cmd.Type, cmd.RemoteID, p.remoteID)
	}
	if cmd.Type == CmdAccept && (cmd.ConnID == 0 || ep.conns[cmd.ConnID] != nil) {
		ep.mu.Unlock()
		return fmt.Errorf("bad Accept: ConnID %d is 0 or already live", cmd.ConnID)
	}
	ep.pending[0] = nil
	ep.pending = ep.pending[1:]

	if cmd.Type == CmdRefuse {
		if !p.abandoned {
			p.result <- dialResult{err: fmt.Errorf("%w: remote %d", ErrRefused, cmd.RemoteID)}
		}
		ep.mu.Unlock()
		return nil
	}
	if p.abandoned {
		ep.mu.Unlock()
		ep.sendCtrl(Command{Type: CmdClose, ConnID: cmd.ConnID})
		return nil
	}
	c := ep.newConn(cmd.ConnID, cmd.RemoteID)
	ep.conns[c.id] = c
	p.result <- dialResult{conn: c}
	ep.mu.Unlock()
	return nil
}

// connect queues a virtual connection a peer opened to us for Accept, or
// closes it when the accept queue is full.
func (ep *EndPoint) connect(cmd Command) error {
	if cmd.ConnID == 0 {
		return errors.New("bad Connect: ConnID 0")
	}
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		return nil
	}
	if ep.conns[cmd.ConnID] != nil {
		ep.mu.Unlock()
		return fmt.Errorf("bad Connect: ConnID %d is already live", cmd.ConnID)
	}
	c := ep.newConn(cmd.ConnID, cmd.RemoteID)
	select {
	case ep.acceptq <- c:
		ep.conns[c.id] = c
		ep.mu.Unlock()
	default:
		ep.mu.Unlock()
		ep.sendCtrl(Command{Type: CmdClose, ConnID: c.id})
	}
	return nil
}

// writeLoop writes queued frames until the endpoint closes, gathering
// whatever is queued into one write.
func (ep *EndPoint) writeLoop(w *batchWriter) {
	defer ep.wg.Done()
	defer ep.releaseQueued()
	frames := make([][]byte, 0, writeBatch)
	for {
		select {
		case f := <-ep.sendq:
			frames = append(frames, f)
		case <-ep.ctrl.ready:
		case <-ep.done:
			return
		}
		frames = ep.ctrl.takeAll(frames)
	gather:
		for len(frames) < writeBatch {
			select {
			case f := <-ep.sendq:
				frames = append(frames, f)
			default:
				break gather
			}
		}
		if len(frames) == 0 {
			continue
		}
		err := w.write(frames)
		for i, f := range frames {
			ep.pool.Free(f)
			frames[i] = nil
		}
		frames = frames[:0]
		if err != nil {
			ep.shutdown(fmt.Errorf("fastway: writing to gateway: %w", err))
			return
		}
		ep.lastSend.Store(ep.now())
	}
}

// batchWriter writes several frames with as few syscalls as the connection
// allows: one writev on TCP and Unix sockets; elsewhere (TLS, pipes, wrapped
// connections) small frames are gathered into one buffer of up to limit
// bytes per Write.
type batchWriter struct {
	conn    net.Conn
	writev  bool
	vec     [][]byte // backing for net.Buffers, which consumes its slice
	scratch []byte
	limit   int
}

func newBatchWriter(conn net.Conn, limit int) *batchWriter {
	w := &batchWriter{conn: conn, limit: limit}
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		w.writev = true
	default:
		w.scratch = make([]byte, 0, limit)
	}
	return w
}

// write writes frames in order; it does not free them.
func (w *batchWriter) write(frames [][]byte) error {
	if len(frames) == 1 {
		_, err := w.conn.Write(frames[0])
		return err
	}
	if w.writev {
		w.vec = append(w.vec[:0], frames...)
		bufs := net.Buffers(w.vec)
		_, err := bufs.WriteTo(w.conn)
		clear(w.vec)
		return err
	}
	for _, f := range frames {
		if len(w.scratch)+len(f) > w.limit {
			if err := w.flush(); err != nil {
				return err
			}
		}
		if len(f) >= w.limit {
			if _, err := w.conn.Write(f); err != nil {
				return err
			}
			continue
		}
		w.scratch = append(w.scratch, f...)
	}
	return w.flush()
}

// flush writes the gathered bytes.
func (w *batchWriter) flush() error {
	if len(w.scratch) == 0 {
		return nil
	}
	_, err := w.conn.Write(w.scratch)
	w.scratch = w.scratch[:0]
	return err
}

// keepalive runs on the timer: it sends a Ping when nothing was sent for
// PingInterval and runs TimeoutCallback when nothing arrived for PingTimeout
// after a Ping, then sets the timer for the next of those moments.
func (ep *EndPoint) keepalive() {
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		return
	}
	ep.wg.Add(1) // Close waits for this run
	ep.mu.Unlock()
	defer ep.wg.Done()

	interval, timeout := int64(ep.cfg.PingInterval), int64(ep.cfg.PingTimeout)
	now := ep.now()
	if ep.pinging && ep.recvCount.Load() != ep.pingMark {
		ep.pinging = false // something arrived since the Ping
	}
	if ep.pinging && timeout > 0 && now-ep.pingAt >= timeout {
		if cb := ep.cfg.TimeoutCallback; cb == nil || !cb() {
			ep.shutdown(ErrPingTimeout)
			return
		}
		ep.pinging = false
		now = ep.now()
	}
	next := interval - (now - ep.lastSend.Load())
	if next <= 0 {
		if !ep.pinging {
			ep.pinging, ep.pingAt, ep.pingMark = true, now, ep.recvCount.Load()
		}
		ep.sendCtrl(Command{Type: CmdPing})
		next = interval
	}
	if ep.pinging && timeout > 0 {
		next = min(next, ep.pingAt+timeout-now)
	}
	ep.mu.Lock()
	if !ep.closed {
		ep.timer.Reset(time.Duration(next))
	}
	ep.mu.Unlock()
}
