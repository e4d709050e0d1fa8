package gateway

import (
	"net"
	"time"
)

// maxSpare is the largest queue slice kept between batches when it was
// mostly unused; larger ones are dropped so a burst's memory is given back.
// idleSpare is the largest kept while the link is idle.
const (
	maxSpare  = 64
	idleSpare = 8
)

// push queues frame for writing to l, taking ownership of it: on every path
// the frame is either written and freed by the writer, or freed here.
// It starts a writer goroutine if none is running.
func (l *link) push(frame []byte, mode pushMode) error {
	l.mu.Lock()
	for mode == pushWait && !l.closed && len(l.queue) >= l.limit {
		l.waiters++
		l.space.Wait()
		l.waiters--
	}
	if l.closed {
		l.mu.Unlock()
		l.gw.free(frame)
		return errLinkClosed
	}
	if mode == pushDrop && len(l.queue) >= l.limit {
		l.mu.Unlock()
		l.gw.free(frame)
		l.close(ReasonSlowConsumer, nil, false)
		return errLinkClosed
	}
	if l.queue == nil {
		l.queue, l.spare = l.spare, nil
	}
	l.queue = append(l.queue, frame)
	n := len(l.queue)
	start := !l.writing
	if start {
		l.writing = true
		l.gw.wg.Add(1)
	}
	l.mu.Unlock()
	if n > 1 {
		l.gw.counters.noteQueueLen(l.side, n)
	}
	if start {
		go l.writeLoop()
	}
	return nil
}

// writeLoop writes queued frames until the queue is empty, then exits. Each
// round takes the whole queue and writes it with one writev (net.Buffers),
// so a busy link costs one syscall for many frames.
func (l *link) writeLoop() {
	defer l.gw.wg.Done()
	var vec [][]byte  // iovec scratch, reused across rounds
	var keep [][]byte // the last batch's slice, emptied, to become the next queue
	for {
		l.mu.Lock()
		batch := l.queue
		if len(batch) == 0 || (l.closed && !l.flush) {
			l.queue = nil
			l.writing = false
			closeNow, retired := l.closed, l.retired
			if !closeNow && cap(keep) <= idleSpare {
				l.spare = keep // small enough to keep while idle
			}
			l.mu.Unlock()
			l.gw.freeAll(batch)
			if closeNow {
				l.conn.Close()
			}
			if retired {
				l.gw.untrack(l)
			}
			return
		}
		l.queue = keep
		if l.waiters > 0 {
			l.space.Broadcast()
		}
		l.mu.Unlock()

		if l.idle > 0 {
			// A peer that takes longer than the idle timeout to take a
			// batch is dead; the deadline is pushed out only when aged.
			if now := l.gw.nanotime(); now-l.lastWrite > int64(l.idle/16) {
				l.conn.SetWriteDeadline(time.Unix(0, now).Add(l.idle))
				l.lastWrite = now
			}
		}
		var n int64
		var err error
		n, vec, err = l.writeBatch(batch, vec)
		l.stats.bytesOut.Add(uint64(n))
		if err == nil {
			l.stats.framesOut.Add(uint64(len(batch)))
		}
		l.gw.freeAll(batch)
		if err != nil {
			l.close(ReasonWriteError, err, false)
			l.mu.Lock()
			l.writing = false
			rest, retired := l.queue, l.retired
			l.queue, l.spare = nil, nil
			l.mu.Unlock()
			l.gw.freeAll(rest)
			if retired {
				l.gw.untrack(l)
			}
			return
		}
		// Reuse the batch's slice as the next queue unless it is large and
		// was mostly unused: queues grow with use and shrink back.
		keep = nil
		if cap(batch) <= maxSpare || len(batch) >= cap(batch)/4 {
			keep = batch[:0]
		}
		if cap(vec) > maxSpare && len(batch) < cap(vec)/4 {
			vec = nil
		}
	}
}

// coalesceMax bounds the copy buffer used to merge small frames into one
// Write on connections without writev.
const coalesceMax = 64 << 10

// writeBatch writes batch to the connection in as few syscalls as it can. A
// TCP or Unix socket gets one writev (net.Buffers); any other net.Conn (TLS,
// snet) gets the frames copied into one buffer of up to coalesceMax bytes per
// Write, so a TLS connection sends one record for many frames. vec is
// scratch space for the iovec, returned for reuse.
func (l *link) writeBatch(batch, vec [][]byte) (int64, [][]byte, error) {
	switch l.conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		// WriteTo consumes the slice it is given, so it gets a copy of the
		// batch; the batch itself is kept to free the frames.
		vec = append(vec[:0], batch...)
		iov := net.Buffers(vec)
		n, err := iov.WriteTo(l.conn)
		clear(vec)
		return n, vec, err
	}
	var total int64
	for i := 0; i < len(batch); {
		// Gather frames [i, j) that fit in one copy buffer.
		j, size := i, 0
		for j < len(batch) && (j == i || size+len(batch[j]) <= coalesceMax) {
			size += len(batch[j])
			j++
		}
		if j == i+1 {
			n, err := l.conn.Write(batch[i])
			total += int64(n)
			if err != nil {
				return total, vec, err
			}
			i = j
			continue
		}
		buf := l.gw.cfg.MemPool.Alloc(size)
		off := 0
		for _, f := range batch[i:j] {
			off += copy(buf[off:], f)
		}
		n, err := l.conn.Write(buf)
		l.gw.free(buf)
		total += int64(n)
		if err != nil {
			return total, vec, err
		}
		i = j
	}
	return total, vec, nil
}

// free returns a frame buffer to the pool.
func (g *Gateway) free(frame []byte) { g.cfg.MemPool.Free(frame) }

// freeAll returns every frame in batch to the pool and clears batch.
func (g *Gateway) freeAll(batch [][]byte) {
	for i, f := range batch {
		g.cfg.MemPool.Free(f)
		batch[i] = nil
	}
}
