package slab

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// slotUsed marks a chunk that is handed out. Any other slot value belongs to
// a free chunk (or one being freed) and is the link to the chunk below it on
// the free stack: its index + 1, or 0 at the bottom.
const slotUsed = ^uint32(0)

// AtomPool is a Pool whose size classes keep their free chunks on
// lock-free stacks (Treiber stacks of chunk indices, each with an ABA tag
// packed into the same 64-bit word as its top).
//
// Each class owns pages of pageSize bytes (rounded down to a whole number
// of chunks) cut into chunks of the class size. A class allocates its first
// page on its first Alloc and another whenever it runs out, so an idle pool
// costs a few hundred bytes. Pages are kept until ReleaseIdle lets go of
// those that gave out no chunk for a while and whose chunks are all free
// (see Releaser); without it the pool never shrinks below its peak use.
// Alloc and Free take no lock; only growing a class takes a mutex, at most
// once per pageSize bytes, so that a burst of Allocs on an empty class adds
// one page rather than one per goroutine. A class whose chunk indices would
// pass 1<<31 stops growing and Alloc falls back to make.
//
// A class has one free stack per processor (GOMAXPROCS when the pool was
// made, rounded up to a power of two): Free pushes on the stack of the
// processor it runs on and Alloc pops from it, taking from the others only
// when it is empty. A goroutine that frees and allocates on one core thus
// keeps the stack's top in that core's cache, instead of every Alloc and
// Free on every core fighting over one cache line.
//
// Free ignores slices that are not chunks of this pool and a second Free of
// a chunk that is still free (see the package doc).
type AtomPool struct {
	cls     classes
	classes []atomClass
	release sync.Mutex // held by ReleaseIdle
}

// atomClass is one size class of an AtomPool.
type atomClass struct {
	stacks []atomStack // one per processor; len is a power of two
	geometry
	table atomic.Pointer[pageTable]
	grow  sync.Mutex // held while adding a page
}

// atomStack is one free stack of a class.
type atomStack struct {
	// head is tag<<32 | (top index + 1), 0 when empty. The tag changes on
	// every push and pop, so a pop that read a stale top cannot succeed
	// after that chunk was popped and pushed again.
	head atomic.Uint64
	_    [56]byte // one cache line per stack
}

// maxStacks bounds the free stacks per class.
const maxStacks = 64

// NewAtomPool returns an AtomPool with classes from minChunk to maxChunk
// bytes, each factor times the previous, cut from pages of pageSize bytes.
// It panics on arguments that New would reject; New reports them as errors.
func NewAtomPool(minChunk, maxChunk, factor, pageSize int) *AtomPool {
	mustValidate(minChunk, maxChunk, factor, pageSize, true)
	p := &AtomPool{cls: newClasses(minChunk, maxChunk, factor)}
	p.classes = make([]atomClass, len(p.cls))
	n := min(maxStacks, 1<<bits.Len(uint(runtime.GOMAXPROCS(0)-1)))
	for i, size := range p.cls {
		c := &p.classes[i]
		c.stacks = make([]atomStack, n)
		c.geometry = newGeometry(size, pageSize)
		c.table.Store(&pageTable{})
	}
	return p
}

// Alloc returns a slice of length size from the smallest class that holds
// it, make([]byte, size) above the largest class, and nil for a negative
// size.
func (p *AtomPool) Alloc(size int) []byte {
	ci, b := p.cls.forAlloc(size)
	if ci < 0 {
		return b
	}
	c := &p.classes[ci]
	home := c.home()
	pg, i, ok := c.pop(home)
	if !ok {
		pg, i, ok = c.steal(home)
	}
	if !ok {
		pg, i, ok = c.addPage(home)
	}
	if !ok {
		return make([]byte, size)
	}
	pg.touch()
	return pg.chunk(i, c.chunk, size)
}

// Free returns b to its class. Slices that are not chunks of this pool, and
// chunks that are already free, are ignored.
func (p *AtomPool) Free(b []byte) {
	ci := p.cls.exact(cap(b))
	if ci < 0 {
		return
	}
	c := &p.classes[ci]
	pg, i, ok := c.table.Load().find(b, c.chunk)
	if !ok {
		return
	}
	// Claim the chunk and link it to the current top in one step; a
	// chunk that is not marked used is already free (a double Free).
	st := c.home()
	s := &pg.slots[i]
	old := st.head.Load()
	if !s.CompareAndSwap(slotUsed, uint32(old)) {
		return
	}
	top := uint64(c.index(pg, i) + 1)
	for !st.head.CompareAndSwap(old, (old>>32+1)<<32|top) {
		old = st.head.Load()
		s.Store(uint32(old))
	}
}

