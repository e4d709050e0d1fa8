package snet

import (
	"crypto/rc4"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// connState is where a Conn stands.
type connState uint8

const (
	// stateConnected: a TCP connection carries the stream.
	stateConnected connState = iota
	// stateBroken: no TCP connection; the client is reconnecting, the server
	// waits for it. Read and Write block.
	stateBroken
	// stateClosed: for good; err says why.
	stateClosed
)

// maxChunk bounds the bytes one step of Write encrypts into the ring (with
// c.mu held) and sends. A step also takes at most a sixteenth of the ring
// (chunkDivisor): the piece not yet handed to the kernel is part of what a
// cut can lose, and the rest of the ring is for the bytes in the sockets
// and on the path (see the package doc, "Limits").
const maxChunk = 64 << 10

// chunkDivisor: one step of Write takes at most this fraction of the ring.
const chunkDivisor = 16

// direction selects which deadline a wait honours.
type direction uint8

const (
	dirRead direction = iota
	dirWrite
	dirNone // internal replay: no user deadline
)

// Conn is one snet session, a net.Conn that survives the loss of its TCP
// connection. Dial returns the client side, Listener.Accept the server side.
// It is safe for one Read and one Write at a time, concurrently (further
// callers queue), alongside Close, TryReconn and the deadline setters.
type Conn struct {
	id     uint64
	key    [sizeOfKey]byte
	cfg    Config
	dialer func() (net.Conn, error) // client only

	readMu     sync.Mutex // one Read at a time; guards readCipher
	readCipher *rc4.Cipher

	writeMu     sync.Mutex // one writer at a time; guards writeCipher and ring
	writeCipher *rc4.Cipher
	ring        *ring

	mu         sync.Mutex
	state      connState
	err        error    // why the Conn closed
	base       net.Conn // the current TCP connection, nil unless connected
	gen        uint64   // bumped whenever base changes or the Conn closes
	changed    chan struct{}
	done       chan struct{}
	readCount  uint64 // data bytes read and handed to the caller
	writeCount uint64 // data bytes accepted by Write (all in ring)
	sent       uint64 // stream offset up to which base has been given bytes
	rdl, wdl   time.Time
	laddr      net.Addr
	raddr      net.Addr
	hs         net.Conn // client: TCP connection of the resume handshake in progress
	hsSeq      uint64   // client: numbers resume attempts; the latest wins
	srv        serverResumes
	waitTimer  *time.Timer
	waitSeq    uint64
	refusal    error     // server: why the last verified reconnect was refused
	l          *Listener // server: the owner, nil once it closed
	wg         sync.WaitGroup
}

var _ net.Conn = (*Conn)(nil)

// serverResumes is a server Conn's state for the reconnects in their
// handshake, guarded by Conn.mu. None of it touches the live TCP
// connection: a reconnect replaces it only once it has answered the
// challenge (takeOver).
type serverResumes struct {
	// offers are the TCP connections that were sent a challenge for this
	// session and have not answered it yet, each with what it was told.
	offers map[net.Conn]resumeOffer
	// epoch is bumped by every takeover: an offer made before one is stale,
	// since the counts it announced no longer describe the stream.
	epoch uint64
	// skip is how many bytes the client will replay that the server had
	// already read on the old connection after it sent its counts: Read
	// drops them (uncounted, undecrypted) from the new connection.
	skip uint64
}

// resumeOffer is what the server told one reconnect in its reply.
type resumeOffer struct {
	epoch     uint64 // serverResumes.epoch then
	readCount uint64 // the read count sent: the client replays from there
}

// newConn returns a session carried by base. Its rewrite buffer is
// allocated only as it writes.
func newConn(cfg Config, id uint64, key [sizeOfKey]byte, read, write *rc4.Cipher, base net.Conn) *Conn {
	c := &Conn{
		id:          id,
		key:         key,
		cfg:         cfg,
		readCipher:  read,
		writeCipher: write,
		ring:        newRing(cfg.RewriterBufferSize),
		base:        base,
		changed:     make(chan struct{}),
		done:        make(chan struct{}),
		laddr:       base.LocalAddr(),
		raddr:       base.RemoteAddr(),
	}
	c.fitLocked(base)
	return c
}

// fitLocked raises the rewrite buffer's capacity, if need be, to twice
// what base's socket buffers hold (socketHolds), so it covers a cut also
// where the kernel gave more than SocketBuffer asked for (its floor for
// small buffers) or where base was not sized at all. The caller holds c.mu
// or owns c alone.
func (c *Conn) fitLocked(base net.Conn) {
	c.ring.raise(min(2*socketHolds(base), maxRewriterBufferSize))
}

// ID is the snet connection ID the server assigned.
func (c *Conn) ID() uint64 { return c.id }

// Err returns why the Conn closed, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Read reads data, decrypting it when EnableCrypt is set. It blocks while a
// reconnect is in progress; once the Conn is closed it returns the reason.
func (c *Conn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		c.mu.Lock()
		err := c.waitLocked(dirRead)
		base, gen := c.base, c.gen
		c.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if len(p) == 0 {
			return 0, nil
		}
		n, err := base.Read(p)
		if n > 0 {
			c.mu.Lock()
			current := c.gen == gen
			var skip uint64
			if current {
				skip = min(c.srv.skip, uint64(n))
				c.srv.skip -= skip
				c.readCount += uint64(n) - skip
			}
			c.mu.Unlock()
			if current {
				// Bytes read already from the connection this one replaced
				// (server side, see takeOver) are dropped as they arrive.
				n = copy(p, p[skip:n])
				if n > 0 {
					if c.cfg.EnableCrypt {
						c.readCipher.XORKeyStream(p[:n], p[:n])
					}
					return n, nil
				}
			}
			// Otherwise read from a connection being replaced: the peer
			// replays it.
		}
		if err != nil && !isTimeout(err) {
			c.broken(gen)
		}
		// A timeout goes round again: the wait reports it if the deadline
		// still stands.
	}
}

