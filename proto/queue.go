package proto

import (
	"context"
	"io"
	"sync"
)

// pushResult says what happened to a frame handed to recvQueue.push.
type pushResult uint8

const (
	pushed     pushResult = iota // queued; the queue owns the frame
	pushClosed                   // the queue is closed; the caller still owns the frame
	pushFull                     // the queue holds its limit; the caller still owns the frame
)

// recvQueue is the receive queue of one virtual connection: a FIFO of whole
// data frames (pooled buffers, Length field included), bounded by limit.
// The endpoint's reader pushes without ever blocking; Receive pops, waiting
// until a frame arrives or the queue closes. Its ring grows on demand, so an
// idle virtual connection costs a few words, not limit slots.
type recvQueue struct {
	mu     sync.Mutex
	ring   [][]byte // frames; ring[head] is the oldest
	head   int
	n      int
	limit  int
	err    error         // why the queue closed; nil while open
	ready  chan struct{} // cap 1: a frame was pushed
	closed chan struct{} // closed when err is set
}

func (q *recvQueue) init(limit int) {
	q.limit = limit
	q.ready = make(chan struct{}, 1)
	q.closed = make(chan struct{})
}

// push appends frame unless the queue is closed or full.
func (q *recvQueue) push(frame []byte) pushResult {
	q.mu.Lock()
	switch {
	case q.err != nil:
		q.mu.Unlock()
		return pushClosed
	case q.n >= q.limit:
		q.mu.Unlock()
		return pushFull
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = frame
	q.n++
	q.mu.Unlock()
	q.signal()
	return pushed
}

// grow doubles the ring, up to limit slots. q.mu is held.
func (q *recvQueue) grow() {
	size := min(max(2*len(q.ring), 4), q.limit)
	ring := make([][]byte, size)
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// signal wakes one waiting pop, if any.
func (q *recvQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop returns the oldest frame, waiting until there is one. Once the queue is
// closed and empty it returns the reason it closed.
func (q *recvQueue) pop(ctx context.Context) ([]byte, error) {
	for {
		q.mu.Lock()
		if q.n > 0 {
			f := q.ring[q.head]
			q.ring[q.head] = nil
			q.head = (q.head + 1) % len(q.ring)
			q.n--
			more := q.n > 0
			q.mu.Unlock()
			if more {
				q.signal() // pass the wake-up on to another waiting pop
			}
			return f, nil
		}
		err := q.err
		q.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-q.ready:
		case <-q.closed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// closeKeep closes the queue with err unless it is already closed; frames
// already queued stay for pop. It reports whether this call closed it.
func (q *recvQueue) closeKeep(err error) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return false
	}
	q.err = err
	close(q.closed)
	return true
}

// closeDrop closes the queue for a local Close: pop returns io.EOF from now
// on. It returns the frames that were still queued, for the caller to free.
func (q *recvQueue) closeDrop() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		close(q.closed)
	}
	q.err = io.EOF
	var dropped [][]byte
	for i := range q.n {
		j := (q.head + i) % len(q.ring)
		dropped = append(dropped, q.ring[j])
		q.ring[j] = nil
	}
	q.ring, q.head, q.n = nil, 0, 0
	return dropped
}

// ctrlQueue holds command frames that must go out without waiting for room in
// the send queue: Close frames the reader generates (overflow, a Connect past
// the backlog, an abandoned Dial) and Pings. Order relative to data frames
// does not matter for them. It is bounded by limit; past it the endpoint is
// hopelessly behind and closes.
type ctrlQueue struct {
	mu     sync.Mutex
	frames [][]byte
	limit  int
	ready  chan struct{} // cap 1: frames were added
}

func (q *ctrlQueue) init(limit int) {
	q.limit = limit
	q.ready = make(chan struct{}, 1)
}

// push appends frame; false means the queue holds its limit (the caller
// still owns frame).
func (q *ctrlQueue) push(frame []byte) bool {
	q.mu.Lock()
	if len(q.frames) >= q.limit {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, frame)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// takeAll appends every queued frame to dst and empties the queue.
func (q *ctrlQueue) takeAll(dst [][]byte) [][]byte {
	q.mu.Lock()
	dst = append(dst, q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	q.mu.Unlock()
	return dst
}
