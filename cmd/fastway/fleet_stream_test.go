package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

// streamServer is a server over the fleet endpoint whose every accepted
// virtual connection joins one fleet-wide room; stream publishes numbered
// messages to the room at a steady pace, and counts them.
type streamServer struct {
	t    *testing.T
	f    *proto.Fleet
	room *proto.FleetGroup

	mu      sync.Mutex
	sent    int   // messages published
	pubErr  error // the first Publish error
	stop    chan struct{}
	stopped chan struct{}
}

func newStreamServer(t *testing.T, id uint32, d proto.Discovery) *streamServer {
	t.Helper()
	f, err := proto.NewFleet(proto.FleetConfig{
		EndPoint:   proto.EndPointCfg{ServerID: id, AuthKey: password},
		Discovery:  d,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &streamServer{t: t, f: f, room: f.NewGroup()}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := f.Accept()
			if err != nil {
				return
			}
			if err := s.room.Join(c); err != nil && !errors.Is(err, proto.ErrClosed) {
				t.Errorf("Join: %v", err)
			}
		}
	}()
	t.Cleanup(func() {
		s.halt()
		f.Close()
		<-accepted
	})
	return s
}

// stream starts publishing to the room, one message every 2 ms: "s<n>",
// n counting from 1.
func (s *streamServer) stream() {
	s.stop, s.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.stopped)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			s.mu.Lock()
			n := s.sent + 1
			s.mu.Unlock()
			if err := s.room.Publish([]byte("s"+strconv.Itoa(n)), nil); err != nil {
				s.mu.Lock()
				s.pubErr = err
				s.mu.Unlock()
				return
			}
			s.mu.Lock()
			s.sent = n
			s.mu.Unlock()
		}
	}()
}

// halt stops the stream and returns how many messages it published.
func (s *streamServer) halt() int {
	if s.stop != nil {
		select {
		case <-s.stop:
		default:
			close(s.stop)
		}
		<-s.stopped
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pubErr != nil {
		s.t.Errorf("Publish failed after %d messages: %v", s.sent, s.pubErr)
	}
	return s.sent
}

// streamPlayer is a client on one gateway with a virtual connection to a
// stream server. It checks the stream arrives whole and in order.
type streamPlayer struct {
	name string
	ep   *proto.EndPoint
	conn *proto.Conn

	mu     sync.Mutex
	last   int      // the last stream number received
	gap    error    // the first gap or reordering seen
	others []string // messages that are not stream numbers
	done   chan struct{}
}

func newStreamPlayer(t *testing.T, name, clientAddr string, serverID uint32) *streamPlayer {
	t.Helper()
	return startStreamPlayer(t, name, clientAddr, serverID, false)
}

// newLateStreamPlayer is newStreamPlayer for a player that joins a stream
// already running: its first message may have any number.
func newLateStreamPlayer(t *testing.T, name, clientAddr string, serverID uint32) *streamPlayer {
	t.Helper()
	return startStreamPlayer(t, name, clientAddr, serverID, true)
}

func startStreamPlayer(t *testing.T, name, clientAddr string, serverID uint32, late bool) *streamPlayer {
	t.Helper()
	p := newPlayer(t, clientAddr, serverID)
	sp := &streamPlayer{name: name, ep: p.ep, conn: p.conn, done: make(chan struct{})}
	first := true
	go func() {
		defer close(sp.done)
		for {
			m, err := sp.conn.Receive()
			if err != nil {
				return
			}
			s := string(m.([]byte))
			sp.mu.Lock()
			if n, err := strconv.Atoi(strings.TrimPrefix(s, "s")); err == nil && strings.HasPrefix(s, "s") {
				if first && late {
					sp.last = n - 1
				}
				first = false
				if n != sp.last+1 && sp.gap == nil {
					sp.gap = fmt.Errorf("%s: got s%d after s%d", sp.name, n, sp.last)
				}
				sp.last = n
			} else {
				sp.others = append(sp.others, s)
			}
			sp.mu.Unlock()
		}
	}()
	return sp
}

// got returns the last stream number received.
func (p *streamPlayer) got() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *streamPlayer) hasOther(msg string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.others {
		if m == msg {
			return true
		}
	}
	return false
}

// progress waits until every player in ps has received n more stream
// messages than now.
func progress(t *testing.T, what string, n int, ps ...*streamPlayer) {
	t.Helper()
	from := make([]int, len(ps))
	for i, p := range ps {
		from[i] = p.got()
	}
	poll.Until(t, timeout, fmt.Sprintf("%d more stream messages to each player (%s)", n, what), func() bool {
		for i, p := range ps {
			if p.got() < from[i]+n {
				return false
			}
		}
		return true
	})
}

// checkAllReceived waits until each player has received all sent stream
// messages, then asserts that, with no gap, and logs the figures.
func checkAllReceived(t *testing.T, what string, sent int, ps ...*streamPlayer) {
	t.Helper()
	poll.Until(t, timeout, "every stream message delivered", func() bool {
		for _, p := range ps {
			if p.got() < sent {
				return false
			}
		}
		return true
	})
	var figures []string
	for _, p := range ps {
		p.mu.Lock()
		got, gap := p.last, p.gap
		p.mu.Unlock()
		if gap != nil {
			t.Errorf("%s: %v", what, gap)
		}
		if got != sent {
			t.Errorf("%s: %s received %d, sent %d", what, p.name, got, sent)
		}
		figures = append(figures, fmt.Sprintf("%s %d/%d", p.name, got, sent))
	}
	t.Logf("%s: received/sent per player: %s", what, strings.Join(figures, ", "))
}
