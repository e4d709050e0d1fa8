package proto

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/fastway-go/fastway/slab"
)

// DefaultBufferSize is the read buffer of a FrameReader when none is given.
const DefaultBufferSize = 4 << 10

// FrameReader reads whole frames from a stream. It reads as many bytes per
// syscall as its buffer holds, so several small frames cost one read, and
// hands out every frame with its Length field, so the frame can be
// forwarded as is: ReadFrame in a buffer of its own from a slab.Pool, which
// the caller frees with the pool; ReadFrameShared and ReadFrameBorrowed
// also in place in the read buffer (see each).
//
// A Length below 4 or above MaxPacket is rejected (ErrShortFrame,
// ErrFrameTooLarge) after reading only the Length field: nothing is
// allocated for the announced body.
type FrameReader struct {
	r         io.Reader
	pool      slab.Pool
	bufSize   int
	size      int // the read buffer's size now: bufSize, or more (lazy readers adapt it)
	maxPacket int
	buf       []byte // read buffer from pool; nil until the first read
	rpos      int    // next unread byte in buf
	wpos      int    // end of valid bytes in buf
	empty     int    // reads in a row that returned no bytes and no error
	short     int    // short reads in a row completing a frame (see trickleReads)
	full      bool   // the last read filled the space it was given
	lent      bool   // the buffer is empty and to be let go of, but a borrowed frame is in it
	deferred  error  // an error ReadMore met, returned by the next read

	hold *budgetHold // what this reader reserves in a Budget for large frames still arriving, or nil

	// shared is set once a frame of buf was handed out in place
	// (ReadFrameShared): it holds the reader's own reference to buf, and
	// the reader never writes over bytes it handed out (see dropBuf).
	shared *Shared

	lazy LazyReader // r, if it implements LazyReader
	get  func() []byte
	put  func()
}

// NewFrameReader returns a reader of frames from r. bufSize is the size of
// its read buffer (0: DefaultBufferSize); maxPacket bounds Length (0:
// DefaultMaxPacket); pool supplies buffers (nil: slab.NoPool).
func NewFrameReader(r io.Reader, pool slab.Pool, bufSize, maxPacket int) *FrameReader {
	if pool == nil {
		pool = slab.NoPool{}
	}
	if bufSize <= 0 {
		bufSize = DefaultBufferSize
	}
	if bufSize < HeaderSize {
		bufSize = HeaderSize
	}
	if maxPacket <= 0 {
		maxPacket = DefaultMaxPacket
	}
	fr := &FrameReader{r: r, pool: pool, bufSize: bufSize, size: bufSize, maxPacket: maxPacket}
	if lr, ok := r.(LazyReader); ok {
		// The callbacks are made once here, not per read.
		fr.lazy, fr.get, fr.put = lr, fr.getBuf, fr.putBuf
	}
	return fr
}

// Buffered returns how many bytes are read from the stream but not yet
// returned as frames.
func (fr *FrameReader) Buffered() int { return fr.wpos - fr.rpos }

// LazyReader is an optional interface of a FrameReader's source. ReadLazy
// reads like io.Reader.Read, but asks for its destination only when it is
// about to read: it calls get right before each read attempt and put when an
// attempt found no data and it is going to wait. A FrameReader whose source
// implements it holds no read buffer while nothing is buffered, so an idle
// connection costs no buffer (the gateway's links wait on the socket with
// syscall.RawConn and read only once it is readable).
type LazyReader interface {
	ReadLazy(get func() []byte, put func()) (int, error)
}

// HasFrame reports whether a whole frame (or a Length that ReadFrame will
// reject) is already buffered, so that the next ReadFrame returns without
// reading from the stream.
func (fr *FrameReader) HasFrame() bool {
	n := fr.wpos - fr.rpos
	if n < SizeOfLength {
		return false
	}
	length := binary.LittleEndian.Uint32(fr.buf[fr.rpos:])
	return uint64(n) >= SizeOfLength+uint64(length)
}

