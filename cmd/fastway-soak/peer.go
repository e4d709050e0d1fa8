package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// This file holds the flood mode's endpoints. They speak the framing of
// docs/protocol.md §1 and the handshake of §2 straight on their sockets,
// without proto.EndPoint's queues, so the load generator decides exactly
// what is written, when, and how fast the bytes are read off the socket.

// keepAliveEvery is how often an idle peer pings the gateway, well inside
// its 30 s idle timeouts, so a long settle does not close it.
const keepAliveEvery = 5 * time.Second

// peer is one physical connection to the gateway.
type peer struct {
	conn net.Conn
	rd   *bufio.Reader
	wmu  sync.Mutex // one writer at a time: the load and the keep-alive
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup // the peer's goroutines

	mu  sync.Mutex
	err error // the first failure its reader saw
}

func newPeer(conn net.Conn, rd io.Reader) *peer {
	return &peer{conn: conn, rd: bufio.NewReaderSize(rd, 64<<10), done: make(chan struct{})}
}

// fail records err as the peer's failure unless one is recorded or the
// peer is closing.
func (p *peer) fail(err error) {
	select {
	case <-p.done:
		return
	default:
	}
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *peer) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// close closes the socket and waits for the peer's goroutines.
func (p *peer) close() {
	p.once.Do(func() { close(p.done) })
	p.conn.Close()
	p.wg.Wait()
}

// write writes b whole, within timeout.
func (p *peer) write(b []byte, timeout time.Duration) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := p.conn.Write(b)
	return err
}

// writeFrame writes frame unless deadline passes first. It returns
// whether the frame went out whole: a frame the deadline cut after its
// first byte is finished (within grace), so the stream stays framed, and
// counts as written; the error is then os.ErrDeadlineExceeded. A deadline
// that passes before the first byte returns false and
// os.ErrDeadlineExceeded.
func (p *peer) writeFrame(frame []byte, deadline time.Time, grace time.Duration) (bool, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.conn.SetWriteDeadline(deadline)
	n, err := p.conn.Write(frame)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 {
		return false, err
	}
	p.conn.SetWriteDeadline(time.Now().Add(grace))
	if _, err := p.conn.Write(frame[n:]); err != nil {
		return false, fmt.Errorf("finishing a frame cut by the flood's end: %w", err)
	}
	return true, os.ErrDeadlineExceeded
}

// keepAlive pings the gateway every keepAliveEvery until the peer closes.
func (p *peer) keepAlive() {
	ping := proto.Command{Type: proto.CmdPing}.Encode(nil)
	p.wg.Go(func() {
		t := time.NewTicker(keepAliveEvery)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				if err := p.write(ping, 10*time.Second); err != nil {
					p.fail(fmt.Errorf("ping: %w", err))
					return
				}
			}
		}
	})
}

// readFrame reads one frame, Length field included, into buf (grown when
// too small) and returns it.
func readFrame(r *bufio.Reader, buf []byte, maxPacket int) ([]byte, error) {
	if cap(buf) < proto.HeaderSize {
		buf = make([]byte, 0, 64<<10)
	}
	h := buf[:proto.HeaderSize]
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	length := proto.Header(h).Length()
	if err := proto.CheckLength(length, maxPacket); err != nil {
		return nil, err
	}
	total := proto.SizeOfLength + int(length)
	if cap(buf) < total {
		nb := make([]byte, total)
		copy(nb, h)
		buf = nb
	}
	buf = buf[:total]
	_, err := io.ReadFull(r, buf[proto.HeaderSize:])
	return buf, err
}

// readCommand reads frames until a command and decodes it; data frames
// before it are an error (none is expected while setting up).
func (p *peer) readCommand(timeout time.Duration) (proto.Command, error) {
	p.conn.SetReadDeadline(time.Now().Add(timeout))
	defer p.conn.SetReadDeadline(time.Time{})
	f, err := readFrame(p.rd, nil, proto.MaxCmdSize)
	if err != nil {
		return proto.Command{}, err
	}
	return proto.DecodeCommand(f)
}

