package snet

import (
	"errors"
	"io"
	"log/slog"
	"time"
)

// Defaults for the zero values of Config.
const (
	// DefaultHandshakeTimeout bounds each handshake, new or reconnect.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultRewriterBufferSize is the number of written bytes kept for
	// replay (32 KiB).
	DefaultRewriterBufferSize = 32 << 10
	// DefaultReconnWaitTimeout is how long a broken session waits (server) or
	// keeps trying (client).
	DefaultReconnWaitTimeout = 60 * time.Second
	// DefaultMaxHandshakes bounds the handshakes in progress on a Listener.
	DefaultMaxHandshakes = 1024

	// maxRewriterBufferSize bounds RewriterBufferSize (1 GiB).
	maxRewriterBufferSize = 1 << 30
)

// Config tunes one side of snet. The zero value works: every zero field
// means its default.
type Config struct {
	// EnableCrypt XORs every data byte with RC4 keyed by the session key.
	// Both ends must agree; the handshake is the same either way. Zero: off.
	EnableCrypt bool
	// HandshakeTimeout bounds each handshake, new or reconnect, from its
	// first byte to its last. Zero means DefaultHandshakeTimeout (10 s).
	HandshakeTimeout time.Duration
	// RewriterBufferSize is how many of the most recently written bytes
	// (as sent on the wire) a Conn keeps at most to replay after a
	// reconnect. The buffer is allocated as bytes are written, so a session
	// holds only what it has written, up to this size. It must exceed the
	// bytes that can be in flight between the ends; snet sizes its TCP
	// sockets from it (SocketBuffer) so that it does, and raises a Conn's
	// buffer to twice what its socket's buffers hold when the kernel gives
	// more than was asked (see the package doc, "Limits"). Zero means
	// DefaultRewriterBufferSize (32 KiB).
	RewriterBufferSize int
	// ReconnWaitTimeout: on the server, how long a broken session waits for
	// its client before closing with ErrReconnTimeout; on the client, how
	// long it keeps trying to reconnect. Zero means DefaultReconnWaitTimeout
	// (60 s).
	ReconnWaitTimeout time.Duration
	// MaxHandshakes bounds a Listener's TCP connections in their handshake
	// at once: past it a new connection is closed as soon as it is
	// accepted, before anything is read or allocated for it (counted in
	// ListenerStats.HandshakesRefused and logged). Zero means
	// DefaultMaxHandshakes (1024); negative: no limit. Dial ignores it.
	MaxHandshakes int
	// Logger receives a Listener's events, each with a reason: failed and
	// refused handshakes, refused resumes, sessions whose client did not
	// come back. Lines a peer can trigger are rate-limited. nil means
	// slog.Default(). Dial ignores it.
	Logger *slog.Logger

	// rand replaces crypto/rand for private keys and challenges (tests).
	// Reads happen in this order: private key (8 bytes, again if zero), then
	// challenge (8 bytes, again if zero).
	rand io.Reader
	// onHandshakeError, if set, sees every failed server-side handshake
	// (tests).
	onHandshakeError func(error)
}

// Validate reports a field that cannot be used. Zero fields are valid.
func (c Config) Validate() error {
	switch {
	case c.HandshakeTimeout < 0:
		return errors.New("fastway: snet: negative HandshakeTimeout")
	case c.ReconnWaitTimeout < 0:
		return errors.New("fastway: snet: negative ReconnWaitTimeout")
	case c.RewriterBufferSize < 0:
		return errors.New("fastway: snet: negative RewriterBufferSize")
	case c.RewriterBufferSize > maxRewriterBufferSize:
		return errors.New("fastway: snet: RewriterBufferSize above 1 GiB")
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.RewriterBufferSize == 0 {
		c.RewriterBufferSize = DefaultRewriterBufferSize
	}
	if c.ReconnWaitTimeout == 0 {
		c.ReconnWaitTimeout = DefaultReconnWaitTimeout
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
