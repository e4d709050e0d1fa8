package gateway

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// TestShutdownFlushesQueuedFrames: frames the gateway has accepted (read and
// queued) are written before the connections close.
func TestShutdownFlushesQueuedFrames(t *testing.T) {
	tg, errc := startGWManual(t, Config{ClientSendChanSize: 100000, ClientSendQueueBytes: 1 << 30})
	g := tg.Gateway
	s := tg.dialServer(t, 1)
	c := tg.dialClient(t)
	id, _ := open(t, c, s, 1)

	// The server sends far more than the client's socket buffers hold, then
	// a Ping: its answer proves the gateway has read (and queued) every data
	// frame.
	const n = 2000
	msg := make([]byte, 8<<10)
	var b []byte
	for range n {
		b = proto.EncodeData(b, id, msg)
	}
	b = proto.Command{Type: proto.CmdPing}.Encode(b)
	go s.conn.Write(b)
	s.conn.SetReadDeadline(time.Now().Add(waitFor))
	if f, err := s.fr.ReadFrame(); err != nil || proto.Header(f).ConnID() != 0 {
		t.Fatalf("want the Ping answer, got %x, %v", f, err)
	}

	if q := queuedToClients(g); q < 100 {
		t.Fatalf("only %d frames queued at shutdown; the test needs a backlog", q)
	}
	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		shutdownDone <- g.Shutdown(ctx)
	}()
	// Listeners close at once.
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrGatewayClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	}
	// Every queued frame reaches the client, then the connection closes.
	for range n {
		f := c.read()
		if proto.Header(f).ConnID() != id || len(f) != proto.HeaderSize+len(msg) {
			t.Fatalf("got frame of %d bytes on ConnID %d", len(f), proto.Header(f).ConnID())
		}
	}
	c.drainToEOF()
	if err := <-shutdownDone; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if st := g.Stats(); st.ClientConns != 0 || st.ServerConns != 0 || st.VirtualConns != 0 {
		t.Fatalf("after Shutdown: %+v", st)
	}
	// New connections are refused.
	if conn, err := net.Dial("tcp", tg.clientAddr); err == nil {
		conn.Close()
		t.Fatal("client port still accepting after Shutdown")
	}
}

// TestShutdownDeadlineClosesHard: a client that never reads cannot hold up
// Shutdown past its context.
func TestShutdownDeadlineClosesHard(t *testing.T) {
	tg, errc := startGWManual(t, Config{ClientSendChanSize: 100000, ClientSendQueueBytes: 1 << 30})
	g := tg.Gateway
	s := tg.dialServer(t, 1)
	c := tg.dialClient(t)
	c.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	id, _ := open(t, c, s, 1)
	var b []byte
	// 32 MiB: far more than the socket buffers toward the client hold
	// (several MiB on loopback), so its writer stays blocked.
	for range 2000 {
		b = proto.EncodeData(b, id, make([]byte, 16<<10))
	}
	go s.conn.Write(b)
	eventually(t, "client queue backed up", func() bool { return queuedToClients(g) > 1000 })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded; stats %+v", err, g.Stats())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrGatewayClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	}
}

// queuedToClients counts frames read from servers but not yet written to
// clients (in this file's tests, all server frames are data for a client).
func queuedToClients(g *Gateway) int64 {
	st := g.Stats()
	return int64(st.Server.FramesIn) - int64(st.Client.FramesOut)
}