// Write writes p, encrypting it when EnableCrypt is set. Each piece is put in
// the rewrite buffer and counted before it is sent, so whatever Write
// accepted is replayed after a reconnect. It blocks while a reconnect is in
// progress. On a deadline it returns the bytes accepted so far; any of those
// not yet sent go out before the next Write's bytes.
func (c *Conn) Write(p []byte) (int, error) { return c.write(p, dirWrite) }

func (c *Conn) write(p []byte, d direction) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	total := 0
	for {
		c.mu.Lock()
		if err := c.waitLocked(d); err != nil {
			c.mu.Unlock()
			return total, err
		}
		if c.sent == c.writeCount {
			if len(p) == 0 {
				c.mu.Unlock()
				return total, nil
			}
			n := min(len(p), max(c.ring.size()/chunkDivisor, 1), maxChunk)
			var cipher *rc4.Cipher
			if c.cfg.EnableCrypt {
				cipher = c.writeCipher
			}
			c.ring.write(p[:n], cipher)
			c.writeCount += uint64(n)
			p = p[n:]
			total += n
		}
		base, gen := c.base, c.gen
		bufs, ok := c.ring.since(c.sent)
		if !ok { // cannot happen: install checked the gap
			l := c.closeLocked(ErrGapTooLarge)
			c.mu.Unlock()
			if l != nil {
				l.forget(c)
			}
			return total, ErrGapTooLarge
		}
		c.mu.Unlock()

		m, err := bufs.WriteTo(base)
		c.mu.Lock()
		if c.gen == gen {
			c.sent += uint64(m)
		}
		c.mu.Unlock()
		switch {
		case err == nil:
		case !isTimeout(err):
			c.broken(gen)
		case d == dirNone:
			return total, err
		}
	}
}

// flush replays the bytes the peer has not read after a reconnect.
func (c *Conn) flush() {
	defer c.wg.Done()
	c.write(nil, dirNone)
}

// waitLocked waits, with c.mu held (it is released while waiting), until c
// is connected, closed, or the deadline for d has passed.
func (c *Conn) waitLocked(d direction) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if c.state == stateClosed {
			return c.err
		}
		var dl time.Time
		switch d {
		case dirRead:
			dl = c.rdl
		case dirWrite:
			dl = c.wdl
		}
		var wait time.Duration
		if !dl.IsZero() {
			if wait = time.Until(dl); wait <= 0 {
				return os.ErrDeadlineExceeded
			}
		}
		if c.state == stateConnected {
			return nil
		}
		ch := c.changed
		c.mu.Unlock()
		var expired <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			expired = timer.C
		}
		select {
		case <-ch:
		case <-expired:
		}
		c.mu.Lock()
	}
}

