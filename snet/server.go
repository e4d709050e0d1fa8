package snet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Accept backoff on temporary errors, as net/http does.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// Listener accepts snet sessions. Each TCP connection's handshake runs in its
// own goroutine within HandshakeTimeout, at most MaxHandshakes at once. A
// new-session handshake ends in Accept; a reconnect resumes the waiting
// session it names and never reaches Accept.
type Listener struct {
	cfg   Config
	inner net.Listener
	count listenerCounters
	logs  logLimiter
	conns chan *Conn    // new sessions, handed to Accept
	done  chan struct{} // closed by Close
	fail  chan struct{} // closed when inner.Accept fails for good
	once  sync.Once
	wg    sync.WaitGroup // accept loop and handshakes

	mu        sync.Mutex
	closed    bool
	acceptErr error
	nextID    uint64
	sessions  map[uint64]*Conn
	pending   map[net.Conn]struct{} // connections still in their handshake
}

var _ net.Listener = (*Listener)(nil)

// Listen wraps the listener that listen returns. Accept returns *Conn values
// for new sessions only. If it is a *net.TCPListener, Listen gives it the
// socket buffers of cfg.Control (SocketBuffer), which the connections it
// accepts from then on inherit; a listener wrapped in another (TLS) is left
// as it is: size its socket with cfg.Control when it is created.
func Listen(cfg Config, listen func() (net.Listener, error)) (net.Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	inner, err := listen()
	if err != nil {
		return nil, fmt.Errorf("fastway: snet: listen: %w", err)
	}
	if err := sizeListener(cfg, inner); err != nil {
		inner.Close()
		return nil, fmt.Errorf("fastway: snet: socket buffers: %w", err)
	}
	l := &Listener{
		cfg:      cfg.withDefaults(),
		inner:    inner,
		conns:    make(chan *Conn),
		done:     make(chan struct{}),
		fail:     make(chan struct{}),
		sessions: make(map[uint64]*Conn),
		pending:  make(map[net.Conn]struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Accept waits for the next new session.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrListenerClosed
	case <-l.fail:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.acceptErr
	}
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting, aborts handshakes in progress and waits for their
// goroutines, and closes the sessions waiting for a reconnect (their Read
// returns ErrListenerClosed). Connected sessions carry on, but close instead
// of waiting if they break.
func (l *Listener) Close() error {
	err := ErrListenerClosed
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		pending, sessions := l.pending, l.sessions
		l.pending, l.sessions = nil, nil
		l.mu.Unlock()
		close(l.done)
		err = l.inner.Close()
		for raw := range pending {
			raw.Close()
		}
		l.wg.Wait()
		for _, c := range sessions {
			c.detachListener()
		}
	})
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if !temporary(err) {
				l.mu.Lock()
				l.acceptErr = fmt.Errorf("fastway: snet: accept: %w", err)
				l.mu.Unlock()
				close(l.fail)
				return
			}
			backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			raw.Close()
			return
		}
		if n := l.cfg.MaxHandshakes; n > 0 && len(l.pending) >= n {
			l.mu.Unlock()
			l.count.handshakesRefused.Add(1)
			l.logs.log(l.cfg.Logger, logHandshakeRefused, "snet handshake refused", "remote", raw.RemoteAddr().String(),
				"reason", "too many handshakes", "max", n)
			raw.Close()
			continue
		}
		l.pending[raw] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handshake(raw)
	}
}

// temporary reports whether an Accept error is worth retrying.
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return (errors.As(err, &t) && t.Temporary()) || isTimeout(err)
}

