package snet

import (
	"errors"
	"fmt"
	"net"
)

// Errors a Conn or Listener reports. Read and Write on a closed Conn return
// the reason it closed; [Conn.Err] returns it too.
var (
	// ErrRefused: the server answered a reconnect with 24 zero bytes (unknown
	// or expired session, bad digest, counts that cannot be resumed). The
	// client closes.
	ErrRefused = errors.New("fastway: snet: reconnect refused")
	// ErrReconnTimeout: a broken session was not resumed in time. On the
	// server the client did not come back within ReconnWaitTimeout; on the
	// client no reconnect succeeded within it. It is a net.Error whose
	// Timeout is true.
	ErrReconnTimeout error = &timeoutError{"fastway: snet: reconnect wait timed out"}
	// ErrHandshakeTimeout: a handshake did not finish within
	// HandshakeTimeout. It is a net.Error whose Timeout is true.
	ErrHandshakeTimeout error = &timeoutError{"fastway: snet: handshake timed out"}
	// ErrBadDigest: a peer's MD5 digest did not match the session key
	// (server side: a forged or corrupted handshake).
	ErrBadDigest = errors.New("fastway: snet: bad handshake digest")
	// ErrUnknownID: a reconnect named a session the server does not hold
	// (never existed, expired or closed). The client sees ErrRefused.
	ErrUnknownID = errors.New("fastway: snet: unknown connection ID")
	// ErrGapTooLarge: a side would have to replay more bytes than its
	// rewrite buffer still holds, so the stream cannot be resumed intact.
	ErrGapTooLarge = errors.New("fastway: snet: missing bytes exceed the rewrite buffer")
	// ErrBadCounts: the counts in a reconnect contradict each other (a peer
	// claims to have read more than was written).
	ErrBadCounts = errors.New("fastway: snet: reconnect counts do not match")
	// ErrBadHandshake: a malformed handshake (unknown first byte, zero
	// public key).
	ErrBadHandshake = errors.New("fastway: snet: malformed handshake")
	// ErrConnClosed: the Conn was closed by its owner. It matches
	// net.ErrClosed.
	ErrConnClosed = fmt.Errorf("fastway: snet: connection closed: %w", net.ErrClosed)
	// ErrListenerClosed: the Listener was closed; Accept returns it, and a
	// session that breaks afterwards (or was waiting) closes with it. It
	// matches net.ErrClosed.
	ErrListenerClosed = fmt.Errorf("fastway: snet: listener closed: %w", net.ErrClosed)
)

// timeoutError is an error value that satisfies net.Error with Timeout true.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return false }

var _ net.Error = (*timeoutError)(nil)
