//go:build !unix

package faultproxy

// setSockBuf does nothing on this system: NewTimed's sockets keep the
// system's sizes.
func setSockBuf(fd uintptr, size int) error { return nil }