// dataFrame returns a frame of msgSize message bytes on connID, the
// message filled with a pattern; its first 8 bytes take the sequence
// number (putSeq).
func dataFrame(connID uint32, msgSize int) []byte {
	f := make([]byte, proto.HeaderSize+msgSize)
	proto.PutHeader(f, connID)
	for i := proto.HeaderSize; i < len(f); i++ {
		f[i] = byte(i)
	}
	return f
}

func putSeq(frame []byte, seq uint64) { binary.LittleEndian.PutUint64(frame[proto.HeaderSize:], seq) }

// counts is what one side sent or received: frames and message bytes.
type counts struct {
	frames, bytes atomic.Int64
}

func (c *counts) add(msgBytes int) {
	c.frames.Add(1)
	c.bytes.Add(int64(msgBytes))
}

func (c *counts) String() string {
	return fmt.Sprintf("%d frames %s", c.frames.Load(), mib(c.bytes.Load()))
}

// flood writes frame on p, numbered from 0, as fast as the socket takes
// it, until deadline or stop, counting each frame that went out whole in
// c. A frame the deadline cuts is finished within grace (see writeFrame).
func (p *peer) flood(frame []byte, deadline time.Time, grace time.Duration, stop <-chan struct{}, c *counts) error {
	msg := len(frame) - proto.HeaderSize
	for seq := uint64(0); ; seq++ {
		select {
		case <-stop:
			return nil
		default:
		}
		putSeq(frame, seq)
		whole, err := p.writeFrame(frame, deadline, grace)
		if whole {
			c.add(msg)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return err
		}
		if !time.Now().Before(deadline) {
			return nil
		}
	}
}

// floodClient is a client that dials server 1 and, in the flood, only
// writes; its reader discards what comes back (Ping answers) and fails on
// a Close of its virtual connection.
type floodClient struct {
	*peer
	connID uint32
	sent   counts
}

