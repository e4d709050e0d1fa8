package gateway

import (
	"sync"
	"time"
)

// logLimiter rate-limits log lines that a hostile peer can trigger
// (disconnects, auth failures), per key: each key may log logBurst lines at
// once and logRate per second after that. Suppressed lines are counted and
// the count is attached to the next line that is let through, so nothing
// disappears without a trace; every event is also counted in Stats whether
// or not it is logged.
type logLimiter struct {
	mu   sync.Mutex
	keys map[uint8]*logBucket
	now  func() time.Time
}

type logBucket struct {
	tokens     float64
	at         time.Time
	suppressed uint64
}

const (
	logBurst = 20
	logRate  = 10 // lines per second per key, after the burst
)

// allow reports whether a line for key may be logged now, and how many lines
// for key were suppressed since the last one that was.
func (ll *logLimiter) allow(key uint8) (bool, uint64) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	now := ll.now()
	if ll.keys == nil {
		ll.keys = make(map[uint8]*logBucket)
	}
	b := ll.keys[key]
	if b == nil {
		b = &logBucket{tokens: logBurst, at: now}
		ll.keys[key] = b
	}
	b.tokens = min(logBurst, b.tokens+now.Sub(b.at).Seconds()*logRate)
	b.at = now
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	return true, n
}
