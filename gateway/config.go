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
	DefaultMaxPacket                     = proto.DefaultMaxPacket // 512 KiB
	DefaultClientMaxConn                 = 16
	DefaultClientBufferSize              = 2 << 10
	DefaultClientIdleTimeout             = 30 * time.Second
	DefaultClientSendChanSize            = 1000
	DefaultClientSendQueueBytes          = 1 << 20
	DefaultServerAuthTimeout             = proto.DefaultAuthTimeout // 3 s
	DefaultServerBufferSize              = 64 << 10
	DefaultServerIdleTimeout             = 30 * time.Second
	DefaultServerSendChanSize            = 100000
	DefaultServerSendQueueBytes          = 4 << 20
	DefaultServerSendQueueBytesPerClient = 128 << 10
	DefaultServerMaxHandshakes           = 1024
	DefaultLargeFrameBudget              = 64 << 20
	DefaultServerAuthFailBurst           = 5
	DefaultServerAuthFailInterval        = time.Second
	DefaultMemReleaseInterval            = 10 * time.Second
)

// Defaults of the per-source and per-client bounds (issue 14).
const (
	DefaultServerMaxHandshakesPerSource = 8
	DefaultClientMaxServerConns         = 64
)

// Defaults of the fan-out bounds per server link (issue 18).
const (
	DefaultServerMaxGroups      = 1 << 16
	DefaultServerMaxMemberships = 1 << 20
)