// handshake runs one TCP connection's handshake. On success the connection
// belongs to a session; otherwise it is closed.
func (l *Listener) handshake(raw net.Conn) {
	defer l.wg.Done()
	if err := l.serve(raw); err != nil {
		if !errors.Is(err, ErrListenerClosed) { // else not the peer's doing
			l.count.handshakesFail.Add(1)
			if !errors.Is(err, errResumeRefused) { // refuse logged it
				l.logs.log(l.cfg.Logger, logHandshakeFailed, "snet handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
			}
		}
		l.untrack(raw)
		raw.Close()
		if h := l.cfg.onHandshakeError; h != nil {
			h(err)
		}
	}
}

// untrack removes raw from the handshakes in progress; false means the
// listener closed (and closes raw).
func (l *Listener) untrack(raw net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	delete(l.pending, raw)
	return true
}

func (l *Listener) serve(raw net.Conn) error {
	raw.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
	var kind [sizeOfType]byte
	if _, err := io.ReadFull(raw, kind[:]); err != nil {
		return handshakeErr(err)
	}
	switch kind[0] {
	case typeNew:
		return l.serveNew(raw)
	case typeReconn:
		return l.serveReconn(raw)
	}
	return fmt.Errorf("%w: first byte %#02x", ErrBadHandshake, kind[0])
}

// serveNew runs the server side of the new-connection handshake (§3.2).
func (l *Listener) serveNew(raw net.Conn) error {
	var hello [newRequestSize - sizeOfType]byte
	if _, err := io.ReadFull(raw, hello[:]); err != nil {
		return handshakeErr(err)
	}
	clientPub := binary.LittleEndian.Uint64(hello[:])
	if !validPublic(clientPub) {
		return fmt.Errorf("%w: zero public key", ErrBadHandshake)
	}
	rnd := randReader(l.cfg)
	priv, err := privateKey(rnd)
	if err != nil {
		return err
	}
	challenge, err := randomChallenge(rnd)
	if err != nil {
		return err
	}
	key := sessionKey(DH64Secret(priv, clientPub))
	read, write := newCipher(key), newCipher(key)
	id := l.newID()
	reply := encodeNewReply(DH64PublicKey(priv), id, challenge, write)
	if _, err := raw.Write(reply[:]); err != nil {
		return handshakeErr(err)
	}
	var d [sizeOfDigest]byte
	if _, err := io.ReadFull(raw, d[:]); err != nil {
		return handshakeErr(err)
	}
	if !digestEqual(d, challengeDigest(challenge, key)) {
		return ErrBadDigest
	}
	raw.SetDeadline(time.Time{})
	c := newConn(l.cfg, id, key, read, write, raw)
	c.l = l
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrListenerClosed
	}
	delete(l.pending, raw)
	l.sessions[id] = c
	l.mu.Unlock()
	l.count.sessions.Add(1)
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
	return nil
}

// newID returns the next free connection ID (never 0).
func (l *Listener) newID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		l.nextID++
		if _, used := l.sessions[l.nextID]; l.nextID != 0 && !used {
			return l.nextID
		}
	}
}

// serveReconn runs the server side of the reconnect handshake (§3.4).
func (l *Listener) serveReconn(raw net.Conn) error {
	var b [reconnRequestSize - sizeOfType]byte
	if _, err := io.ReadFull(raw, b[:]); err != nil {
		return handshakeErr(err)
	}
	req := decodeReconnRequest(b)
	refuse := func(reason error) error {
		l.count.resumesRefused.Add(1)
		if errors.Is(reason, ErrGapTooLarge) {
			l.count.gapsTooLarge.Add(1)
		}
		l.logs.log(l.cfg.Logger, logResumeRefused, "snet resume refused", "conn_id", req.id,
			"remote", raw.RemoteAddr().String(), "reason", reason)
		var zero [reconnReplySize]byte
		raw.Write(zero[:])
		return fmt.Errorf("snet conn %d: %w: %w", req.id, errResumeRefused, reason)
	}
	l.mu.Lock()
	c := l.sessions[req.id]
	l.mu.Unlock()
	if c == nil {
		return refuse(ErrUnknownID)
	}
	if !req.verify(c.key) {
		return refuse(ErrBadDigest)
	}
	challenge, err := randomChallenge(randReader(l.cfg))
	if err != nil {
		return err
	}
	// The live session is not touched until raw has answered the
	// challenge: a replayed request gets its reply and goes no further.
	offer, sw, sr, err := c.offerResume(raw, req.writeCount, req.readCount)
	if err != nil {
		c.noteRefusal(err)
		return refuse(err)
	}
	reply := encodeReconnReply(sw, sr, challenge)
	if _, err := raw.Write(reply[:]); err != nil {
		c.withdraw(raw)
		return handshakeErr(err)
	}
	var d [sizeOfDigest]byte
	if _, err := io.ReadFull(raw, d[:]); err != nil {
		c.withdraw(raw)
		return handshakeErr(err)
	}
	if !digestEqual(d, challengeDigest(challenge, c.key)) {
		c.withdraw(raw)
		return fmt.Errorf("snet conn %d: %w (answer to the reconnect challenge; the session is untouched)", req.id, ErrBadDigest)
	}
	if !l.untrack(raw) {
		c.withdraw(raw)
		return ErrListenerClosed
	}
	sw, err = c.takeOver(raw, offer, req.writeCount, req.readCount)
	if err != nil {
		if errors.Is(err, ErrGapTooLarge) {
			l.count.gapsTooLarge.Add(1)
		}
		return fmt.Errorf("snet conn %d: %w", req.id, err)
	}
	l.count.resumes.Add(1)
	raiseTo(&l.count.maxReplayOut, sw-req.readCount)
	raiseTo(&l.count.maxReplayIn, req.writeCount-sr)
	return nil
}

// forget removes a closed session.
func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[c.id] == c {
		delete(l.sessions, c.id)
	}
}

