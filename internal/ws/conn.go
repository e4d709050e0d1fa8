package ws

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// Errors a Conn's Read returns for a peer that broke RFC 6455 or
// docs/protocol.md §8. They wrap ErrProtocol.
var (
	ErrProtocol = errors.New("websocket protocol error")
	// ErrText is a text message: the gateway's clients send binary only.
	ErrText = fmt.Errorf("%w: text message (only binary messages carry frames)", ErrProtocol)
)

// ErrControlWrite is what reads return once a Pong or Close reply could
// not be written within its timeout (a peer that does not read), which
// closed the connection.
var ErrControlWrite = errors.New("websocket: control frame not written")

// errClosed is what Read returns after the peer's Close frame: a clean end.
var errClosed = io.EOF

// ErrCloseSent is what a write returns once the Close frame has gone out:
// RFC 6455 §5.5.1 allows no data frame after it (a browser fails the
// connection with "Data frame received after close"). It wraps
// net.ErrClosed: the connection is closing.
var ErrCloseSent = fmt.Errorf("websocket: write after the Close frame: %w", net.ErrClosed)

// errCloseSentProtocol is ErrCloseSent after the reply to a malformed Close
// frame: it also wraps ErrProtocol, so a writer that meets it first names
// the same cause as the reader.
var errCloseSentProtocol = fmt.Errorf("%w (%w: close frame with a 1-byte body)", ErrCloseSent, ErrProtocol)

// controlTimeout bounds a Pong or Close frame the reader writes itself.
const controlTimeout = 5 * time.Second

// Conn is a server-side WebSocket connection after the upgrade, as a
// net.Conn carrying the byte stream of binary messages:
//
//   - Read returns the payload bytes of binary messages (and their
//     continuations) in order, message boundaries dropped. It decodes in
//     place: the raw bytes are read into the caller's buffer and the
//     payloads moved down over the frame headers and unmasked there, so a
//     Conn holds no read buffer of its own. Pings are answered, Pongs
//     ignored, a Close ends the stream (io.EOF) after a Close reply; a
//     text message or a malformed frame is an error wrapping ErrProtocol.
//   - Write sends p as one binary message, so a caller that writes whole
//     frames per call gives the peer whole frames per message.
//   - ReadLazy (proto.LazyReader) waits for the socket to be readable
//     holding no buffer, on plain TCP.
//
// One goroutine reads; any number may write (writes are serialised).
// Deadlines and Close may be called at any time and take no lock.
type Conn struct {
	c     net.Conn        // the TCP or TLS connection
	raw   syscall.RawConn // c's socket on plain TCP, for ReadLazy; else nil
	early []byte          // bytes the peer sent right behind its upgrade request
	tr    string          // "ws" or "wss"

	// Reader state (reader only).
	hdr      [14]byte // a frame header being read
	hdrN     int      // bytes of hdr read so far
	remain   uint64   // payload bytes of the current frame still to come
	mask     [4]byte  // the current frame's masking key
	maskOff  int      // payload bytes of the current frame read so far, mod 4
	op       ws.OpCode
	inMsg    bool   // inside a fragmented binary message (continuations due)
	ctrl     []byte // a control frame's payload, gathered (at most 125 bytes)
	rerr     error  // an error to return once the bytes before it are read
	activity func() error
	// ReadLazy's RawConn callback (made once) and the state it works on.
	rawRead func(fd uintptr) bool
	lget    func() []byte
	lput    func()
	lbuf    []byte
	ln      int
	lerr    error

	// Writer state: wmu serialises writes; whdr/wvec are its scratch.
	wmu  sync.Mutex
	whdr [10]byte
	wvec [2][]byte
	// owe is what a non-blocking write (BeginMessage, EndMessage) left of its message: the header's
	// unwritten bytes (oweHdr) and the payload bytes still due (owe). No
	// other frame may go out until FinishMessage has written them.
	owe    int64
	oweHdr []byte
	owebuf [10]byte
	fin    [][]byte     // FinishMessage's scratch
	wdl    atomic.Int64 // the write deadline last set (Unix ns, 0 none)
	wdirt  bool         // (under wmu) a control write changed c's deadline
	// wfailed (under wmu): a Write failed, perhaps inside its frame.
	wfailed bool
	// pong is the payload of a Pong still to be written (the reader found
	// the writer busy); nil when none. Only the latest is kept (RFC 6455
	// §5.5.3 allows answering the most recent Ping only).
	pong      atomic.Pointer[[]byte]
	cerr      atomic.Pointer[error] // a control write's failure, which closed c
	wbroke    atomic.Bool           // a write failed: the stream may end mid-record
	closeSent atomic.Bool
	// closeDue is the code of the Close frame that answers the peer's,
	// while it waits for the write under way or the unfinished message
	// (0: none); closeWake, closed when it is out or cannot be, wakes the
	// reader waiting for it (answerClose).
	closeDue  atomic.Uint32
	closeWake atomic.Pointer[chan struct{}]
	wokeOnce  sync.Once
	kicking   atomic.Bool // a goroutine of kickAsync runs
	closing   atomic.Bool // Close was called
	closeOnce sync.Once
	status    atomic.Uint32 // the Close code Close sends: set by a read error; 0: 1000
}

