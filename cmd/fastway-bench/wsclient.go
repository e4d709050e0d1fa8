package main

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	fwws "github.com/fastway-go/fastway/internal/ws"
	"github.com/gobwas/ws"
)

// The client end of docs/protocol.md §8 (-ws), as a browser or an H5 SDK
// plays it: after the upgrade every Write goes out as one masked binary
// message (RFC 6455 §5.3: a fresh masking key per frame, from a CSPRNG),
// so the frames a connection sends at once (echo mode writes the replies to
// one read together, K of them when K messages are in flight) share one
// message, and Read returns the payload bytes of the server's binary
// messages as a stream, decoded in place in the caller's buffer.

// errWSProtocol wraps what the bench rejects from a server.
var errWSProtocol = errors.New("websocket protocol error")

// wsDial upgrades conn, a fresh TCP connection to addr, with a GET of path
// offering the fastway subprotocol; it returns the WebSocket connection.
func wsDial(conn net.Conn, addr, path string) (*wsConn, error) {
	if err := conn.SetDeadline(time.Now().Add(setupTimeout)); err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: "ws", Host: addr, Path: path}
	d := ws.Dialer{Protocols: []string{"fastway"}}
	br, _, err := d.Upgrade(conn, u)
	if err != nil {
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	c := newWSConn(conn)
	if br != nil {
		// Frames the server sent right behind its 101.
		c.early = make([]byte, br.Buffered())
		if _, err := io.ReadFull(br, c.early); err != nil {
			return nil, err
		}
		ws.PutReader(br)
	}
	return c, conn.SetDeadline(time.Time{})
}

// newWSConn wraps conn, already upgraded.
func newWSConn(conn net.Conn) *wsConn {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return &wsConn{Conn: conn, rng: mrand.NewChaCha8(seed)}
}

// wsConn is a client WebSocket connection as a net.Conn carrying the byte
// stream of binary messages. One goroutine reads; writes are serialised
// (the reader answers Pings itself).
type wsConn struct {
	net.Conn
	early []byte // bytes read past the upgrade response

	// Reader state.
	hdr    [10]byte // a server frame header being read (unmasked: at most 10 bytes)
	hdrN   int      // bytes of hdr read so far; -1 inside a payload
	remain uint64   // payload bytes of the current frame still to come
	op     ws.OpCode
	inMsg  bool   // inside a fragmented binary message
	ctrl   []byte // a control frame's payload, gathered
	rerr   error  // returned once the payload before it is read

	wmu  sync.Mutex
	wbuf []byte         // under wmu: the frame being written
	rng  *mrand.ChaCha8 // under wmu: masking keys
}

// Write sends p as one masked binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.writeFrame(ws.OpBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeFrame writes one masked, unfragmented frame.
func (c *wsConn) writeFrame(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], uint32(c.rng.Uint64()))
	b := fwws.EncodeClientFrame(c.wbuf[:0], op, true, p, mask)
	c.wbuf = b
	_, err := c.Conn.Write(b)
	return err
}

// Read reads payload bytes of the server's binary messages into p, at
// least one unless it returns an error. A Close frame ends the stream with
// an error naming its code.
func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.rerr != nil {
			return 0, c.rerr
		}
		var n int
		var err error
		if len(c.early) > 0 {
			n = copy(p, c.early)
			c.early = c.early[n:]
		} else {
			n, err = c.Conn.Read(p)
		}
		out, derr := c.decode(p[:n])
		if derr != nil {
			c.rerr = derr
		} else if err != nil {
			c.rerr = err
		}
		if out > 0 {
			return out, nil
		}
	}
}

// decode moves the payload bytes of the raw bytes b down to the front of
// b, dropping frame headers, and returns how many there are.
func (c *wsConn) decode(b []byte) (int, error) {
	out, i := 0, 0
	for i < len(b) {
		if c.hdrN >= 0 {
			k, done, err := c.readHeader(b[i:])
			i += k
			if err != nil {
				return out, err
			}
			if !done {
				break
			}
			if c.remain == 0 {
				if err := c.endFrame(); err != nil {
					return out, err
				}
				continue
			}
			c.hdrN = -1
		}
		k := min(uint64(len(b)-i), c.remain)
		seg := b[i : i+int(k)]
		if c.op.IsControl() {
			c.ctrl = append(c.ctrl, seg...)
		} else {
			out += copy(b[out:], seg)
		}
		i += int(k)
		c.remain -= k
		if c.remain == 0 {
			if err := c.endFrame(); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// readHeader takes header bytes from b; done says the header is whole and
// c.op and c.remain describe its frame.
func (c *wsConn) readHeader(b []byte) (taken int, done bool, err error) {
	need := 2
	for {
		if c.hdrN >= 2 {
			switch c.hdr[1] & 0x7f {
			case 126:
				need = 4
			case 127:
				need = 10
			}
		}
		if c.hdrN >= need {
			break
		}
		if taken == len(b) {
			return taken, false, nil
		}
		k := copy(c.hdr[c.hdrN:need], b[taken:])
		c.hdrN += k
		taken += k
		if c.hdrN == 2 {
			if err := c.checkFirst(); err != nil {
				return taken, false, err
			}
		}
	}
	switch l := c.hdr[1] & 0x7f; l {
	case 126:
		c.remain = uint64(binary.BigEndian.Uint16(c.hdr[2:]))
	case 127:
		c.remain = binary.BigEndian.Uint64(c.hdr[2:])
	default:
		c.remain = uint64(l)
	}
	c.ctrl = c.ctrl[:0]
	return taken, true, nil
}

// checkFirst checks a server frame's first two header bytes.
func (c *wsConn) checkFirst() error {
	b0, b1 := c.hdr[0], c.hdr[1]
	fin, op := b0&0x80 != 0, ws.OpCode(b0&0x0f)
	switch {
	case b0&0x70 != 0:
		return fmt.Errorf("%w: reserved bits set", errWSProtocol)
	case b1&0x80 != 0:
		return fmt.Errorf("%w: masked frame from the server", errWSProtocol)
	case op.IsControl():
		if !fin || b1&0x7f > 125 {
			return fmt.Errorf("%w: fragmented or long control frame", errWSProtocol)
		}
	case op == ws.OpBinary:
		if c.inMsg {
			return fmt.Errorf("%w: new message inside a fragmented one", errWSProtocol)
		}
		c.inMsg = !fin
	case op == ws.OpContinuation:
		if !c.inMsg {
			return fmt.Errorf("%w: continuation outside a message", errWSProtocol)
		}
		c.inMsg = !fin
	default:
		return fmt.Errorf("%w: message of opcode %d (the stream is binary)", errWSProtocol, op)
	}
	c.op = op
	return nil
}

// endFrame acts on a frame whose payload is all read: a Ping is answered
// with a Pong, a Close ends the stream.
func (c *wsConn) endFrame() error {
	c.hdrN = 0
	switch c.op {
	case ws.OpPing:
		if err := c.writeFrame(ws.OpPong, c.ctrl); err != nil {
			return err
		}
	case ws.OpClose:
		code := ws.StatusNoStatusRcvd
		if len(c.ctrl) >= 2 {
			code = ws.StatusCode(binary.BigEndian.Uint16(c.ctrl))
		}
		return fmt.Errorf("websocket: the server closed with status %d: %w", code, io.EOF)
	}
	c.op = ws.OpContinuation
	return nil
}
