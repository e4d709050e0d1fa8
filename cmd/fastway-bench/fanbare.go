package main

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// fanServer is the fan-out baseline (-listen ADDR -fanout): the physical
// limit of one server's message going to many sockets. It speaks the
// client side of docs/protocol.md §1 as the bare echo process does (Dial
// gets Accept, Ping gets Ping), and:
//
//   - a connection that sends a Publish (§7) is the publisher; the payloads
//     of the Publishes it sent that one read returned are written to every
//     other connection, as the data frames their virtual connection (the
//     first it dialed) would receive from a gateway, in one write per
//     connection: the batching of a gateway that reads the same Publishes;
//   - a data frame from any other connection goes to the publisher as it
//     is (the receivers' acknowledgements).
//
// No routing, no groups, no queues: one goroutine per connection, and the
// publisher's writes all of its deliveries, socket after socket.
type fanServer struct {
	ln        net.Listener
	maxPacket int
	nextID    atomic.Uint32

	mu      sync.Mutex
	members []*fanMember // connections that dialed, but the publisher
	pub     *fanMember
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// fanMember is one connection of a fanServer.
type fanMember struct {
	conn net.Conn
	id   uint32     // its first virtual connection (0 before its Dial)
	wmu  sync.Mutex // one writer at a time: its own goroutine's replies, the publisher's deliveries
}

func newFanServer(ln net.Listener, maxPacket int) *fanServer {
	return &fanServer{ln: ln, maxPacket: maxPacket, conns: make(map[net.Conn]struct{})}
}

// serve accepts connections until close; it returns nil after close.
func (s *fanServer) serve() error {
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(conn)
	}
}

// close stops serving: the listener and every connection close.
func (s *fanServer) close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

// handle serves one connection until it ends.
func (s *fanServer) handle(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	m := &fanMember{conn: conn}
	fr := newFrameReader(conn, 4<<10, 256<<10, s.maxPacket)
	var out, fwd, scratch []byte
	var payloads [][]byte
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
				fwd = append(fwd, f...)
				continue
			}
			if typ, ok := proto.FanoutType(f); ok && typ == proto.CmdPublish {
				cmd, err := proto.DecodeFanout(f)
				if err != nil {
					return
				}
				payloads = append(payloads, cmd.Payload)
				continue
			}
			cmd, err := proto.DecodeCommand(f)
			if err != nil {
				return
			}
			switch cmd.Type {
			case proto.CmdDial:
				id := s.nextID.Add(1)
				out = proto.Command{Type: proto.CmdAccept, ConnID: id, RemoteID: cmd.RemoteID}.Encode(out)
				if m.id == 0 {
					m.id = id
					s.mu.Lock()
					s.members = append(s.members, m)
					s.mu.Unlock()
				}
			case proto.CmdPing:
				out = append(out, f...)
			case proto.CmdClose:
				out = append(out, f...)
			default:
				return
			}
		}
		if len(out) > 0 {
			m.wmu.Lock()
			_, err := conn.Write(out)
			m.wmu.Unlock()
			if err != nil {
				return
			}
			out = out[:0]
		}
		if len(fwd) > 0 {
			s.mu.Lock()
			pub := s.pub
			s.mu.Unlock()
			if pub != nil {
				pub.wmu.Lock()
				pub.conn.Write(fwd)
				pub.wmu.Unlock()
			}
			fwd = fwd[:0]
		}
		if len(payloads) > 0 {
			scratch = s.deliver(m, payloads, scratch)
			clear(payloads)
			payloads = payloads[:0]
		}
	}
}

// deliver writes payloads to every member but pub, the publisher, one
// write per member, and returns the scratch buffer for reuse.
func (s *fanServer) deliver(pub *fanMember, payloads [][]byte, scratch []byte) []byte {
	s.mu.Lock()
	if s.pub != pub {
		s.pub = pub
		for i, m := range s.members {
			if m == pub {
				s.members = append(s.members[:i], s.members[i+1:]...)
				break
			}
		}
	}
	members := s.members
	s.mu.Unlock()
	for _, m := range members {
		b := scratch[:0]
		for _, p := range payloads {
			b = proto.EncodeData(b, m.id, p)
		}
		m.wmu.Lock()
		m.conn.Write(b)
		m.wmu.Unlock()
		scratch = b
	}
	return scratch
}