// offerResume checks a digest-verified reconnect against the session and,
// if it could be resumed, records raw as an offer and returns the counts to
// send it. The session itself is left as it is: its TCP connection, if it
// has one, carries on, and so does its wait timer if it has none. Several
// offers may be open at once (a replayed request beside the real one); the
// first to answer its challenge takes the session over.
func (c *Conn) offerResume(raw net.Conn, peerWrite, peerRead uint64) (o resumeOffer, writeCount, readCount uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return o, 0, 0, ErrUnknownID
	}
	wc, rc := c.writeCount, c.readCount
	if err := c.checkResumeLocked(peerWrite, peerRead); err != nil {
		return o, 0, 0, err
	}
	if c.srv.offers == nil {
		c.srv.offers = make(map[net.Conn]resumeOffer)
	}
	o = resumeOffer{epoch: c.srv.epoch, readCount: rc}
	c.srv.offers[raw] = o
	return o, wc, rc, nil
}

// checkResumeLocked checks a client's counts against the session's: it may
// not have read more than was written to it, nor written less than was
// read from it, and what it misses must still be in the rewrite buffer.
func (c *Conn) checkResumeLocked(peerWrite, peerRead uint64) error {
	switch {
	case peerRead > c.writeCount || c.readCount > peerWrite:
		return ErrBadCounts
	case c.writeCount-peerRead > c.ring.kept():
		return ErrGapTooLarge
	}
	return nil
}

// withdraw forgets the offer made to raw, whose handshake failed.
func (c *Conn) withdraw(raw net.Conn) {
	c.mu.Lock()
	delete(c.srv.offers, raw)
	c.mu.Unlock()
}

// takeOver makes raw, which answered the challenge of offer o, carry the
// session: the current TCP connection (if the server had not yet noticed it
// broke) is closed only now, and the other offers still open are closed
// too, being stale. The client replays from the read count it was told;
// what the server read on the old connection since then is dropped from
// the replay as it arrives (serverResumes.skip). It returns the write count
// the replay to the client starts from the end of. It fails, leaving the
// session as it was, if the session closed, another offer took it over
// first, or the counts no longer fit (the server wrote more into a dead
// connection meanwhile than its buffer holds).
func (c *Conn) takeOver(raw net.Conn, o resumeOffer, peerWrite, peerRead uint64) (writeCount uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return 0, c.err
	}
	if _, ok := c.srv.offers[raw]; !ok || c.srv.epoch != o.epoch {
		return 0, errSuperseded
	}
	delete(c.srv.offers, raw)
	if err := c.checkResumeLocked(peerWrite, peerRead); err != nil {
		return 0, err
	}
	if c.state == stateConnected {
		c.detachLocked()
	}
	for other := range c.srv.offers {
		other.Close()
	}
	clear(c.srv.offers)
	c.srv.epoch++
	c.srv.skip = c.readCount - o.readCount
	c.installLocked(raw, peerRead)
	return c.writeCount, nil
}

// startWaitLocked arms the ReconnWaitTimeout timer of a broken session.
func (c *Conn) startWaitLocked() {
	if c.waitTimer != nil {
		return
	}
	c.waitSeq++
	seq := c.waitSeq
	c.waitTimer = time.AfterFunc(c.cfg.ReconnWaitTimeout, func() { c.expire(seq) })
}

// stopWaitLocked disarms the wait timer.
func (c *Conn) stopWaitLocked() {
	if c.waitTimer != nil {
		c.waitTimer.Stop()
		c.waitTimer = nil
		c.waitSeq++
	}
}

// errResumeRefused marks the error of a reconnect the server refused.
var errResumeRefused = errors.New("resume refused")

// noteRefusal records why a digest-verified reconnect of c was refused, for
// the error c closes with if its client does not come back.
func (c *Conn) noteRefusal(err error) {
	c.mu.Lock()
	c.refusal = err
	c.mu.Unlock()
}

// expire closes a session whose client did not come back in time. Its
// error says why the last verified reconnect was refused, if one was.
func (c *Conn) expire(seq uint64) {
	c.mu.Lock()
	var l *Listener
	if c.waitSeq == seq && c.state == stateBroken {
		c.waitTimer = nil
		err := ErrReconnTimeout
		if c.refusal != nil {
			err = fmt.Errorf("%w (its last reconnect was refused: %v)", ErrReconnTimeout, c.refusal)
		}
		if c.l != nil { // counted and logged before anyone sees it closed
			c.l.count.expired.Add(1)
			c.l.logs.log(c.l.cfg.Logger, logExpired, "snet session expired", "conn_id", c.id, "reason", err)
		}
		l = c.closeLocked(err)
	}
	c.mu.Unlock()
	if l != nil {
		l.forget(c)
	}
}

// detachListener is called when the listener closes: a waiting session
// closes, a connected one will close if it breaks.
func (c *Conn) detachListener() {
	c.mu.Lock()
	c.l = nil
	if c.state == stateConnected {
		c.mu.Unlock()
		return
	}
	c.closeLocked(ErrListenerClosed)
	c.mu.Unlock()
	c.wg.Wait()
}
