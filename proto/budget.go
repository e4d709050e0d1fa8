package proto

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Budget bounds the bytes that frames larger than their reader's buffer hold
// while their body is still arriving, across every FrameReader that shares
// it. Such a frame's buffer grows as its body arrives (see readLarge), so a
// peer that announces a MaxPacket-sized frame and sends its body slowly
// holds about what it has sent; all such peers together hold at most the
// limit.
//
// Readers are grouped in BudgetShares (the connections of one source
// address, say), each with a limit of its own. When the budget is full, a
// refusal falls on the group over its fair share, never on whoever asks
// next: a reader whose group, with what it asks, stays within the fair
// share (the limit divided by the groups holding bytes) takes the room it
// needs from the group furthest over that share, whose largest frame is
// evicted (its reader's evict function is called, and its frame fails
// with ErrBudgetExceeded); a reader whose group would pass the fair share
// is refused. Readers with no evict function are never evicted.
type Budget struct {
	limit     int64
	used      atomic.Int64 // written under mu, read without it
	evictions atomic.Uint64

	mu     sync.Mutex
	active map[*BudgetShare]struct{} // the shares holding bytes now
}

// NewBudget returns a Budget of limit bytes.
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit, active: make(map[*BudgetShare]struct{})}
}

// Used returns the bytes reserved now.
func (b *Budget) Used() int64 { return b.used.Load() }

// Evictions returns how many frames were evicted to make room for readers
// within their fair share.
func (b *Budget) Evictions() uint64 { return b.evictions.Load() }

// BudgetShare is a part of a Budget that a group of readers may take at
// most: what they reserve counts against both.
type BudgetShare struct {
	b     *Budget
	limit int64
	used  atomic.Int64  // written under b.mu
	holds []*budgetHold // the share's readers holding bytes, under b.mu
}

// NewShare returns a share of at most limit bytes of b.
func (b *Budget) NewShare(limit int64) *BudgetShare { return &BudgetShare{b: b, limit: limit} }

// Used returns the bytes the share's readers reserved now.
func (s *BudgetShare) Used() int64 { return s.used.Load() }

// budgetHold is what one FrameReader reserves in its share.
type budgetHold struct {
	share   *BudgetShare
	n       int64  // bytes reserved, under share.b.mu
	evict   func() // closes the reader's source; nil: never evicted
	evicted atomic.Bool
}

// Reasons a reservation is refused (wrapped in ErrBudgetExceeded).
var (
	errOverShare = errors.New("its source is over its share of the budget")
	errOverFair  = errors.New("the budget is full and its source would pass its fair share")
)

// reserve adds n bytes to h, evicting other groups' frames if the budget is
// full and h's group stays within its fair share.
func (h *budgetHold) reserve(n int64) error {
	s := h.share
	b := s.b
	var evicted []func()
	b.mu.Lock()
	var err error
	switch {
	case h.evicted.Load():
		err = errOverFair
	case s.used.Load()+n > s.limit:
		err = errOverShare
	}
	for err == nil && b.used.Load()+n > b.limit {
		groups := int64(len(b.active))
		if s.used.Load() == 0 {
			groups++
		}
		fair := b.limit / groups
		if s.used.Load()+n > fair {
			err = errOverFair
			break
		}
		v := b.victim(s, fair)
		if v == nil {
			err = errOverFair
			break
		}
		b.revoke(v)
		evicted = append(evicted, v.evict)
	}
	if err == nil {
		if h.n == 0 {
			s.holds = append(s.holds, h)
		}
		if s.used.Load() == 0 {
			b.active[s] = struct{}{}
		}
		h.n += n
		s.used.Add(n)
		b.used.Add(n)
	}
	b.mu.Unlock()
	for _, f := range evicted {
		b.evictions.Add(1)
		f()
	}
	return err
}

// victim returns the largest evictable frame of the group furthest over
// fair, other than s, or nil if no group is over it. Called under b.mu,
// only when the budget is full.
func (b *Budget) victim(s *BudgetShare, fair int64) *budgetHold {
	var worst *budgetHold
	var worstUsed int64
	for g := range b.active {
		u := g.used.Load()
		if g == s || u <= fair || u <= worstUsed {
			continue
		}
		var big *budgetHold
		for _, h := range g.holds {
			if h.evict != nil && (big == nil || h.n > big.n) {
				big = h
			}
		}
		if big != nil {
			worst, worstUsed = big, u
		}
	}
	return worst
}

// revoke takes back what h holds and marks it evicted. Called under b.mu.
func (b *Budget) revoke(h *budgetHold) {
	h.evicted.Store(true)
	b.drop(h)
}

// drop gives back what h holds. Called under b.mu.
func (b *Budget) drop(h *budgetHold) {
	if h.n == 0 {
		return
	}
	s := h.share
	for i, x := range s.holds {
		if x == h {
			last := len(s.holds) - 1
			s.holds[i] = s.holds[last]
			s.holds[last] = nil
			s.holds = s.holds[:last]
			break
		}
	}
	s.used.Add(-h.n)
	b.used.Add(-h.n)
	if s.used.Load() == 0 {
		delete(b.active, s)
		s.holds = nil
	}
	h.n = 0
}

// release gives back what h holds once its frame is complete or failed.
func (h *budgetHold) release() {
	b := h.share.b
	b.mu.Lock()
	b.drop(h)
	h.evicted.Store(false)
	b.mu.Unlock()
}

// SetBudget makes the reader count its large frames against b (nil: none),
// as a group of its own.
func (fr *FrameReader) SetBudget(b *Budget) {
	if b == nil {
		fr.SetBudgetShare(nil)
		return
	}
	fr.SetBudgetShare(b.NewShare(b.limit))
}

// SetBudgetShare makes the reader count its large frames against s, and
// so against s's Budget (nil: none).
func (fr *FrameReader) SetBudgetShare(s *BudgetShare) {
	var evict func()
	if fr.hold != nil {
		evict = fr.hold.evict
	}
	fr.hold = nil
	if s != nil {
		fr.hold = &budgetHold{share: s, evict: evict}
	}
}

// OnBudgetEvict sets the function called, on another reader's goroutine,
// when the budget evicts this reader's large frame to make room for a
// reader within its fair share: it should close the reader's source, so
// that the frame's read fails (with ErrBudgetExceeded) and its buffer is
// given back. Without one, the reader's frames are never evicted. Call it
// after SetBudget or SetBudgetShare, before reading.
func (fr *FrameReader) OnBudgetEvict(f func()) {
	if fr.hold != nil {
		fr.hold.evict = f
	}
}
