//go:build unix

package gateway

import "syscall"

// lazyReads says ReadLazy can wait on the socket holding no buffer.
const lazyReads = true

// readReady is the RawConn callback: one read attempt into a fresh buffer;
// on EAGAIN the buffer goes back and the runtime waits for readability.
func (l *link) readReady(fd uintptr) bool {
	buf := l.lazyGet()
	for {
		n, err := syscall.Read(int(fd), buf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			l.lazyPut()
			return false
		}
		l.lazyN, l.lazyErr = max(n, 0), err
		return true
	}
}
