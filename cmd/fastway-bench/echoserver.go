package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// echoServer is the baseline target (-listen): the gateway's framing served
// by a bare process with no routing, so each run can state how far the
// gateway is from what the box can do at all. It speaks the client side of
// docs/protocol.md §1 and nothing more: Dial is answered with Accept (a
// ConnID from a local counter, the RemoteID as dialed), a data frame is
// written back on the same connection, Ping with Ping, Close with Close.
// Accept, Connect, Refuse, an unknown command or a bad Length close the
// connection, as they would at the gateway. Like the bench's own sockets it
// has one goroutine per connection, which reads a batch of frames and
// answers them all in one write.
//
// With relay set (-listen with -relay) it is instead a bare relay: every
// connection is copied byte for byte, both ways, to a connection of its own
// to the relay address, with no framing at all. A relay in front of an echo
// process is two hops, like a gateway in front of a server: the latency
// floor any proxy has on this box.
type echoServer struct {
	ln        net.Listener
	maxPacket int
	relay     string
	stderr    io.Writer // where a relay's failed dial is reported (nil: nowhere)

	nextID atomic.Uint32 // last ConnID handed out

	// dialCtx is cancelled by close, so a relay's dial under way ends with it.
	dialCtx    context.Context
	cancelDial context.CancelFunc

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// The echo server's read buffer per connection starts at echoBufMin and
// grows to echoBufMax while reads fill it, so 100,000 idle connections do
// not hold 64 KiB each.
const (
	echoBufMin = 2 << 10
	echoBufMax = 256 << 10
)

func newEchoServer(ln net.Listener, maxPacket int) *echoServer {
	s := &echoServer{ln: ln, maxPacket: maxPacket, conns: make(map[net.Conn]struct{})}
	s.dialCtx, s.cancelDial = context.WithCancel(context.Background())
	return s
}

// serve accepts connections until close; it returns nil after close.
func (s *echoServer) serve() error {
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				// Out of file descriptors or a transient failure: back off
				// as net/http does, 5 ms doubling to 1 s.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("fastway-bench: echo accept: %w", err)
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return nil
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(conn)
	}
}

func (s *echoServer) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// close stops accepting, closes every connection and waits for their
// goroutines.
func (s *echoServer) close() {
	s.mu.Lock()
	s.closed = true
	s.cancelDial()
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// newConnID returns the next ConnID, skipping 0 when the counter wraps.
func (s *echoServer) newConnID() uint32 {
	for {
		if id := s.nextID.Add(1); id != 0 {
			return id
		}
	}
}

func (s *echoServer) handle(conn net.Conn) {
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		s.wg.Done()
	}()
	if s.relay != "" {
		s.relayConn(conn)
		return
	}
	// The loop of frameReader.serve, written out with data frames handled
	// inline: this process is the baseline every ratio divides by, and
	// serve's handler call per frame measured 499-511 user-space
	// instructions per round trip against 463-464 (perf stat, 10 x 1).
	fr := newFrameReader(conn, echoBufMin, echoBufMax, s.maxPacket)
	var out []byte
	for {
		if err := fr.fill(); err != nil {
			return
		}
		for {
			f, err := fr.next()
			if err != nil {
				return
			}
			if f == nil {
				break
			}
			if proto.Header(f).ConnID() != 0 {
				out = append(out, f...) // data: the fast path, inline
			} else if out, err = s.command(f, out); err != nil {
				return // its end is the connection's
			}
		}
		if len(out) > 0 {
			if _, err := conn.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

// command appends the echo process's reply to command frame f to out: Ping
// and Close come back as they are (Ping answers Ping, Close acknowledges
// Close), Dial gets Accept with a new ConnID (0 too: a client's Dial names
// a server ID, and 0 is one, docs/protocol.md §1.4); anything else
// is the gateway's to send and ends the connection. (Data frames are
// echoed inline by handle.)
func (s *echoServer) command(f, out []byte) ([]byte, error) {
	c, err := proto.DecodeCommand(f)
	if err != nil {
		return out, err
	}
	switch c.Type {
	case proto.CmdDial:
		return proto.Command{Type: proto.CmdAccept, ConnID: s.newConnID(), RemoteID: c.RemoteID}.Encode(out), nil
	case proto.CmdPing, proto.CmdClose:
		return append(out, f...), nil
	default:
		return out, fmt.Errorf("%s sent to the echo process", c.Type)
	}
}

// relayConn copies conn to a new connection to the relay address and back
// until either side ends. Closing conn (close does) ends the first copy,
// which closes up and so ends the second.
func (s *echoServer) relayConn(conn net.Conn) {
	d := net.Dialer{Timeout: setupTimeout}
	up, err := d.DialContext(s.dialCtx, "tcp", s.relay)
	if err != nil {
		if s.stderr != nil {
			fmt.Fprintf(s.stderr, "fastway-bench: relay: %v\n", err)
		}
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, conn)
		up.Close() // ends the other copy
		close(done)
	}()
	io.Copy(conn, up)
	conn.Close()
	<-done
}
