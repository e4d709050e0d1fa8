//go:build unix

package main

import (
	"os"
	"syscall"
)

// setSockBuf sets the send and receive buffers of the socket c to size
// bytes (Linux doubles them).
func setSockBuf(c syscall.RawConn, size int) error {
	var err error
	cerr := c.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		if err == nil {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, size)
		}
	})
	if cerr != nil {
		return cerr
	}
	return os.NewSyscallError("setsockopt", err)
}