// home returns the free stack of the processor the caller runs on. The
// goroutine may move to another processor right after; that costs a cache
// miss, never correctness, since every stack is safe for concurrent use.
func (c *atomClass) home() *atomStack {
	id := procPin()
	procUnpin()
	return &c.stacks[id&(len(c.stacks)-1)]
}

// steal takes the whole free stack of another processor, hands its top
// chunk to the caller and moves the rest onto home, so that the Allocs
// that follow pop locally: when chunks are allocated on one core and freed
// on another, one steal per stack rather than one per chunk keeps the
// stacks' heads in their own cores' caches.
func (c *atomClass) steal(home *atomStack) (pg *page, i uint32, ok bool) {
	for j := range c.stacks {
		st := &c.stacks[j]
		if st == home {
			continue
		}
		old := st.head.Load()
		for uint32(old) != 0 && !st.head.CompareAndSwap(old, (old>>32+1)<<32) {
			old = st.head.Load()
		}
		if top := uint32(old); top != 0 {
			// The chain from top down is now ours alone.
			idx := top - 1
			pg = c.table.Load().byNo[idx>>c.shift]
			i = idx & c.mask
			s := &pg.slots[i]
			if next := s.Load(); next != 0 {
				c.adopt(home, next)
			}
			s.Store(slotUsed)
			return pg, i, true
		}
	}
	return nil, 0, false
}

// adopt puts a chain of free chunks that nobody else can reach, from the
// chunk with index top-1 down to a chunk linked to 0, on stack st.
func (c *atomClass) adopt(st *atomStack, top uint32) {
	old := st.head.Load()
	if uint32(old) == 0 && st.head.CompareAndSwap(old, (old>>32+1)<<32|uint64(top)) {
		return // the usual case: st was empty, as it is when stealing
	}
	// st has chunks: link the chain's bottom to them. Finding the bottom
	// walks the chain, which is rare enough (another goroutine freed on
	// this processor during the steal) not to matter.
	t := c.table.Load()
	at := top
	for {
		idx := at - 1
		s := &t.byNo[idx>>c.shift].slots[idx&c.mask]
		next := s.Load()
		if next == 0 {
			c.push(st, top-1, s)
			return
		}
		at = next
	}
}

// pop takes the top chunk off the free stack st.
func (c *atomClass) pop(st *atomStack) (pg *page, i uint32, ok bool) {
	for {
		old := st.head.Load()
		top := uint32(old)
		if top == 0 {
			return nil, 0, false
		}
		idx := top - 1
		// Load the table after the head: a chunk is pushed only after
		// its page is published, so the table has the page, unless
		// ReleaseIdle took the chunk (changing the head) and released
		// the page meanwhile: then the swap below fails.
		pg = c.table.Load().byNo[idx>>c.shift]
		if pg == nil {
			continue
		}
		i = idx & c.mask
		s := &pg.slots[i]
		// next may be stale (another pop took idx meanwhile); then the
		// head's tag has changed and the swap fails.
		next := s.Load()
		if st.head.CompareAndSwap(old, (old>>32+1)<<32|uint64(next)) {
			s.Store(slotUsed)
			return pg, i, true
		}
	}
}

// push puts a chain of free chunks, already linked to each other, on the
// stack st: first is the index of the chain's top chunk and lastSlot the
// slot of its bottom chunk, which is linked to the old top.
func (c *atomClass) push(st *atomStack, first uint32, lastSlot *atomic.Uint32) {
	for {
		old := st.head.Load()
		lastSlot.Store(uint32(old))
		if st.head.CompareAndSwap(old, (old>>32+1)<<32|uint64(first+1)) {
			return
		}
	}
}

// addPage adds a page to the class, keeps its first chunk for the caller
// and pushes the rest on home. If another goroutine added a page while this
// one waited for the lock, it takes a chunk of that page instead. ok is
// false when the class cannot grow.
func (c *atomClass) addPage(home *atomStack) (pg *page, i uint32, ok bool) {
	c.grow.Lock()
	defer c.grow.Unlock()
	if pg, i, ok = c.pop(home); ok {
		return pg, i, ok
	}
	if pg, i, ok = c.steal(home); ok {
		return pg, i, ok
	}
	t := c.table.Load()
	no := t.freeNo()
	if no >= c.maxPages {
		return nil, 0, false
	}
	pg = newPage(uint32(no), c.perPage, c.chunk)
	pg.slots[0].Store(slotUsed)
	n := uint32(c.perPage)
	for j := uint32(1); j+1 < n; j++ {
		pg.slots[j].Store(c.index(pg, j+1) + 1) // link chunk j to j+1
	}
	c.table.Store(t.with(pg)) // publish the page before its chunks
	if n > 1 {
		c.push(home, c.index(pg, 1), &pg.slots[n-1])
	}
	return pg, 0, true
}
