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
// A handshake takes an attempt before the challenge is sent (reserve), and
// gives it back when it succeeds, or is cut by Shutdown (settle); a
// handshake that fails or times out keeps it spent. However many
// handshakes a source opens at once, at most burst + elapsed/interval of
// its guesses are checked (issue 14, finding 1: when the bucket was only
// looked at on accept and charged when a handshake failed, 1,000 parallel
// handshakes all passed the look). With the defaults (5, 1 s) a source may
// fail 5 times in a row, then once a second.
//
// A source with no attempt left has its new connections closed at once,
// unless attempts are only held by its handshakes still in progress: then
// the new one waits (within its auth timeout, and holding its handshake
// slot) for one of them to end, since an honest host that registers many
// servers at once gets its attempts back as each succeeds.
//
// The table holds the sources whose bucket is not full or that have
// handshakes in progress, at most maxAuthSources of them (plus those with
// handshakes in progress, which the handshake caps bound): a bucket that
// fills again is dropped, since a source not in the table starts full.
// Past the bound, the least recently used source with no handshake in
// progress is forgotten (LRU), never the whole table. A flood of distinct
// sources thus pushes out only sources idle for longer than all of its
// own; what it gains by that, a burst of attempts per source it cycles
// through, it has from each new source anyway.
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
	key      netip.Prefix
	tokens   float64
	at       time.Time     // when tokens was computed
	inflight int           // handshakes holding an attempt
	ended    chan struct{} // closed when one of them ends (nil until a reserve waits)
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
// send its challenge, and reports whether there was one. When there was
// not but some of src's handshakes hold attempts, wait is a channel closed
// when one of them ends: reserve may then be tried again. A source that is
// not an IP (a Unix socket, a pipe: the zero Prefix) is not throttled.
func (a *authLimiter) reserve(src netip.Prefix) (ok bool, wait <-chan struct{}) {
	if a == nil || !src.IsValid() {
		return true, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	e := a.sources[src]
	if e == nil {
		if a.lru.Len() >= a.max {
			a.evict()
		}
		e = a.lru.PushFront(&authBucket{key: src, tokens: a.burst, at: now})
		a.sources[src] = e
	} else {
		a.lru.MoveToFront(e)
	}
	b := e.Value.(*authBucket)
	a.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		b.inflight++
		return true, nil
	}
	if b.inflight == 0 {
		return false, nil
	}
	if b.ended == nil {
		b.ended = make(chan struct{})
	}
	return false, b.ended
}

// evict forgets the least recently used source with no handshake in
// progress; mu is held.
func (a *authLimiter) evict() {
	for e := a.lru.Back(); e != nil; e = e.Prev() {
		if b := e.Value.(*authBucket); b.inflight == 0 {
			delete(a.sources, b.key)
			a.lru.Remove(e)
			return
		}
	}
}

// settle ends a handshake from src that reserved an attempt: the attempt
// is given back if ok (it succeeded, or Shutdown cut it), and handshakes
// waiting for one are woken.
func (a *authLimiter) settle(src netip.Prefix, ok bool) {
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
	b.inflight--
	if b.ended != nil {
		close(b.ended)
		b.ended = nil
	}
	a.refill(b, a.now())
	if ok {
		b.tokens = min(a.burst, b.tokens+1)
	}
	if b.inflight == 0 && b.tokens >= a.burst {
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
