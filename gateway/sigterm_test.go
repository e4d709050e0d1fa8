package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// pacedReader reads from r at most rate bytes per second on average, in
// reads of at most chunk bytes: a server that cannot keep up.
type pacedReader struct {
	r     io.Reader
	rate  int // bytes per second
	chunk int
	start time.Time
	n     int64 // bytes read so far
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	// Pacing, not synchronisation: wait until the bytes read so far are
	// due at rate.
	if due := p.start.Add(time.Duration(p.n * int64(time.Second) / int64(p.rate))); time.Until(due) > 0 {
		time.Sleep(time.Until(due))
	}
	if len(b) > p.chunk {
		b = b[:p.chunk]
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

// slowServer is a raw server that reads at a bounded rate and sends a Ping
// every pingEvery meanwhile, so that while the gateway does not read it
// (Shutdown), its socket at the gateway holds unread bytes. It counts the
// data frames it receives, checks each virtual connection's numbers run
// without a gap, and closes its socket when it reads EOF, as a server does.
type slowServer struct {
	conn      net.Conn
	pingEvery time.Duration
	data      atomic.Int64 // data frames received
	dataBytes atomic.Int64 // their bytes, headers included
	cmds      atomic.Int64 // commands received
	pings     atomic.Int64 // Pings sent
	stopPing  chan struct{}
	pingOnce  sync.Once
	done      chan struct{} // closed when reading ended
	pinger    chan struct{} // closed when the pinger returned
	err       error         // why reading ended, read after done
	outOfSeq  error
}

func startSlowServer(t *testing.T, g *testGW, rate int, pingEvery time.Duration) *slowServer {
	t.Helper()
	c, err := net.Dial("tcp", g.serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A small receive buffer: the backlog waits at the gateway, as it
	// does in front of a server that is really slow.
	c.(*net.TCPConn).SetReadBuffer(128 << 10)
	if err := proto.AuthenticateToGateway(c, testKey, 1, waitFor); err != nil {
		t.Fatal(err)
	}
	s := &slowServer{conn: c, pingEvery: pingEvery, stopPing: make(chan struct{}), done: make(chan struct{}), pinger: make(chan struct{})}
	fr := proto.NewFrameReader(&pacedReader{r: c, rate: rate, chunk: 16 << 10}, nil, 64<<10, 0)
	// Registered once the answer to the first Ping comes back.
	s.ping()
	c.SetReadDeadline(time.Now().Add(waitFor))
	if f, err := fr.ReadFrame(); err != nil || proto.Header(f).ConnID() != 0 {
		t.Fatalf("server ping: %x, %v", f, err)
	}
	s.cmds.Add(1)
	c.SetReadDeadline(time.Time{})
	go s.read(fr)
	go s.pingLoop()
	t.Cleanup(func() {
		s.stopPinging()
		c.Close()
		<-s.done
		<-s.pinger
	})
	return s
}

func (s *slowServer) ping() {
	s.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := s.conn.Write(proto.Command{Type: proto.CmdPing}.Encode(nil)); err == nil {
		s.pings.Add(1)
	}
}

func (s *slowServer) pingLoop() {
	defer close(s.pinger)
	t := time.NewTicker(s.pingEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.ping()
		case <-s.stopPing:
			return
		case <-s.done:
			return
		}
	}
}

func (s *slowServer) stopPinging() { s.pingOnce.Do(func() { close(s.stopPing) }) }

func (s *slowServer) read(fr *proto.FrameReader) {
	defer close(s.done)
	defer s.conn.Close()
	next := map[uint32]uint32{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			s.err = err
			return
		}
		id := proto.Header(f).ConnID()
		if id == 0 {
			s.cmds.Add(1)
			continue
		}
		seq := binary.LittleEndian.Uint32(f[proto.HeaderSize:])
		if seq != next[id] && s.outOfSeq == nil {
			s.outOfSeq = errors.New("out of sequence")
		}
		next[id] = seq + 1
		s.data.Add(1)
		s.dataBytes.Add(int64(len(f)))
	}
}

// floodClient dials server 1 and writes numbered data frames of size bytes
// as fast as the gateway takes them. Its reader closes the socket at EOF,
// as a client does, which also ends the writer.
type floodClient struct {
	conn   net.Conn
	id     uint32
	sent   atomic.Int64
	done   chan struct{} // reader and writer returned
	eof    chan struct{}
	cmds   atomic.Int64
	failed error // set by the reader when it did not end at EOF or a reset
}

func startFloodClient(t *testing.T, g *testGW, size int) *floodClient {
	t.Helper()
	c := g.dialClient(t)
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: 1})
	a := c.readCmd()
	if a.Type != proto.CmdAccept {
		t.Fatalf("got %+v, want Accept", a)
	}
	fc := &floodClient{conn: c.conn, id: a.ConnID, done: make(chan struct{}), eof: make(chan struct{})}
	fc.cmds.Add(1)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(fc.eof)
		defer fc.conn.Close()
		for {
			fc.conn.SetReadDeadline(time.Now().Add(6 * waitFor))
			if _, err := c.fr.ReadFrame(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					fc.failed = err
				}
				return
			}
			fc.cmds.Add(1)
		}
	})
	wg.Go(func() {
		const batch = 16
		msg := make([]byte, size-proto.HeaderSize)
		var b []byte
		for seq := uint32(0); ; {
			b = b[:0]
			for range batch {
				binary.LittleEndian.PutUint32(msg, seq)
				b = proto.EncodeData(b, fc.id, msg)
				seq++
			}
			fc.conn.SetWriteDeadline(time.Now().Add(6 * waitFor))
			n, err := fc.conn.Write(b)
			fc.sent.Add(int64(n / size))
			if err != nil {
				return
			}
		}
	})
	go func() { wg.Wait(); close(fc.done) }()
	t.Cleanup(func() { fc.conn.Close(); <-fc.done })
	return fc
}

