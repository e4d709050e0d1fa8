package gateway

import (
	"net"
	"net/netip"
	"sync"

	"github.com/fastway-go/fastway/proto"
)

// budgetShares hands out each client source's share of LargeFrameBudget:
// all client connections from one source (an IPv4 address, or an IPv6 /64,
// which one host usually holds whole) reserve their large frames in one
// proto.BudgetShare of LargeFrameBudgetPerSource bytes, so one source cannot
// take the budget from everyone; a frame past its source's share closes its
// sender, whatever room the budget has. Entries live while a connection of
// their source does, so the table is bounded by the client connections.
type budgetShares struct {
	budget *proto.Budget
	limit  int64

	mu      sync.Mutex
	sources map[netip.Prefix]*budgetShare
}

type budgetShare struct {
	*proto.BudgetShare
	key   netip.Prefix
	conns int // client links holding it (under budgetShares.mu)
}

// sourceOf returns addr's IP (an IPv4-mapped IPv6 address as IPv4), or
// false when addr is not an IP address (a Unix socket, a pipe).
func sourceOf(addr net.Addr) (netip.Addr, bool) {
	if ta, ok := addr.(*net.TCPAddr); ok {
		a, ok := netip.AddrFromSlice(ta.IP)
		return a.Unmap(), ok
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// sourceKey is the prefix a source address is grouped by: the address
// (IPv4), or its /64 (IPv6), which one host usually holds whole. It is the
// zero Prefix when addr is not an IP address. The budget shares, the auth
// throttle and the per-source handshake cap all use it.
func sourceKey(addr net.Addr) netip.Prefix {
	a, ok := sourceOf(addr)
	if !ok {
		return netip.Prefix{}
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// get returns the share of addr's source, counting one more connection on
// it (nil when there is no budget or no per-source limit).
func (s *budgetShares) get(addr net.Addr) *budgetShare {
	if s == nil {
		return nil
	}
	key := sourceKey(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.sources[key]
	if sh == nil {
		sh = &budgetShare{BudgetShare: s.budget.NewShare(s.limit), key: key}
		s.sources[key] = sh
	}
	sh.conns++
	return sh
}

// put gives back a connection's hold on sh.
func (s *budgetShares) put(sh *budgetShare) {
	if sh == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh.conns--; sh.conns == 0 {
		delete(s.sources, sh.key)
	}
}