// newConn wraps c, upgraded, with the bytes read past the request.
func newConn(c net.Conn, early []byte) *Conn {
	wc := &Conn{c: c, early: early, tr: "ws"}
	if _, ok := c.(*tls.Conn); ok {
		wc.tr = "wss"
	}
	if tc, ok := c.(*net.TCPConn); ok && lazyWait {
		if raw, err := tc.SyscallConn(); err == nil {
			wc.raw = raw
			wc.rawRead = wc.readReady
		}
	}
	return wc
}

// Transport names the connection's transport: "ws" or "wss".
func (c *Conn) Transport() string { return c.tr }

// SetActivityHook sets a function Read calls when it consumed frames that
// carried no payload (control frames, empty messages) and reads on: they
// count as activity (docs/protocol.md §8), so the hook pushes the idle
// deadline out. An error from it ends the read.
func (c *Conn) SetActivityHook(f func() error) { c.activity = f }

// Read reads payload bytes of binary messages into p. It returns at least
// one byte unless it returns an error.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.rerr != nil {
			return 0, c.rerr
		}
		var n int
		var err error
		if len(c.early) > 0 {
			n = copy(p, c.early)
			c.early = c.early[n:]
		} else {
			n, err = c.c.Read(p)
			err = c.readErr(err)
		}
		out, derr := c.decode(p[:n])
		if derr != nil {
			c.broken(derr)
		} else if err != nil && !isTimeout(err) {
			c.rerr = err
		} else if err != nil && out == 0 {
			return 0, err // a deadline: later reads may succeed
		}
		if out > 0 {
			return out, nil
		}
		if c.rerr == nil && c.activity != nil {
			if err := c.activity(); err != nil {
				return 0, c.readErr(err)
			}
		}
	}
}

