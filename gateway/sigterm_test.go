package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/loadpeer"
	"github.com/fastway-go/fastway/proto"
)

// sigtermLoad is the scenario of issue 13 item 7 in small: clients send as
// fast as they can toward a server that reads at rate bytes/s and pings
// meanwhile, so a backlog waits in the gateway (its queue toward the
// server, both socket buffers) when Shutdown starts.
type sigtermLoad struct {
	g       *testGW
	errc    <-chan error
	srv     *loadpeer.SlowServer
	clients []*loadpeer.FloodClient
	size    int
}

func startSigtermLoad(t *testing.T, cfg Config, clients, size, rate int) *sigtermLoad {
	t.Helper()
	g, errc := startGWManual(t, cfg)
	ld := &sigtermLoad{g: g, errc: errc, size: size}
	c := dialRaw(t, g.serverAddr)
	// A small receive buffer: the backlog waits at the gateway, as it
	// does in front of a server that is really slow.
	c.(*net.TCPConn).SetReadBuffer(128 << 10)
	if err := proto.AuthenticateToGateway(c, testKey, 1, waitFor); err != nil {
		t.Fatal(err)
	}
	srv, err := loadpeer.NewSlowServer(c, rate, 2*time.Millisecond, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ld.srv = srv
	for range clients {
		fc, err := loadpeer.NewFloodClient(dialRaw(t, g.clientAddr), size, waitFor, 6*waitFor)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fc.Close)
		ld.clients = append(ld.clients, fc)
	}
	// Under way: the server has read a good part of a second's worth and
	// frames wait in the gateway's queue toward it.
	eventually(t, "a backlog toward the server", func() bool {
		st := g.Stats()
		_, got := ld.srv.Data()
		return got > int64(rate/4) && int64(st.Client.FramesIn)-int64(st.Server.FramesOut) > int64(cfg.ServerSendChanSize/2)
	})
	return ld
}

// sigtermResult is what each side counted.
type sigtermResult struct {
	sent                 int64 // data frames the clients wrote
	readFromClients      int64 // data frames the gateway read from clients
	readBytesFromClients int64
	serverGot            int64 // data frames the server received
	serverGotBytes       int64
	pingsSent            int64
	st                   Stats
}

