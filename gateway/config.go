package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
)

// Defaults, matching the fastway binary's flags.
const (
	DefaultMaxPacket              = proto.DefaultMaxPacket // 512 KiB
	DefaultClientMaxConn          = 16
	DefaultClientBufferSize       = 2 << 10
	DefaultClientIdleTimeout      = 30 * time.Second
	DefaultClientSendChanSize     = 1000
	DefaultServerAuthTimeout      = proto.DefaultAuthTimeout // 3 s
	DefaultServerBufferSize       = 64 << 10
	DefaultServerIdleTimeout      = 30 * time.Second
	DefaultServerSendChanSize     = 100000
	DefaultServerMaxHandshakes    = 1024
	DefaultLargeFrameBudget       = 64 << 20
	DefaultServerAuthFailBurst    = 5
	DefaultServerAuthFailInterval = time.Second
	DefaultMemReleaseInterval     = 10 * time.Second
)

// Config configures a Gateway. The zero value is usable: every zero field
// takes the default named beside it.
type Config struct {
	// MaxPacket bounds a frame's Length field, in bytes (0: 512 KiB).
	MaxPacket int
	// LargeFrameBudget bounds, in bytes and across all connections, what
	// frames larger than their connection's read buffer may hold while
	// their body is still arriving. A peer that announces a MaxPacket-sized
	// frame and trickles its body cannot hold more than this together with
	// every other such peer; a frame that would pass it closes its sender
	// (reason "connection limit"). (0: 64 MiB; negative: unlimited.)
	LargeFrameBudget int64
	// MemPool supplies frame and read buffers (nil: a sync pool with the
	// slab defaults, 64 B to 64 KiB; it measured fastest on this project's
	// benchmarks, see docs/benchmarks.md).
	MemPool slab.Pool

	// ClientMaxConn is how many virtual connections one client may have
	// dialed at once; past it its Dials are refused (0: 16).
	ClientMaxConn int
	// ClientBufferSize is a client connection's read buffer, in bytes (0: 2 KiB).
	ClientBufferSize int
	// ClientIdleTimeout closes a client that sends nothing for this long
	// (0: 30 s; negative: never).
	ClientIdleTimeout time.Duration
	// ClientSendChanSize is how many frames may wait to be written to one
	// client; a client whose queue is full is disconnected as a slow
	// consumer (0: 1000). The queue grows with use; it is not preallocated.
	ClientSendChanSize int

	// ClientMaxConns caps the client connections open at once (physical
	// connections, not virtual ones); past it new clients are closed at
	// once and counted (reason "connection limit"). 0: unlimited.
	ClientMaxConns int

	// ServerAuthPassword is the key servers prove with the MD5 challenge.
	ServerAuthPassword string
	// ServerAuthTimeout bounds the server handshake (0: 3 s).
	ServerAuthTimeout time.Duration
	// ServerMaxHandshakes caps the server-port connections still in their
	// handshake; past it new ones are closed at once and counted (reason
	// "connection limit"), so a flood of silent sockets cannot pile up
	// (0: 1024; negative: unlimited).
	ServerMaxHandshakes int
	// ServerAuthFailBurst and ServerAuthFailInterval slow down a source
	// address that keeps failing the handshake: it may fail Burst times in
	// a row, then once per Interval; meanwhile its new connections are
	// closed before a challenge is sent (reason "auth throttled").
	// (0: 5 and 1 s; a negative Burst disables the limit.)
	ServerAuthFailBurst    int
	ServerAuthFailInterval time.Duration
	// ServerBufferSize is a server connection's read buffer, in bytes (0: 64 KiB).
	ServerBufferSize int
	// ServerIdleTimeout closes a server that sends nothing for this long,
	// counted from the end of its handshake (0: 30 s; negative: never).
	ServerIdleTimeout time.Duration
	// ServerSendChanSize is how many frames may wait to be written to one
	// server; when it is full, the clients sending to that server are
	// paused (back-pressure), never dropped (0: 100000).
	ServerSendChanSize int

	// MemReleaseInterval is how often the gateway gives the memory a
	// burst left behind back to the operating system (slab.Reclaimer):
	// MemPool's pages that gave out nothing for this long go (AtomPool,
	// ChanPool), and when the pool let go of 64 MiB or more, or the heap
	// is quiet and holds 64 MiB or more above its low, the gateway runs
	// debug.FreeOSMemory (a collection; then every free page goes back).
	// A pool shared by several gateways is released by each. (0: 10 s;
	// negative: never.)
	MemReleaseInterval time.Duration

	// Logger receives connection state changes (nil: slog.Default()).
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	setInt(&c.MaxPacket, DefaultMaxPacket)
	if c.LargeFrameBudget == 0 {
		c.LargeFrameBudget = DefaultLargeFrameBudget
	}
	setInt(&c.ClientMaxConn, DefaultClientMaxConn)
	setInt(&c.ClientBufferSize, DefaultClientBufferSize)
	setDur(&c.ClientIdleTimeout, DefaultClientIdleTimeout)
	setInt(&c.ClientSendChanSize, DefaultClientSendChanSize)
	setDur(&c.ServerAuthTimeout, DefaultServerAuthTimeout)
	setInt(&c.ServerBufferSize, DefaultServerBufferSize)
	setDur(&c.ServerIdleTimeout, DefaultServerIdleTimeout)
	setInt(&c.ServerSendChanSize, DefaultServerSendChanSize)
	setInt(&c.ServerMaxHandshakes, DefaultServerMaxHandshakes)
	setInt(&c.ServerAuthFailBurst, DefaultServerAuthFailBurst)
	setDur(&c.ServerAuthFailInterval, DefaultServerAuthFailInterval)
	setDur(&c.MemReleaseInterval, DefaultMemReleaseInterval)
	if c.MemPool == nil {
		c.MemPool = slab.NewSyncPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid field of c (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.MaxPacket < proto.MinLength {
		errs = append(errs, fmt.Errorf("MaxPacket %d is below %d", c.MaxPacket, proto.MinLength))
	}
	if c.MaxPacket > 1<<30 {
		errs = append(errs, fmt.Errorf("MaxPacket %d is above 1 GiB", c.MaxPacket))
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"ClientMaxConn", c.ClientMaxConn},
		{"ClientMaxConns", c.ClientMaxConns},
		{"ClientBufferSize", c.ClientBufferSize},
		{"ClientSendChanSize", c.ClientSendChanSize},
		{"ServerBufferSize", c.ServerBufferSize},
		{"ServerSendChanSize", c.ServerSendChanSize},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", f.name, f.v))
		}
	}
	if c.ServerAuthFailInterval < 0 {
		errs = append(errs, fmt.Errorf("ServerAuthFailInterval %v is negative", c.ServerAuthFailInterval))
	}
	if c.ServerAuthTimeout < 0 {
		errs = append(errs, fmt.Errorf("ServerAuthTimeout %v is negative", c.ServerAuthTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fastway: invalid config: %w", err)
	}
	return nil
}
