package snet

import (
	"crypto/rc4"
	"net"
)

// minRingAlloc is the first allocation of a ring's buffer, in bytes.
const minRingAlloc = 1 << 10

// ring keeps the most recent bytes written to a stream, as sent on the wire,
// addressed by their absolute offset in the stream: the byte at offset o is
// at buf[o % len(buf)]. It keeps at most max bytes, and allocates as bytes
// are written, from minRingAlloc doubling up to max, so a session that has
// written little holds little (and one that has written nothing, nothing).
type ring struct {
	buf   []byte
	max   int    // capacity in bytes
	held  int    // bytes held: the last held bytes before total
	total uint64 // bytes ever appended; the stream offset of the next byte
}

func newRing(max int) *ring { return &ring{max: max} }

// size is the capacity in bytes.
func (r *ring) size() int { return r.max }

// allocated is the size of the buffer allocated so far.
func (r *ring) allocated() int { return len(r.buf) }

// raise lifts the capacity to n bytes if it is below; it never lowers it.
func (r *ring) raise(n int) { r.max = max(r.max, n) }

// kept is how many of the most recent bytes are still held.
func (r *ring) kept() uint64 { return uint64(r.held) }

// write appends p, XORed with c's keystream when c is not nil. The buffer
// grows to hold what it keeps; once it has reached the capacity the oldest
// bytes are overwritten.
func (r *ring) write(p []byte, c *rc4.Cipher) {
	if want := min(r.max, r.held+len(p)); len(r.buf) < want {
		r.grow(want)
	}
	r.held = min(r.held+len(p), len(r.buf))
	size := uint64(len(r.buf))
	for len(p) > 0 {
		off := int(r.total % size)
		dst := r.buf[off:min(len(r.buf), off+len(p))]
		if c != nil {
			c.XORKeyStream(dst, p[:len(dst)])
		} else {
			copy(dst, p)
		}
		r.total += uint64(len(dst))
		p = p[len(dst):]
	}
}

// grow reallocates the buffer to hold at least n bytes (a power of two from
// minRingAlloc, at most max), keeping every byte held at its offset.
func (r *ring) grow(n int) {
	size := minRingAlloc
	for size < n {
		size *= 2
	}
	size = min(size, r.max)
	kept, _ := r.since(r.total - r.kept())
	buf := make([]byte, size)
	at := r.total - r.kept()
	for _, b := range kept {
		for len(b) > 0 {
			off := int(at % uint64(size))
			m := copy(buf[off:], b)
			b = b[m:]
			at += uint64(m)
		}
	}
	r.buf = buf
}

// since returns the bytes from stream offset from up to the end, in at most
// two slices that alias the ring. ok is false if they are no longer held.
func (r *ring) since(from uint64) (b net.Buffers, ok bool) {
	if from > r.total || r.total-from > r.kept() {
		return nil, false
	}
	n := int(r.total - from)
	if n == 0 {
		return nil, true
	}
	start := int(from % uint64(len(r.buf)))
	if end := start + n; end <= len(r.buf) {
		return net.Buffers{r.buf[start:end]}, true
	}
	return net.Buffers{r.buf[start:], r.buf[:start+n-len(r.buf)]}, true
}
