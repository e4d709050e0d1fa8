package slab

import (
	"sync/atomic"
	"time"
)

// Releaser is a Pool that gives back memory it holds idle. AtomPool and
// ChanPool implement it; SyncPool needs no help (the garbage collector
// empties it), NoPool holds nothing.
//
// ReleaseIdle lets go of the pages that were idle for at least idle as of
// now (but for one page per size class), and returns how many bytes it let
// go of. The pool keeps no clock:
// idleness is judged by what happened between calls, so the caller calls
// it periodically (every idle or so), and a page goes after two calls at
// least idle apart. Let go means dropped from the pool: the memory is the
// garbage collector's, and the Go runtime returns it to the operating
// system after a collection (see Reclaimer). Each call's work is bounded by
// releaseBudget chunks per class. Concurrent calls take turns; Alloc and
// Free go on meanwhile.
type Releaser interface {
	ReleaseIdle(now time.Time, idle time.Duration) int64
}

// releaseBudget bounds the free chunks ReleaseIdle looks at per class and
// call (at the 64 KiB class, 16 GiB of them; at 64 B, 16 MiB).
const releaseBudget = 1 << 18

// ReleaseIdle releases the pages from which no Alloc has taken a chunk for
// at least idle (as seen by the calls to ReleaseIdle) and whose chunks are
// all free (see Releaser), but for one page per class. It takes every free stack of a class, one at a
// time, holds back the chunks of those pages and puts the others back; a
// page whose chunks it then holds all is released, the chunks of the others
// go back. Meanwhile Allocs find fewer chunks on the stacks, never a held
// one, and a Free that races is ignored as for any chunk already free.
func (p *AtomPool) ReleaseIdle(now time.Time, idle time.Duration) int64 {
	p.release.Lock()
	defer p.release.Unlock()
	var n int64
	for i := range p.classes {
		n += p.classes[i].releaseIdle(now.UnixNano(), int64(idle))
	}
	return n
}

// heldChain is the chunks of one page held back by ReleaseIdle, linked
// through their slots like a free stack: top is the index + 1 of the first,
// bottom the slot of the last (linked to 0).
type heldChain struct {
	top    uint32
	bottom *atomic.Uint32
	n      int
}

func (c *atomClass) releaseIdle(now, idle int64) int64 {
	t := c.table.Load()
	var idlePages map[*page]*heldChain
	for _, pg := range t.byNo {
		if pg == nil {
			continue
		}
		if pg.used.Swap(false) {
			pg.idleSince = now // an Alloc took a chunk since the last call
			continue
		}
		if now-pg.idleSince >= idle {
			if idlePages == nil {
				idlePages = make(map[*page]*heldChain)
			}
			idlePages[pg] = &heldChain{}
		}
	}
	if idlePages == nil {
		return 0
	}
	budget := releaseBudget
	for j := range c.stacks {
		if budget <= 0 {
			break
		}
		st := &c.stacks[j]
		old := st.head.Load()
		for uint32(old) != 0 && !st.head.CompareAndSwap(old, (old>>32+1)<<32) {
			old = st.head.Load()
		}
		// The chain from top down is ours alone: split it into the idle
		// pages' chunks and the rest (keep), which goes back.
		var keepTop uint32
		var keepLast *atomic.Uint32
		keep := func(at uint32, s *atomic.Uint32) {
			if keepLast == nil {
				keepTop = at
			} else {
				keepLast.Store(at)
			}
			keepLast = s
		}
		tab := c.table.Load() // has every page of the chain
		for at := uint32(old); at != 0; {
			idx := at - 1
			pg := tab.byNo[idx>>c.shift]
			s := &pg.slots[idx&c.mask]
			next := s.Load()
			if budget--; budget < 0 {
				// Out of budget: the rest of the chain goes back as it is.
				keep(at, s)
				keepLast = nil
				break
			}
			if h := idlePages[pg]; h != nil {
				s.Store(h.top)
				if h.n == 0 {
					h.bottom = s
				}
				h.top, h.n = at, h.n+1
			} else {
				keep(at, s)
			}
			at = next
		}
		if keepLast != nil {
			keepLast.Store(0)
		}
		if keepTop != 0 {
			c.adopt(st, keepTop)
		}
	}
	drop := make(map[*page]bool)
	keep := keepOne(c.table.Load(), func(pg *page) bool { h := idlePages[pg]; return h != nil && h.n == c.perPage })
	for pg, h := range idlePages {
		switch {
		case h.n == c.perPage && pg != keep:
			drop[pg] = true
		case h.n > 0:
			c.push(&c.stacks[0], h.top-1, h.bottom)
		}
	}
	if len(drop) == 0 {
		return 0
	}
	c.grow.Lock()
	c.table.Store(c.table.Load().without(drop))
	c.grow.Unlock()
	return int64(len(drop)) * int64(c.perPage*c.chunk)
}

