package slab

// Pool hands out byte slices and takes them back.
//
// Alloc returns a slice with len == size. Its capacity may be larger (the
// size class the request fell into). Free returns a slice obtained from
// Alloc; freeing a slice the pool does not own is harmless (it is ignored or
// simply left to the garbage collector). A slice must not be used after Free.
type Pool interface {
	Alloc(size int) []byte
	Free(b []byte)
}

// Defaults for the constructors, matching the fastway binary's flags.
const (
	DefaultMinChunk = 64
	DefaultMaxChunk = 64 << 10
	DefaultFactor   = 2
	DefaultPageSize = 1 << 20
)
