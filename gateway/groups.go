package gateway

import (
	"sync"
	"sync/atomic"
)

// fanState is a server link's fan-out state (docs/protocol.md §7): its
// groups and their members, its counters, and its reader's scratch. The
// link's reader makes it at the link's first fan-out command (see
// link.fanout).
//
// Who touches what: the reader alone adds members and walks the groups,
// under mu (a Publish walks its group with mu held). Whoever closes one of
// the link's virtual connections (either end's reader, a teardown) takes mu
// to take it out of its groups (leaveAll). Stats reads the atomics.
type fanState struct {
	mu      sync.Mutex
	groups  map[uint32]*group  // by GroupID; a group exists while it has members
	pairs   map[uint64]*member // by pairKey(GroupID, ConnID)
	members int                // memberships, in all groups
	peak    int                // members when pairs was last rebuilt (see shrink)
	ended   bool               // the link was torn down: its groups are gone

	// Counters, read by Stats and Servers without mu: groups and
	// memberships now (set under mu), and deliveries queued, ConnIDs
	// skipped and Joins refused since the link registered.
	nGroups, nMembers                 atomic.Int64
	deliveries, skipped, joinsRefused atomic.Uint64

	rd fanReader // the reader's scratch
}

// fanReader is what only the link's reader touches.
type fanReader struct {
	small []byte   // a small delivery, header and payload, rewritten per member (see payload)
	conns []*vconn // the virtual connections a command delivers to (snapshot, broadcast)
	stage fanStage // small Publishes read in a row (fanout.go)
}

// group is one group of a server link: its members, in no particular
// order (a member leaving takes the place of the last).
type group struct {
	id      uint32
	members []*member
}

// member is one virtual connection's membership in one group: at index i
// of g.members, and in vc's list of memberships (vc.groups, linked through
// prev and next). Guarded by the fanState's mu.
type member struct {
	vc         *vconn
	g          *group
	i          int
	prev, next *member
}

func pairKey(gid, id uint32) uint64 { return uint64(gid)<<32 | uint64(id) }

// joinResult says what a Join did.
type joinResult uint8

const (
	joinAdded      joinResult = iota // vc is a new member
	joinNoop                         // vc was a member already
	joinClosed                       // vc is closing: not added
	joinMaxGroups                    // a new group would pass ServerMaxGroups
	joinMaxMembers                   // a new membership would pass ServerMaxMemberships
)

// join adds vc to group gid, within maxGroups and maxMembers (<= 0: no
// bound). The caller holds mu and is the link's reader.
func (fs *fanState) join(gid uint32, vc *vconn, maxGroups, maxMembers int) joinResult {
	if fs.ended {
		return joinClosed
	}
	if fs.pairs[pairKey(gid, vc.id)] != nil {
		return joinNoop
	}
	g := fs.groups[gid]
	if g == nil && maxGroups > 0 && len(fs.groups) >= maxGroups {
		return joinMaxGroups
	}
	if maxMembers > 0 && fs.members >= maxMembers {
		return joinMaxMembers
	}
	// grouped is set before closed is looked at, and a closer sets closed
	// before it looks at grouped (vconn.leaveGroups): so either this Join
	// sees vc closing, or the closer sees grouped and takes mu, after
	// this Join, to take vc out again.
	vc.grouped.Store(true)
	if vc.closed.Load() {
		return joinClosed
	}
	if g == nil {
		if fs.groups == nil {
			fs.groups = make(map[uint32]*group)
			fs.pairs = make(map[uint64]*member)
		}
		g = &group{id: gid}
		fs.groups[gid] = g
	}
	m := &member{vc: vc, g: g, i: len(g.members), next: vc.groups}
	if vc.groups != nil {
		vc.groups.prev = m
	}
	vc.groups = m
	g.members = append(g.members, m)
	fs.pairs[pairKey(gid, vc.id)] = m
	fs.members++
	fs.peak = max(fs.peak, fs.members)
	fs.count()
	return joinAdded
}

// leave takes vc out of group gid, if it is a member; the group ends with
// its last member. The caller holds mu.
func (fs *fanState) leave(gid uint32, vc *vconn) {
	if m := fs.pairs[pairKey(gid, vc.id)]; m != nil {
		fs.remove(m)
		fs.shrink()
		fs.count()
	}
}

