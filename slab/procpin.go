package slab

import _ "unsafe" // for go:linkname

// procPin returns the id of the processor (P) the calling goroutine runs on
// and keeps it there until procUnpin. The runtime keeps these two exported
// to linkname for packages like this one (see go.dev/issue/67401); sync.Pool
// uses the same pair for its per-P caches.
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()
