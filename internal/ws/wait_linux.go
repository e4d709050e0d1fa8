//go:build linux

package ws

import (
	"os"
	"syscall"
)

// lazyWait says ReadLazy can wait on the socket holding no buffer.
const lazyWait = true

// readReady is ReadLazy's RawConn callback: one read attempt into the
// reader's buffer, taken for it; on EAGAIN the buffer goes back and the
// runtime waits for readability.
func (c *Conn) readReady(fd uintptr) bool {
	buf := c.lget()
	for {
		n, err := syscall.Read(int(fd), buf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			c.lput()
			return false
		}
		c.lbuf, c.ln = buf, max(n, 0)
		if err != nil {
			c.lerr = os.NewSyscallError("read", err)
		}
		return true
	}
}

// writeNow writes b to the socket with one non-blocking write attempt: the
// bytes the socket takes at once, maybe none.
func (c *Conn) writeNow(b []byte) {
	c.raw.Write(func(fd uintptr) bool {
		for {
			if _, err := syscall.Write(int(fd), b); err != syscall.EINTR {
				return true
			}
		}
	})
}