// ReadLazy implements proto.LazyReader: it waits for the socket to be
// readable holding no buffer; once it is, it takes get()'s buffer, reads
// the raw bytes into it and decodes them there. When what it read was all
// frame headers and control frames, it gives the buffer back (put) and
// waits again.
func (c *Conn) ReadLazy(get func() []byte, put func()) (int, error) {
	if c.raw == nil || len(c.early) > 0 {
		return c.Read(get())
	}
	for {
		if c.rerr != nil {
			return 0, c.rerr
		}
		c.lget, c.lput = get, put
		err := c.readErr(c.raw.Read(c.rawRead))
		buf, n, rerr := c.lbuf, c.ln, c.readErr(c.lerr)
		c.lget, c.lput, c.lbuf, c.ln, c.lerr = nil, nil, nil, 0, nil
		switch {
		case err != nil:
			return 0, err
		case rerr != nil:
			return 0, rerr
		case n == 0:
			return 0, io.EOF
		}
		out, derr := c.decode(buf[:n])
		if derr != nil {
			c.broken(derr)
		}
		if out > 0 {
			return out, nil
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		put()
		if c.activity != nil {
			if err := c.activity(); err != nil {
				return 0, c.readErr(err)
			}
		}
	}
}

// isTimeout tells a deadline's error, which does not end the stream (the
// caller may set a later deadline and read on), from the others.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// broken records a protocol error: Read returns it once the payload before
// it is read, and Close sends 1003 (a text message) or 1002.
func (c *Conn) broken(err error) {
	c.rerr = err
	code := ws.StatusProtocolError
	if errors.Is(err, ErrText) {
		code = ws.StatusUnsupportedData
	}
	if errors.Is(err, ErrProtocol) {
		c.status.CompareAndSwap(0, uint32(code))
	}
}

// decode turns the raw bytes b into payload bytes at the start of b, in
// place, and returns how many. It keeps the state of a frame that b ends
// inside of. An error means the stream is broken from that point; the
// payload before it is still returned.
func (c *Conn) decode(b []byte) (int, error) {
	out, i := 0, 0
	for i < len(b) {
		if c.remain == 0 && c.hdrN >= 0 {
			// Reading a header.
			k, done, err := c.readHeader(b[i:])
			i += k
			if err != nil {
				return out, err
			}
			if !done {
				break
			}
			if c.remain == 0 {
				if err := c.endFrame(); err != nil {
					return out, err
				}
				continue
			}
			c.hdrN = -1 // in a payload
		}
		k := len(b) - i
		if uint64(k) > c.remain {
			k = int(c.remain)
		}
		seg := b[i : i+k]
		switch {
		case c.op.IsControl():
			start := len(c.ctrl)
			c.ctrl = append(c.ctrl, seg...)
			ws.Cipher(c.ctrl[start:], c.mask, c.maskOff)
		default:
			if out != i {
				copy(b[out:], seg)
			}
			ws.Cipher(b[out:out+k], c.mask, c.maskOff)
			out += k
		}
		i += k
		c.maskOff = (c.maskOff + k) & 3
		c.remain -= uint64(k)
		if c.remain == 0 {
			c.hdrN = 0
			if err := c.endFrame(); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// readHeader takes header bytes from b into c.hdr. It returns the bytes
// taken and whether the header is complete, in which case c.op, c.remain
// and c.mask describe the frame, checked.
func (c *Conn) readHeader(b []byte) (int, bool, error) {
	taken := 0
	need := 2
	for {
		if c.hdrN >= 2 {
			need = 2 + 4
			switch c.hdr[1] & 0x7f {
			case 126:
				need += 2
			case 127:
				need += 8
			}
		}
		if c.hdrN >= need {
			break
		}
		if taken == len(b) {
			return taken, false, nil
		}
		k := copy(c.hdr[c.hdrN:need], b[taken:])
		c.hdrN += k
		taken += k
		if c.hdrN == 2 {
			if err := c.checkFirst(); err != nil {
				return taken, false, err
			}
		}
	}
	var length uint64
	switch l := c.hdr[1] & 0x7f; l {
	case 126:
		length = uint64(binary.BigEndian.Uint16(c.hdr[2:]))
	case 127:
		length = binary.BigEndian.Uint64(c.hdr[2:])
		if length>>63 != 0 {
			return taken, false, fmt.Errorf("%w: 64-bit length with its top bit set", ErrProtocol)
		}
	default:
		length = uint64(l)
	}
	copy(c.mask[:], c.hdr[need-4:need])
	c.remain, c.maskOff = length, 0
	c.ctrl = c.ctrl[:0]
	return taken, true, nil
}

// checkFirst checks a header's first two bytes.
func (c *Conn) checkFirst() error {
	b0, b1 := c.hdr[0], c.hdr[1]
	fin, op := b0&0x80 != 0, ws.OpCode(b0&0x0f)
	if b0&0x70 != 0 {
		return fmt.Errorf("%w: reserved bits set (no extension was negotiated)", ErrProtocol)
	}
	if b1&0x80 == 0 {
		return fmt.Errorf("%w: unmasked frame from a client", ErrProtocol)
	}
	switch {
	case op.IsControl():
		if !fin || b1&0x7f > 125 {
			return fmt.Errorf("%w: fragmented or long control frame", ErrProtocol)
		}
		if op != ws.OpClose && op != ws.OpPing && op != ws.OpPong {
			return fmt.Errorf("%w: reserved opcode %#x", ErrProtocol, byte(op))
		}
	case op == ws.OpText:
		return ErrText
	case op == ws.OpBinary:
		if c.inMsg {
			return fmt.Errorf("%w: new message inside a fragmented one", ErrProtocol)
		}
		c.inMsg = !fin
	case op == ws.OpContinuation:
		if !c.inMsg {
			return fmt.Errorf("%w: continuation outside a message", ErrProtocol)
		}
		c.inMsg = !fin
	default:
		return fmt.Errorf("%w: reserved opcode %#x", ErrProtocol, byte(op))
	}
	// A data frame's own opcode matters no more: payload is payload.
	// Control frames interleaved in a fragmented message keep c.inMsg.
	c.op = op
	return nil
}

// endFrame acts on a frame whose payload is all read: a Ping is answered,
// a Close replied to and the stream ended.
func (c *Conn) endFrame() error {
	c.hdrN = 0
	switch c.op {
	case ws.OpPing:
		p := append([]byte(nil), c.ctrl...)
		c.pong.Store(&p)
		c.kick()
	case ws.OpClose:
		code := ws.StatusNormalClosure
		if len(c.ctrl) == 1 {
			code = ws.StatusProtocolError
		}
		c.answerClose(code)
		if code == ws.StatusProtocolError {
			return fmt.Errorf("%w: close frame with a 1-byte body", ErrProtocol)
		}
		return errClosed
	}
	c.op = ws.OpContinuation
	return nil
}

// answerClose replies to the peer's Close frame with code: at once when no
// write is under way; else right after the write under way, or the message
// a non-blocking write left unfinished, ends (RFC 6455 §5.5.1: the reply
// may wait for the message being sent; no new one starts, and every write
// after the reply fails with ErrCloseSent). It waits for the reply to be
// out, or to have become impossible, at most controlTimeout, so that the
// caller, which closes the connection when this returns, does not cut
// the message and the reply off.
func (c *Conn) answerClose(code ws.StatusCode) {
	if c.closeSent.Load() {
		return
	}
	wake := make(chan struct{})
	c.closeWake.Store(&wake)
	c.closeDue.Store(uint32(code))
	if c.closing.Load() {
		return // Close ran (its wake-up found no one waiting): no reply can go out
	}
	c.kick()
	if c.closeSent.Load() {
		return
	}
	t := time.NewTimer(controlTimeout)
	select {
	case <-wake:
	case <-t.C:
	}
	t.Stop()
}

// closeSentErr is what writes return once the Close frame is out.
func (c *Conn) closeSentErr() error {
	if c.closeDue.Load() == uint32(ws.StatusProtocolError) {
		return errCloseSentProtocol
	}
	return ErrCloseSent
}

// dueCloseLocked writes the Close frame answerClose left due, unless a
// message is unfinished; c.wmu is held. It wakes answerClose once the frame
// is out, or cannot go out (a write failed).
func (c *Conn) dueCloseLocked() {
	code := c.closeDue.Load()
	if code == 0 || (c.owe > 0 || len(c.oweHdr) > 0) && !c.wfailed {
		return
	}
	if !c.closeSent.Swap(true) && !c.wfailed {
		var body [2]byte
		binary.BigEndian.PutUint16(body[:], uint16(code))
		c.controlLocked(ws.OpClose, body[:], controlTimeout)
	}
	c.wakeCloser()
}

// wakeCloser wakes answerClose, if it waits.
func (c *Conn) wakeCloser() {
	if w := c.closeWake.Load(); w != nil {
		c.wokeOnce.Do(func() { close(*w) })
	}
}

// Write sends p as one binary message. (After a non-blocking write that left a
// message unfinished, the first bytes of p finish it instead, as
// FinishMessage does, and the rest is a message of its own.)
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	if c.owe > 0 || len(c.oweHdr) > 0 {
		c.wvec[0] = p
		n, err := c.finishLocked(c.wvec[:1])
		c.wvec[0] = nil
		if err != nil || int(n) == len(p) {
			c.wmu.Unlock()
			c.kick()
			return int(n), err
		}
		m, err := c.writeLocked(p[n:])
		c.wmu.Unlock()
		c.kick()
		return int(n) + m, err
	}
	n, err := c.writeLocked(p)
	c.wmu.Unlock()
	c.kick()
	return n, err
}

// writeLocked writes p as one binary message; c.wmu is held.
func (c *Conn) writeLocked(p []byte) (int, error) {
	c.dueCloseLocked()
	if c.closeSent.Load() {
		return 0, c.closeSentErr()
	}
	if c.wdirt {
		// A control write set a deadline of its own since: put the
		// caller's back (it may have moved it meanwhile).
		c.wdirt = false
		c.c.SetWriteDeadline(unixTime(c.wdl.Load()))
	}
	n, err := c.writeFrame(ws.OpBinary, p)
	if err != nil {
		c.wfailed = true // maybe mid-frame: no Close frame may follow
		c.wbroke.Store(true)
	}
	return n, err
}

// CanWriteNow reports whether BeginMessage, EndMessage and RawConn work:
// on plain TCP on Linux.
func (c *Conn) CanWriteNow() bool { return c.raw != nil && lazyWait }

// BeginMessage starts a binary message of n payload bytes that the caller
// writes itself on RawConn with one non-blocking writev (the gateway's
// inline writes: its reader's stack stays as shallow as for a TCP link).
// It returns the message's header, which goes first, or false when the
// connection is busy (another write holds it, or a message is owed) or
// broken or closing (its Close frame went out): then nothing may be
// written. A true return must be followed by EndMessage.
func (c *Conn) BeginMessage(n int) ([]byte, bool) {
	if !c.wmu.TryLock() {
		return nil, false
	}
	if c.owe > 0 || len(c.oweHdr) > 0 || c.wfailed || c.closeSent.Load() || c.closeDue.Load() != 0 {
		c.wmu.Unlock()
		c.kickAsync() // a due Close reply: written off the caller's goroutine
		return nil, false
	}
	if c.wdirt {
		c.wdirt = false
		c.c.SetWriteDeadline(unixTime(c.wdl.Load()))
	}
	return c.putHeader(ws.OpBinary, n), true
}

// EndMessage ends what BeginMessage began: the caller wrote w bytes of
// the header and the n payload bytes, with err. It returns the payload
// bytes written. When the socket took only part of the message, the rest
// is owed: the next write must be FinishMessage with the bytes that
// follow, and no Pong or Close frame goes out before them.
func (c *Conn) EndMessage(n int, w int64, err error) int64 {
	h := int64(2)
	switch {
	case n > 0xffff:
		h = 10
	case n > 125:
		h = 4
	}
	if err != nil {
		c.wfailed = true
	}
	var pay int64
	switch {
	case w == 0: // nothing went out: no message started
	case w < h:
		c.oweHdr = append(c.owebuf[:0], c.whdr[w:h]...)
		c.owe = int64(n)
		unfinished.Add(1)
	default:
		pay = w - h
		if c.owe = int64(n) - pay; c.owe > 0 {
			unfinished.Add(1)
		}
	}
	c.wmu.Unlock()
	c.kickAsync()
	return pay
}

// RawConn is the socket under a plain-TCP connection (CanWriteNow), for
// the writev between BeginMessage and EndMessage; nil otherwise.
func (c *Conn) RawConn() syscall.RawConn { return c.raw }

// unfinished counts the messages left unfinished by the non-blocking
// writes, for tests.
var unfinished atomic.Uint64

// Unfinished returns how many messages the non-blocking writes left
// unfinished (for FinishMessage to complete) in this process: tests check
// that their slow readers drove that path.
func Unfinished() uint64 { return unfinished.Load() }

// FinishMessage writes the rest of the message a non-blocking write left
// unfinished (see EndMessage), taking its payload from the start of bufs
// (the bytes that follow those written), blocking until done or the write deadline. It returns
// the payload bytes it wrote: 0 when no message was owed.
func (c *Conn) FinishMessage(bufs [][]byte) (int64, error) {
	c.wmu.Lock()
	n, err := c.finishLocked(bufs)
	c.wmu.Unlock()
	c.kick()
	return n, err
}

func (c *Conn) finishLocked(bufs [][]byte) (int64, error) {
	if c.owe == 0 && len(c.oweHdr) == 0 {
		return 0, nil
	}
	if c.wdirt {
		c.wdirt = false
		c.c.SetWriteDeadline(unixTime(c.wdl.Load()))
	}
	vec := c.fin[:0]
	if len(c.oweHdr) > 0 {
		vec = append(vec, c.oweHdr)
	}
	left := c.owe
	for _, b := range bufs {
		if left == 0 {
			break
		}
		if int64(len(b)) > left {
			b = b[:left]
		}
		vec = append(vec, b)
		left -= int64(len(b))
	}
	hdr := int64(len(c.oweHdr))
	nb := net.Buffers(vec)
	w, err := nb.WriteTo(c.c)
	clear(vec)
	c.fin = vec[:0]
	if err != nil {
		c.wfailed = true
	}
	if w < hdr {
		c.oweHdr = c.oweHdr[w:]
		c.dueCloseLocked() // after a failure: wakes answerClose
		return 0, err
	}
	c.oweHdr = nil
	n := w - hdr
	c.owe -= n
	c.dueCloseLocked() // the message is done: a due Close reply goes now
	return n, err
}

// writeFrame writes one unfragmented frame and returns the payload bytes
// written; c.wmu is held.
func (c *Conn) writeFrame(op ws.OpCode, p []byte) (int, error) {
	h := c.putHeader(op, len(p))
	if c.raw != nil {
		c.wvec[0], c.wvec[1] = h, p
		bufs := net.Buffers(c.wvec[:])
		n, err := bufs.WriteTo(c.c)
		c.wvec[0], c.wvec[1] = nil, nil
		return max(int(n)-len(h), 0), err
	}
	// TLS: one record for a small message.
	if len(p) <= smallMessage {
		bp := smallBufs.Get().(*[]byte)
		b := append(append((*bp)[:0], h...), p...)
		n, err := c.c.Write(b)
		*bp = b[:0]
		smallBufs.Put(bp)
		return max(n-len(h), 0), err
	}
	if _, err := c.c.Write(h); err != nil {
		return 0, err
	}
	return c.c.Write(p)
}

// smallMessage is the largest message a TLS Conn copies behind its header
// to send as one record; larger ones go as two writes.
const smallMessage = 16 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, 0, smallMessage+10); return &b }}

