//go:build linux

package ws

import (
	"os"
	"syscall"
	"unsafe"
)

// lazyWait says ReadLazy can wait on the socket holding no buffer.
const lazyWait = true

// peekReady is the RawConn callback of ReadLazy's wait: it reports the
// socket readable (data, EOF or an error pending) by peeking one byte
// without taking it; on EAGAIN the runtime waits for readability.
func (c *Conn) peekReady(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			return true
		}
		c.peekErr = os.NewSyscallError("recvfrom", e)
		return true
	}
}
