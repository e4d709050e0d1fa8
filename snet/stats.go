package snet

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ListenerStats counts a Listener's events since it started.
type ListenerStats struct {
	Sessions          uint64 // new sessions handed to Accept
	Resumes           uint64 // sessions resumed on a new TCP connection
	HandshakesRefused uint64 // TCP connections closed at once: MaxHandshakes were in progress
	HandshakesFailed  uint64 // TCP connections closed for a failed handshake (timeout, malformed, bad digest), refused resumes included
	ResumesRefused    uint64 // reconnects answered with a refusal (unknown session, bad digest, counts that cannot be resumed)
	GapsTooLarge      uint64 // of those, the ones whose missing bytes were no longer in the rewrite buffer
	Expired           uint64 // sessions closed because their client did not come back within ReconnWaitTimeout
	MaxReplayOut      uint64 // the most bytes a resume had to send again to a client, of what the session kept (its rewrite buffer)
	MaxReplayIn       uint64 // the most bytes a client had to send again in a resume
	Handshaking       int    // TCP connections in their handshake now
	Waiting           int    // sessions without a TCP connection now, waiting for their client
	RewriteBytes      int    // rewrite-buffer bytes allocated by the sessions open now
}

// listenerCounters are a Listener's event counters.
type listenerCounters struct {
	sessions, resumes                 atomic.Uint64
	handshakesRefused, handshakesFail atomic.Uint64
	resumesRefused, gapsTooLarge      atomic.Uint64
	expired                           atomic.Uint64
	maxReplayOut, maxReplayIn         atomic.Uint64
}

// raiseTo lifts a to v if it is below.
func raiseTo(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// Stats returns the Listener's counters, and a look at its sessions now.
func (l *Listener) Stats() ListenerStats {
	s := ListenerStats{
		Sessions:          l.count.sessions.Load(),
		Resumes:           l.count.resumes.Load(),
		HandshakesRefused: l.count.handshakesRefused.Load(),
		HandshakesFailed:  l.count.handshakesFail.Load(),
		ResumesRefused:    l.count.resumesRefused.Load(),
		GapsTooLarge:      l.count.gapsTooLarge.Load(),
		Expired:           l.count.expired.Load(),
		MaxReplayOut:      l.count.maxReplayOut.Load(),
		MaxReplayIn:       l.count.maxReplayIn.Load(),
	}
	l.mu.Lock()
	s.Handshaking = len(l.pending)
	sessions := make([]*Conn, 0, len(l.sessions))
	for _, c := range l.sessions {
		sessions = append(sessions, c)
	}
	l.mu.Unlock()
	for _, c := range sessions {
		c.mu.Lock()
		if c.state == stateBroken {
			s.Waiting++
		}
		s.RewriteBytes += c.ring.allocated()
		c.mu.Unlock()
	}
	return s
}

// Kinds of log line a Listener rate-limits.
const (
	logHandshakeRefused = iota
	logHandshakeFailed
	logResumeRefused
	logExpired
	numLogKinds
)

// Rate of the log lines a peer can trigger, per kind: logBurst at once,
// then logRate a second.
const (
	logBurst = 20
	logRate  = 10
)

// logLimiter rate-limits a Listener's log lines per kind. A suppressed line
// is counted, and the count goes with the next line let through; the
// events themselves are all counted in ListenerStats.
type logLimiter struct {
	mu    sync.Mutex
	kinds [numLogKinds]struct {
		tokens     float64
		at         time.Time
		suppressed uint64
		started    bool
	}
}

// log writes msg with args at Info unless kind is over its rate.
func (ll *logLimiter) log(log *slog.Logger, kind int, msg string, args ...any) {
	ll.mu.Lock()
	k := &ll.kinds[kind]
	now := time.Now()
	if !k.started {
		k.tokens, k.at, k.started = logBurst, now, true
	}
	k.tokens = min(logBurst, k.tokens+now.Sub(k.at).Seconds()*logRate)
	k.at = now
	if k.tokens < 1 {
		k.suppressed++
		ll.mu.Unlock()
		return
	}
	k.tokens--
	suppressed := k.suppressed
	k.suppressed = 0
	ll.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	log.Info(msg, args...)
}
