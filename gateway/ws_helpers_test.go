package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// Helpers of the WebSocket tests (ws_*_test.go).

// startWSL is startWS that also returns the listener, for its handshake
// counters.
func startWSL(t testing.TB, g *testGW, cfg ws.Config) (string, *ws.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveWS(t, g, ln, cfg)
}

// serveWS serves WebSocket clients for g on ln until the test ends, and
// returns their URL and the WebSocket listener.
func serveWS(t testing.TB, g *testGW, ln net.Listener, cfg ws.Config) (string, *ws.Listener) {
	t.Helper()
	wl := ws.NewListener(ln, cfg)
	done := make(chan error, 1)
	go func() { done <- g.ServeClients(wl) }()
	t.Cleanup(func() {
		g.Stop()
		if err := <-done; !errors.Is(err, ErrGatewayClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("ServeClients(ws) returned %v", err)
		}
	})
	scheme := "ws://"
	if cfg.TLS != nil {
		scheme = "wss://"
	}
	path := cfg.Path
	if path == "" {
		path = "/"
	}
	return scheme + ln.Addr().String() + path, wl
}

// expectWSClose reads what the gateway sends until its Close frame and
// returns the frame's status code; data messages before it are skipped
// when skip is set, else they fail the test. It then checks that the
// gateway closes the socket.
func expectWSClose(t testing.TB, wc *ws.Client, want gws.StatusCode, skip bool) {
	t.Helper()
	wc.SetReadDeadline(time.Now().Add(waitFor))
	for {
		op, m, err := wc.ReadMessage()
		if err == nil {
			if !skip {
				t.Fatalf("got a message (opcode %d, %d bytes), want Close %d", op, len(m), want)
			}
			continue
		}
		var ce *ws.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("got %v, want a Close frame with status %d", err, want)
		}
		if ce.Code != want {
			t.Fatalf("Close status %d, want %d", ce.Code, want)
		}
		break
	}
	// What follows the Close frame, the client's buffered bytes first:
	// nothing (RFC 6455 §5.5.1: no data frame after it).
	expectStreamEnd(t, readerFunc(wc.ReadRaw))
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// expectSocketEnd reads c until the gateway closes it; any byte fails.
func expectSocketEnd(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	expectStreamEnd(t, c)
}

// expectStreamEnd reads r, whose deadline is set, until the gateway closes
// the connection under it; any byte fails.
func expectStreamEnd(t testing.TB, r io.Reader) {
	t.Helper()
	var b [64]byte
	n, err := r.Read(b[:])
	if n > 0 {
		t.Fatalf("got %d more bytes (%x), want the connection closed", n, b[:n])
	}
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("got %v, want the connection closed", err)
	}
}

// wsFrame encodes a client frame with a random mask.
func wsFrame(op gws.OpCode, fin bool, p []byte) []byte {
	return ws.EncodeClientFrame(nil, op, fin, p, gws.NewMask())
}

// wsSize picks a payload size for a frame, biased toward the boundaries
// of RFC 6455's length encodings (125/126, 65535/65536), bounded by max.
func wsSize(r *rand.Rand, max int) int {
	var n int
	switch r.IntN(8) {
	case 0:
		n = 0
	case 1:
		n = 124 + r.IntN(4) // 124..127
	case 2:
		n = 65534 + r.IntN(4) // 65534..65537
	case 3:
		n = 1 + r.IntN(8)
	default:
		n = r.IntN(2000)
	}
	return min(n, max)
}

// wsChop encodes stream as a client's sequence of frames: cut into binary
// messages of random sizes, each cut into fragments of random sizes
// (empty ones included), with Pings and Pongs of random payloads between
// frames, every frame under a random mask. It returns the encoding and
// the Ping payloads in order.
func wsChop(r *rand.Rand, stream []byte) (enc []byte, pings [][]byte) {
	control := func() {
		if r.IntN(6) != 0 {
			return
		}
		p := make([]byte, r.IntN(126))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		if r.IntN(2) == 0 {
			enc = ws.EncodeClientFrame(enc, gws.OpPong, true, p, randMask(r))
			return
		}
		enc = ws.EncodeClientFrame(enc, gws.OpPing, true, p, randMask(r))
		pings = append(pings, p)
	}
	for len(stream) > 0 || r.IntN(8) == 0 {
		msg := stream[:wsSize(r, len(stream))]
		if r.IntN(4) == 0 {
			msg = stream[:min(len(stream), r.IntN(200000))]
		}
		stream = stream[len(msg):]
		op := gws.OpBinary
		for {
			control()
			frag := msg[:wsSize(r, len(msg))]
			if r.IntN(3) == 0 {
				frag = msg // the rest in one
			}
			msg = msg[len(frag):]
			fin := len(msg) == 0 && r.IntN(4) != 0
			enc = ws.EncodeClientFrame(enc, op, fin, frag, randMask(r))
			op = gws.OpContinuation
			if fin {
				break
			}
		}
		if len(stream) == 0 {
			break
		}
	}
	control()
	return enc, pings
}

func randMask(r *rand.Rand) (m [4]byte) {
	binary.LittleEndian.PutUint32(m[:], r.Uint32())
	return m
}

