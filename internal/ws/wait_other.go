//go:build !linux

package ws

// lazyWait is false off Linux: ReadLazy reads into a buffer it holds
// while it waits.
const lazyWait = false

func (c *Conn) readReady(fd uintptr) bool { panic("fastway: lazy waits need linux") }

func (c *Conn) writeNow(b []byte) { panic("fastway: writeNow needs linux") }
