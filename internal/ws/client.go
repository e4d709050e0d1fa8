package ws

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// DialOptions configure Dial.
type DialOptions struct {
	Origin    string      // the Origin header; empty: none
	Protocols []string    // subprotocols offered; nil: none
	TLS       *tls.Config // for wss:// URLs
	// NetDial, when set, opens the TCP connection (to set socket options
	// before the connect, say).
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Client is the client end of a WebSocket connection, for tests and the
// bench tool: Write sends one masked binary message; ReadMessage returns
// the next data message whole (answering Pings); Read returns the stream
// of payload bytes. One goroutine reads; writes are serialised.
type Client struct {
	c        net.Conn
	r        io.Reader
	Protocol string // the subprotocol the server chose, or ""

	wmu sync.Mutex
	buf []byte // Read's rest of a message
}

// Dial opens a WebSocket connection to url (ws:// or wss://).
func Dial(ctx context.Context, url string, o DialOptions) (*Client, error) {
	d := ws.Dialer{Protocols: o.Protocols, TLSConfig: o.TLS, NetDial: o.NetDial}
	if o.Origin != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Origin": {o.Origin}})
	}
	c, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	var r io.Reader = c
	if br != nil {
		r = io.MultiReader(br, c) // frames the server sent right behind its response
	}
	cl := &Client{c: c, r: bufio.NewReaderSize(r, 64<<10), Protocol: hs.Protocol}
	return cl, nil
}

// NetConn is the connection under the WebSocket.
func (c *Client) NetConn() net.Conn { return c.c }

// Close closes the connection without a Close frame.
func (c *Client) Close() error { return c.c.Close() }

// Write sends p as one binary message.
func (c *Client) Write(p []byte) (int, error) {
	if err := c.WriteFrame(ws.OpBinary, true, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteFrame sends one masked frame.
func (c *Client) WriteFrame(op ws.OpCode, fin bool, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.c.Write(EncodeClientFrame(nil, op, fin, p, ws.NewMask()))
	return err
}

// WriteFragmented sends p as one binary message in fragments of the given
// sizes (the last fragment takes the rest).
func (c *Client) WriteFragmented(p []byte, sizes ...int) error {
	op := ws.OpBinary
	for _, n := range sizes {
		n = min(n, len(p))
		if err := c.WriteFrame(op, false, p[:n]); err != nil {
			return err
		}
		p, op = p[n:], ws.OpContinuation
	}
	return c.WriteFrame(op, true, p)
}

// EncodeClientFrame appends a client frame (masked with mask) to dst.
func EncodeClientFrame(dst []byte, op ws.OpCode, fin bool, p []byte, mask [4]byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	switch n := len(p); {
	case n <= 125:
		dst = append(dst, b0, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, b0, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, b0, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, p...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// ErrCloseFrame is what ReadMessage returns for the server's Close frame;
// CloseError carries its code.
var ErrCloseFrame = errors.New("websocket: close frame")

// CloseError is the server's Close frame.
type CloseError struct{ Code ws.StatusCode }

func (e *CloseError) Error() string { return fmt.Sprintf("websocket: closed with status %d", e.Code) }
func (e *CloseError) Unwrap() error { return ErrCloseFrame }

// ReadMessage returns the next data message: its opcode (binary or text)
// and its payload, the fragments joined. Pings are answered with Pongs.
func (c *Client) ReadMessage() (ws.OpCode, []byte, error) {
	var msg []byte
	var op ws.OpCode
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return 0, nil, err
		}
		if h.Masked {
			return 0, nil, fmt.Errorf("%w: masked frame from the server", ErrProtocol)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.r, p); err != nil {
			return 0, nil, err
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := c.WriteFrame(ws.OpPong, true, p); err != nil {
				return 0, nil, err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code := ws.StatusNoStatusRcvd
			if len(p) >= 2 {
				code = ws.StatusCode(binary.BigEndian.Uint16(p))
			}
			return ws.OpClose, p, &CloseError{Code: code}
		case ws.OpContinuation:
		default:
			op = h.OpCode
		}
		msg = append(msg, p...)
		if h.Fin {
			return op, msg, nil
		}
	}
}

// ReadRaw reads the bytes the server sent that no ReadMessage or Read has
// taken yet, undecoded: what follows the Close frame, say, which must be
// nothing.
func (c *Client) ReadRaw(p []byte) (int, error) { return c.r.Read(p) }

// Read reads the payload stream of the server's binary messages.
func (c *Client) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		op, m, err := c.ReadMessage()
		if err != nil {
			return 0, err
		}
		if op != ws.OpBinary {
			return 0, fmt.Errorf("%w: message of opcode %d", ErrProtocol, op)
		}
		c.buf = m
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// LocalAddr, RemoteAddr and the deadlines are the socket's, so a Client is
// a net.Conn.
func (c *Client) LocalAddr() net.Addr                { return c.c.LocalAddr() }
func (c *Client) RemoteAddr() net.Addr               { return c.c.RemoteAddr() }
func (c *Client) SetDeadline(t time.Time) error      { return c.c.SetDeadline(t) }
func (c *Client) SetReadDeadline(t time.Time) error  { return c.c.SetReadDeadline(t) }
func (c *Client) SetWriteDeadline(t time.Time) error { return c.c.SetWriteDeadline(t) }