// putHeader fills c.whdr with an unmasked server frame header.
func (c *Conn) putHeader(op ws.OpCode, n int) []byte {
	h := c.whdr[:]
	h[0] = 0x80 | byte(op)
	switch {
	case n <= 125:
		h[1] = byte(n)
		return h[:2]
	case n <= 0xffff:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		return h[:4]
	}
	h[1] = 127
	binary.BigEndian.PutUint64(h[2:], uint64(n))
	return h[:10]
}

// kick writes a pending Pong if no write is under way. Every writer calls
// it after it lets go of wmu, so a Pong left by a reader that found wmu
// taken goes out right after the write that held it.
func (c *Conn) kick() {
	for c.controlDue() && c.wmu.TryLock() {
		done := c.controlsLocked()
		c.wmu.Unlock()
		if !done {
			return
		}
	}
}

// controlsLocked writes the Pong or Close reply due, unless a message is
// unfinished (then it reports false: FinishMessage kicks again); c.wmu is
// held.
func (c *Conn) controlsLocked() bool {
	if c.owe > 0 || len(c.oweHdr) > 0 {
		return false
	}
	if p := c.pong.Swap(nil); p != nil && !c.closeSent.Load() && c.closeDue.Load() == 0 {
		c.controlLocked(ws.OpPong, *p, controlTimeout)
	}
	c.dueCloseLocked()
	return true
}

