//go:build unix

package gateway

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

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

// TryRead implements proto.TryReader: one read of what has arrived, never
// waiting for more; 0 and no error when nothing has. The FrameReader uses
// it to read on when a read filled its buffer, before the reader writes out
// what it has queued.
func (l *link) TryRead(p []byte) (int, error) {
	if l.raw == nil || l.stopped() || len(p) == 0 {
		return 0, nil // (a read into nothing would look like EOF)
	}
	if err := l.refreshReadDeadline(); err != nil {
		return 0, err
	}
	if l.tryRead == nil {
		l.tryRead = func(fd uintptr) bool {
			for {
				n, err := syscall.Read(int(fd), l.tryBuf)
				switch {
				case err == syscall.EINTR:
					continue
				case err == syscall.EAGAIN:
					l.lazyN, l.lazyErr = 0, nil
				case err == nil && n == 0:
					l.lazyN, l.lazyErr = 0, io.EOF
				default:
					l.lazyN, l.lazyErr = max(n, 0), err
				}
				return true // one attempt: never wait here
			}
		}
	}
	l.tryBuf = p
	err := l.raw.Read(l.tryRead)
	n, rerr := l.lazyN, l.lazyErr
	l.tryBuf, l.lazyN, l.lazyErr = nil, 0, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == io.EOF:
		return 0, io.EOF
	case rerr != nil:
		return n, os.NewSyscallError("read", rerr)
	}
	return n, nil
}

// writeState is a link's scratch for non-blocking writes, made on the first
// one: the iovec array and the RawConn callback (made once, not per write).
type writeState struct {
	bufs [][]byte // a WebSocket link's frames (wsWriteNow)
	iov  []syscall.Iovec
	n    int64
	err  syscall.Errno
	fn   func(fd uintptr) bool
}

// maxIov bounds the iovecs of one writev (Linux's IOV_MAX is 1024).
const maxIov = 1024

// iovBytes is how many bytes of batch one writeNow tries to write.
func iovBytes(batch []outFrame) int64 { return batchBytes(batch[:min(len(batch), maxIov)]) }

// writeNow makes one non-blocking writev attempt of batch and returns how
// many bytes went out: all, some, or none when the socket buffer is full.
// The caller owns l's writer turn.
func (l *link) writeNow(batch []outFrame) (int64, error) {
	if l.wsNow != nil {
		return l.wsWriteNow(batch)
	}
	w := l.wstate
	if w == nil {
		w = &writeState{}
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
		l.wstate = w
	}
	for _, f := range batch {
		if len(w.iov) == maxIov {
			break
		}
		v := syscall.Iovec{Base: &f.b[0]}
		v.SetLen(len(f.b))
		w.iov = append(w.iov, v)
	}
	err := l.raw.Write(w.fn)
	n, errno := w.n, w.err
	clear(w.iov)
	w.iov, w.n, w.err = w.iov[:0], 0, 0
	if cap(w.iov) > maxSpare {
		w.iov = nil
	}
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return n, os.NewSyscallError("writev", errno)
	}
	return n, nil
}

// wsWriteNow is writeNow for a WebSocket link: the batch's frames as
// messages of up to coalesceMax bytes (a larger frame alone), as the
// blocking path makes them (writeCoalesced), each one non-blocking writev,
// until the socket is full or the batch (or one writev's worth of frames)
// is written.
func (l *link) wsWriteNow(batch []outFrame) (int64, error) {
	w := l.wstate
	if w == nil {
		w = &writeState{}
		l.wstate = w
	}
	defer func() {
		clear(w.bufs)
		w.bufs = w.bufs[:0]
		if cap(w.bufs) > maxSpare {
			w.bufs = nil
		}
	}()
	var total int64
	var cur frameCursor
	batch = batch[:min(len(batch), maxIov-1)]
	for len(batch) > 0 {
		// A message never ends inside a frame: a fan-out delivery's
		// header and its shared payload are two buffers.
		w.bufs = w.bufs[:0]
		size, whole := 0, true
		frameAt, frameSize := 0, 0 // where the frame being added starts in w.bufs, and its bytes there
		for len(batch) > 0 && (size == 0 || !whole || size+len(batch[0].b) <= coalesceMax) {
			if whole {
				frameAt, frameSize = len(w.bufs), 0
			}
			w.bufs = append(w.bufs, batch[0].b)
			size += len(batch[0].b)
			frameSize += len(batch[0].b)
			whole = cur.advance(batch[0].b)
			batch = batch[1:]
		}
		if !whole {
			// The cap on one writev's frames cut the last frame: it
			// waits for the writer, which sends it whole.
			w.bufs, size = w.bufs[:frameAt], size-frameSize
			if len(w.bufs) == 0 {
				return total, nil
			}
		}
		n, err := l.wsNow.WriteNow(w.bufs)
		total += n
		if err != nil || n < int64(size) {
			return total, err
		}
	}
	return total, nil
}
