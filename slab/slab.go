package slab

import "fmt"

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

// Names of the pool kinds accepted by New.
const (
	kindSync = "sync"
	kindAtom = "atom"
	kindChan = "chan"
	kindNone = "none"
)

// New returns a pool of the given kind: "sync" (SyncPool), "atom"
// (AtomPool), "chan" (ChanPool) or "none" (NoPool).
//
// minChunk and maxChunk are the smallest and largest class sizes in bytes,
// factor is the ratio between neighbouring classes, and pageSize is the size
// in bytes of the slabs AtomPool and ChanPool cut into chunks (the other
// kinds ignore it). The chunk arguments are checked for every kind, so a bad
// flag is reported even when pooling is off. Errors wrap ErrUnknownKind or
// ErrInvalidConfig.
func New(kind string, minChunk, maxChunk, factor, pageSize int) (Pool, error) {
	switch kind {
	case kindSync, kindAtom, kindChan, kindNone:
	default:
		return nil, fmt.Errorf("%w %q (want %s, %s, %s or %s)",
			ErrUnknownKind, kind, kindSync, kindAtom, kindChan, kindNone)
	}
	if err := validateChunks(minChunk, maxChunk, factor); err != nil {
		return nil, err
	}
	switch kind {
	case kindSync:
		return NewSyncPool(minChunk, maxChunk, factor), nil
	case kindNone:
		return NoPool{}, nil
	}
	if err := validatePage(minChunk, maxChunk, pageSize); err != nil {
		return nil, err
	}
	if kind == kindAtom {
		return NewAtomPool(minChunk, maxChunk, factor, pageSize), nil
	}
	return NewChanPool(minChunk, maxChunk, factor, pageSize), nil
}
