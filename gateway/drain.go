package gateway

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// A graceful close (Shutdown) must not reset the connection: a socket
// closed while it holds bytes the gateway has not read makes the kernel
// send a RST and throw away what the gateway wrote that the peer has not
// acknowledged yet (measured: 30,000 frames in front of a server reading
// 2 MB/s, issue 13). So a link closing gracefully goes through three steps:
//
//  1. its reader stops routing (Shutdown's stopReading) but goes on
//     reading, and throws away what it reads (drainInput), counted in
//     Stats.Discarded;
//  2. its writer writes what is queued, then shuts the writing side
//     (shutWrite: CloseWrite, a FIN; on TLS a close_notify): the peer
//     reads every frame, then EOF;
//  3. the reader goes on until the peer closes in turn (EOF), or, on
//     Linux, until the peer has acknowledged every byte written (SIOCOUTQ
//     is 0: its kernel has them all, and a reset can no longer lose them
//     there); then the socket, holding nothing unread, is closed.
//
// Connections that cannot half-close (snet) are closed at step 2, as
// before. Shutdown's deadline closes whatever is left at once.

// closeWriter is a connection that can shut its writing side alone
// (*net.TCPConn, *net.UnixConn, *tls.Conn).
type closeWriter interface{ CloseWrite() error }

// maxAckPoll bounds the wait between two looks at the bytes a half-closed
// link's peer has not acknowledged (step 3 above); the first is at once,
// then 1 ms, doubling.
const maxAckPoll = 100 * time.Millisecond

// shutWrite ends the writing side of a link closing gracefully, once its
// queue is written: it half-closes the socket and wakes the reader, which
// closes it (drainInput); or it closes the socket when the reader is done
// already, or the connection cannot half-close.
func (l *link) shutWrite() {
	l.mu.Lock()
	l.wshut = true
	closeNow := l.rdone
	if !closeNow {
		// Wake the reader: from now on it also watches the acknowledgements.
		l.conn.SetReadDeadline(time.Now())
	}
	l.mu.Unlock()
	if !closeNow {
		if cw, ok := l.conn.(closeWriter); ok && cw.CloseWrite() == nil {
			return
		}
	}
	l.conn.Close()
}

// readEnded records that the reader will not read the socket again, and
// closes the socket if the writing side is done (shutWrite) or the link is
// closing hard.
func (l *link) readEnded() {
	l.mu.Lock()
	l.rdone = true
	closeNow := l.wshut || (l.closed && !l.flush)
	l.mu.Unlock()
	if closeNow {
		l.conn.Close()
	}
}

// stopped reports whether the reader must return at its next read (see
// stopReading); a reader draining its socket reads on.
func (l *link) stopped() bool { return l.stopRead.Load() && !l.draining }

// drainInput is the rest of a reader stopped by Shutdown, once it has
// routed every frame it holds: it reads what the peer still sends, frame
// by frame, throws it away and counts it (Stats.Discarded), until the peer
// closes (EOF), or has acknowledged all that was written once the writing
// side is shut, or the socket is closed (Shutdown's deadline), or the peer
// stays silent for the idle timeout. Then it closes the socket if the
// writer is done (see readEnded). It sets the read deadlines itself
// (beforeRead leaves them alone while draining).
func (l *link) drainInput(fr *proto.FrameReader) {
	l.draining = true
	var frames, bytes uint64
	last := time.Now() // when the peer last sent something
	var poll time.Duration
	for {
		l.mu.Lock()
		shut := l.wshut
		if !shut {
			// Under mu, so that shutWrite's wake-up is not overwritten.
			var deadline time.Time
			if l.idle > 0 {
				deadline = last.Add(l.idle)
			}
			l.conn.SetReadDeadline(deadline)
		}
		l.mu.Unlock()
		if shut {
			if unacked(l.conn) == 0 {
				break // the peer has every byte: closing loses nothing
			}
			poll = min(max(2*poll, time.Millisecond), maxAckPoll)
			l.conn.SetReadDeadline(time.Now().Add(poll))
		}
		f, err := fr.ReadFrame()
		if err == nil {
			frames++
			bytes += uint64(len(f))
			l.gw.free(f)
			last = time.Now()
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if handshaking(l.conn) {
				// A TLS client that stopReading's deadline caught in its
				// handshake: it sent no frame, and tls.Conn returns the
				// same error at every read from now on.
				break
			}
			// A poll, shutWrite's wake-up or stopReading's deadline; or
			// an idle peer.
			if shut || l.idle <= 0 || time.Since(last) < l.idle {
				continue
			}
		}
		bytes += uint64(fr.Buffered()) // a partial frame
		if errors.Is(err, proto.ErrFrameTooLarge) || errors.Is(err, proto.ErrShortFrame) || errors.Is(err, proto.ErrBudgetExceeded) {
			// Not frames: read on, counting bytes.
			bytes += l.discardRaw()
		}
		break
	}
	l.gw.counters.discarded.add(frames, bytes)
	l.readEnded()
}