// leaveAll takes vc out of every group it is in (it is closing). The
// caller holds mu.
func (fs *fanState) leaveAll(vc *vconn) {
	for m := vc.groups; m != nil; {
		next := m.next
		fs.remove(m)
		m = next
	}
	fs.shrink()
	fs.count()
}

// endGroup removes every member of group gid: the group ends (Leave with
// ConnID 0). The caller holds mu.
func (fs *fanState) endGroup(gid uint32) {
	g := fs.groups[gid]
	if g == nil {
		return
	}
	for _, m := range g.members {
		fs.unlink(m)
		delete(fs.pairs, pairKey(gid, m.vc.id))
	}
	fs.members -= len(g.members)
	g.members = nil
	delete(fs.groups, gid)
	fs.shrink()
	fs.count()
}

// end drops every group: the link is torn down. Virtual connections it
// had are closing; they keep no memberships. The caller holds mu.
func (fs *fanState) end() {
	for _, g := range fs.groups {
		for _, m := range g.members {
			m.vc.groups = nil
		}
	}
	fs.groups, fs.pairs, fs.members, fs.peak, fs.ended = nil, nil, 0, 0, true
	fs.rd = fanReader{}
	fs.count()
}

// remove takes membership m out of its group and of its virtual
// connection's list; the group ends with its last member.
func (fs *fanState) remove(m *member) {
	g := m.g
	last := len(g.members) - 1
	if m.i != last {
		moved := g.members[last]
		g.members[m.i], moved.i = moved, m.i
	}
	g.members[last] = nil
	g.members = g.members[:last]
	if last == 0 {
		delete(fs.groups, g.id)
	} else if cap(g.members) > 64 && len(g.members) < cap(g.members)/4 {
		g.members = append([]*member(nil), g.members...) // give a shrunk group's memory back
	}
	fs.unlink(m)
	delete(fs.pairs, pairKey(g.id, m.vc.id))
	fs.members--
}

// unlink takes m out of its virtual connection's list of memberships.
func (fs *fanState) unlink(m *member) {
	if m.prev != nil {
		m.prev.next = m.next
	} else {
		m.vc.groups = m.next
	}
	if m.next != nil {
		m.next.prev = m.prev
	}
	m.prev, m.next = nil, nil
}

// shrink gives back the memory of the membership maps once most of the
// memberships they were grown for are gone (Go maps never shrink): a
// server that once held many memberships does not keep their room.
func (fs *fanState) shrink() {
	switch {
	case fs.members == 0:
		fs.groups, fs.pairs, fs.peak = nil, nil, 0
	case fs.peak >= 4096 && fs.members <= fs.peak/8:
		pairs := make(map[uint64]*member, fs.members)
		for k, m := range fs.pairs {
			pairs[k] = m
		}
		groups := make(map[uint32]*group, len(fs.groups))
		for k, g := range fs.groups {
			groups[k] = g
		}
		fs.pairs, fs.groups, fs.peak = pairs, groups, fs.members
	}
}

// count publishes the gauges. The caller holds mu.
func (fs *fanState) count() {
	fs.nGroups.Store(int64(len(fs.groups)))
	fs.nMembers.Store(int64(fs.members))
}

// fanout returns l's fan-out state, making it on first use. The caller is
// l's reader.
func (l *link) fanout() *fanState {
	if fs := l.fan.Load(); fs != nil {
		return fs
	}
	fs := &fanState{}
	l.fan.Store(fs)
	return fs
}

// leaveGroups takes vc, which its caller just closed (vc.closed is set),
// out of the groups of its server link. Only a vconn that ever joined a
// group costs a lock (see fanState.join).
func (vc *vconn) leaveGroups() {
	if vc.grouped.Load() {
		vc.leaveGroupsLocked()
	}
}

// leaveGroupsLocked is leaveGroups' work, out of line: closes run on
// every reader's stack (see enqueueFanout).
//
//go:noinline
func (vc *vconn) leaveGroupsLocked() {
	fs := vc.server.fan.Load()
	if fs == nil {
		return
	}
	fs.mu.Lock()
	if !fs.ended {
		fs.leaveAll(vc)
	}
	fs.mu.Unlock()
}

// endGroups drops the groups of server link l, which is being torn down.
func (l *link) endGroups() {
	fs := l.fan.Load()
	if fs == nil {
		return
	}
	fs.mu.Lock()
	fs.end()
	fs.mu.Unlock()
}
