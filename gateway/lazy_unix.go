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
	iov []syscall.Iovec
	n   int64
	err syscall.Errno
	fn  func(fd uintptr) bool
}

// maxIov bounds the iovecs of one writev (Linux's IOV_MAX is 1024).
const maxIov = 1024

// iovBytes is how many bytes of batch one writeNow tries to write.
func iovBytes(batch []outFrame) int64 { return batchBytes(batch[:min(len(batch), maxIov)]) }

// newWriteState makes a link's write scratch, with its RawConn callback.
func newWriteState() *writeState {
	w := &writeState{}
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
	return w
}

// writeNow makes one non-blocking writev attempt of batch and returns how
// many bytes went out: all, some, or none when the socket buffer is full.
// The caller owns l's writer turn.
func (l *link) writeNow(batch []outFrame) (int64, error) {
	if l.wsNow != nil {
		return l.wsWriteNow(batch)
	}
	w := l.wstate
	if w == nil {
		w = newWriteState()
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

// wsWriteNow is writeNow for a WebSocket link: the batch's frames (as
// many as one writev takes beside a header) as messages of up to
// coalesceMax bytes (a larger frame alone), as the blocking path cuts them
// (writeCoalesced), each its header and frames in one non-blocking
// writev, until the socket is full or they are all written. The readers
// call it from flushInline: it and wsWritev stand where writeNow stands
// for a TCP link, one frame deeper, so that an idle client's reader still
// fits in the smallest stack (TestIdleWSReaderStack).
func (l *link) wsWriteNow(batch []outFrame) (int64, error) {
	var total int64
	var cur frameCursor
	batch = batch[:min(len(batch), maxIov-1)]
	for len(batch) > 0 {
		k, size := wsMessage(batch, &cur)
		if k == 0 {
			return total, nil // the writev cap cut a frame: the writer sends it whole
		}
		h, ok := l.wsNow.BeginMessage(size)
		if !ok {
			return total, nil // busy (a Pong), or a message owed: the writer goes on
		}
		w, err := l.wsWritev(h, batch[:k])
		n := l.wsNow.EndMessage(size, w, err)
		total += n
		if err != nil || n < int64(size) {
			return total, err
		}
		batch = batch[k:]
	}
	return total, nil
}

// wsMessage returns how many of batch's first buffers make the next
// WebSocket message, and their bytes: up to coalesceMax (one larger frame
// alone), and never ending inside a frame (a fan-out delivery's header and
// its shared payload are two buffers). 0 when batch ends inside its first
// frame.
func wsMessage(batch []outFrame, cur *frameCursor) (k, size int) {
	whole := true
	frameAt, frameSize := 0, 0 // where the frame being added starts, and its bytes so far
	for k < len(batch) && (size == 0 || !whole || size+len(batch[k].b) <= coalesceMax) {
		if whole {
			frameAt, frameSize = k, 0
		}
		size += len(batch[k].b)
		frameSize += len(batch[k].b)
		whole = cur.advance(batch[k].b)
		k++
	}
	if !whole {
		*cur = frameCursor{}
		return frameAt, size - frameSize
	}
	return k, size
}

// wsWritev makes one non-blocking writev of a WebSocket message header h
// and frames on the connection's socket: writeNow's syscall, with the
// header first.
func (l *link) wsWritev(h []byte, frames []outFrame) (int64, error) {
	w := l.wstate
	if w == nil {
		w = newWriteState()
		l.wstate = w
	}
	v := syscall.Iovec{Base: &h[0]}
	v.SetLen(len(h))
	w.iov = append(w.iov, v)
	for _, f := range frames {
		v := syscall.Iovec{Base: &f.b[0]}
		v.SetLen(len(f.b))
		w.iov = append(w.iov, v)
	}
	err := l.wsNow.RawConn().Write(w.fn)
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
