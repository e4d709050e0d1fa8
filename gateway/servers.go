package gateway

import (
	"sync"
	"sync/atomic"
	"time"
)

// servers maps a server ID to its authenticated links, oldest first. The
// newest link of an ID takes new Dials; older ones keep the virtual
// connections they have (a rolling restart hands over without cutting
// players).
//
// Dials only read it, and servers come and go rarely, so the map is copied
// on every change and published whole: a Dial looks it up with one atomic
// load and no lock (a read lock's shared counter would bounce between the
// cores of every dialing reader).
type servers struct {
	mu  sync.Mutex                         // serializes changes
	cur atomic.Pointer[map[uint32][]*link] // never modified once published
}

// change publishes a copy of the map with id's links replaced by f's result
// (none: the ID is removed). The caller holds mu.
func (s *servers) change(id uint32, f func(ls []*link) []*link) {
	var old map[uint32][]*link
	if p := s.cur.Load(); p != nil {
		old = *p
	}
	m := make(map[uint32][]*link, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if ls := f(old[id]); len(ls) > 0 {
		m[id] = ls
	} else {
		delete(m, id)
	}
	s.cur.Store(&m)
}

// snapshot returns the current map (nil when no server ever registered).
func (s *servers) snapshot() map[uint32][]*link {
	if p := s.cur.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *servers) add(l *link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.change(l.id, func(ls []*link) []*link {
		return append(ls[:len(ls):len(ls)], l) // a new array: ls is published
	})
}

func (s *servers) remove(l *link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.change(l.id, func(ls []*link) []*link {
		for i, x := range ls {
			if x == l {
				return append(ls[:i:i], ls[i+1:]...)
			}
		}
		return ls
	})
}

// newest returns the most recently authenticated link for id, or nil.
func (s *servers) newest(id uint32) *link {
	ls := s.snapshot()[id]
	if len(ls) == 0 {
		return nil
	}
	return ls[len(ls)-1]
}

// ServerInfo describes one registered server connection.
type ServerInfo struct {
	ID           uint32    // the ServerID it authenticated with
	Addr         string    // its remote address
	VirtualConns int       // virtual connections open on it now
	Since        time.Time // when it authenticated
	Newest       bool      // it takes new Dials for its ID
	// Its fan-out (docs/protocol.md §7): groups and memberships now,
	// deliveries queued, ConnIDs skipped and Joins refused so far (see
	// FanoutStats).
	Groups, Memberships               int64
	Deliveries, Skipped, JoinsRefused uint64
}

// list returns every registered server link, with the count of virtual
// connections of each in vconns.
func (s *servers) list(vconns map[*link]int) []ServerInfo {
	var out []ServerInfo
	for id, ls := range s.snapshot() {
		for i, l := range ls {
			si := ServerInfo{ID: id, Addr: l.conn.RemoteAddr().String(), VirtualConns: vconns[l], Since: l.since, Newest: i == len(ls)-1}
			var fan FanoutStats
			l.fan.Load().addTo(&fan)
			si.Groups, si.Memberships, si.Deliveries, si.Skipped, si.JoinsRefused = fan.Groups, fan.Memberships, fan.Deliveries, fan.Skipped, fan.JoinsRefused
			out = append(out, si)
		}
	}
	return out
}