// dialFloodClient connects a client, dials server 1, and reads its Accept
// (retrying while it is refused: the server may not be registered yet).
func dialFloodClient(addr string) (*floodClient, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &floodClient{peer: newPeer(conn, conn)}
	dial := proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd, err := c.sendAndRead(dial)
		if err != nil {
			c.close()
			return nil, err
		}
		if cmd.Type == proto.CmdAccept {
			c.connID = cmd.ConnID
			break
		}
		if cmd.Type != proto.CmdRefuse || time.Now().After(deadline) {
			c.close()
			return nil, fmt.Errorf("dial server 1: got %s", cmd.Type)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.wg.Go(c.discard)
	c.keepAlive()
	return c, nil
}

func (c *floodClient) sendAndRead(frame []byte) (proto.Command, error) {
	if err := c.write(frame, 10*time.Second); err != nil {
		return proto.Command{}, err
	}
	return c.readCommand(10 * time.Second)
}

func (c *floodClient) discard() {
	var buf []byte
	for {
		f, err := readFrame(c.rd, buf, proto.DefaultMaxPacket)
		if err != nil {
			c.fail(fmt.Errorf("client: read: %w", err))
			return
		}
		buf = f
		if proto.Header(f).ConnID() == 0 {
			if cmd, err := proto.DecodeCommand(f); err == nil && cmd.Type == proto.CmdClose && cmd.ConnID == c.connID {
				c.fail(fmt.Errorf("the gateway closed the client's virtual connection %d", c.connID))
			}
		}
	}
}

// floodServer is server 1. Its reader reads through a pacer, checks every
// data frame (its virtual connection, size and sequence number) and counts
// it; it reports the virtual connection a client opened and its Close.
type floodServer struct {
	*peer
	pace      *pacer
	maxPacket int
	msgSize   int // the data frames' expected message size (0: any)

	connected chan uint32   // the ConnID of the first Connect
	closed    chan struct{} // closed at the Close of that ConnID
	connID    atomic.Uint32
	received  counts
}

// dialFloodServer connects server 1, runs the handshake, and waits for the
// answer to a Ping, after which the gateway takes Dials for it (§2).
func dialFloodServer(addr, key string, maxPacket, msgSize int) (*floodServer, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := proto.AuthenticateToGateway(conn, key, 1, 10*time.Second); err != nil {
		conn.Close()
		return nil, err
	}
	pace := &pacer{r: conn}
	s := &floodServer{
		peer: newPeer(conn, pace), pace: pace, maxPacket: maxPacket, msgSize: msgSize,
		connected: make(chan uint32, 1), closed: make(chan struct{}),
	}
	pace.done = s.done
	if err := s.write(proto.Command{Type: proto.CmdPing}.Encode(nil), 10*time.Second); err != nil {
		s.close()
		return nil, err
	}
	if cmd, err := s.readCommand(10 * time.Second); err != nil || cmd.Type != proto.CmdPing {
		s.close()
		return nil, fmt.Errorf("server: no answer to its first Ping (%v, %v)", cmd.Type, err)
	}
	s.wg.Go(s.read)
	s.keepAlive()
	return s, nil
}

func (s *floodServer) read() {
	buf := make([]byte, 0, 64<<10)
	var next uint64
	closedOnce := false
	for {
		f, err := readFrame(s.rd, buf, s.maxPacket)
		if err != nil {
			s.fail(fmt.Errorf("server: read: %w", err))
			return
		}
		buf = f[:0]
		h := proto.Header(f)
		if h.ConnID() == 0 {
			cmd, err := proto.DecodeCommand(f)
			if err != nil {
				s.fail(fmt.Errorf("server: %w", err))
				return
			}
			switch {
			case cmd.Type == proto.CmdConnect && s.connID.Load() == 0:
				s.connID.Store(cmd.ConnID)
				s.connected <- cmd.ConnID
			case cmd.Type == proto.CmdClose && cmd.ConnID == s.connID.Load() && !closedOnce:
				closedOnce = true
				close(s.closed)
			}
			continue
		}
		msg := f[proto.HeaderSize:]
		switch {
		case h.ConnID() != s.connID.Load():
			s.fail(fmt.Errorf("server: data frame on ConnID %d, want %d", h.ConnID(), s.connID.Load()))
			return
		case s.msgSize > 0 && len(msg) != s.msgSize, len(msg) < 8:
			s.fail(fmt.Errorf("server: frame %d carries %d bytes, want %d", next, len(msg), s.msgSize))
			return
		case binary.LittleEndian.Uint64(msg) != next:
			s.fail(fmt.Errorf("server: got frame %d, want %d (lost or reordered)", binary.LittleEndian.Uint64(msg), next))
			return
		}
		next++
		s.received.add(len(msg))
	}
}

// waitConnect waits for a client's virtual connection to the server.
func (s *floodServer) waitConnect(within time.Duration) (uint32, error) {
	select {
	case id := <-s.connected:
		return id, nil
	case <-time.After(within):
		return 0, fmt.Errorf("server: no Connect within %v (%v)", within, s.failure())
	}
}

// pacer is the server's socket as its reader sees it: reads wait until
// from, and after it bring in at most rate bytes a second on average
// (rate 0: as fast as they come). Each read asks for at most pacedChunk
// bytes and waits until the bytes already read are due, so it is ahead of
// the schedule by one read at most.
type pacer struct {
	r    io.Reader
	done <-chan struct{}

	mu   sync.Mutex
	rate float64   // bytes per second; 0: no limit
	from time.Time // start of the schedule
	read int64     // bytes read since from
}

const pacedChunk = 64 << 10

// set starts a new schedule: nothing is read before from; then rate
// bytes a second (0: no limit).
func (p *pacer) set(rate float64, from time.Time) {
	p.mu.Lock()
	p.rate, p.from, p.read = rate, from, 0
	p.mu.Unlock()
}

func (p *pacer) Read(b []byte) (int, error) {
	p.mu.Lock()
	due := p.from
	if p.rate > 0 {
		due = due.Add(time.Duration(float64(p.read) / p.rate * float64(time.Second)))
		if len(b) > pacedChunk {
			b = b[:pacedChunk]
		}
	}
	p.mu.Unlock()
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-p.done:
			t.Stop()
			return 0, net.ErrClosed
		}
	}
	n, err := p.r.Read(b)
	p.mu.Lock()
	p.read += int64(n)
	p.mu.Unlock()
	return n, err
}
