package gateway

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// authLimiter slows down sources that fail the server handshake: each
// source address has a bucket of ServerAuthFailBurst failures that refills
// one failure per ServerAuthFailInterval. A source whose bucket is empty has
// its new connections on the server port closed at once, before a challenge
// is sent, until the bucket refills. With the defaults (5, 1 s) a source may
// fail 5 times in a row, then once a second. Successful handshakes cost
// nothing. The table is bounded: past maxAuthSources entries, sources whose
// bucket has refilled are forgotten, and if that is not enough the table is
// cleared (a flood of distinct addresses then gets the burst again, which
// bounds memory rather than leaking it).
type authLimiter struct {
	burst    float64
	interval time.Duration

	mu      sync.Mutex
	now     func() time.Time // time.Now; read under mu, so tests may swap it
	sources map[netip.Addr]*authBucket
}

type authBucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

const maxAuthSources = 100000

func newAuthLimiter(burst int, interval time.Duration) *authLimiter {
	if burst <= 0 {
		return nil // no limit
	}
	return &authLimiter{burst: float64(burst), interval: interval, now: time.Now, sources: make(map[netip.Addr]*authBucket)}
}

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

// refill brings b up to date; mu is held.
func (a *authLimiter) refill(b *authBucket, now time.Time) {
	b.tokens = min(a.burst, b.tokens+float64(now.Sub(b.at))/float64(a.interval))
	b.at = now
}

// allow reports whether a new connection from addr may try the handshake.
func (a *authLimiter) allow(addr net.Addr) bool {
	if a == nil {
		return true
	}
	src, ok := sourceOf(addr)
	if !ok {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.sources[src]
	if b == nil {
		return true
	}
	a.refill(b, a.now())
	return b.tokens >= 1
}

// failed records a failed handshake from addr.
func (a *authLimiter) failed(addr net.Addr) {
	if a == nil {
		return
	}
	src, ok := sourceOf(addr)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	b := a.sources[src]
	if b == nil {
		if len(a.sources) >= maxAuthSources {
			a.sweep(now)
		}
		b = &authBucket{tokens: a.burst, at: now}
		a.sources[src] = b
	}
	a.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

// sweep forgets sources whose bucket is full again; mu is held.
func (a *authLimiter) sweep(now time.Time) {
	for src, b := range a.sources {
		a.refill(b, now)
		if b.tokens >= a.burst {
			delete(a.sources, src)
		}
	}
	if len(a.sources) >= maxAuthSources {
		clear(a.sources)
	}
}
