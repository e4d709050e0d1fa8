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

// TestShutdownRoutesBufferedFrames: frames a reader has read from its
// socket into its buffer, but not routed yet when Shutdown stops it, are
// routed before it stops. One client keeps the server's queue full (the
// server does not read), so that a second client's reader, which read 20
// small frames in one read, waits for room with 19 of them in its buffer.
// Shutdown then starts, the server reads on: it gets all 20.
func TestShutdownRoutesBufferedFrames(t *testing.T) {
	const small = 20
	tg, errc := startGWManual(t, Config{ServerSendChanSize: 4})
	g := tg.Gateway
	srvConn := dialRaw(t, tg.serverAddr)
	if err := proto.AuthenticateToGateway(srvConn, testKey, 1, waitFor); err != nil {
		t.Fatal(err)
	}
	srv := newPeer(t, srvConn)
	srv.ping()
	c1, c2 := tg.dialClient(t), tg.dialClient(t)
	id1, _ := open(t, c1, srv, 1)
	id2, _ := open(t, c2, srv, 1)
	var srvLink *link
	eventually(t, "server registered", func() bool { srvLink = g.servers.newest(1); return srvLink != nil })
	waiters := func() int { srvLink.mu.Lock(); defer srvLink.mu.Unlock(); return srvLink.waiters }

	// Client 1 floods until its reader waits for room toward the server.
	flood := proto.EncodeData(nil, id1, make([]byte, 64<<10))
	go func() {
		for {
			c1.conn.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := c1.conn.Write(flood); err != nil {
				return
			}
		}
	}()
	eventually(t, "client 1 waiting for room", func() bool { return waiters() == 1 })
	// Client 2's frames arrive in one write, so its reader reads them in one
	// read, routes the first and waits for room with the rest buffered.
	var b []byte
	for i := range small {
		b = proto.EncodeData(b, id2, []byte{byte(i), 1, 2, 3})
	}
	c2.write(b)
	eventually(t, "client 2 waiting for room", func() bool { return waiters() == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- g.Shutdown(ctx) }()
	eventually(t, "readers told to stop", func() bool { return c2Stopped(g) })
	// Peers read to EOF, then close, as they do.
	for _, c := range []*peer{c1, c2} {
		go func() { readToEOF(c.conn, 4*waitFor); c.conn.Close() }()
	}
	got := map[uint32]int{}
	srvConn.SetReadDeadline(time.Now().Add(4 * waitFor))
	for {
		f, err := srv.fr.ReadFrame()
		if err != nil {
			break
		}
		if id := proto.Header(f).ConnID(); id != 0 {
			got[id]++
		}
	}
	srvConn.Close()
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range 2 {
		<-errc
	}
	st := g.Stats()
	t.Logf("server got %d frames of client 1 and %d of client 2; gateway read %d data frames from clients; discarded after the stop %+v",
		got[id1], got[id2], st.Client.FramesIn-2, st.Discarded)
	if got[id2] != small {
		t.Errorf("the server got %d of client 2's %d frames", got[id2], small)
	}
	if n := uint64(got[id1] + got[id2]); n != st.Client.FramesIn-2 {
		t.Errorf("the server got %d data frames, the gateway read %d from clients", n, st.Client.FramesIn-2)
	}
}

// c2Stopped reports whether Shutdown has told every link to stop reading.
func c2Stopped(g *Gateway) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for l := range g.links {
		if !l.stopRead.Load() {
			return false
		}
	}
	return true
}
