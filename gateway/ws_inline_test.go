package gateway

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
)

// TestWSInlineWritesSlowReader drives the non-blocking WebSocket write
// path (the link's own writev between ws.Conn.BeginMessage and EndMessage, from the server's reader, FinishMessage from the
// writer goroutine) against a client that reads slowly through a small
// receive buffer, so that messages are left half written again and again:
// every message must still hold whole frames, and the stream must be the
// frames sent, byte for byte, in order.
func TestWSInlineWritesSlowReader(t *testing.T) {
	g := startGW(t, Config{ClientSendQueueBytes: 64 << 20, ClientSendChanSize: 1 << 20})
	url := startWSSmallSend(t, g)
	s := g.dialServer(t, 1)
	// A small receive buffer, set before the connect (set after it, the
	// window stalls on the persist timer).
	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10) })
		return serr
	}}
	p, wc := dialWS(t, url, ws.DialOptions{NetDial: d.DialContext})
	id, _ := open(t, p, s, 1)
	s.write(proto.Fanout{Type: proto.CmdJoin, GroupID: 5, ConnID: id}.Append(nil))
	s.ping()
	m := newWSMessages(t, wc)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	before := ws.Unfinished()

	const frames = 4000
	var want [][]byte
	var bursts [][]byte
	var burst []byte
	for i := range frames {
		n := r.IntN(300)
		switch r.IntN(40) {
		case 0:
			n = 2000 + r.IntN(40000)
		case 1:
			n = 60000 + r.IntN(20000) // around the 64 KiB copy buffer
		}
		pl := make([]byte, n)
		for j := range pl {
			pl[j] = byte(r.Uint32())
		}
		f := proto.EncodeData(nil, id, pl)
		want = append(want, f)
		if r.IntN(4) == 0 {
			// A Publish: large payloads are shared, the delivery's header
			// and payload two buffers.
			burst = proto.Fanout{Type: proto.CmdPublish, GroupID: 5, Payload: pl}.Append(burst)
		} else {
			burst = append(burst, f...)
		}
		if len(burst) > 16<<10 || i == frames-1 {
			bursts = append(bursts, burst)
			burst = nil
		}
	}
	// The server writes its bursts with pauses while the client reads
	// with pauses of its own: the gateway finds the client's socket full
	// at every point of a message.
	done := make(chan error, 1)
	go func() {
		wr := rand.New(rand.NewPCG(seed, 3))
		for _, b := range bursts {
			s.conn.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := s.conn.Write(b); err != nil {
				done <- err
				return
			}
			if wr.IntN(4) == 0 {
				time.Sleep(time.Duration(wr.IntN(500)) * time.Microsecond)
			}
		}
		done <- nil
	}()
	for i, w := range want {
		if r.IntN(8) == 0 {
			time.Sleep(time.Duration(r.IntN(400)) * time.Microsecond) // a slow reader
		}
		if got := m.next(); !bytes.Equal(got, w) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(w))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	unfinished := ws.Unfinished() - before
	t.Logf("%d frames in %d messages (%d of several frames); %d messages left unfinished by a non-blocking write and finished by the writer",
		frames, m.messages, m.multi, unfinished)
	if unfinished == 0 {
		t.Fatal("no message was left unfinished: the test did not drive FinishMessage")
	}
}

// startWSSmallSend is startWS with a small send buffer on the gateway's
// sockets toward its WebSocket clients (set on the listening socket,
// inherited), so that its non-blocking writes meet a full socket soon.
func startWSSmallSend(t testing.TB, g *testGW) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 16<<10) })
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url, _ := serveWS(t, g, ln, ws.Config{})
	return url
}
