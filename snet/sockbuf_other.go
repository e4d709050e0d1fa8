//go:build !unix

package snet

// setSockBuf does nothing on this system: sockets keep the system's
// buffer sizes, so size RewriterBufferSize above what they hold.
func setSockBuf(fd uintptr, size int) error { return nil }

// getSockBuf reports nothing on this system.
func getSockBuf(fd uintptr) (snd, rcv int) { return 0, 0 }
