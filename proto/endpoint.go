package proto

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/slab"
)

// EndPoint is one physical connection to a gateway, carrying many virtual
// connections (*Conn): a game client's (NewClient) or a backend server's
// (DialServer).
//
// Goroutines: a reader, which reads frames, queues data to its virtual
// connection and handles commands; a writer, which writes queued frames,
// gathering whatever is queued into one writev; and a keep-alive timer
// (time.AfterFunc) whose function runs briefly once per PingInterval. All of
// them stop when the endpoint closes, and Close waits for them.
//
// Queues: one send queue of SendChanSize frames shared by all virtual
// connections (Send, Dial and Conn.Close wait for room); a small control
// queue for Close and Ping frames that the reader and timer must send without
// waiting; a receive queue of RecvChanSize messages per virtual connection;
// and an accept queue of AcceptBacklog virtual connections.
type EndPoint struct {
	conn   net.Conn
	cfg    EndPointCfg // defaults filled in
	pool   slab.Pool
	noPool bool // pool is slab.NoPool: a received frame can be handed out as is

	sendq   chan []byte // data frames, Dial and Close, in order
	ctrl    ctrlQueue   // frames that must not wait for room in sendq
	acceptq chan *Conn  // Connect'ed virtual connections not yet accepted

	dialMu sync.Mutex // keeps pending dials in the order their Dial frames are queued

	server bool // a server's endpoint (DialServer): fan-out is allowed (group.go)

	mu      sync.Mutex
	conns   map[uint32]*Conn // live virtual connections by ConnID; nil once closed
	pending []*pendingDial   // Dials awaiting Accept or Refuse, oldest first
	// groups are a server's groups by GroupID, nextGroup the last GroupID
	// handed out (group.go).
	groups    map[uint32]*Group
	nextGroup uint32
	closed    bool
	err       error // why the endpoint closed
	timer     *time.Timer

	done chan struct{} // closed when the endpoint closes
	wg   sync.WaitGroup

	start     time.Time
	lastSend  atomic.Int64  // now() when the last write finished
	recvCount atomic.Uint64 // frames read so far

	// Keep-alive state, used by the timer function only.
	pinging  bool   // a Ping is out and nothing arrived since
	pingAt   int64  // now() when that Ping was queued
	pingMark uint64 // recvCount then
}

// pendingDial is a Dial waiting for its reply.
type pendingDial struct {
	remoteID  uint32
	result    chan dialResult // cap 1
	abandoned bool            // the dialer gave up; guarded by EndPoint.mu
}

type dialResult struct {
	conn *Conn
	err  error
}

// ctrlLimit bounds the control queue, in frames.
const ctrlLimit = 1 << 16

// NewClient returns a client endpoint speaking the gateway protocol over
// conn, an already connected stream (TCP, TLS, or any net.Conn). The endpoint
// owns conn from now on and closes it on Close. On error conn is left open.
func NewClient(conn net.Conn, cfg EndPointCfg) (*EndPoint, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newEndPoint(conn, cfg, false), nil
}

// DialServer runs a backend server's handshake on conn, a fresh connection
// to the gateway's server port (docs/protocol.md §2: cfg.AuthKey and
// cfg.ServerID, any u32, 0 included), then returns the server's endpoint.
// The handshake must finish within DefaultAuthTimeout. The endpoint owns
// conn from now on; on error conn is left open for the caller to close.
func DialServer(conn net.Conn, cfg EndPointCfg) (*EndPoint, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := AuthenticateToGateway(conn, cfg.AuthKey, cfg.ServerID, 0); err != nil {
		return nil, err
	}
	return newEndPoint(conn, cfg, true), nil
}

// DialClientAddr connects to a gateway's client port with net.Dial and
// returns a client endpoint over that connection.
func DialClientAddr(network, addr string, cfg EndPointCfg) (*EndPoint, error) {
	return dialAddr(network, addr, cfg, NewClient)
}

// DialServerAddr connects to a gateway's server port with net.Dial, runs the
// server handshake and returns the server endpoint. The connection is closed
// if the handshake fails.
func DialServerAddr(network, addr string, cfg EndPointCfg) (*EndPoint, error) {
	return dialAddr(network, addr, cfg, DialServer)
}

