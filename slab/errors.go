package slab

import "errors"

// ErrUnknownKind is returned by New for a pool kind other than "sync",
// "atom", "chan" or "none".
var ErrUnknownKind = errors.New("fastway: slab: unknown pool kind")

// ErrInvalidConfig is returned by New for chunk or page sizes it cannot use;
// the wrapped message says which argument is wrong.
var ErrInvalidConfig = errors.New("fastway: slab: invalid pool configuration")