// finish waits for every peer to finish and returns what each side counted.
func (ld *sigtermLoad) finish(t *testing.T) sigtermResult {
	t.Helper()
	for range 2 {
		if err := <-ld.errc; !errors.Is(err, ErrGatewayClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	}
	var r sigtermResult
	if err := ld.srv.Wait(6 * waitFor); err != nil {
		t.Errorf("server: %v", err)
	}
	for i, c := range ld.clients {
		if err := c.Wait(6 * waitFor); err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		r.sent += c.Sent()
	}
	dials := int64(len(ld.clients))
	r.st = ld.g.Stats()
	r.readFromClients = int64(r.st.Client.FramesIn) - dials
	r.readBytesFromClients = int64(r.st.Client.BytesIn) - dials*int64(proto.CmdSize(proto.CmdDial))
	r.serverGot, r.serverGotBytes = ld.srv.Data()
	r.pingsSent = ld.srv.Pings()
	return r
}

// TestSigtermUnderLoadDeliversEverything: Shutdown with a generous
// deadline in front of a server that reads slowly and pings meanwhile.
// Every data frame the gateway counted as read from clients reaches the
// server, exactly, in order; nothing is dropped; Shutdown returns nil.
func TestSigtermUnderLoadDeliversEverything(t *testing.T) {
	const clients, size = 8, 1 << 10
	rate := scaled(4<<20, 4<<20, 4<<20)
	ld := startSigtermLoad(t, Config{ServerSendChanSize: 2000, ServerSendQueueBytes: 64 << 20, ServerSendQueueBytesPerClient: 64 << 20}, clients, size, rate)
	ctx, cancel := context.WithTimeout(context.Background(), 6*waitFor)
	defer cancel()
	start := time.Now()
	err := ld.g.Shutdown(ctx)
	took := time.Since(start)
	r := ld.finish(t)
	t.Logf("Shutdown in front of a server reading %d KiB/s: returned %v after %v; clients wrote %d data frames, the gateway read %d (%d B), the server got %d (%d B); server pings %d; dropped %d",
		rate>>10, err, took.Round(time.Millisecond), r.sent, r.readFromClients, r.readBytesFromClients, r.serverGot, r.serverGotBytes, r.pingsSent, r.st.FramesDropped)
	if err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if r.serverGot != r.readFromClients || r.serverGotBytes != r.readBytesFromClients {
		t.Errorf("the server got %d data frames (%d B), the gateway read %d (%d B) from clients: %d lost",
			r.serverGot, r.serverGotBytes, r.readFromClients, r.readBytesFromClients, r.readFromClients-r.serverGot)
	}
	if r.st.FramesDropped != 0 {
		t.Errorf("FramesDropped = %d", r.st.FramesDropped)
	}
}

// logRecorder is a slog.Handler that keeps every record, for tests that
// check what was logged.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}

// find returns the attributes of the records with message msg.
func (h *logRecorder) find(msg string) []map[string]slog.Value {
	h.mu.Lock()
	defer h.mu.Unlock()
	var found []map[string]slog.Value
	for _, r := range h.records {
		if r.Message != msg {
			continue
		}
		attrs := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
		found = append(found, attrs)
	}
	return found
}

// TestSigtermUnderLoadShortDeadline: the same load, with a deadline far too
// short for the backlog. Shutdown closes hard and returns the context's
// error; what it could not deliver is logged in one line, and counted in
// Stats, with exactly the frames and bytes the gateway read from clients
// that the server did not get.
//
// The server stops pinging when Shutdown starts. Its earlier Pings are read
// and thrown away by the gateway (Stats.Discarded); a Ping arriving after
// the hard close would make the kernel reset the socket and lose what it
// still held for the server (the log line's unacked_bytes), which the
// gateway cannot count as frames.
func TestSigtermUnderLoadShortDeadline(t *testing.T) {
	const clients, size = 8, 1 << 10
	const deadline = 300 * time.Millisecond
	rate := 2 << 20
	rec := &logRecorder{}
	ld := startSigtermLoad(t, Config{ServerSendChanSize: 4000, ServerSendQueueBytes: 64 << 20, ServerSendQueueBytesPerClient: 64 << 20, Logger: slog.New(rec)}, clients, size, rate)
	ld.srv.StopPinging()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err := ld.g.Shutdown(ctx)
	took := time.Since(start)
	r := ld.finish(t)
	lines := rec.find("shutdown cut short by its deadline")
	t.Logf("Shutdown with a %v deadline in front of a server reading %d KiB/s: returned %v after %v; the gateway read %d data frames (%d B) from clients, the server got %d (%d B); logged %v",
		deadline, rate>>10, err, took.Round(time.Millisecond), r.readFromClients, r.readBytesFromClients, r.serverGot, r.serverGotBytes, lines)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if len(lines) != 1 {
		t.Fatalf("logged %d lines %q, want 1", len(lines), "shutdown cut short by its deadline")
	}
	lost := FrameCount{Frames: uint64(r.readFromClients - r.serverGot), Bytes: uint64(r.readBytesFromClients - r.serverGotBytes)}
	if lost.Frames == 0 {
		t.Fatal("nothing was cut: the test needs a backlog longer than the deadline")
	}
	logged := FrameCount{Frames: lines[0]["undelivered_frames"].Uint64(), Bytes: lines[0]["undelivered_bytes"].Uint64()}
	if logged != lost {
		t.Errorf("logged %+v undelivered, the server missed %+v", logged, lost)
	}
	if got := r.st.UndeliveredAt(ReasonShutdown); got != lost {
		t.Errorf("Stats.Undelivered[shutdown] = %+v, the server missed %+v", got, lost)
	}
	if r.st.Discarded.Frames == 0 {
		t.Errorf("Stats.Discarded = %+v: the server's Pings were not read after the stop", r.st.Discarded)
	}
}
