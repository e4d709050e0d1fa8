package slab

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// A page is one slab of a paged pool's size class, cut into equal chunks.
// A page goes back to the runtime only when the pool releases it: all its
// chunks free, and none taken for a while (see ReleaseIdle).
type page struct {
	mem   []byte          // the chunks, back to back
	base  uintptr         // address of mem[0], for ownership checks
	end   uintptr         // base + len(mem)
	no    uint32          // position in pageTable.byNo
	slots []atomic.Uint32 // per chunk state; its meaning belongs to the pool

	// used is set when Alloc takes a chunk of the page, and cleared by
	// ReleaseIdle, which keeps idleSince (its own field) as the time it
	// last found it set: the page has given out no chunk since.
	used      atomic.Bool
	idleSince int64 // Unix ns; ReleaseIdle only
}

func newPage(no uint32, perPage, chunk int) *page {
	mem := make([]byte, perPage*chunk)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	pg := &page{
		mem:   mem,
		base:  base,
		end:   base + uintptr(len(mem)),
		no:    no,
		slots: make([]atomic.Uint32, perPage),
	}
	pg.used.Store(true)
	return pg
}

// touch records that a chunk of p was handed out. The store is skipped
// when the flag is set already, so that a busy page's cache line is only
// read.
func (p *page) touch() {
	if !p.used.Load() {
		p.used.Store(true)
	}
}

// chunk returns chunk i of the page as a slice of length size and capacity
// chunk.
func (p *page) chunk(i uint32, chunk, size int) []byte {
	off := int(i) * chunk
	return p.mem[off : off+size : off+chunk]
}

// A pageTable lists the pages of one size class. It is never modified once
// published: growth and release build a new table and swap a pointer, so
// readers need no lock.
type pageTable struct {
	byNo   []*page // by page number, for chunk index lookups; nil for a number released
	sorted []*page // by base address, for ownership checks
}

// freeNo returns the number a new page takes: the lowest one released, or
// the next one. Numbers are reused so that a pool that grows and releases
// over and over stays within maxPages.
func (t *pageTable) freeNo() int {
	for no, p := range t.byNo {
		if p == nil {
			return no
		}
	}
	return len(t.byNo)
}

// live returns how many pages t holds.
func (t *pageTable) live() int { return len(t.sorted) }

// with returns a copy of t with p added; p.no must be t.freeNo().
func (t *pageTable) with(p *page) *pageTable {
	nt := &pageTable{sorted: make([]*page, 0, len(t.sorted)+1)}
	if int(p.no) < len(t.byNo) {
		nt.byNo = append([]*page(nil), t.byNo...)
		nt.byNo[p.no] = p
	} else {
		nt.byNo = append(t.byNo[:len(t.byNo):len(t.byNo)], p)
	}
	i := t.search(p.base)
	nt.sorted = append(nt.sorted, t.sorted[:i]...)
	nt.sorted = append(nt.sorted, p)
	nt.sorted = append(nt.sorted, t.sorted[i:]...)
	return nt
}

// without returns a copy of t without the pages in drop, which t holds.
// Their numbers stay in byNo, as nil, so that no index changes meaning.
func (t *pageTable) without(drop map[*page]bool) *pageTable {
	nt := &pageTable{byNo: append([]*page(nil), t.byNo...), sorted: make([]*page, 0, len(t.sorted))}
	for _, p := range t.sorted {
		if drop[p] {
			nt.byNo[p.no] = nil
		} else {
			nt.sorted = append(nt.sorted, p)
		}
	}
	return nt
}

// search returns the number of pages whose base is at or below addr.
func (t *pageTable) search(addr uintptr) int {
	lo, hi := 0, len(t.sorted)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.sorted[m].base <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// find returns the page and chunk number of the chunk that starts exactly at
// the first byte of b's capacity, where chunk is the class's chunk size. ok
// is false when b is not such a chunk of this table (a foreign slice, or one
// that starts inside a chunk).
func (t *pageTable) find(b []byte, chunk int) (p *page, i uint32, ok bool) {
	if cap(b) != chunk || len(t.sorted) == 0 {
		return nil, 0, false
	}
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	n := t.search(addr)
	if n == 0 {
		return nil, 0, false
	}
	p = t.sorted[n-1]
	if addr >= p.end {
		return nil, 0, false
	}
	off := addr - p.base
	if off%uintptr(chunk) != 0 {
		return nil, 0, false
	}
	return p, uint32(off / uintptr(chunk)), true
}

// geometry is what a paged size class derives from its chunk and page
// sizes. A chunk is named by one index: page number << shift | chunk number.
// Indices stay below 1<<31, which bounds the pages of a class at maxPages.
type geometry struct {
	chunk    int    // chunk size in bytes
	perPage  int    // chunks per page
	shift    uint   // bits for the chunk number
	mask     uint32 // 1<<shift - 1
	maxPages int    // pages the class may grow to
}

func newGeometry(chunk, pageSize int) geometry {
	perPage := pageSize / chunk
	shift := uint(bits.Len(uint(perPage - 1)))
	return geometry{
		chunk:    chunk,
		perPage:  perPage,
		shift:    shift,
		mask:     1<<shift - 1,
		maxPages: 1 << (31 - shift),
	}
}

// index returns the chunk index of chunk i of page p.
func (g *geometry) index(p *page, i uint32) uint32 { return p.no<<g.shift | i }
