package snet

import (
	"crypto/rc4"
	"net"
)

// ring keeps the most recent bytes written to a stream, as sent on the wire,
// addressed by their absolute offset in the stream.
type ring struct {
	buf   []byte
	total uint64 // bytes ever appended; the stream offset of the next byte
}

func newRing(size int) *ring { return &ring{buf: make([]byte, size)} }

// size is the capacity in bytes.
func (r *ring) size() int { return len(r.buf) }

// kept is how many of the most recent bytes are still held.
func (r *ring) kept() uint64 { return min(r.total, uint64(len(r.buf))) }

// write appends p, XORed with c's keystream when c is not nil. The oldest
// bytes are overwritten once the ring is full.
func (r *ring) write(p []byte, c *rc4.Cipher) {
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
