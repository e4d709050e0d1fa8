package proto

import (
	"fmt"
	"time"

	"github.com/fastway-go/fastway/slab"
)

// Endpoint defaults: what a zero EndPointCfg field means.
const (
	// DefaultSendChanSize is the endpoint's send queue, in frames.
	DefaultSendChanSize = 1024
	// DefaultRecvChanSize is each virtual connection's receive queue, in
	// messages.
	DefaultRecvChanSize = 1024
	// DefaultPingInterval is how long an endpoint may send nothing before it
	// sends a Ping; well below the gateway's default idle timeout (30 s).
	DefaultPingInterval = 10 * time.Second
	// DefaultPingTimeout is how long an endpoint waits for any frame after a
	// Ping before it runs TimeoutCallback (2 × DefaultPingInterval).
	DefaultPingTimeout = 2 * DefaultPingInterval
	// AcceptBacklog bounds the virtual connections that peers opened to an
	// endpoint (Connect) and that Accept has not returned yet. A Connect past
	// it is answered with Close: the peer sees its virtual connection closed
	// at once.
	AcceptBacklog = 1024
)

// MsgFormat turns messages into the bytes of a data frame and back.
//
// EncodeMessage may return a slice it keeps (the endpoint copies it into the
// frame before Send returns). DecodeMessage must not keep msg after it
// returns: msg may be a pooled buffer that is reused. Both may be called from
// several goroutines at once.
type MsgFormat interface {
	EncodeMessage(msg any) ([]byte, error)
	DecodeMessage(msg []byte) (any, error)
}

// EndPointCfg configures an EndPoint (NewClient, DialServer). The zero value
// works: each zero field takes the default named in its comment.
type EndPointCfg struct {
	// MsgFormat encodes what Conn.Send takes and decodes what Conn.Receive
	// returns. nil: messages are []byte; Receive returns a slice the caller
	// owns.
	MsgFormat MsgFormat

	// MemPool supplies frame buffers, both for frames read from the gateway
	// and for frames queued to it. nil: slab.NoPool{} (plain allocation; a
	// received message is then handed over without a copy).
	MemPool slab.Pool

	// MaxPacket bounds a frame's Length field in bytes (ConnID plus
	// message), for frames sent and received. It should match the
	// gateway's. 0: DefaultMaxPacket (512 KiB).
	MaxPacket int

	// BufferSize is the read buffer in bytes; several small frames arrive in
	// one read. On connections without writev (TLS, pipes) it is also how many
	// bytes of small frames the writer gathers into one Write. 0:
	// DefaultBufferSize (4 KiB).
	BufferSize int

	// SendChanSize is how many frames the endpoint queues to its writer.
	// When the queue is full, Send, Dial and Conn.Close block until there is
	// room, the virtual connection or endpoint closes, or their context ends.
	// 0: DefaultSendChanSize (1024 frames).
	SendChanSize int

	// RecvChanSize is how many received messages each virtual connection
	// queues for Receive. The endpoint's reader never waits for a slow
	// receiver: a message that does not fit closes that virtual connection on
	// both sides (Close goes to the gateway); Receive then returns the
	// messages queued before it and then ErrRecvOverflow. Its siblings carry
	// on. 0: DefaultRecvChanSize (1024 messages).
	RecvChanSize int

	// PingInterval: when the endpoint has sent nothing for this long it sends
	// a Ping (the gateway answers each one). 0: DefaultPingInterval (10 s);
	// negative: no keep-alive at all (no Ping, no timeout).
	PingInterval time.Duration

	// PingTimeout: when nothing at all arrives for this long after a Ping,
	// TimeoutCallback runs. 0: DefaultPingTimeout (20 s); negative: never
	// time out (Pings are still sent).
	PingTimeout time.Duration

	// TimeoutCallback runs when PingTimeout passed with nothing received.
	// Return true to keep the endpoint open (for instance, it started a
	// reconnect of the underlying stream), false to close it with
	// ErrPingTimeout. nil: close the endpoint. It runs on the endpoint's
	// timer goroutine: it must not call Close on this endpoint (Close waits
	// for it); return false instead.
	TimeoutCallback func() bool

	// ServerID is the ID a backend server announces in the handshake
	// (DialServer only): any u32, 0 included (docs/protocol.md §1.4).
	// Clients leave it 0.
	ServerID uint32

	// AuthKey is the secret shared with the gateway's server port, used by
	// the handshake (DialServer only).
	AuthKey string
}

// withDefaults returns c with every zero field set to its default.
func (c EndPointCfg) withDefaults() EndPointCfg {
	if c.MemPool == nil {
		c.MemPool = slab.NoPool{}
	}
	if c.MaxPacket == 0 {
		c.MaxPacket = DefaultMaxPacket
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.SendChanSize == 0 {
		c.SendChanSize = DefaultSendChanSize
	}
	if c.RecvChanSize == 0 {
		c.RecvChanSize = DefaultRecvChanSize
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	return c
}

// Validate reports a field that no default can fix: a negative size, or a
// MaxPacket too small for the protocol's commands.
func (c EndPointCfg) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MaxPacket < MaxCmdSize-SizeOfLength:
		return fmt.Errorf("%w: MaxPacket %d < %d", ErrBadConfig, c.MaxPacket, MaxCmdSize-SizeOfLength)
	case c.BufferSize < 0:
		return fmt.Errorf("%w: BufferSize %d < 0", ErrBadConfig, c.BufferSize)
	case c.SendChanSize < 0:
		return fmt.Errorf("%w: SendChanSize %d < 0", ErrBadConfig, c.SendChanSize)
	case c.RecvChanSize < 0:
		return fmt.Errorf("%w: RecvChanSize %d < 0", ErrBadConfig, c.RecvChanSize)
	}
	return nil
}
