package gateway

import (
	"log/slog"
	"time"
)

// clockTick is the resolution of the gateway's coarse clock. Idle deadlines
// are pushed out by at most this much too little or too much.
const clockTick = 10 * time.Millisecond

// startClock starts the coarse clock once; g.mu is held. The clock lets the
// read and write paths refresh their deadlines with one atomic load instead
// of a time.Now per frame (which profiles showed at ~20 % of the forward
// path's CPU on this kind of VM). It stops at Shutdown. The memory
// reclaimer starts and stops with it, in a goroutine of its own (a forced
// release takes a collection: the clock must not stop meanwhile).
func (g *Gateway) startClock() {
	if g.clockRunning {
		return
	}
	g.clockRunning = true
	g.clock.Store(time.Now().UnixNano())
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		t := time.NewTicker(clockTick)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				g.clock.Store(now.UnixNano())
			case <-g.done:
				return
			}
		}
	}()
	if g.reclaimer != nil {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			t := time.NewTicker(g.cfg.MemReleaseInterval)
			defer t.Stop()
			for {
				select {
				case now := <-t.C:
					g.reclaim(now)
				case <-g.done:
					return
				}
			}
		}()
	}
}

// reclaim runs one round of the memory reclaimer and logs what it gave
// back.
func (g *Gateway) reclaim(now time.Time) {
	res := g.reclaimer.Tick(now)
	// Logged, then counted: what Stats shows is in the log already.
	defer func() {
		g.counters.memReleased.Add(uint64(res.PoolReleased))
		if res.Forced {
			g.counters.memReclaims.Add(1)
		}
	}()
	if res.Forced || res.PoolReleased > 0 {
		attrs := []any{slog.Int64("pool_released_bytes", res.PoolReleased), slog.Bool("forced", res.Forced),
			slog.Int64("heap_retained_bytes", res.Before.Retained), slog.Int64("heap_live_bytes", res.Before.Live)}
		if res.Forced {
			attrs = append(attrs, slog.Int64("heap_retained_after_bytes", res.After.Retained))
		}
		g.log.Info("memory released", attrs...)
	}
}

// nanotime returns the coarse clock in Unix nanoseconds (time.Now before
// the clock runs).
func (g *Gateway) nanotime() int64 {
	if n := g.clock.Load(); n != 0 {
		return n
	}
	return time.Now().UnixNano()
}