// handshaking reports whether conn is a TLS connection whose handshake did
// not complete.
func handshaking(conn net.Conn) bool {
	tc, ok := conn.(*tls.Conn)
	return ok && !tc.ConnectionState().HandshakeComplete
}

// discardRaw reads and throws away what the socket delivers until it ends
// (or is idle for the idle timeout), and returns how many bytes that was.
func (l *link) discardRaw() uint64 {
	var buf [4 << 10]byte
	var n uint64
	for {
		var deadline time.Time
		if l.idle > 0 {
			deadline = time.Now().Add(l.idle)
		}
		l.conn.SetReadDeadline(deadline)
		m, err := l.conn.Read(buf[:])
		n += uint64(max(m, 0))
		if err != nil {
			return n
		}
	}
}

// frameCursor follows frame boundaries across the buffers of a batch: a
// buffer holds whole frames back to back, or ends with the header of a
// frame whose payload is the next buffer (a fan-out delivery, see
// fanout.go). Headers are never split.
type frameCursor struct {
	need int  // bytes of the current frame still to come
	data bool // the current frame is a data frame (ConnID != 0)
	size int  // the current frame's size
}

// advance moves past b and reports whether the frames end with it.
func (c *frameCursor) advance(b []byte) bool {
	for len(b) > 0 {
		if c.need == 0 {
			if len(b) < proto.HeaderSize {
				return true // cannot happen: headers are whole
			}
			c.size = proto.SizeOfLength + int(binary.LittleEndian.Uint32(b))
			c.need, c.data = c.size, proto.Header(b).ConnID() != 0
		}
		n := min(c.need, len(b))
		c.need -= n
		b = b[n:]
	}
	return c.need == 0
}

// splitWritten walks the frames of batch (as queued: see frameCursor) and
// returns how many of them the first written bytes hold whole, and the data
// frames (ConnID != 0), with their bytes, that they do not.
func splitWritten(batch []outFrame, written int64) (whole uint64, lost FrameCount) {
	var pos int64 // bytes of batch walked
	var cur frameCursor
	for _, f := range batch {
		b := f.b
		for len(b) > 0 {
			if cur.need == 0 {
				if len(b) < proto.HeaderSize {
					break // cannot happen: headers are whole
				}
				cur.size = proto.SizeOfLength + int(binary.LittleEndian.Uint32(b))
				cur.need, cur.data = cur.size, proto.Header(b).ConnID() != 0
			}
			// The frame, or the part of it in b.
			n := min(cur.need, len(b))
			cur.need -= n
			b = b[n:]
			pos += int64(n)
			if cur.need > 0 {
				continue // the frame goes on in the next buffer
			}
			if pos <= written {
				whole++
			} else if cur.data {
				lost.Frames++
				lost.Bytes += uint64(cur.size)
			}
		}
	}
	return whole, lost
}

// lose counts the data frames of batch that the first written bytes do not
// hold whole as undelivered, under the reason l closed with; the frames
// they do hold count as written. l is closed; the caller owns the batch.
func (l *link) lose(batch []outFrame, written int64) {
	whole, lost := splitWritten(batch, written)
	if whole > 0 {
		l.stats.framesOut.Add(whole)
	}
	if lost.Frames == 0 {
		return
	}
	l.mu.Lock()
	reason := l.reason
	l.mu.Unlock()
	l.gw.counters.undelivered[reason].add(lost.Frames, lost.Bytes)
	l.lostFrames.Add(lost.Frames)
	l.lostBytes.Add(lost.Bytes)
}
