package gateway

import "math"

// Descriptors the default ClientMaxConns leaves to everything but client
// connections (DefaultFDReserve).
const (
	// fdBase covers standard input, output and error, the listeners, the
	// runtime's poller, the log, pid, command and profile files, and the
	// admin port's connections.
	fdBase = 64
	// fdServerLinks is room for registered server connections.
	fdServerLinks = 256
)

// FDLimit says how the default ClientMaxConns follows from the process's
// file descriptor limit.
type FDLimit struct {
	// Limit is the process's RLIMIT_NOFILE soft limit (the Go runtime
	// raises it to the hard limit at start); 0 when it is unknown (not a
	// Unix system), and then ClientMaxConns is -1: unlimited.
	Limit int
	// Reserve is the config's FDReserve: descriptors client connections
	// may never take.
	Reserve int
	// ClientMaxConns is Limit − Reserve, but at least Limit/2: a limit so
	// low that it cannot hold the reserve leaves clients half of it
	// (Short is then set).
	ClientMaxConns int
	// Short reports that Limit − Reserve was below Limit/2.
	Short bool
}

// DefaultFDReserve returns the descriptors c keeps for other than client
// connections when FDReserve is 0: 64 (standard streams, listeners, the
// runtime, files, admin connections) + ServerMaxHandshakes (1024 when
// unlimited) + 256 registered servers. With the defaults, 1,344: a server
// can register and the admin port answer while clients hold every
// descriptor they may and a flood fills every handshake slot.
func DefaultFDReserve(c Config) int {
	hs := c.ServerMaxHandshakes
	if hs <= 0 {
		hs = DefaultServerMaxHandshakes
	}
	return fdBase + hs + fdServerLinks
}

// FDLimits returns the descriptor limit of the process and the
// ClientMaxConns derived from it for c (what a zero ClientMaxConns
// becomes).
func FDLimits(c Config) FDLimit {
	r := c.FDReserve
	if r <= 0 {
		r = DefaultFDReserve(c)
	}
	return deriveFD(fdLimit(), r)
}

// deriveFD is FDLimits for a descriptor limit and a reserve.
func deriveFD(limit, reserve int) FDLimit {
	l := FDLimit{Limit: limit, Reserve: reserve, ClientMaxConns: -1}
	if limit > 0 {
		l.ClientMaxConns = limit - reserve
		if l.ClientMaxConns < limit/2 {
			l.ClientMaxConns, l.Short = max(limit/2, 1), true
		}
	}
	return l
}

// clampLimit turns an rlimit into an int (RLIM_INFINITY and other huge
// values: MaxInt32).
func clampLimit(v uint64) int {
	if v > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(v)
}
