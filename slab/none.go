package slab

// NoPool is a Pool that does no pooling: Alloc is make([]byte, size) (nil
// for a negative size) and Free does nothing. It is the baseline the other
// pools are measured against, and what "-MemPoolType none" selects.
type NoPool struct{}

// Alloc returns make([]byte, size), or nil for a negative size.
func (NoPool) Alloc(size int) []byte {
	if size < 0 {
		return nil
	}
	return make([]byte, size)
}

// Free does nothing; the garbage collector reclaims b.
func (NoPool) Free([]byte) {}
