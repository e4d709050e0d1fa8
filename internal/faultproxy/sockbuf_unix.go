//go:build unix

package faultproxy

import (
	"os"
	"syscall"
)

// setSockBuf sets the socket fd's send and receive buffers to size.
func setSockBuf(fd uintptr, size int) error {
	if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return os.NewSyscallError("setsockopt", syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, size))
}
