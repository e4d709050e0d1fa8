//go:build !unix

package gateway

// lazyReads is false off unix: readers hold their buffer while waiting.
const lazyReads = false

// readReady is never used off unix: ReadLazy falls back to Read there.
func (l *link) readReady(fd uintptr) bool { panic("fastway: lazy reads need unix") }

// writeState is unused off unix.
type writeState struct{}

// writeNow is never called off unix: links there have no RawConn.
func (l *link) writeNow(batch []outFrame) (int64, error) { panic("fastway: inline writes need unix") }

// iovBytes is never called off unix.
func iovBytes(batch []outFrame) int64 { panic("fastway: inline writes need unix") }

// wsWriteNow is never called off unix: WebSocket links there have no
// non-blocking writes (CanWriteNow is false).
func (l *link) wsWriteNow(batch []outFrame) (int64, error) { panic("fastway: inline writes need unix") }
