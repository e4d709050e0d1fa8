//go:build linux

package gateway

import (
	"net"
	"syscall"
	"unsafe"
)

// unacked returns how many bytes written to c its peer has not
// acknowledged yet (SIOCOUTQ: bytes in the socket's send queue, sent or
// not), or -1 when it cannot tell (not a socket).
func unacked(c net.Conn) int {
	// Down to the socket: TLS, WebSocket, or WebSocket over TLS.
	for {
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = nc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	raw.Control(func(fd uintptr) {
		var v int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&v))); e == 0 {
			n = int(v)
		}
	})
	return n
}
