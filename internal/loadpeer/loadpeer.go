// Package loadpeer holds the raw peers of the tests that shut a gateway
// down under load (gateway and cmd/fastway): a server that reads slowly and
// pings meanwhile, and clients that send as fast as the gateway takes.
package loadpeer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// PacedReader reads from R at most Rate bytes per second on average, in
// reads of at most Chunk bytes: a reader that cannot keep up.
type PacedReader struct {
	R     io.Reader
	Rate  int // bytes per second
	Chunk int
	start time.Time
	n     int64 // bytes read so far
}

func (p *PacedReader) Read(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	// Pacing, not synchronisation: wait until the bytes read so far are
	// due at Rate.
	if wait := time.Until(p.start.Add(time.Duration(p.n * int64(time.Second) / int64(p.Rate)))); wait > 0 {
		time.Sleep(wait)
	}
	if len(b) > p.Chunk {
		b = b[:p.Chunk]
	}
	n, err := p.R.Read(b)
	p.n += int64(n)
	return n, err
}

// SlowServer is a raw server, authenticated already, that reads at a
// bounded rate and sends a Ping every pingEvery meanwhile, so that while
// the gateway does not read it (a shutdown), its socket at the gateway
// holds unread bytes. It counts the data frames it receives, checks that
// each virtual connection's numbers (the first 4 bytes of each message)
// run without a gap, and closes its socket when it reads EOF, as a server
// does.
type SlowServer struct {
	conn      net.Conn
	data      atomic.Int64 // data frames received
	dataBytes atomic.Int64 // their bytes, headers included
	cmds      atomic.Int64 // commands received
	pings     atomic.Int64 // Pings sent
	stopPing  chan struct{}
	pingOnce  sync.Once
	done      chan struct{} // closed when reading ended
	pinger    chan struct{} // closed when the pinger returned
	err       error         // why reading ended, set before done is closed
	outOfSeq  error
}

// NewSlowServer starts a SlowServer on conn, reading rate bytes per second:
// it sends a Ping and waits (up to wait) for its answer, which proves the
// gateway has registered it.
func NewSlowServer(conn net.Conn, rate int, pingEvery, wait time.Duration) (*SlowServer, error) {
	s := &SlowServer{conn: conn, stopPing: make(chan struct{}), done: make(chan struct{}), pinger: make(chan struct{})}
	fr := proto.NewFrameReader(&PacedReader{R: conn, Rate: rate, Chunk: 16 << 10}, nil, 64<<10, 0)
	conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write(proto.Command{Type: proto.CmdPing}.Encode(nil)); err != nil {
		return nil, err
	}
	s.pings.Add(1)
	if f, err := fr.ReadFrame(); err != nil || proto.Header(f).ConnID() != 0 {
		return nil, fmt.Errorf("server ping: %x, %v", f, err)
	}
	s.cmds.Add(1)
	conn.SetDeadline(time.Time{})
	go s.read(fr)
	go s.pingLoop(pingEvery)
	return s, nil
}

func (s *SlowServer) ping() {
	s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.conn.Write(proto.Command{Type: proto.CmdPing}.Encode(nil)); err == nil {
		s.pings.Add(1)
	}
}

func (s *SlowServer) pingLoop(every time.Duration) {
	defer close(s.pinger)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.ping()
		case <-s.stopPing:
			return
		case <-s.done:
			return
		}
	}
}

// StopPinging stops the Pings and waits for the pinger to return.
func (s *SlowServer) StopPinging() {
	s.pingOnce.Do(func() { close(s.stopPing) })
	<-s.pinger
}

func (s *SlowServer) read(fr *proto.FrameReader) {
	defer close(s.done)
	defer s.conn.Close()
	next := map[uint32]uint32{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			s.err = err
			return
		}
		id := proto.Header(f).ConnID()
		if id == 0 {
			s.cmds.Add(1)
			continue
		}
		seq := binary.LittleEndian.Uint32(f[proto.HeaderSize:])
		if seq != next[id] && s.outOfSeq == nil {
			s.outOfSeq = fmt.Errorf("ConnID %d: message %d after %d", id, seq, next[id]-1)
		}
		next[id] = seq + 1
		s.data.Add(1)
		s.dataBytes.Add(int64(len(f)))
	}
}

// Wait waits up to d for the server's reading to end (EOF, a reset, or
// Close) and its pinger to return; it returns the first gap in a sequence,
// or an error if it did not end in time.
func (s *SlowServer) Wait(d time.Duration) error {
	select {
	case <-s.done:
	case <-time.After(d):
		return errors.New("the server's connection did not end")
	}
	s.StopPinging()
	return s.outOfSeq
}

// Close closes the server's socket and waits for its goroutines.
func (s *SlowServer) Close() {
	s.conn.Close()
	<-s.done
	s.StopPinging()
}

// Data returns the data frames received and their bytes.
func (s *SlowServer) Data() (frames, bytes int64) { return s.data.Load(), s.dataBytes.Load() }

// Pings returns how many Pings the server sent.
func (s *SlowServer) Pings() int64 { return s.pings.Load() }

// Err returns why reading ended; call it after Wait.
func (s *SlowServer) Err() error { return s.err }

// FloodClient dials server 1 on a raw client connection and writes numbered
// data frames of size bytes as fast as the gateway takes them. Its reader
// closes the socket at EOF, as a client does, which also ends the writer.
type FloodClient struct {
	conn   net.Conn
	id     uint32
	sent   atomic.Int64
	done   chan struct{} // reader and writer returned
	failed error         // the reader's error if it did not end at EOF or a reset
}

// NewFloodClient dials server 1 on conn, waits (up to wait) for the Accept,
// and starts sending. A read that waits longer than idle fails the client.
func NewFloodClient(conn net.Conn, size int, wait, idle time.Duration) (*FloodClient, error) {
	fr := proto.NewFrameReader(conn, nil, 0, 1<<24)
	conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil)); err != nil {
		return nil, err
	}
	f, err := fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	a, err := proto.DecodeCommand(f)
	if err != nil || a.Type != proto.CmdAccept {
		return nil, fmt.Errorf("got %+v (%v), want Accept", a, err)
	}
	conn.SetDeadline(time.Time{})
	c := &FloodClient{conn: conn, id: a.ConnID, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer conn.Close()
		for {
			conn.SetReadDeadline(time.Now().Add(idle))
			if _, err := fr.ReadFrame(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					c.failed = err
				}
				return
			}
		}
	})
	wg.Go(func() {
		const batch = 16
		msg := make([]byte, size-proto.HeaderSize)
		var b []byte
		for seq := uint32(0); ; {
			b = b[:0]
			for range batch {
				binary.LittleEndian.PutUint32(msg, seq)
				b = proto.EncodeData(b, c.id, msg)
				seq++
			}
			conn.SetWriteDeadline(time.Now().Add(idle))
			n, err := conn.Write(b)
			c.sent.Add(int64(n / size))
			if err != nil {
				return
			}
		}
	})
	go func() { wg.Wait(); close(c.done) }()
	return c, nil
}

// Wait waits up to d for the client to end and returns its reader's error,
// if it did not end at EOF or a reset.
func (c *FloodClient) Wait(d time.Duration) error {
	select {
	case <-c.done:
		return c.failed
	case <-time.After(d):
		return errors.New("the client did not end")
	}
}

// Close closes the client's socket and waits for its goroutines.
func (c *FloodClient) Close() {
	c.conn.Close()
	<-c.done
}

// Sent returns the data frames the client wrote whole.
func (c *FloodClient) Sent() int64 { return c.sent.Load() }
