package gateway

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// authLimiter throttles the server handshakes of each source (an IPv4
// address, or an IPv6 /64: sourceKey): a source has a bucket of
// ServerAuthFailBurst attempts that refills one per ServerAuthFailInterval.
// A handshake takes an attempt when it is accepted, before the challenge is
// sent (reserve), and gives it back when it succeeds, or is cut by Shutdown
// (refund); a handshake that fails or times out keeps it spent. A source
// with no attempt left has its new connections closed at once. However
// many handshakes a source opens at once, at most burst + elapsed/interval
// of its guesses are checked (issue 14, finding 1: when the bucket was
// only looked at on accept and charged when a handshake failed, 1,000
// parallel handshakes all passed the look). With the defaults (5, 1 s) a
// source may fail 5 times in a row, then once a second, and may have at
// most 5 handshakes in progress at once.
//
// The table holds the sources whose bucket is not full, at most
// maxAuthSources of them: a bucket that fills again (a refund) is dropped,
// since a source not in the table starts full. Past the bound, the least
// recently used source is forgotten (LRU), never the whole table. A flood
// of distinct sources thus pushes out only sources idle for longer than
// all of its own; what it gains by that, a burst of attempts per source it
// cycles through, it has from each new source anyway.
type authLimiter struct {
	burst    float64
	interval time.Duration

	mu      sync.Mutex
	now     func() time.Time // time.Now; read under mu, so tests may swap it
	max     int              // maxAuthSources; a field so tests can shrink it
	sources map[netip.Prefix]*list.Element
	lru     list.List // of *authBucket, the most recently used first
}

type authBucket struct {
	key    netip.Prefix
	tokens float64
	at     time.Time // when tokens was computed
}

// maxAuthSources bounds the throttle table: about 100 bytes a source, so
// 10 MB at most.
const maxAuthSources = 100000

func newAuthLimiter(burst int, interval time.Duration) *authLimiter {
	if burst <= 0 {
		return nil // no limit
	}
	return &authLimiter{burst: float64(burst), interval: interval, now: time.Now, max: maxAuthSources, sources: make(map[netip.Prefix]*list.Element)}
}

// refill brings b up to date; mu is held.
func (a *authLimiter) refill(b *authBucket, now time.Time) {
	if a.interval > 0 {
		b.tokens = min(a.burst, b.tokens+float64(now.Sub(b.at))/float64(a.interval))
	} else {
		b.tokens = a.burst
	}
	b.at = now
}

// reserve takes one attempt from src's bucket for a handshake about to
// start, and reports whether there was one. A source that is not an IP
// (a Unix socket, a pipe: the zero Prefix) is not throttled.
func (a *authLimiter) reserve(src netip.Prefix) bool {
	if a == nil || !src.IsValid() {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	e := a.sources[src]
	if e == nil {
		if a.lru.Len() >= a.max {
			old := a.lru.Back()
			delete(a.sources, old.Value.(*authBucket).key)
			a.lru.Remove(old)
		}
		e = a.lru.PushFront(&authBucket{key: src, tokens: a.burst, at: now})
		a.sources[src] = e
	} else {
		a.lru.MoveToFront(e)
	}
	b := e.Value.(*authBucket)
	a.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives back the attempt a handshake from src reserved, when it
// succeeded or was cut by Shutdown. A source forgotten meanwhile (LRU)
// starts full anyway.
func (a *authLimiter) refund(src netip.Prefix) {
	if a == nil || !src.IsValid() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.sources[src]
	if e == nil {
		return
	}
	b := e.Value.(*authBucket)
	a.refill(b, a.now())
	if b.tokens = min(a.burst, b.tokens+1); b.tokens >= a.burst {
		delete(a.sources, src)
		a.lru.Remove(e)
	}
}

// len returns the number of sources in the table.
func (a *authLimiter) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lru.Len()
}
