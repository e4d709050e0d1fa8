package snet

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Reconnect backoff between failed attempts.
const (
	minReconnBackoff = 10 * time.Millisecond
	maxReconnBackoff = time.Second
)

// Dial opens a new session over the connection dialer returns and returns
// its *Conn. The same dialer opens the connections the Conn reconnects on,
// so it should honour a timeout of its own (net.Dialer.Timeout): Close waits
// for a dial in progress.
func Dial(cfg Config, dialer func() (net.Conn, error)) (net.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	raw, err := dialer()
	if err != nil {
		return nil, fmt.Errorf("fastway: snet: dial: %w", err)
	}
	c, err := clientHandshake(cfg, raw)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("fastway: snet: handshake with %v: %w", raw.RemoteAddr(), err)
	}
	c.dialer = dialer
	return c, nil
}

// clientHandshake runs the new-connection handshake (§3.2) on raw.
func clientHandshake(cfg Config, raw net.Conn) (*Conn, error) {
	raw.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	priv, err := privateKey(randReader(cfg))
	if err != nil {
		return nil, err
	}
	hello := encodeNewRequest(DH64PublicKey(priv))
	if _, err := raw.Write(hello[:]); err != nil {
		return nil, handshakeErr(err)
	}
	var reply [newReplySize]byte
	if _, err := io.ReadFull(raw, reply[:]); err != nil {
		return nil, handshakeErr(err)
	}
	serverPub, encID, challenge := decodeNewReply(reply)
	if !validPublic(serverPub) {
		return nil, ErrBadHandshake
	}
	key := sessionKey(DH64Secret(priv, serverPub))
	read, write := newCipher(key), newCipher(key)
	id := decryptID(encID, read)
	d := challengeDigest(challenge, key)
	if _, err := raw.Write(d[:]); err != nil {
		return nil, handshakeErr(err)
	}
	raw.SetDeadline(time.Time{})
	return newConn(cfg, id, key, read, write, raw), nil
}

// TryReconn drops the current TCP connection at once, as if it had broken
// (for a ping that went unanswered). The client then reconnects; a server
// Conn waits for its client. It does nothing while not connected.
func (c *Conn) TryReconn() {
	c.mu.Lock()
	gen, state := c.gen, c.state
	c.mu.Unlock()
	if state == stateConnected {
		c.broken(gen)
	}
}

// reconnect dials and resumes until it succeeds, is refused, or
// ReconnWaitTimeout passes; on failure it closes c with the reason.
func (c *Conn) reconnect() {
	defer c.wg.Done()
	deadline := time.Now().Add(c.cfg.ReconnWaitTimeout)
	backoff := minReconnBackoff
	var last error
	for {
		if !time.Now().Before(deadline) {
			if last != nil {
				c.shutdown(fmt.Errorf("%w (last attempt: %v)", ErrReconnTimeout, last))
			} else {
				c.shutdown(ErrReconnTimeout)
			}
			return
		}
		raw, err := c.dialer()
		if err == nil {
			err = c.resume(raw, deadline)
			if err == nil {
				return
			}
			if fatalResume(err) {
				c.shutdown(err)
				return
			}
		}
		last = err
		c.mu.Lock()
		done := c.state == stateClosed
		c.mu.Unlock()
		if done {
			return
		}
		t := time.NewTimer(min(backoff, time.Until(deadline)))
		select {
		case <-t.C:
		case <-c.done:
			t.Stop()
			return
		}
		backoff = min(2*backoff, maxReconnBackoff)
	}
}

// fatalResume reports whether a failed resume ends the session rather than
// being retried on a new connection.
func fatalResume(err error) bool {
	return errors.Is(err, ErrRefused) || errors.Is(err, ErrGapTooLarge) ||
		errors.Is(err, ErrBadCounts) || errors.Is(err, ErrConnClosed) ||
		errors.Is(err, ErrListenerClosed)
}

// resume runs the client side of the reconnect handshake (§3.4) on raw and
// installs it. It owns raw: on failure raw is closed.
func (c *Conn) resume(raw net.Conn, deadline time.Time) (err error) {
	c.mu.Lock()
	if c.state != stateBroken {
		err := c.err
		c.mu.Unlock()
		raw.Close()
		if err == nil {
			err = errSuperseded
		}
		return err
	}
	c.hsSeq++
	seq := c.hsSeq
	c.hs = raw
	wc, rc, kept := c.writeCount, c.readCount, c.ring.kept()
	c.mu.Unlock()
	defer func() {
		if err != nil {
			c.abandon(seq)
			raw.Close()
		}
	}()

	hsDeadline := time.Now().Add(c.cfg.HandshakeTimeout)
	if deadline.Before(hsDeadline) {
		hsDeadline = deadline
	}
	raw.SetDeadline(hsDeadline)
	req := encodeReconnRequest(c.id, wc, rc, c.key)
	if _, err := raw.Write(req[:]); err != nil {
		return handshakeErr(err)
	}
	var reply [reconnReplySize]byte
	if _, err := io.ReadFull(raw, reply[:]); err != nil {
		return handshakeErr(err)
	}
	sw, sr, challenge, ok := decodeReconnReply(reply)
	switch {
	case !ok:
		return ErrRefused
	case sw < rc:
		return fmt.Errorf("%w: server wrote %d, client read %d", ErrBadCounts, sw, rc)
	case sr > wc:
		return fmt.Errorf("%w: server read %d, client wrote %d", ErrBadCounts, sr, wc)
	case wc-sr > kept:
		return fmt.Errorf("%w: %d bytes to replay, %d kept", ErrGapTooLarge, wc-sr, kept)
	}
	d := challengeDigest(challenge, c.key)
	if _, err := raw.Write(d[:]); err != nil {
		return handshakeErr(err)
	}
	return c.install(raw, seq, sr)
}

// handshakeErr maps a deadline during a handshake to ErrHandshakeTimeout.
func handshakeErr(err error) error {
	if isTimeout(err) {
		return ErrHandshakeTimeout
	}
	return err
}

// randReader is the source of keys and challenges.
func randReader(cfg Config) io.Reader {
	if cfg.rand != nil {
		return cfg.rand
	}
	return rand.Reader
}
