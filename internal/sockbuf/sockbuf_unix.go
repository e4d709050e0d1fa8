//go:build unix

package sockbuf

import (
	"os"
	"syscall"
)

// Set sets the socket fd's receive and send buffers to size bytes.
func Set(fd uintptr, size int) error {
	if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return os.NewSyscallError("setsockopt", syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, size))
}

// Get returns the socket fd's send and receive buffer sizes as the kernel
// reports them (0 when it does not).
func Get(fd uintptr) (snd, rcv int) {
	snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	return snd, rcv
}
