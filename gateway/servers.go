package gateway

import (
	"sync"
	"time"
)

// servers maps a server ID to its authenticated links, oldest first. The
// newest link of an ID takes new Dials; older ones keep the virtual
// connections they have (a rolling restart hands over without cutting
// players). Dials only read it, under a read lock.
type servers struct {
	mu sync.RWMutex
	m  map[uint32][]*link
}

func (s *servers) add(l *link) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[uint32][]*link)
	}
	s.m[l.id] = append(s.m[l.id], l)
	s.mu.Unlock()
}

func (s *servers) remove(l *link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.m[l.id]
	for i, x := range ls {
		if x == l {
			ls = append(ls[:i:i], ls[i+1:]...)
			break
		}
	}
	if len(ls) == 0 {
		delete(s.m, l.id)
	} else {
		s.m[l.id] = ls
	}
}

// newest returns the most recently authenticated link for id, or nil.
func (s *servers) newest(id uint32) *link {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ls := s.m[id]
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
}

// list returns every registered server link.
func (s *servers) list() []ServerInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []ServerInfo
	for id, ls := range s.m {
		for i, l := range ls {
			l.vmu.Lock()
			n := len(l.vconns)
			l.vmu.Unlock()
			out = append(out, ServerInfo{ID: id, Addr: l.conn.RemoteAddr().String(), VirtualConns: n, Since: l.since, Newest: i == len(ls)-1})
		}
	}
	return out
}