// ReleaseIdle releases pages of the classes that kept more chunks free than
// they needed since the last call, if that was at least idle ago (see
// Releaser): the fewest chunks Allocs left in a class's free channel
// meanwhile were not needed, and up to that many go, as whole pages whose
// chunks are all free, but for one page per class. The channel is FIFO, so unlike AtomPool's stacks it
// cannot tell idle pages from busy ones by the Allocs: it counts, page by
// page, the chunks in the channel, then holds back those of the pages found
// whole, and releases the pages whose chunks it then holds all.
func (p *ChanPool) ReleaseIdle(now time.Time, idle time.Duration) int64 {
	p.release.Lock()
	defer p.release.Unlock()
	var n int64
	for i := range p.classes {
		n += p.classes[i].releaseIdle(now.UnixNano(), int64(idle))
	}
	return n
}

func (c *chanClass) releaseIdle(now, idle int64) int64 {
	f := c.free.Load()
	if f == nil {
		return 0 // no page yet
	}
	if c.lowSince == 0 {
		c.lowSince = now
		c.low.Store(int64(len(f.ch)))
		return 0
	}
	if now-c.lowSince < idle {
		return 0
	}
	spare := int(c.low.Load())
	c.lowSince = now
	c.low.Store(int64(len(f.ch)))
	if spare < c.perPage {
		return 0
	}
	// Count the chunks of each page in the channel, putting each back at
	// once (a chunk that moves meanwhile may count twice: this only picks
	// the candidates). The table is loaded after each receive: it has the
	// page of every chunk in the channel.
	counts := make(map[*page]int)
	for range min(len(f.ch), releaseBudget) {
		idx, ok := c.recv()
		if !ok {
			break
		}
		counts[c.table.Load().byNo[idx>>c.shift]]++
		c.send(idx)
	}
	want := spare / c.perPage // pages that may go
	cand := make(map[*page][]uint32)
	for pg, n := range counts {
		if n >= c.perPage && len(cand) < want {
			cand[pg] = nil
		}
	}
	if len(cand) == 0 {
		return 0
	}
	// Hold back the candidates' chunks; each is received once at most.
	for range min(len(c.free.Load().ch), releaseBudget) {
		idx, ok := c.recv()
		if !ok {
			break
		}
		pg := c.table.Load().byNo[idx>>c.shift]
		if held, ok := cand[pg]; ok {
			cand[pg] = append(held, idx)
		} else {
			c.send(idx)
		}
	}
	drop := make(map[*page]bool)
	keep := keepOne(c.table.Load(), func(pg *page) bool { return len(cand[pg]) == c.perPage })
	for pg, held := range cand {
		if len(held) == c.perPage && pg != keep {
			drop[pg] = true
			continue
		}
		for _, idx := range held {
			c.send(idx)
		}
	}
	if len(drop) == 0 {
		return 0
	}
	c.mu.Lock()
	nt := c.table.Load().without(drop)
	c.table.Store(nt)
	if old := c.free.Load(); cap(old.ch) > 2*nt.live()*c.perPage {
		// Shrink the channel. No Free sends while the write lock is
		// held; Allocs may still receive from the old one meanwhile.
		nf := &freeList{ch: make(chan uint32, max(nt.live(), 1)*c.perPage)}
		for moved := true; moved; {
			select {
			case idx := <-old.ch:
				nf.ch <- idx
			default:
				moved = false
			}
		}
		c.free.Store(nf)
	}
	c.mu.Unlock()
	return int64(len(drop)) * int64(c.perPage*c.chunk)
}

// keepOne returns the page of t that a release must keep when it would
// otherwise release every page (all satisfy releasable): the first by
// number. A class keeps one page, so that the trickle of an idle gateway
// (a Ping answer now and then) does not allocate and release a page
// every period. It returns nil when some page stays anyway.
func keepOne(t *pageTable, releasable func(*page) bool) *page {
	var first *page
	for _, pg := range t.byNo {
		if pg == nil {
			continue
		}
		if !releasable(pg) {
			return nil
		}
		if first == nil {
			first = pg
		}
	}
	return first
}

// recv takes a chunk index from the free channel without waiting.
func (c *chanClass) recv() (uint32, bool) {
	select {
	case idx := <-c.free.Load().ch:
		return idx, true
	default:
		return 0, false
	}
}

// send puts chunk index idx back in the free channel, as Free does.
func (c *chanClass) send(idx uint32) {
	c.mu.RLock()
	select {
	case c.free.Load().ch <- idx:
	default: // unreachable: the channel holds every chunk of the class
	}
	c.mu.RUnlock()
}
