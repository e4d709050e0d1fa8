package gateway

import "errors"

// ErrGatewayClosed is returned by ServeClients and ServeServers after
// Shutdown or Stop.
var ErrGatewayClosed = errors.New("fastway: gateway closed")

// errLinkClosed is returned internally when a frame is pushed to a link that
// is closing; the frame has been freed.
var errLinkClosed = errors.New("fastway: link closed")

// errRepliesUnread is why a server that leaves the replies to its own
// commands unread past maxUnreadReplies is closed (as a slow consumer).
var errRepliesUnread = errors.New("fastway: server does not read the replies to its commands")

// errThrottled stands for the handshake a throttled source never began.
var errThrottled = errors.New("fastway: source throttled")

// errStopped is returned by a link's reads once the gateway stops it.
var errStopped = errors.New("fastway: link stopped by shutdown")

// errSenderClosed is why a frame waiting for room at a server was dropped:
// the client that sent it was closed meanwhile.
var errSenderClosed = errors.New("fastway: sender closed while waiting for room")

// errBudgetEvicted is why a client whose large frame was evicted from a full
// LargeFrameBudget was closed.
var errBudgetEvicted = errors.New("fastway: large frame evicted from the full LargeFrameBudget: its source was over its fair share")

// Reason says why a physical connection was closed. Every disconnect is
// logged with its reason and counted per reason in Stats.
type Reason uint8

const (
	// ReasonNone: the connection is open.
	ReasonNone Reason = iota
	// ReasonPeerClosed: the peer closed its end (EOF or reset).
	ReasonPeerClosed
	// ReasonIdleTimeout: nothing was received for the idle timeout.
	ReasonIdleTimeout
	// ReasonProtocolError: the peer broke the wire protocol.
	ReasonProtocolError
	// ReasonSlowConsumer: a client's send queue overflowed, or a server
	// left the replies to its own commands unread past its bound.
	ReasonSlowConsumer
	// ReasonWriteError: writing to the peer failed or timed out.
	ReasonWriteError
	// ReasonAuthFailed: a server failed or timed out its handshake.
	ReasonAuthFailed
	// ReasonShutdown: the gateway is shutting down.
	ReasonShutdown
	// ReasonReadError: reading failed for another reason.
	ReasonReadError
	// ReasonLimit: a connection cap (ClientMaxConns, ServerMaxHandshakes)
	// was reached; the new connection was closed at once.
	ReasonLimit
	// ReasonAuthThrottled: the source failed the handshake too often; its
	// new connection was closed before a challenge.
	ReasonAuthThrottled

	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:          "none",
	ReasonPeerClosed:    "peer closed",
	ReasonIdleTimeout:   "idle timeout",
	ReasonProtocolError: "protocol error",
	ReasonSlowConsumer:  "slow consumer",
	ReasonWriteError:    "write error",
	ReasonAuthFailed:    "auth failed",
	ReasonShutdown:      "shutdown",
	ReasonReadError:     "read error",
	ReasonLimit:         "connection limit",
	ReasonAuthThrottled: "auth throttled",
}

// String returns the reason as logs and metrics spell it.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every disconnect reason (ReasonNone excluded), for callers
// that export counters per reason.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := ReasonPeerClosed; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// RefuseReason says why a Dial was refused.
type RefuseReason uint8

const (
	// RefuseUnknownID: no server (or client) with that ID is connected.
	RefuseUnknownID RefuseReason = iota
	// RefuseLimit: the client already has ClientMaxConn dialed connections
	// (or, for a server's Dial, ClientMaxServerConns dialed to it).
	RefuseLimit
	// RefusePeerClosing: the target is closing (or the dialer is).
	RefusePeerClosing
	// RefuseInvalidID: a server's Dial(0) (no client has ID 0).
	RefuseInvalidID

	numRefuseReasons
)

var refuseNames = [numRefuseReasons]string{
	RefuseUnknownID:   "unknown id",
	RefuseLimit:       "limit",
	RefusePeerClosing: "peer closing",
	RefuseInvalidID:   "invalid id",
}

// String returns the refuse reason as logs and metrics spell it.
func (r RefuseReason) String() string {
	if r < numRefuseReasons {
		return refuseNames[r]
	}
	return "unknown"
}

// RefuseReasons lists every refuse reason.
func RefuseReasons() []RefuseReason {
	rs := make([]RefuseReason, 0, numRefuseReasons)
	for r := RefuseReason(0); r < numRefuseReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}