// kickAsync is kick for the non-blocking writes (BeginMessage, EndMessage),
// whose callers (another connection's reader) must not wait on this
// socket: a Pong or Close reply due is written by a goroutine of its own,
// one at a time, which waits for the write lock (a blocked write ends by
// its deadline or the socket's close) and writes within controlTimeout.
// What falls due later is kicked by whoever sets it (the reader).
func (c *Conn) kickAsync() {
	if !c.controlDue() || !c.kicking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		c.wmu.Lock()
		c.controlsLocked()
		c.wmu.Unlock()
		c.kicking.Store(false)
		c.kick() // a Pong the reader left while this held the lock
	}()
}

// controlDue reports whether a Pong or a Close reply waits to be written.
func (c *Conn) controlDue() bool {
	return c.pong.Load() != nil || c.closeDue.Load() != 0 && !c.closeSent.Load() && !c.closing.Load()
}

// controlLocked writes a control frame within timeout; c.wmu is held.
// The next Write puts the caller's deadline back. A failed control write
// closes the connection: the stream cannot go on after a partial frame.
func (c *Conn) controlLocked(op ws.OpCode, p []byte, timeout time.Duration) {
	c.wdirt = true
	c.c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.writeFrame(op, p); err != nil {
		c.cerr.Store(&err)
		c.wbroke.Store(true)
		c.closeSocket()
	}
}