// broadcastLocked wakes every waiter.
func (c *Conn) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// broken reports that the TCP connection of generation gen failed. The
// first report for the current connection drops it; the client then
// reconnects, the server waits.
func (c *Conn) broken(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.state != stateConnected {
		return
	}
	c.detachLocked()
	switch {
	case c.dialer != nil:
		c.wg.Add(1)
		go c.reconnect()
	case c.l == nil:
		c.closeLocked(ErrListenerClosed) // no listener to come back through
	default:
		c.startWaitLocked()
	}
}

// detachLocked drops the current TCP connection. The counts are frozen from
// here until the next install: Read discards what it gets from the old
// connection, Write waits.
func (c *Conn) detachLocked() {
	c.gen++
	c.base.Close()
	c.base = nil
	c.state = stateBroken
	c.broadcastLocked()
}

// install makes raw, whose resume handshake seq just succeeded, carry the
// stream (client side); the bytes from peerRead on are replayed first. It
// fails if the Conn closed or a newer attempt superseded seq.
func (c *Conn) install(raw net.Conn, seq, peerRead uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return c.err
	}
	if c.state != stateBroken || c.hsSeq != seq {
		return errSuperseded
	}
	c.hs = nil
	c.installLocked(raw, peerRead)
	return nil
}

// installLocked makes raw carry the stream of a broken Conn; the bytes from
// peerRead on are replayed first, from a goroutine.
func (c *Conn) installLocked(raw net.Conn, peerRead uint64) {
	c.fitLocked(raw)
	raw.SetDeadline(time.Time{})
	raw.SetReadDeadline(c.rdl)
	raw.SetWriteDeadline(c.wdl)
	c.base = raw
	c.gen++
	c.state = stateConnected
	c.sent = peerRead
	c.laddr, c.raddr = raw.LocalAddr(), raw.RemoteAddr()
	c.stopWaitLocked()
	c.broadcastLocked()
	if c.sent < c.writeCount {
		c.wg.Add(1)
		go c.flush()
	}
}

// errSuperseded: a newer resume attempt took over.
var errSuperseded = errors.New("fastway: snet: resume superseded")

// abandon forgets resume attempt seq if it is still the current one.
func (c *Conn) abandon(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hsSeq == seq {
		c.hs = nil
	}
}

// closeLocked closes c for good with err as the reason and returns the
// listener it must be removed from (outside c.mu), if any.
func (c *Conn) closeLocked(err error) *Listener {
	if c.state == stateClosed {
		return nil
	}
	c.state = stateClosed
	c.err = err
	c.gen++
	if c.base != nil {
		c.base.Close()
		c.base = nil
	}
	if c.hs != nil {
		c.hs.Close()
		c.hs = nil
	}
	for raw := range c.srv.offers {
		raw.Close()
	}
	c.srv.offers = nil
	c.stopWaitLocked()
	close(c.done)
	c.broadcastLocked()
	l := c.l
	c.l = nil
	return l
}

// shutdown closes c for good from one of its own goroutines (no waiting).
func (c *Conn) shutdown(err error) {
	c.mu.Lock()
	l := c.closeLocked(err)
	c.mu.Unlock()
	if l != nil {
		l.forget(c)
	}
}

// Close closes the Conn and its TCP connection and waits for its
// goroutines. The peer is not told: to it this looks like a break. A second
// Close returns ErrConnClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	already := c.state == stateClosed
	l := c.closeLocked(ErrConnClosed)
	c.mu.Unlock()
	if l != nil {
		l.forget(c)
	}
	c.wg.Wait()
	if already {
		return ErrConnClosed
	}
	return nil
}

// LocalAddr is the local address of the current (or last) TCP connection.
func (c *Conn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.laddr
}

// RemoteAddr is the remote address of the current (or last) TCP connection.
func (c *Conn) RemoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raddr
}

// SetDeadline sets the read and write deadlines; they apply across
// reconnects, also to Reads and Writes blocked waiting for one.
func (c *Conn) SetDeadline(t time.Time) error {
	return c.setDeadline(t, true, true)
}

// SetReadDeadline sets the read deadline (see SetDeadline).
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(t, true, false)
}

// SetWriteDeadline sets the write deadline (see SetDeadline).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, false, true)
}

func (c *Conn) setDeadline(t time.Time, read, write bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return c.err
	}
	if read {
		c.rdl = t
		if c.base != nil {
			c.base.SetReadDeadline(t)
		}
	}
	if write {
		c.wdl = t
		if c.base != nil {
			c.base.SetWriteDeadline(t)
		}
	}
	c.broadcastLocked()
	return nil
}

// isTimeout reports whether err is a deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