func dialAddr(network, addr string, cfg EndPointCfg, open func(net.Conn, EndPointCfg) (*EndPoint, error)) (*EndPoint, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	ep, err := open(conn, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("fastway: %s: %w", addr, err)
	}
	return ep, nil
}

// newEndPoint starts the goroutines of an endpoint over conn. cfg is valid.
func newEndPoint(conn net.Conn, cfg EndPointCfg, server bool) *EndPoint {
	cfg = cfg.withDefaults()
	_, noPool := cfg.MemPool.(slab.NoPool)
	ep := &EndPoint{
		server:  server,
		conn:    conn,
		cfg:     cfg,
		pool:    cfg.MemPool,
		noPool:  noPool,
		sendq:   make(chan []byte, cfg.SendChanSize),
		acceptq: make(chan *Conn, AcceptBacklog),
		conns:   make(map[uint32]*Conn),
		done:    make(chan struct{}),
		start:   time.Now(),
	}
	ep.ctrl.init(max(ctrlLimit, cfg.SendChanSize))
	ep.wg.Add(2)
	go ep.readLoop()
	go ep.writeLoop(newBatchWriter(conn, cfg.BufferSize))
	if cfg.PingInterval > 0 {
		ep.mu.Lock()
		if !ep.closed {
			ep.timer = time.AfterFunc(cfg.PingInterval, ep.keepalive)
		}
		ep.mu.Unlock()
	}
	return ep
}

// now is the time since the endpoint started, from the monotonic clock.
func (ep *EndPoint) now() int64 { return int64(time.Since(ep.start)) }

// Dial opens a virtual connection to remoteID (a server's ID for a client, a
// client's ID for a server). It waits for the gateway's reply: the new *Conn
// on Accept, an error wrapping ErrRefused on Refuse, ErrClosed if the
// endpoint closes first. Several goroutines may Dial at once.
func (ep *EndPoint) Dial(remoteID uint32) (*Conn, error) {
	return ep.DialContext(context.Background(), remoteID)
}

// DialContext is Dial with a context. When ctx ends first it returns
// ctx.Err(); the reply that comes later is still consumed in its turn, and a
// virtual connection it opened is closed.
func (ep *EndPoint) DialContext(ctx context.Context, remoteID uint32) (*Conn, error) {
	p := &pendingDial{remoteID: remoteID, result: make(chan dialResult, 1)}
	frame := ep.pool.Alloc(DialSize)
	Command{Type: CmdDial, RemoteID: remoteID}.Put(frame)

	// Replies come back in the order Dials were sent (docs/protocol.md §1):
	// record and queue atomically with respect to other Dials.
	ep.dialMu.Lock()
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		ep.dialMu.Unlock()
		ep.pool.Free(frame)
		return nil, ErrClosed
	}
	ep.pending = append(ep.pending, p)
	ep.mu.Unlock()
	err := ep.enqueue(ctx, nil, frame)
	if err != nil {
		ep.mu.Lock()
		if n := len(ep.pending); n > 0 && ep.pending[n-1] == p {
			ep.pending[n-1] = nil
			ep.pending = ep.pending[:n-1]
		} else {
			p.abandoned = true
		}
		ep.mu.Unlock()
	}
	ep.dialMu.Unlock()
	if err != nil {
		return nil, err
	}

	select {
	case r := <-p.result:
		return r.conn, r.err
	case <-ep.done:
		return nil, ErrClosed
	case <-ctx.Done():
		ep.mu.Lock()
		p.abandoned = true
		ep.mu.Unlock()
		select {
		case r := <-p.result: // the reply beat the abandonment
			if r.conn != nil {
				r.conn.Close()
			}
		default:
		}
		return nil, ctx.Err()
	}
}

// Accept returns the next virtual connection a peer opened to this endpoint
// (Connect), waiting for one. It returns ErrClosed once the endpoint is
// closed.
func (ep *EndPoint) Accept() (*Conn, error) {
	return ep.AcceptContext(context.Background())
}

