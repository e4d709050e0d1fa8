package slab

import (
	"sync"
	"unsafe"
)

// SyncPool is a Pool with one sync.Pool per size class.
//
// It keeps a pointer to the first byte of each free chunk, which fits in an
// interface without an allocation, so Alloc and Free do not allocate once
// the pools are warm. The garbage collector may empty the pools at any
// time, so an idle SyncPool shrinks by itself.
//
// SyncPool cannot tell its own chunks from others: Free adopts any slice
// whose capacity is exactly a class size, from wherever it came, and
// ignores the rest. That is harmless as long as the caller owns the whole
// capacity of what it frees; freeing a sub-slice of a live buffer whose
// capacity happens to equal a class size hands that memory out twice. A
// double Free is not detected either and hands the chunk out twice.
type SyncPool struct {
	cls   classes
	pools []sync.Pool // of unsafe.Pointer to a chunk's first byte
}

// NewSyncPool returns a SyncPool with classes from minChunk to maxChunk
// bytes, each factor times the previous. It panics on arguments that New
// would reject; New reports them as errors.
func NewSyncPool(minChunk, maxChunk, factor int) *SyncPool {
	mustValidate(minChunk, maxChunk, factor, 0, false)
	cls := newClasses(minChunk, maxChunk, factor)
	return &SyncPool{cls: cls, pools: make([]sync.Pool, len(cls))}
}

// Alloc returns a slice of length size from the smallest class that holds
// it, make([]byte, size) above the largest class, and nil for a negative
// size.
func (p *SyncPool) Alloc(size int) []byte {
	ci, b := p.cls.forAlloc(size)
	if ci < 0 {
		return b
	}
	chunk := p.cls[ci]
	if v := p.pools[ci].Get(); v != nil {
		return unsafe.Slice((*byte)(v.(unsafe.Pointer)), chunk)[:size]
	}
	return make([]byte, size, chunk)
}

// Free puts b in the pool of the class whose size is exactly cap(b); other
// slices are ignored.
func (p *SyncPool) Free(b []byte) {
	ci := p.cls.exact(cap(b))
	if ci < 0 {
		return
	}
	p.pools[ci].Put(unsafe.Pointer(unsafe.SliceData(b)))
}
