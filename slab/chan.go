package slab

import (
	"math"
	"sync"
	"sync/atomic"
)

// Slot values of a ChanPool chunk.
const (
	chanFree = 0 // in the free channel, or being put there
	chanUsed = 1 // handed out by Alloc
)

// ChanPool is a Pool whose size classes keep the indices of their free
// chunks in a buffered channel.
//
// Pages are allocated on demand, as in AtomPool, and released by
// ReleaseIdle when a class had more chunks free than it needed for a while
// (see Releaser). The channel of a class always has room for every chunk
// of the class: when a new page would overfill it, it is replaced by one
// twice as large (or as large as needed), and ReleaseIdle shrinks it back.
// Free holds a read lock while it sends, so that a replacement, which holds
// the write lock, never leaves a chunk behind in an old channel; Alloc
// takes no lock unless the class must grow.
//
// Free ignores slices that are not chunks of this pool and a second Free of
// a chunk that is still free (see the package doc).
type ChanPool struct {
	cls     classes
	classes []chanClass
	release sync.Mutex // held by ReleaseIdle
}

// chanClass is one size class of a ChanPool.
type chanClass struct {
	geometry
	free  atomic.Pointer[freeList]
	table atomic.Pointer[pageTable]
	mu    sync.RWMutex // read: sending to free; write: adding or releasing a page
	// low is the fewest chunks Alloc has left in the free channel since
	// ReleaseIdle last looked, lowSince (ReleaseIdle's own) when it began:
	// chunks the class did not need.
	low      atomic.Int64
	lowSince int64
	_        [64]byte // keep neighbouring classes on separate cache lines
}

// freeList wraps the channel so that it can be swapped atomically.
type freeList struct {
	ch chan uint32 // chunk indices
}

// NewChanPool returns a ChanPool with classes from minChunk to maxChunk
// bytes, each factor times the previous, cut from pages of pageSize bytes.
// It panics on arguments that New would reject; New reports them as errors.
func NewChanPool(minChunk, maxChunk, factor, pageSize int) *ChanPool {
	mustValidate(minChunk, maxChunk, factor, pageSize, true)
	p := &ChanPool{cls: newClasses(minChunk, maxChunk, factor)}
	p.classes = make([]chanClass, len(p.cls))
	for i, size := range p.cls {
		c := &p.classes[i]
		c.geometry = newGeometry(size, pageSize)
		c.table.Store(&pageTable{})
		c.low.Store(math.MaxInt64)
	}
	return p
}

// Alloc returns a slice of length size from the smallest class that holds
// it, make([]byte, size) above the largest class, and nil for a negative
// size.
func (p *ChanPool) Alloc(size int) []byte {
	ci, b := p.cls.forAlloc(size)
	if ci < 0 {
		return b
	}
	c := &p.classes[ci]
	if f := c.free.Load(); f != nil {
		select {
		case idx := <-f.ch:
			c.noteLow(len(f.ch))
			return c.take(idx, size)
		default:
		}
	}
	c.noteLow(0)
	if b := c.addPage(size); b != nil {
		return b
	}
	return make([]byte, size)
}

// noteLow records n chunks left free, for the class's low-water mark. It
// stores only a new low, so that the line is mostly read.
func (c *chanClass) noteLow(n int) {
	if int64(n) < c.low.Load() {
		c.low.Store(int64(n))
	}
}

// Free returns b to its class. Slices that are not chunks of this pool, and
// chunks that are already free, are ignored.
func (p *ChanPool) Free(b []byte) {
	ci := p.cls.exact(cap(b))
	if ci < 0 {
		return
	}
	c := &p.classes[ci]
	pg, i, ok := c.table.Load().find(b, c.chunk)
	if !ok || !pg.slots[i].CompareAndSwap(chanUsed, chanFree) {
		return
	}
	c.mu.RLock()
	select {
	case c.free.Load().ch <- c.index(pg, i):
	default: // unreachable: the channel holds every chunk of the class
	}
	c.mu.RUnlock()
}

// take marks chunk idx as handed out and returns it with length size.
func (c *chanClass) take(idx uint32, size int) []byte {
	// Load the table after the receive: a chunk is sent only after its
	// page is published, so the table has the page.
	pg := c.table.Load().byNo[idx>>c.shift]
	i := idx & c.mask
	pg.slots[i].Store(chanUsed)
	return pg.chunk(i, c.chunk, size)
}

// addPage adds a page to the class, returns its first chunk with length
// size and puts the rest in the free channel, first replacing the channel
// by a larger one if it lacks room. If a chunk was freed while this
// goroutine waited for the lock, it returns that chunk instead. It returns
// nil when the class cannot grow.
func (c *chanClass) addPage(size int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.free.Load()
	if f != nil {
		select {
		case idx := <-f.ch:
			return c.take(idx, size)
		default:
		}
	}
	t := c.table.Load()
	no := t.freeNo()
	if no >= c.maxPages {
		return nil
	}
	pg := newPage(uint32(no), c.perPage, c.chunk)
	pg.slots[0].Store(chanUsed)
	if total := (t.live() + 1) * c.perPage; f == nil || cap(f.ch) < total {
		// The old channel is empty: the receive above found it so
		// under the write lock, and no Free can send while we hold it.
		n := total
		if f != nil {
			n = max(n, 2*cap(f.ch))
		}
		f = &freeList{ch: make(chan uint32, n)}
		c.free.Store(f)
	}
	c.table.Store(t.with(pg))
	for j := 1; j < c.perPage; j++ {
		f.ch <- c.index(pg, uint32(j))
	}
	return pg.chunk(0, c.chunk, size)
}
