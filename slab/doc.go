// Package slab provides pools of byte slices for the gateway's frame buffers.
//
// A Pool sorts requests into size classes: minChunk, minChunk*factor,
// minChunk*factor², ... up to and including maxChunk (when maxChunk is not on
// that series, it is the last class). Alloc(size) returns chunk[:size] where
// chunk is a free chunk of the smallest class that holds size bytes, so
// cap(b) is the class size. Sizes above maxChunk are served by
// make([]byte, size) and freeing them is a no-op. Alloc(0) is served by the
// smallest class (a non-nil, empty slice with cap == minChunk), and a
// negative size returns nil. Chunks are not zeroed when handed out again.
//
// Four implementations, picked by name in New (the gateway's -MemPoolType):
//
//   - "sync" (SyncPool): one sync.Pool per class. Cheap and self-shrinking,
//     since the garbage collector empties the pools, but it cannot tell its
//     own chunks from others and does not detect a double Free.
//   - "atom" (AtomPool): pages of pageSize bytes per class, cut into chunks,
//     with the free chunks on a lock-free stack. Pages are allocated on
//     demand and kept until ReleaseIdle lets go of the idle ones.
//   - "chan" (ChanPool): the same pages, with the free chunks in a buffered
//     channel per class.
//   - "none" (NoPool): no pooling at all, for comparison.
//
// AtomPool and ChanPool know which memory is theirs: Free ignores a slice
// that does not start at a chunk boundary of one of their pages or whose
// capacity is not exactly its class size, and a second Free of a chunk that
// is still free is ignored. A Free after the chunk was handed out again
// cannot be told from a legitimate one, so use after Free stays the
// caller's bug.
//
// Every pool is safe for concurrent use.
//
// Giving memory back: AtomPool and ChanPool implement Releaser, whose
// ReleaseIdle drops the pages that were idle for a while; a Reclaimer,
// ticked periodically, calls it and then, when it is worth it, has the Go
// runtime return the freed heap to the operating system (which it
// otherwise does only after a garbage collection, and slowly), for every
// kind of pool (see Reclaimer).
package slab