// fill reads into the buffer until at least n unread bytes are buffered.
func (fr *FrameReader) fill(n int) error {
	for fr.wpos-fr.rpos < n {
		var m int
		var err error
		switch {
		case fr.deferred != nil:
			err, fr.deferred = fr.deferred, nil
		case fr.lazy != nil && fr.rpos == fr.wpos:
			fr.short = 0
			fr.emptyBuf()
			m, err = fr.lazy.ReadLazy(fr.get, fr.put)
			fr.full = false
			if fr.buf != nil {
				fr.full = m >= len(fr.buf)
				fr.adapt(m, len(fr.buf))
			}
		default:
			fr.makeRoom(n)
			space := len(fr.buf) - fr.wpos
			m, err = fr.r.Read(fr.buf[fr.wpos:])
			fr.full = m >= space
			if fr.lazy != nil {
				// Completing a frame. A full read means a busy stream;
				// one short read is usually just the frame's rest
				// arriving, and only several in a row are a trickle.
				if m < fr.size/4 {
					fr.short++
				} else {
					fr.short = 0
				}
				if m >= space || fr.short >= trickleReads {
					fr.adapt(m, space)
				}
			}
		}
		fr.wpos += m
		if err != nil {
			if fr.wpos-fr.rpos >= n {
				return nil
			}
			if err == io.EOF && fr.wpos > fr.rpos {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if m == 0 {
			fr.empty++
			if fr.empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		} else {
			fr.empty = 0
		}
	}
	return nil
}

// emptyBuf prepares an empty buffer (rpos == wpos) to be read into from
// its start: a buffer frames were handed out of is let go of instead.
func (fr *FrameReader) emptyBuf() {
	if fr.shared != nil {
		fr.dropBuf() // the read would start over frames handed out
	}
	fr.rpos, fr.wpos = 0, 0
}

// makeRoom makes sure the buffer exists, has the size a lazy reader chose,
// and has room after rpos for n bytes (n is at least what is buffered),
// moving the unread bytes to its start or, when frames were handed out of
// it, to a new buffer. A new buffer always holds at least n bytes, whatever
// size the reader adapted to: the buffered bytes are never cut short.
func (fr *FrameReader) makeRoom(n int) {
	want := max(fr.size, n)
	if fr.buf == nil {
		fr.alloc(want)
	}
	switch buffered := fr.wpos - fr.rpos; {
	case len(fr.buf) < want:
		// A lazy reader grew for a busy stream, or a frame needs more
		// room than the buffer has.
		fr.regrow(want)
	case len(fr.buf) >= 2*want && buffered <= fr.size/2:
		// A lazy reader shrank while it trickles: a slow partial frame
		// does not keep a 64 KiB buffer. (At least by half: the pool may
		// round a buffer up, and a smaller step would move the bytes on
		// every read.)
		fr.regrow(want)
	case len(fr.buf)-fr.rpos < n:
		if fr.shared != nil {
			// Handed-out frames sit before rpos: move the rest to a
			// new buffer rather than over them.
			fr.regrow(max(want, len(fr.buf)))
		} else {
			fr.wpos = copy(fr.buf, fr.buf[fr.rpos:fr.wpos])
			fr.rpos = 0
		}
	}
}

// TryReader is implemented by readers that can read without waiting (the
// gateway's links): TryRead reads what has arrived into p, and returns 0
// and no error when nothing has.
type TryReader interface {
	TryRead(p []byte) (int, error)
}

// ReadMore reads once more without waiting, if the last read filled the
// space it was given (so more is likely waiting) and the reader is a
// TryReader, and reports whether it read anything. A caller that is about
// to act on the frames read so far (the gateway writes them out at the end
// of each read) can use it to gather more first. An error it meets is
// returned by the next ReadFrame that needs to read.
func (fr *FrameReader) ReadMore() bool {
	fr.dropLent()
	tr, ok := fr.r.(TryReader)
	if !ok || !fr.full || fr.deferred != nil {
		return false
	}
	if fr.rpos == fr.wpos {
		fr.emptyBuf()
	}
	// Room for one more byte at least, but no more room than the buffer
	// has or the reader chose: a buffer full of the start of a larger
	// frame is left to ReadFrame, which reads it into a buffer of its own.
	fr.makeRoom(min(fr.wpos-fr.rpos+1, max(fr.size, len(fr.buf))))
	space := len(fr.buf) - fr.wpos
	if space == 0 {
		// The buffer holds the start of a frame larger than itself,
		// which ReadFrame reads into a buffer of its own.
		return false
	}
	m, err := tr.TryRead(fr.buf[fr.wpos:])
	fr.wpos += m
	fr.full = m >= space
	if fr.lazy != nil && m >= space {
		fr.adapt(m, space)
	}
	if err != nil {
		fr.deferred = err
	}
	if fr.rpos == fr.wpos && fr.lazy != nil {
		fr.dropBuf() // nothing buffered: hold no buffer while waiting
	}
	return m > 0
}

// maxEmptyReads is how many reads returning (0, nil) in a row a FrameReader
// tolerates before it gives up with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

// trickleReads is how many short reads in a row, all completing one frame,
// make a lazy reader shrink its buffer: a frame trickling in must not keep
// a large one.
const trickleReads = 4

// maxAdaptiveBuffer bounds how far a lazy reader grows its read buffer.
const maxAdaptiveBuffer = 64 << 10

// adapt sizes a lazy reader's next read buffer from the read that just
// filled an empty one. A lazy reader holds its buffer only while bytes are
// buffered, so a bigger buffer costs nothing while idle: when a read fills
// the whole buffer (more is likely waiting) the next one is twice as large,
// up to 64 KiB; when a read uses less than a quarter, it halves, down to the
// configured size. A busy connection thus reads many frames per syscall,
// and a quiet one holds at most its configured buffer for a partial frame.
func (fr *FrameReader) adapt(m, space int) {
	switch {
	case m >= space && fr.size < maxAdaptiveBuffer:
		fr.size = min(2*fr.size, maxAdaptiveBuffer)
	case m < fr.size/4 && fr.size > fr.bufSize:
		fr.size = max(fr.size/2, fr.bufSize)
	}
}

// regrow moves the buffered bytes into a new buffer of at least size
// bytes, and never one too small to hold them all.
func (fr *FrameReader) regrow(size int) {
	old, shared := fr.buf, fr.shared
	fr.shared = nil
	fr.alloc(max(size, fr.wpos-fr.rpos))
	fr.wpos = copy(fr.buf, old[fr.rpos:fr.wpos])
	fr.rpos = 0
	fr.release(old, shared)
}

// dropBuf lets go of the read buffer (see release).
func (fr *FrameReader) dropBuf() {
	buf, shared := fr.buf, fr.shared
	fr.buf, fr.shared = nil, nil
	fr.release(buf, shared)
}

// release lets go of buf, a read buffer: back to the pool, or, when frames
// were handed out of it in place (shared is not nil), by releasing the
// reader's reference; the last frame released then returns it.
func (fr *FrameReader) release(buf []byte, shared *Shared) {
	switch {
	case shared != nil:
		shared.Release()
	case buf != nil:
		fr.pool.Free(buf)
	}
}

// alloc takes a read buffer of at least size bytes from the pool.
func (fr *FrameReader) alloc(size int) {
	fr.buf = fr.pool.Alloc(size)
	fr.buf = fr.buf[:cap(fr.buf)]
}

// getBuf and putBuf are the LazyReader callbacks (nothing is buffered when
// they run: rpos == wpos == 0).
func (fr *FrameReader) getBuf() []byte {
	if fr.buf == nil {
		fr.alloc(fr.size)
	}
	return fr.buf
}

func (fr *FrameReader) putBuf() {
	if fr.buf != nil && fr.wpos == 0 {
		fr.dropBuf()
	}
}

// ReadFrame returns the next whole frame (Length field included) in a buffer
// from the pool. io.EOF means the stream ended cleanly between frames.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	frame, _, err := fr.ReadFrameShared(0)
	return frame, err
}

// maxShareRatio bounds how much of a read buffer one frame handed out in
// place may keep from the pool: the frame is at least 1/maxShareRatio of
// the buffer.
const maxShareRatio = 16

// ReadFrameShared is ReadFrame, except that a frame of at least minShare
// bytes (0: none) that arrived whole in the read buffer, and is at least a
// sixteenth of it, is returned in place, as a slice of the read buffer
// itself, with the Shared that holds the buffer: the bytes are not copied.
// The caller then owns one reference, and calls Release on it (not the
// pool's Free on the frame) when done with the frame. For other frames
// the Shared is nil and the frame is the caller's pooled buffer, as from
// ReadFrame.
//
// A frame returned in place keeps its whole read buffer (at most 64 KiB,
// or 16 times the frame) out of the pool until released.
func (fr *FrameReader) ReadFrameShared(minShare int) ([]byte, *Shared, error) {
	frame, shared, _, err := fr.next(minShare, false)
	return frame, shared, err
}

// ReadFrameBorrowed is ReadFrameShared, except that a frame of fewer than
// minShare bytes that arrived whole in the read buffer is borrowed: it is
// returned in place, with a nil Shared and borrowed set, and stays valid
// only until the next call of ReadFrame, ReadFrameShared,
// ReadFrameBorrowed, ReadMore or Release. The caller copies what it keeps
// of it and frees nothing. A reader that forwards small frames by copying
// them into its own output buffers thus copies each once and takes no
// buffer from the pool per frame.
func (fr *FrameReader) ReadFrameBorrowed(minShare int) (frame []byte, shared *Shared, borrowed bool, err error) {
	return fr.next(minShare, true)
}

// next reads the next frame for ReadFrameShared (borrow false) and
// ReadFrameBorrowed (borrow true).
func (fr *FrameReader) next(minShare int, borrow bool) ([]byte, *Shared, bool, error) {
	fr.dropLent()
	if err := fr.fill(SizeOfLength); err != nil {
		return nil, nil, false, err
	}
	length := binary.LittleEndian.Uint32(fr.buf[fr.rpos:])
	if err := CheckLength(length, fr.maxPacket); err != nil {
		return nil, nil, false, err
	}
	size := SizeOfLength + int(length)
	var frame []byte
	var shared *Shared
	borrowed := false
	if size <= len(fr.buf) && !fr.parkLarge(size) {
		// Small frame: gather it in the read buffer, with any that follow.
		if err := fr.fill(size); err != nil {
			return nil, nil, false, err
		}
		switch {
		case minShare > 0 && size >= minShare && size*maxShareRatio >= len(fr.buf):
			if fr.shared == nil {
				fr.shared = newShared(fr.buf, fr.pool)
			}
			shared = fr.shared
			shared.refs.Add(1)
			frame = fr.buf[fr.rpos : fr.rpos+size : fr.rpos+size]
		case borrow && size < minShare:
			frame = fr.buf[fr.rpos : fr.rpos+size : fr.rpos+size]
			borrowed = true
		default:
			frame = fr.pool.Alloc(size)
			copy(frame, fr.buf[fr.rpos:fr.rpos+size])
		}
		fr.rpos += size
	} else {
		var err error
		if frame, err = fr.readLarge(size); err != nil {
			return nil, nil, false, err
		}
	}
	if fr.rpos == fr.wpos {
		fr.rpos, fr.wpos = 0, 0
		if fr.lazy != nil || fr.shared != nil {
			// Nothing buffered: give the buffer back until data is
			// ready (lazy), and never read over frames handed out;
			// a borrowed frame still needs it until the next call.
			if borrowed {
				fr.lent = true
			} else {
				fr.dropBuf()
			}
		}
	}
	return frame, shared, borrowed, nil
}

// dropLent lets go of the empty read buffer the last frame was borrowed
// from, as ReadFrameShared would have right after returning it.
func (fr *FrameReader) dropLent() {
	if fr.lent {
		fr.lent = false
		fr.dropBuf()
	}
}

// Shared is a read buffer that frames returned in place by ReadFrameShared
// point into, with a count of the references to it: one per such frame,
// and the reader's own while it still reads into the buffer.
type Shared struct {
	refs atomic.Int32
	buf  []byte
	pool slab.Pool
}

// sharedPool recycles Shared headers, so a read buffer handed out in place
// costs no allocation.
var sharedPool = sync.Pool{New: func() any { return new(Shared) }}

// newShared returns a Shared for buf holding the reader's reference.
func newShared(buf []byte, pool slab.Pool) *Shared {
	s := sharedPool.Get().(*Shared)
	s.buf, s.pool = buf, pool
	s.refs.Store(1)
	return s
}

// NewShared returns a Shared holding buf, a buffer from pool, with one
// reference, the caller's: the last Release gives buf back to pool. The
// gateway wraps a fan-out payload in one, so that every delivery shares it.
func NewShared(buf []byte, pool slab.Pool) *Shared { return newShared(buf, pool) }

// Retain adds n references (n >= 0), one per holder that will Release.
// The caller must hold a reference already.
func (s *Shared) Retain(n int) {
	if n > 0 {
		s.refs.Add(int32(n))
	}
}

// Release drops one reference; the last returns the buffer to its pool.
// A frame must not be used after its reference is released.
func (s *Shared) Release() {
	switch n := s.refs.Add(-1); {
	case n == 0:
		s.pool.Free(s.buf)
		s.buf, s.pool = nil, nil
		sharedPool.Put(s)
	case n < 0:
		panic("fastway: Shared released more often than referenced")
	}
}

// parkLarge runs before the reader would wait for the rest of the frame of
// size bytes at rpos, which fits the read buffer but has not arrived whole,
// when that buffer has grown past its configured size. It first reads what
// has arrived without waiting; if that does not complete the frame, the
// reader would wait holding the grown buffer (up to 64 KiB per connection,
// uncounted: the review measured 3,000 such connections holding 172 MB).
// Instead, a frame larger than the configured size is read as a large frame
// (parkLarge reports true: readLarge holds what arrived plus 16 KiB, counted
// in the budget), and a smaller one is moved into a buffer of the
// configured size, which it waits in. Only a lazy reader that is a
// TryReader does this; others always fill the buffer.
func (fr *FrameReader) parkLarge(size int) bool {
	if fr.lazy == nil || len(fr.buf) <= fr.bufSize || fr.wpos-fr.rpos >= size || fr.deferred != nil {
		return false
	}
	tr, ok := fr.r.(TryReader)
	if !ok {
		return false
	}
	for fr.wpos-fr.rpos < size {
		fr.makeRoom(size)
		m, err := tr.TryRead(fr.buf[fr.wpos:])
		fr.wpos += m
		if err != nil {
			fr.deferred = err // the next read returns it
			return false
		}
		if m == 0 {
			break // nothing more has arrived: the reader would wait
		}
	}
	switch {
	case fr.wpos-fr.rpos >= size:
		return false
	case size > fr.bufSize:
		return true
	}
	// A quiet stream: the buffer shrinks back to its configured size (a
	// busy one grows it again, see adapt).
	fr.size = fr.bufSize
	fr.regrow(fr.bufSize)
	return false
}

// largeFirst is the most a large frame's buffer starts with beyond the
// bytes already buffered: it grows (doubling) as the body arrives, so a peer
// that announces a large frame and sends little of it holds little.
const largeFirst = 16 << 10

// readLarge reads a frame larger than the read buffer: what is buffered,
// then the rest straight into the frame's own buffer, which starts small and
// doubles as the body arrives, up to the frame's size. What that buffer
// holds counts against the reader's Budget (and its share of it), if it has
// one, until the frame is complete: a peer holds about what it has sent
// (twice at most), not what it announced. It is kept out of ReadFrame so
// that ReadFrame's stack frame stays small: a reader blocked in it for an
// idle connection then fits in the smallest goroutine stack.
func (fr *FrameReader) readLarge(size int) ([]byte, error) {
	if fr.lazy != nil && fr.size < maxAdaptiveBuffer {
		// Frames this large are coming: read the next ones (up to 64 KiB)
		// through the buffer, several per syscall.
		fr.size = min(maxAdaptiveBuffer, max(fr.size, 1<<bits.Len(uint(size))))
	}
	got := fr.wpos - fr.rpos
	// The budget is charged for what the frame's buffer holds only when
	// the reader is about to wait for more of its body: a frame whose
	// bytes keep arriving (read on without waiting, through TryRead)
	// costs the budget nothing, so honest frames that arrive whole are
	// never refused for budget however many partial frames others hold.
	// Without a TryReader every read may wait, and the buffer is charged
	// before it is allocated.
	tr, _ := fr.r.(TryReader)
	if fr.lazy == nil {
		tr = nil
	}
	var held int64 // reserved in the budget
	charge := func(n int) error {
		if fr.hold == nil {
			return nil
		}
		if fr.hold.evicted.Load() {
			return fmt.Errorf("%w: %d-byte frame (%d bytes of it arrived) evicted: its source was over its share of a full budget", ErrBudgetExceeded, size, got)
		}
		if int64(n) <= held {
			return nil
		}
		if err := fr.hold.reserve(int64(n) - held); err != nil {
			return fmt.Errorf("%w: %d-byte frame (%d bytes of it arrived): %v", ErrBudgetExceeded, size, got, err)
		}
		held = int64(n)
		return nil
	}
	defer func() {
		if held > 0 {
			fr.hold.release()
		}
	}()
	grow := func(frame []byte, n int) ([]byte, error) {
		if tr == nil {
			if err := charge(n); err != nil {
				return nil, err
			}
		}
		next := fr.pool.Alloc(n)[:n]
		if frame != nil {
			copy(next, frame[:got])
			fr.pool.Free(frame)
		}
		return next, nil
	}
	frame, err := grow(nil, min(size, got+largeFirst))
	if err != nil {
		return nil, err
	}
	copy(frame, fr.buf[fr.rpos:fr.wpos])
	fr.rpos, fr.wpos = 0, 0
	if fr.shared != nil || fr.lazy != nil {
		// Never read over frames handed out; and a lazy reader holds
		// no read buffer while it waits for the body.
		fr.dropBuf()
	}
	fail := func(err error) ([]byte, error) {
		fr.pool.Free(frame)
		if fr.hold != nil && fr.hold.evicted.Load() {
			// The read failed because the eviction closed the reader.
			return nil, fmt.Errorf("%w: %d-byte frame (%d bytes of it arrived) evicted: its source was over its share of a full budget", ErrBudgetExceeded, size, got)
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("fastway: reading %d-byte frame: %w", size, err)
	}
	empty := 0
	for got < size {
		if got == len(frame) {
			next, err := grow(frame, min(size, 2*len(frame)))
			if err != nil {
				fr.pool.Free(frame)
				return nil, err
			}
			frame = next
		}
		if tr != nil {
			n, err := tr.TryRead(frame[got:])
			got += n
			if err != nil && got < size {
				return fail(err)
			}
			if n > 0 {
				continue
			}
			// Nothing more has arrived: the read below waits, holding
			// the frame's buffer.
			if err := charge(len(frame)); err != nil {
				fr.pool.Free(frame)
				return nil, err
			}
		}
		n, err := fr.r.Read(frame[got:])
		got += n
		if err != nil && got < size {
			return fail(err)
		}
		if n > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyReads {
			return fail(io.ErrNoProgress)
		}
	}
	return frame, nil
}

// Release returns the read buffer to the pool. Bytes buffered but not read
// are discarded; the reader may still be used (it allocates a new buffer).
func (fr *FrameReader) Release() {
	fr.lent = false
	fr.dropBuf()
	fr.rpos, fr.wpos = 0, 0
}