// Config configures a Gateway. The zero value is usable: every zero field
// takes the default named beside it.
type Config struct {
	// MaxPacket bounds a frame's Length field, in bytes (0: 512 KiB).
	MaxPacket int
	// LargeFrameBudget bounds, in bytes and across all client
	// connections, what frames larger than their connection's read buffer
	// may hold while their body is still arriving. Such a frame's buffer
	// grows as its body arrives, so a client that announces a
	// MaxPacket-sized frame and trickles its body holds about what it sent
	// (at most twice that, and 16 KiB more). When the budget is full, the
	// refusal falls on the source over its fair share (the budget divided
	// by the sources holding some of it): a client within its fair share
	// takes the room from the source furthest over it, whose largest
	// partial frame's connection is closed (reason "connection limit",
	// Stats.LargeFrameEvictions), and a client over it is closed itself
	// (see proto.Budget). Servers are authenticated and do not count
	// against it. (0: 64 MiB; negative: unlimited.)
	LargeFrameBudget int64
	// LargeFrameBudgetPerSource bounds what the client connections of one
	// source (an IPv4 address, or an IPv6 /64) may hold of
	// LargeFrameBudget together; a frame past it closes its sender, even
	// when the budget has room, so one source cannot take the budget from
	// everyone. (0: an eighth of LargeFrameBudget, at least MaxPacket;
	// negative: no per-source bound.)
	LargeFrameBudgetPerSource int64
	// MemPool supplies frame and read buffers (nil: a sync pool with the
	// slab defaults, 64 B to 64 KiB; it measured fastest on this project's
	// benchmarks, see docs/benchmarks.md).
	MemPool slab.Pool

	// ClientMaxConn is how many virtual connections one client may have
	// dialed at once; past it its Dials are refused (0: 16).
	ClientMaxConn int
	// ClientMaxServerConns is how many virtual connections servers may
	// have dialed to one client at once; past it a server's Dial to that
	// client is refused (Refuse, counted as RefuseLimit), so that servers
	// cannot pile up state on one client without bound (0: 64; negative:
	// unlimited).
	ClientMaxServerConns int
	// ClientBufferSize is a client connection's read buffer, in bytes (0: 2 KiB).
	ClientBufferSize int
	// ClientIdleTimeout closes a client that sends nothing for this long
	// (0: 30 s; negative: never).
	ClientIdleTimeout time.Duration
	// ClientSendChanSize is how many frames may wait to be written to one
	// client behind a batch its writer has not finished writing; past it
	// the client is disconnected as a slow consumer (0: 1000). Frames a
	// reader queued and writes at the end of its own batch do not count:
	// a burst does not make a reading client slow. The queue grows with
	// use; it is not preallocated.
	ClientSendChanSize int
	// ClientSendQueueBytes bounds, in bytes, the frames waiting to be
	// written to one client plus those being written; a frame that finds
	// it reached disconnects the client as a slow consumer. One client
	// thus holds less than ClientSendQueueBytes + MaxPacket of the
	// gateway's memory (0: 1 MiB).
	ClientSendQueueBytes int

	// ClientMaxConns caps the client connections open at once (physical
	// connections, not virtual ones); past it new clients are closed at
	// once and counted (reason "connection limit"). 0: derived from the
	// process's file descriptor limit, RLIMIT_NOFILE, less FDReserve (see
	// FDLimits), so that clients can never take the descriptors servers
	// and the admin port need; negative: unlimited.
	ClientMaxConns int
	// FDReserve is how many file descriptors the derived ClientMaxConns
	// keeps out of the clients' reach (0: DefaultFDReserve of this
	// config). An embedding program that holds descriptors of its own, or
	// listens with a wrapper that holds connections before the gateway
	// sees them (snet's handshakes), adds them here.
	FDReserve int

	// ServerAuthPassword is the key servers prove with the MD5 challenge,
	// for the IDs ServerKeys does not list. When it is empty and there are
	// no ServerKeys, only servers connecting from a loopback address may
	// try the handshake; others are closed before a challenge and counted
	// (reason "auth failed").
	ServerAuthPassword string
	// ServerKeys, when not nil, gives server IDs keys of their own: a
	// server announcing an ID it lists must prove that ID's key, and no
	// other key registers it; an ID it does not list is admitted with
	// ServerAuthPassword if that is not empty, and not at all if it is.
	// Gateway.SetServerAuth replaces both at run time. (nil: every ID
	// proves ServerAuthPassword.)
	ServerKeys *ServerKeys
	// ServerAuthTimeout bounds the server handshake (0: 3 s).
	ServerAuthTimeout time.Duration
	// ServerMaxHandshakes caps the server-port connections still in their
	// handshake; past it new ones are closed at once and counted (reason
	// "connection limit"), so a flood of silent sockets cannot pile up.
	// The last eighth admits only the sources servers registered from
	// lately (0: 1024; negative: unlimited).
	ServerMaxHandshakes int
	// ServerMaxHandshakesPerSource caps the handshakes in progress from
	// one source (an IPv4 address, or an IPv6 /64); past it new ones from
	// that source are closed at once and counted (reason "connection
	// limit"), so that one address cannot take every ServerMaxHandshakes
	// slot from the servers of other addresses (0: 8; negative: no
	// per-source cap).
	ServerMaxHandshakesPerSource int
	// ServerAuthFailBurst and ServerAuthFailInterval slow down a source
	// (an IPv4 address, or an IPv6 /64) that keeps failing the handshake:
	// it may fail Burst times in a row, then once per Interval; meanwhile
	// its new connections are closed before a challenge is sent (reason
	// "auth throttled"). Each handshake takes its attempt before its
	// challenge and gives it back when it succeeds, so parallel
	// connections get no more guesses than sequential ones; one that finds
	// every attempt held by its source's handshakes in progress waits for
	// one of them to end. (0: 5 and 1 s; a negative Burst disables the
	// limit.)
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
	// ServerSendQueueBytes bounds, in bytes, the frames waiting to be
	// written to one server plus those being written; when it is reached
	// the clients sending to that server are paused (back-pressure), never
	// dropped. What one client puts ahead of the others is bounded by
	// ServerSendQueueBytesPerClient; this bounds what all of them hold (4 MiB
	// at 20 MiB/s: 200 ms of the server's reading), though with many
	// clients paused the readers woken race for room, so one client's wait
	// is not bounded by it (docs/reliability.md §17) (0: 4 MiB).
	ServerSendQueueBytes int
	// ServerSendQueueBytesPerClient bounds, in bytes, what one client may
	// have queued and being written to one server: past it that client's
	// reading is paused until the server's writer has written its batch,
	// while other clients' frames go on. So a client flooding a slow server
	// holds at most this much ahead of the server's other clients, whatever
	// ServerSendQueueBytes is (128 KiB at 20 MiB/s: 6 ms), and clients that
	// send bursts of a few frames never notice (0: 128 KiB; a value at or
	// above ServerSendQueueBytes: only the total bound applies). 64 KiB cost
	// one bulk client 18 % of its round trips per gateway CPU-second
	// (docs/benchmarks.md); 128 KiB, 2 %.
	ServerSendQueueBytesPerClient int
	// ServerMaxGroups bounds the groups one server connection may have
	// at once (fan-out, docs/protocol.md §7; a group exists while it has
	// members); a Join that would start one more is ignored, counted
	// (Stats.JoinsRefused) and logged, rate-limited (0: 65,536;
	// negative: unlimited).
	ServerMaxGroups int
	// ServerMaxMemberships bounds the memberships one server connection
	// may have at once, in all its groups together; a Join past it is
	// ignored, counted and logged, rate-limited. Each costs the gateway
	// about 85 bytes (83 measured, docs/reliability.md §18), so the
	// default bounds a server's groups to about 85 MiB (0: 1,048,576;
	// negative: unlimited).
	ServerMaxMemberships int

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
	if c.LargeFrameBudgetPerSource == 0 {
		c.LargeFrameBudgetPerSource = max(c.LargeFrameBudget/8, int64(c.MaxPacket)+proto.SizeOfLength)
	}
	setInt(&c.ClientMaxConn, DefaultClientMaxConn)
	setInt(&c.ClientBufferSize, DefaultClientBufferSize)
	setDur(&c.ClientIdleTimeout, DefaultClientIdleTimeout)
	setInt(&c.ClientSendChanSize, DefaultClientSendChanSize)
	setInt(&c.ClientSendQueueBytes, DefaultClientSendQueueBytes)
	setDur(&c.ServerAuthTimeout, DefaultServerAuthTimeout)
	setInt(&c.ServerBufferSize, DefaultServerBufferSize)
	setDur(&c.ServerIdleTimeout, DefaultServerIdleTimeout)
	setInt(&c.ServerSendChanSize, DefaultServerSendChanSize)
	setInt(&c.ServerSendQueueBytes, DefaultServerSendQueueBytes)
	setInt(&c.ServerSendQueueBytesPerClient, DefaultServerSendQueueBytesPerClient)
	setInt(&c.ServerMaxHandshakes, DefaultServerMaxHandshakes)
	setInt(&c.ServerMaxHandshakesPerSource, DefaultServerMaxHandshakesPerSource)
	setInt(&c.ClientMaxServerConns, DefaultClientMaxServerConns)
	setInt(&c.ServerMaxGroups, DefaultServerMaxGroups)
	setInt(&c.ServerMaxMemberships, DefaultServerMaxMemberships)
	if c.FDReserve == 0 {
		c.FDReserve = DefaultFDReserve(c)
	}
	if c.ClientMaxConns == 0 {
		c.ClientMaxConns = FDLimits(c).ClientMaxConns
	}
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
		{"FDReserve", c.FDReserve},
		{"ClientBufferSize", c.ClientBufferSize},
		{"ClientSendChanSize", c.ClientSendChanSize},
		{"ClientSendQueueBytes", c.ClientSendQueueBytes},
		{"ServerBufferSize", c.ServerBufferSize},
		{"ServerSendChanSize", c.ServerSendChanSize},
		{"ServerSendQueueBytes", c.ServerSendQueueBytes},
		{"ServerSendQueueBytesPerClient", c.ServerSendQueueBytesPerClient},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", f.name, f.v))
		}
	}
	// A frame is its Length field and Length bytes: MaxPacket + 4 at most.
	if c.LargeFrameBudget > 0 && int64(c.MaxPacket)+proto.SizeOfLength > c.LargeFrameBudget {
		errs = append(errs, fmt.Errorf("MaxPacket %d is above LargeFrameBudget %d: no frame that large could be read", c.MaxPacket, c.LargeFrameBudget))
	}
	if c.LargeFrameBudget > 0 && c.LargeFrameBudgetPerSource > 0 && int64(c.MaxPacket)+proto.SizeOfLength > c.LargeFrameBudgetPerSource {
		errs = append(errs, fmt.Errorf("MaxPacket %d is above LargeFrameBudgetPerSource %d: no frame that large could be read", c.MaxPacket, c.LargeFrameBudgetPerSource))
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