// closeSocket closes c's connection. After a failed write on TLS it closes
// the socket under it first: tls.Conn's Close would send its close_notify
// right behind the part of a record that went out, and the peer would read
// the two as one record that fails its MAC ("bad record MAC").
func (c *Conn) closeSocket() error {
	if tc, ok := c.c.(*tls.Conn); ok && c.wbroke.Load() {
		tc.NetConn().Close()
	}
	return c.c.Close()
}

// readErr is err, a read's, unless a control write failed and closed the
// socket under the reader: then that failure, wrapping ErrControlWrite.
func (c *Conn) readErr(err error) error {
	if p := c.cerr.Load(); p != nil && err != nil {
		return fmt.Errorf("%w: %w", ErrControlWrite, *p)
	}
	return err
}

// sendClose writes a Close frame with code once, if no write is under way
// (a writer blocked on a full socket would otherwise hold it up). With
// wait, a write under way is given timeout to end (a blocked one is cut
// by the deadline) and the Close frame follows it, unless it failed: a
// write that ends the moment its bytes are out must not cost the peer its
// Close frame. No Close frame goes out inside a message a non-blocking
// write left unfinished: the peer would read it as payload. Once the Close
// frame is out, writes fail with ErrCloseSent.
func (c *Conn) sendClose(code ws.StatusCode, timeout time.Duration, wait bool) {
	if c.closeSent.Load() {
		return
	}
	if !c.wmu.TryLock() {
		if !wait {
			return
		}
		c.c.SetWriteDeadline(time.Now().Add(timeout))
		c.wmu.Lock()
	}
	if c.owe > 0 || len(c.oweHdr) > 0 {
		c.wmu.Unlock()
		return
	}
	if d := c.closeDue.Load(); d != 0 {
		code = ws.StatusCode(d) // the reply to the peer's Close
	}
	if !c.closeSent.Swap(true) && !c.wfailed {
		var body [2]byte
		binary.BigEndian.PutUint16(body[:], uint16(code))
		if wait && c.raw != nil {
			// At once, on plain TCP: one non-blocking write, whatever the
			// time it starts at (a deadline a millisecond out passed
			// before the write began on a loaded machine, and the Close
			// frame was lost).
			c.c.SetWriteDeadline(time.Time{})
			h := c.putHeader(ws.OpClose, len(body))
			c.writeNow(append(h[:len(h):len(h)], body[:]...))
		} else {
			c.controlLocked(ws.OpClose, body[:], timeout)
		}
	}
	c.wmu.Unlock()
}

