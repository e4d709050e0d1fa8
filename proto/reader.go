package proto

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/fastway-go/fastway/slab"
)

// DefaultBufferSize is the read buffer of a FrameReader when none is given.
const DefaultBufferSize = 4 << 10

// FrameReader reads whole frames from a stream. It reads as many bytes per
// syscall as its buffer holds, so several small frames cost one read, and
// hands out every frame in its own buffer from a slab.Pool, Length field
// included, so the frame can be forwarded as is. The caller frees each frame
// with the pool.
//
// A Length below 4 or above MaxPacket is rejected (ErrShortFrame,
// ErrFrameTooLarge) after reading only the Length field: nothing is
// allocated for the announced body.
type FrameReader struct {
	r         io.Reader
	pool      slab.Pool
	bufSize   int
	maxPacket int
	buf       []byte // read buffer from pool; nil until the first read
	rpos      int    // next unread byte in buf
	wpos      int    // end of valid bytes in buf
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
	return &FrameReader{r: r, pool: pool, bufSize: bufSize, maxPacket: maxPacket}
}

// Buffered returns how many bytes are read from the stream but not yet
// returned as frames.
func (fr *FrameReader) Buffered() int { return fr.wpos - fr.rpos }

// fill reads into the buffer until at least n unread bytes are buffered.
func (fr *FrameReader) fill(n int) error {
	if fr.buf == nil {
		fr.buf = fr.pool.Alloc(fr.bufSize)
		fr.buf = fr.buf[:cap(fr.buf)]
	}
	if fr.rpos > 0 && len(fr.buf)-fr.rpos < n {
		fr.wpos = copy(fr.buf, fr.buf[fr.rpos:fr.wpos])
		fr.rpos = 0
	}
	for fr.wpos-fr.rpos < n {
		m, err := fr.r.Read(fr.buf[fr.wpos:])
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
	}
	return nil
}

// ReadFrame returns the next whole frame (Length field included) in a buffer
// from the pool. io.EOF means the stream ended cleanly between frames.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	if err := fr.fill(SizeOfLength); err != nil {
		return nil, err
	}
	length := binary.LittleEndian.Uint32(fr.buf[fr.rpos:])
	if err := CheckLength(length, fr.maxPacket); err != nil {
		return nil, err
	}
	size := SizeOfLength + int(length)
	frame := fr.pool.Alloc(size)
	if size <= len(fr.buf) {
		// Small frame: gather it in the read buffer, with any that follow.
		if err := fr.fill(size); err != nil {
			fr.pool.Free(frame)
			return nil, err
		}
		copy(frame, fr.buf[fr.rpos:fr.rpos+size])
		fr.rpos += size
	} else {
		// Large frame: take what is buffered, read the rest straight into it.
		n := copy(frame, fr.buf[fr.rpos:fr.wpos])
		fr.rpos, fr.wpos = 0, 0
		if _, err := io.ReadFull(fr.r, frame[n:]); err != nil {
			fr.pool.Free(frame)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("fastway: reading %d-byte frame: %w", size, err)
		}
	}
	if fr.rpos == fr.wpos {
		fr.rpos, fr.wpos = 0, 0
	}
	return frame, nil
}

// Release returns the read buffer to the pool. Bytes buffered but not read
// are discarded; the reader may still be used (it allocates a new buffer).
func (fr *FrameReader) Release() {
	if fr.buf != nil {
		fr.pool.Free(fr.buf)
		fr.buf = nil
	}
	fr.rpos, fr.wpos = 0, 0
}