// sigtermLoad is the scenario of issue 13 item 7 in small: clients send as
// fast as they can toward a server that reads at rate bytes/s and pings
// meanwhile, so a backlog waits in the gateway (its queue toward the
// server, both socket buffers) when Shutdown starts.
type sigtermLoad struct {
	g       *testGW
	errc    <-chan error
	srv     *slowServer
	clients []*floodClient
	size    int
}

func startSigtermLoad(t *testing.T, cfg Config, clients, size, rate int) *sigtermLoad {
	t.Helper()
	g, errc := startGWManual(t, cfg)
	ld := &sigtermLoad{g: g, errc: errc, size: size}
	ld.srv = startSlowServer(t, g, rate, 2*time.Millisecond)
	for range clients {
		ld.clients = append(ld.clients, startFloodClient(t, g, size))
	}
	// Under way: the server has read a good part of a second's worth and
	// frames wait in the gateway's queue toward it.
	eventually(t, "a backlog toward the server", func() bool {
		st := g.Stats()
		return ld.srv.dataBytes.Load() > int64(rate/4) && int64(st.Client.FramesIn)-int64(st.Server.FramesOut) > int64(cfg.ServerSendChanSize/2)
	})
	return ld
}

// result waits for every peer to finish and returns what each side counted.
type sigtermResult struct {
	sent                 int64 // data frames the clients wrote
	readFromClients      int64 // data frames the gateway read from clients
	readBytesFromClients int64
	serverGot            int64 // data frames the server received
	serverGotBytes       int64
	pingsSent            int64
	st                   Stats
}

func (ld *sigtermLoad) finish(t *testing.T) sigtermResult {
	t.Helper()
	for range 2 {
		if err := <-ld.errc; !errors.Is(err, ErrGatewayClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	}
	var r sigtermResult
	select {
	case <-ld.srv.done:
	case <-time.After(6 * waitFor):
		t.Fatal("the server's connection did not end")
	}
	ld.srv.stopPinging()
	<-ld.srv.pinger
	if ld.srv.outOfSeq != nil {
		t.Errorf("server: %v", ld.srv.outOfSeq)
	}
	dials := int64(0)
	for i, c := range ld.clients {
		select {
		case <-c.done:
		case <-time.After(6 * waitFor):
			t.Fatalf("client %d did not end", i)
		}
		if c.failed != nil {
			t.Errorf("client %d: %v", i, c.failed)
		}
		r.sent += c.sent.Load()
		dials++
	}
	r.st = ld.g.Stats()
	r.readFromClients = int64(r.st.Client.FramesIn) - dials
	r.readBytesFromClients = int64(r.st.Client.BytesIn) - dials*int64(proto.CmdSize(proto.CmdDial))
	r.serverGot = ld.srv.data.Load()
	r.serverGotBytes = ld.srv.dataBytes.Load()
	r.pingsSent = ld.srv.pings.Load()
	return r
}

// TestSigtermUnderLoadDeliversEverything: Shutdown with a generous
// deadline in front of a server that reads slowly and pings meanwhile.
// Every data frame the gateway counted as read from clients reaches the
// server, exactly, in order; nothing is dropped; Shutdown returns nil.
func TestSigtermUnderLoadDeliversEverything(t *testing.T) {
	const clients, size = 8, 1 << 10
	rate := scaled(4<<20, 4<<20, 4<<20)
	ld := startSigtermLoad(t, Config{ServerSendChanSize: 2000}, clients, size, rate)
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
	ld := startSigtermLoad(t, Config{ServerSendChanSize: 4000, Logger: slog.New(rec)}, clients, size, rate)
	ld.srv.stopPinging()
	<-ld.srv.pinger
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
