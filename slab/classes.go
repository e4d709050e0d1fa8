package slab

import "fmt"

// maxPerPage bounds the chunks in one page, so that chunk indices (page
// number and chunk number packed in 31 bits) stay small; see pageIndex.
const maxPerPage = 1 << 30

// classes holds the chunk size of every size class, smallest first.
type classes []int

// newClasses returns minChunk, minChunk*factor, ... up to and including
// maxChunk. The arguments must have passed validateChunks.
func newClasses(minChunk, maxChunk, factor int) classes {
	var c classes
	for s := minChunk; ; s *= factor {
		if s >= maxChunk || s > maxChunk/factor {
			if s < maxChunk {
				c = append(c, s)
			}
			return append(c, maxChunk)
		}
		c = append(c, s)
	}
}

// index returns the smallest class that holds size bytes, or -1 when size is
// above the largest class. size must not be negative.
func (c classes) index(size int) int {
	for i, s := range c {
		if size <= s {
			return i
		}
	}
	return -1
}

// forAlloc returns the class an Alloc of size bytes takes a chunk from, or
// -1 with what Alloc returns when no class serves it: nil for a negative
// size, a plain make above the largest class.
func (c classes) forAlloc(size int) (int, []byte) {
	if size < 0 {
		return -1, nil
	}
	ci := c.index(size)
	if ci < 0 {
		return -1, make([]byte, size)
	}
	return ci, nil
}

// exact returns the class whose chunk size is exactly size, or -1.
func (c classes) exact(size int) int {
	i := c.index(size)
	if i < 0 || c[i] != size {
		return -1
	}
	return i
}

// validateChunks checks the arguments shared by every pool kind.
func validateChunks(minChunk, maxChunk, factor int) error {
	switch {
	case minChunk <= 0:
		return fmt.Errorf("%w: minChunk %d must be positive", ErrInvalidConfig, minChunk)
	case maxChunk < minChunk:
		return fmt.Errorf("%w: maxChunk %d is below minChunk %d", ErrInvalidConfig, maxChunk, minChunk)
	case factor < 2:
		return fmt.Errorf("%w: factor %d must be at least 2", ErrInvalidConfig, factor)
	}
	return nil
}

// validatePage checks the page size of the paged pools (atom and chan).
func validatePage(minChunk, maxChunk, pageSize int) error {
	switch {
	case pageSize < maxChunk:
		return fmt.Errorf("%w: pageSize %d is below maxChunk %d", ErrInvalidConfig, pageSize, maxChunk)
	case pageSize/minChunk > maxPerPage:
		return fmt.Errorf("%w: pageSize %d holds more than %d chunks of minChunk %d",
			ErrInvalidConfig, pageSize, maxPerPage, minChunk)
	}
	return nil
}

// mustValidate panics with the error of validateChunks and, when paged is
// set, validatePage. The New* constructors use it; New reports errors
// instead.
func mustValidate(minChunk, maxChunk, factor, pageSize int, paged bool) {
	err := validateChunks(minChunk, maxChunk, factor)
	if err == nil && paged {
		err = validatePage(minChunk, maxChunk, pageSize)
	}
	if err != nil {
		panic(err)
	}
}
