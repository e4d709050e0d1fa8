// Package proto is fastway's wire format and its Go endpoints.
//
// The wire format (docs/protocol.md, ../shared/PROTOCOL.md §1-2) is a stream
// of little-endian frames:
//
//	Length u32 | ConnID u32 | Message (Length-4 bytes)
//
// Length counts everything after itself. ConnID 0 carries a command (Dial,
// Accept, Connect, Refuse, Close, Ping); any other ConnID carries data for
// that virtual connection. Encode and decode functions in frame.go are pure
// functions over []byte; FrameReader reads whole frames from a stream into
// pooled buffers; the server handshake lives in handshake.go.
//
// The endpoints (NewClient, DialServer) speak this protocol on behalf of game
// clients and backend servers: an EndPoint is one physical connection to a
// gateway carrying many virtual connections (*Conn). NewFleet is one
// server over a fleet of gateways: a link to each gateway its Discovery
// reports, Accept merged, fan-out spanning them (docs/scaling.md).
package proto