// AcceptContext is Accept with a context; it returns ctx.Err() when ctx ends
// first.
func (ep *EndPoint) AcceptContext(ctx context.Context) (*Conn, error) {
	select {
	case <-ep.done:
		return nil, ErrClosed
	default:
	}
	select {
	case c := <-ep.acceptq:
		return c, nil
	case <-ep.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes the endpoint: the socket (frames still queued are not sent),
// every virtual connection, and the goroutines, which it waits for. Pending
// Dials and Accepts return ErrClosed. Each virtual connection is left as if
// the gateway had closed it: Receive returns what was already queued, then
// io.EOF; Conn.Close releases what a caller does not want to read. Virtual
// connections never accepted are closed and released. Call Close also after
// the endpoint closed by itself (Done): it releases what is left. Close is
// idempotent and always returns nil. It must not be called from
// TimeoutCallback.
func (ep *EndPoint) Close() error {
	ep.shutdown(ErrClosed)
	ep.wg.Wait()
	ep.releaseQueued() // what came in after the writer stopped
	for {
		select {
		case c := <-ep.acceptq:
			c.Close()
		default:
			return nil
		}
	}
}

// Err returns why the endpoint closed: ErrClosed after Close, ErrPingTimeout,
// an error wrapping ErrProtocol when the gateway broke the protocol, or the
// read or write error. It returns nil while the endpoint is open.
func (ep *EndPoint) Err() error {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.err
}

// Done returns a channel that is closed when the endpoint closes, for any
// reason; Err then says why.
func (ep *EndPoint) Done() <-chan struct{} { return ep.done }

// LocalAddr returns the local address of the underlying connection.
func (ep *EndPoint) LocalAddr() net.Addr { return ep.conn.LocalAddr() }

// RemoteAddr returns the gateway's address.
func (ep *EndPoint) RemoteAddr() net.Addr { return ep.conn.RemoteAddr() }

// shutdown closes the endpoint with err unless it is already closed. It does
// not wait for the goroutines, so any of them may call it.
func (ep *EndPoint) shutdown(err error) {
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		return
	}
	ep.closed = true
	ep.err = err
	conns := ep.conns
	ep.conns = nil
	ep.pending = nil
	for _, c := range conns {
		c.goneLocked()
	}
	if ep.timer != nil {
		ep.timer.Stop()
	}
	ep.mu.Unlock()
	close(ep.done)
	ep.conn.Close()
	for _, c := range conns {
		c.q.closeKeep(io.EOF)
	}
}

// enqueue puts frame on the send queue, waiting for room until the endpoint
// closes, connDone is closed (nil: never) or ctx ends. It owns frame: on
// error frame is freed.
func (ep *EndPoint) enqueue(ctx context.Context, connDone <-chan struct{}, frame []byte) error {
	select {
	case <-ep.done:
		ep.pool.Free(frame)
		return ErrClosed
	default:
	}
	select {
	case ep.sendq <- frame:
	case <-ep.done:
		ep.pool.Free(frame)
		return ErrClosed
	case <-connDone:
		ep.pool.Free(frame)
		return ErrClosed
	case <-ctx.Done():
		ep.pool.Free(frame)
		return ctx.Err()
	}
	select {
	case <-ep.done:
		// The writer may be gone already: nobody else would free it.
		ep.drainSendq()
	default:
	}
	return nil
}

// releaseQueued frees every frame that waits on the send and control
// queues, once the writer is gone.
func (ep *EndPoint) releaseQueued() {
	ep.drainSendq()
	for _, f := range ep.ctrl.takeAll(nil) {
		ep.pool.Free(f)
	}
}

// drainSendq frees every frame on the send queue.
func (ep *EndPoint) drainSendq() {
	for {
		select {
		case f := <-ep.sendq:
			ep.pool.Free(f)
		default:
			return
		}
	}
}

// sendCtrl queues a command frame that must not wait for room in the send
// queue. If even the control queue is full the endpoint is hopelessly behind
// and closes.
func (ep *EndPoint) sendCtrl(cmd Command) {
	frame := ep.pool.Alloc(CmdSize(cmd.Type))
	cmd.Put(frame)
	if !ep.ctrl.push(frame) {
		ep.pool.Free(frame)
		ep.shutdown(fmt.Errorf("%w: %d control frames unsent", ErrSendQueueFull, ep.ctrl.limit))
	}
}

// pingTimeoutError is the type of ErrPingTimeout: a net.Error that is a
// timeout.
type pingTimeoutError struct{}

func (pingTimeoutError) Error() string   { return "fastway: keep-alive timed out" }
func (pingTimeoutError) Timeout() bool   { return true }
func (pingTimeoutError) Temporary() bool { return true }

var _ net.Error = pingTimeoutError{}
