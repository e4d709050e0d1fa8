//go:build linux

package ws

import (
	"os"
	"syscall"
	"unsafe"
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

// nowState is WriteNow's scratch: the iovecs, the RawConn callback (made
// once) and what it found, and FinishMessage's slice of buffers.
type nowState struct {
	iov []syscall.Iovec
	n   int64
	err syscall.Errno
	fn  func(fd uintptr) bool
	fin [][]byte
}

// writevNow makes one non-blocking writev of h and bufs and returns the
// bytes written (0 when the socket is full). c.wmu is held.
func (c *Conn) writevNow(h []byte, bufs [][]byte) (int64, error) {
	w := &c.now
	if w.fn == nil {
		w.fn = func(fd uintptr) bool {
			for {
				r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(len(w.iov)))
				switch e {
				case syscall.EINTR:
					continue
				case 0:
					w.n = int64(r)
				case syscall.EAGAIN:
					w.n = 0
				default:
					w.err = e
				}
				return true // one attempt: never wait for the socket here
			}
		}
	}
	add := func(b []byte) {
		if len(b) == 0 {
			return
		}
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		w.iov = append(w.iov, v)
	}
	add(h)
	for _, b := range bufs {
		add(b)
	}
	err := c.raw.Write(w.fn)
	n, errno := w.n, w.err
	clear(w.iov)
	w.iov, w.n, w.err = w.iov[:0], 0, 0
	if cap(w.iov) > 64 {
		w.iov = nil // a big batch's array goes; small ones are kept
	}
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return n, os.NewSyscallError("writev", errno)
	}
	return n, nil
}
