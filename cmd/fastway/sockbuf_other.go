//go:build !unix

package main

import "syscall"

// setSockBuf does nothing on this system: the socket buffers of an snet
// port keep the system's sizes, so size -*SnetBuffer above what they hold.
func setSockBuf(c syscall.RawConn, size int) error { return nil }
