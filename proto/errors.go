package proto

import "errors"

// Wire-format errors. A peer that triggers one of these has broken the
// protocol; the gateway closes that physical connection only.
var (
	// ErrShortFrame: a frame's Length is below the minimum (4, the ConnID).
	ErrShortFrame = errors.New("fastway: frame Length too short")
	// ErrFrameTooLarge: a frame's Length exceeds MaxPacket.
	ErrFrameTooLarge = errors.New("fastway: frame Length exceeds MaxPacket")
	// ErrBadLength: a buffer handed to a decoder is not one whole frame.
	ErrBadLength = errors.New("fastway: frame Length does not match its size")
	// ErrBadCommand: a command frame whose size does not match its type.
	ErrBadCommand = errors.New("fastway: malformed command")
	// ErrBudgetExceeded: a large frame would take the bytes held by frames
	// still arriving past their Budget.
	ErrBudgetExceeded = errors.New("fastway: too many bytes held by frames still arriving")
	// ErrUnknownCmd: a command frame with an unknown type byte.
	ErrUnknownCmd = errors.New("fastway: unknown command type")
)

// Handshake errors.
var (
	// ErrAuthFailed: the server's digest did not match the gateway's key.
	ErrAuthFailed = errors.New("fastway: server authentication failed")
	// ErrBadServerID is no longer returned: server ID 0 is valid
	// (docs/protocol.md §1.4), as it is for the original gateway.
	//
	// Deprecated: nothing returns it; it is kept so that code comparing
	// against it still compiles.
	ErrBadServerID = errors.New("fastway: server ID 0 is invalid")
)

// Endpoint errors.
var (
	// ErrRefused: the gateway answered a Dial with Refuse.
	ErrRefused = errors.New("fastway: dial refused")
	// ErrClosed: the endpoint or virtual connection is closed.
	ErrClosed = errors.New("fastway: closed")
	// ErrRecvOverflow: a virtual connection's receive queue overflowed and it
	// was closed rather than stall its siblings.
	ErrRecvOverflow = errors.New("fastway: receive queue overflow")
	// ErrSendQueueFull: the endpoint's send queue is full.
	ErrSendQueueFull = errors.New("fastway: send queue full")
	// ErrMsgTooLarge: a message does not fit in MaxPacket.
	ErrMsgTooLarge = errors.New("fastway: message exceeds MaxPacket")
	// ErrNotBytes: Send got a message that is not []byte and no MsgFormat is
	// configured.
	ErrNotBytes = errors.New("fastway: message is not []byte and no MsgFormat is set")
	// ErrProtocol: the gateway broke the protocol (unknown or misplaced
	// command, malformed frame, reply without a pending Dial); the endpoint
	// closes.
	ErrProtocol = errors.New("fastway: protocol violation by gateway")
	// ErrPingTimeout: nothing arrived within PingTimeout of a Ping and
	// TimeoutCallback did not keep the endpoint open. It is a net.Error whose
	// Timeout method reports true.
	ErrPingTimeout error = pingTimeoutError{}
	// ErrBadConfig: an EndPointCfg field is out of range.
	ErrBadConfig = errors.New("fastway: invalid endpoint config")
	// ErrNotServer: a fan-out call (Multicast, Broadcast, NewGroup) on a
	// client's endpoint; only servers fan out (docs/protocol.md §7).
	ErrNotServer = errors.New("fastway: fan-out is for server endpoints")
	// ErrForeignConn: a fan-out call named a virtual connection of another
	// endpoint.
	ErrForeignConn = errors.New("fastway: virtual connection of another endpoint")
)
