package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// frameReader cuts frames out of a stream without copying them: next hands
// out slices of its read buffer, valid until the following fill. Unlike
// proto.FrameReader (built for the gateway: pooled buffers, frames shared
// or borrowed for forwarding), it tells exactly when no whole frame is left
// buffered, which is when a load generator must flush its batched replies
// before it blocks in read (serve), and it keeps a load generator free of
// the code it measures.
type frameReader struct {
	r         io.Reader
	buf       []byte
	rpos      int // next unread byte
	wpos      int // end of the bytes read
	maxPacket int
	growTo    int // a read that fills buf doubles it, up to this size
}

// newFrameReader returns a reader with a buffer of bufSize bytes, which
// doubles (up to growTo) each time a read fills it, so a connection that
// stays quiet keeps a small buffer and a busy one reads many frames at once.
func newFrameReader(r io.Reader, bufSize, growTo, maxPacket int) *frameReader {
	bufSize = max(bufSize, proto.HeaderSize)
	return &frameReader{r: r, buf: make([]byte, bufSize), maxPacket: maxPacket, growTo: max(growTo, bufSize)}
}

// next returns the next whole buffered frame (Length field included), or
// nil when no whole frame is buffered. A bad Length is an error.
func (fr *frameReader) next() ([]byte, error) {
	n := fr.wpos - fr.rpos
	if n < proto.SizeOfLength {
		return nil, nil
	}
	length := binary.LittleEndian.Uint32(fr.buf[fr.rpos:])
	if err := proto.CheckLength(length, fr.maxPacket); err != nil {
		return nil, err
	}
	size := proto.SizeOfLength + int(length)
	if n < size {
		return nil, nil
	}
	f := fr.buf[fr.rpos : fr.rpos+size : fr.rpos+size]
	fr.rpos += size
	return f, nil
}

// await returns the next whole frame, reading as long as none is buffered
// (for set-up, where nothing is batched); a read error says it was waiting
// for what.
func (fr *frameReader) await(what string) ([]byte, error) {
	for {
		if f, err := fr.next(); err != nil || f != nil {
			return f, err
		}
		if err := fr.fill(); err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", what, err)
		}
	}
}

// errStop, returned by a serve handler, ends serve without an error.
var errStop = errors.New("stop")

// serve is a read/write loop: it writes out (if not empty), then reads,
// hands every whole frame read to handle, which appends any reply to out,
// writes the replies to one read with one write, and reads on, until
// handle, a read or a write fails (errStop from handle: serve returns nil).
func (fr *frameReader) serve(out []byte, handle func(f, out []byte) ([]byte, error), write func([]byte) error) error {
	for {
		if len(out) > 0 {
			if err := write(out); err != nil {
				return err
			}
			out = out[:0]
		}
		if err := fr.fill(); err != nil {
			return err
		}
		for {
			f, err := fr.next()
			if err != nil {
				return err
			}
			if f == nil {
				break
			}
			if out, err = handle(f, out); err == errStop {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
}

// fill reads once from the stream, after moving the unread bytes to the
// front of the buffer and growing it if the pending frame does not fit.
// Frames returned by next before are invalid afterwards.
func (fr *frameReader) fill() error {
	if fr.rpos > 0 {
		fr.wpos = copy(fr.buf, fr.buf[fr.rpos:fr.wpos])
		fr.rpos = 0
	}
	if fr.wpos >= proto.SizeOfLength {
		// next has checked the Length against maxPacket already.
		size := proto.SizeOfLength + int(binary.LittleEndian.Uint32(fr.buf))
		if size > len(fr.buf) {
			nb := make([]byte, size)
			copy(nb, fr.buf[:fr.wpos])
			fr.buf = nb
		}
	}
	n, err := fr.r.Read(fr.buf[fr.wpos:])
	fr.wpos += n
	if n > 0 {
		if fr.wpos == len(fr.buf) && len(fr.buf) < fr.growTo {
			nb := make([]byte, min(2*len(fr.buf), fr.growTo))
			copy(nb, fr.buf[:fr.wpos])
			fr.buf = nb
		}
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// nowNS returns the monotonic time since the process started, in
// nanoseconds: the timestamp echo messages carry.
func nowNS() int64 { return int64(time.Since(epoch)) }

var epoch = time.Now()