// CloseWrite sends a Close frame (1001, going away) and shuts the
// sending side of the socket: the graceful end of a drain.
func (c *Conn) CloseWrite() error {
	c.sendClose(ws.StatusGoingAway, controlTimeout, false)
	if cw, ok := c.c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Close closes the connection. It first tries to send a Close frame (1000,
// or the protocol error's status), waiting at most a millisecond for a
// write under way and for the socket. Calls after the first wait until its Close frame is written (or has
// failed): the reader and the writer of a link both close it, and the
// second must not close the socket under the first one's Close frame.
func (c *Conn) Close() error {
	c.closing.Store(true)
	defer c.wakeCloser()
	c.closeOnce.Do(func() {
		if !c.closeSent.Load() {
			code := ws.StatusCode(c.status.Load())
			if code == 0 {
				code = ws.StatusNormalClosure
			}
			c.sendClose(code, time.Millisecond, true)
		}
	})
	return c.closeSocket()
}

// LocalAddr, RemoteAddr: the socket's.
func (c *Conn) LocalAddr() net.Addr  { return c.c.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.c.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.c.SetReadDeadline(t)
}

// SetReadDeadline sets the socket's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of writes; it takes no lock, so it
// also ends a write blocked now.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.wdl.Store(ns)
	return c.c.SetWriteDeadline(t)
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// NetConn returns the connection under the WebSocket (TCP or TLS).
func (c *Conn) NetConn() net.Conn { return c.c }
