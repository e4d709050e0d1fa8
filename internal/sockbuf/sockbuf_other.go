//go:build !unix

package sockbuf

// Set does nothing on this system: sockets keep the system's sizes.
func Set(fd uintptr, size int) error { return nil }

// Get reports nothing on this system.
func Get(fd uintptr) (snd, rcv int) { return 0, 0 }