// wsReference decodes a client's frames the plain way, with gobwas/ws's
// frame reader over a bytes.Reader: it returns the payload stream of the
// binary messages and the Ping payloads, or an error where the frames
// break RFC 6455 (as the gateway reads it: masked, no extension, binary
// only).
func wsReference(enc []byte) (stream []byte, pings [][]byte, err error) {
	r := bytes.NewReader(enc)
	inMsg := false
	for r.Len() > 0 {
		var f gws.Frame
		var err error
		if f.Header, err = gws.ReadHeader(r); err != nil {
			return stream, pings, err
		}
		if f.Header.Length > int64(r.Len()) {
			return stream, pings, io.ErrUnexpectedEOF
		}
		f.Payload = make([]byte, f.Header.Length)
		io.ReadFull(r, f.Payload)
		if !f.Header.Masked {
			return stream, pings, errors.New("unmasked")
		}
		if f.Header.Rsv != 0 {
			return stream, pings, errors.New("reserved bits")
		}
		gws.Cipher(f.Payload, f.Header.Mask, 0)
		switch op := f.Header.OpCode; {
		case op.IsControl():
			if !f.Header.Fin || len(f.Payload) > 125 {
				return stream, pings, errors.New("bad control frame")
			}
			switch op {
			case gws.OpPing:
				pings = append(pings, f.Payload)
			case gws.OpPong:
			case gws.OpClose:
				return stream, pings, io.EOF
			default:
				return stream, pings, errors.New("reserved control opcode")
			}
		case op == gws.OpBinary:
			if inMsg {
				return stream, pings, errors.New("new message inside a fragmented one")
			}
			inMsg = !f.Header.Fin
			stream = append(stream, f.Payload...)
		case op == gws.OpContinuation:
			if !inMsg {
				return stream, pings, errors.New("continuation outside a message")
			}
			inMsg = !f.Header.Fin
			stream = append(stream, f.Payload...)
		default:
			return stream, pings, fmt.Errorf("opcode %d", op)
		}
	}
	return stream, pings, nil
}

// dataStream returns n data frames on connID of random payloads (sizes
// biased toward the WebSocket boundaries), concatenated, and the frames.
func dataStream(r *rand.Rand, connID uint32, n int) (stream []byte, frames [][]byte) {
	for range n {
		p := make([]byte, wsSize(r, 70000))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		f := proto.EncodeData(nil, connID, p)
		frames = append(frames, f)
		stream = append(stream, f...)
	}
	return stream, frames
}

// writeChunks writes b to c in chunks of random sizes (one byte to many
// KiB), so the gateway's reads end anywhere in a frame header or payload.
func writeChunks(r *rand.Rand, c net.Conn, b []byte) error {
	c.SetWriteDeadline(time.Now().Add(waitFor))
	for len(b) > 0 {
		var n int
		switch r.IntN(4) {
		case 0:
			n = 1 + r.IntN(3)
		case 1:
			n = 1 + r.IntN(20)
		case 2:
			n = 1 + r.IntN(3000)
		default:
			n = 1 + r.IntN(100000)
		}
		n = min(n, len(b))
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// wholeFrames checks that msg, one message the gateway sent, holds one or
// more whole frames of docs/protocol.md §1 and nothing else, and returns
// them.
func wholeFrames(msg []byte) ([][]byte, error) {
	if len(msg) == 0 {
		return nil, errors.New("an empty message")
	}
	var frames [][]byte
	for len(msg) > 0 {
		if len(msg) < proto.HeaderSize {
			return frames, fmt.Errorf("a message ends %d bytes into a frame header", len(msg))
		}
		n := int(binary.LittleEndian.Uint32(msg)) + proto.SizeOfLength
		if n < proto.HeaderSize || n > len(msg) {
			return frames, fmt.Errorf("a frame of %d bytes in a message of %d", n, len(msg))
		}
		frames = append(frames, msg[:n])
		msg = msg[n:]
	}
	return frames, nil
}

// flood has s send bursts of data frames on id (payload byte tag) until
// stop, an error, or max bursts; it returns a channel closed when done.
func flood(s *peer, id uint32, tag byte, size, max int, stop <-chan struct{}) <-chan struct{} {
	var burst []byte
	for range 16 {
		burst = proto.EncodeData(burst, id, bytes.Repeat([]byte{tag}, size))
	}
	return sendBursts(s, burst, max, stop)
}

// sendBursts has s write burst up to max times, until stop or an error;
// it returns a channel closed when done.
func sendBursts(s *peer, burst []byte, max int, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range max {
			select {
			case <-stop:
				return
			default:
			}
			s.conn.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := s.conn.Write(burst); err != nil {
				return
			}
		}
	}()
	return done
}

// syncServer makes sure s's frames sent so far were routed and answered,
// skipping the Closes for the ConnIDs gone.
func syncServer(t *testing.T, s *peer) {
	t.Helper()
	s.send(proto.Command{Type: proto.CmdPing})
	for {
		f := s.read()
		if c, err := proto.DecodeCommand(f); err == nil && c.Type == proto.CmdPing {
			return
		}
	}
}
