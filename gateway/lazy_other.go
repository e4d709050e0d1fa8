//go:build !unix

package gateway

// lazyReads is false off unix: readers hold their buffer while waiting.
const lazyReads = false

// readReady is never used off unix: ReadLazy falls back to Read there.
func (l *link) readReady(fd uintptr) bool { panic("fastway: lazy reads need unix") }
