package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	fwws "github.com/fastway-go/fastway/internal/ws"
)

// serveFastway is the gateway's own transport: internal/ws's Listener
// (gobwas/ws upgrades on the raw connection, no HTTP server; wrap wraps
// the listener) and Conn.
func serveFastway(wl net.Listener, e *echo) error {
	for {
		c, err := wl.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue // out of descriptors: the listener accepts again
		}
		go func(c *fwws.Conn) {
			defer c.Close()
			var s stream
			for {
				n, err := c.ReadLazy(s.get, s.put)
				if n > 0 {
					if werr := e.consume(&s, n, func(b []byte) error { _, err := c.Write(b); return err }); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}(c.(*fwws.Conn))
	}
}

// gorillaUpgrader: any Origin, the HTTP server's read buffer reused
// (ReadBufferSize 0), write buffers taken from a pool per message.
var gorillaUpgrader = gorilla.Upgrader{
	Subprotocols:    []string{fwws.Subprotocol},
	CheckOrigin:     func(*http.Request) bool { return true },
	WriteBufferPool: &sync.Pool{},
}

func serveGorilla(ln net.Listener, e *echo) error {
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := gorillaUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(int64(e.maxPacket) + 64<<10)
		write := func(b []byte) error { return c.WriteMessage(gorilla.BinaryMessage, b) }
		var s stream
		for {
			typ, rd, err := c.NextReader() // waits holding only gorilla's buffers
			if err != nil || typ != gorilla.BinaryMessage {
				return
			}
			if readMessage(&s, rd, e, write) != nil {
				return
			}
		}
	}))
}

func serveCoder(ln net.Listener, e *echo) error {
	opts := &websocket.AcceptOptions{
		Subprotocols:       []string{fwws.Subprotocol},
		InsecureSkipVerify: true, // any Origin
		CompressionMode:    websocket.CompressionDisabled,
	}
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(int64(e.maxPacket) + 64<<10)
		ctx := context.Background()
		write := func(b []byte) error { return c.Write(ctx, websocket.MessageBinary, b) }
		var s stream
		for {
			typ, rd, err := c.Reader(ctx) // waits holding only coder's buffers
			if err != nil || typ != websocket.MessageBinary {
				return
			}
			if readMessage(&s, rd, e, write) != nil {
				return
			}
		}
	}))
}

// readMessage reads one message's payload into the stream, answering the
// frames of each read as they come (a frame may go on in the next message).
func readMessage(s *stream, rd io.Reader, e *echo, write func([]byte) error) error {
	for {
		n, err := rd.Read(s.get())
		if n > 0 {
			if cerr := e.consume(s, n, write); cerr != nil {
				return cerr
			}
		} else {
			s.put()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
