package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// drainPeer counts what one raw peer received: data frames per ConnID (each
// checked to carry the next number of its sequence) and commands.
type drainPeer struct {
	conn     net.Conn
	fr       *proto.FrameReader
	data     atomic.Int64 // data frames received
	cmds     atomic.Int64 // command frames received
	eof      chan struct{}
	err      error // why reading stopped, if not EOF or reset
	outOfSeq error // the first frame out of sequence
}

func newDrainPeer(c net.Conn) *drainPeer {
	return &drainPeer{conn: c, fr: proto.NewFrameReader(c, nil, 64<<10, 0), eof: make(chan struct{})}
}

// readAll reads until the connection ends; onData sees each data frame.
func (p *drainPeer) readAll(onData func(f []byte)) {
	defer close(p.eof)
	next := map[uint32]uint32{}
	for {
		p.conn.SetReadDeadline(time.Now().Add(4 * waitFor))
		f, err := p.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.err = err
			}
			return
		}
		id := proto.Header(f).ConnID()
		if id == 0 {
			p.cmds.Add(1)
			continue
		}
		seq := binary.LittleEndian.Uint32(f[proto.HeaderSize:])
		if seq != next[id] && p.outOfSeq == nil {
			p.outOfSeq = errors.New("out of sequence")
		}
		next[id] = seq + 1
		p.data.Add(1)
		onData(f)
	}
}

// TestHardeningGracefulDrain: clients stream numbered messages to a server
// that echoes each one, as fast as a window of 128 in flight per client
// allows, when Shutdown starts. The listeners close at once. Every frame
// the gateway read (Stats().Client.FramesIn, Server.FramesIn) is delivered:
// each receiver gets a gap-free prefix of its sequence, the data frames the
// server received equal the data frames the gateway read from clients, the
// echoes the clients received equal the data frames it read from the server,
// every frame counted in FramesOut arrived, and none was dropped.
func TestHardeningGracefulDrain(t *testing.T) {
	const clients, window = 8, 128
	g, errc := startGWManual(t, Config{})
	base := goroutineBaseline(t, g)

	// The echoing server: its reader hands frames to its writer, so it
	// keeps reading while its writes are blocked.
	srvConn, err := net.Dial("tcp", g.serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.AuthenticateToGateway(srvConn, testKey, 1, waitFor); err != nil {
		t.Fatal(err)
	}
	srvCmdsSent := 1
	srvConn.Write(proto.Command{Type: proto.CmdPing}.Encode(nil))
	srv := newDrainPeer(srvConn)
	// The answer to its Ping shows the server is registered.
	srvConn.SetReadDeadline(time.Now().Add(waitFor))
	if f, err := srv.fr.ReadFrame(); err != nil || proto.Header(f).ConnID() != 0 {
		t.Fatalf("server ping: %x, %v", f, err)
	}
	srv.cmds.Add(1)
	echo := make(chan []byte, clients*window*2)
	go srv.readAll(func(f []byte) { echo <- f })
	srvWriter := make(chan struct{})
	var srvWritten atomic.Int64
	go func() {
		defer close(srvWriter)
		for {
			select {
			case f := <-echo:
				srvConn.SetWriteDeadline(time.Now().Add(4 * waitFor))
				if _, err := srvConn.Write(f); err != nil {
					return
				}
				srvWritten.Add(1)
			case <-srv.eof:
				return
			}
		}
	}()

	type client struct {
		*drainPeer
		id     uint32
		sent   atomic.Int64
		writer chan struct{}
	}
	cs := make([]*client, clients)
	for i := range cs {
		conn, err := net.Dial("tcp", g.clientAddr)
		if err != nil {
			t.Fatal(err)
		}
		c := &client{drainPeer: newDrainPeer(conn), writer: make(chan struct{})}
		conn.Write(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))
		conn.SetReadDeadline(time.Now().Add(waitFor))
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		a, err := proto.DecodeCommand(f)
		if err != nil || a.Type != proto.CmdAccept {
			t.Fatalf("client %d: %+v, %v", i, a, err)
		}
		c.cmds.Add(1)
		c.id = a.ConnID
		cs[i] = c
	}
	clientCmdsSent := clients // one Dial each
	for _, c := range cs {
		credits := make(chan struct{}, window)
		for range window {
			credits <- struct{}{}
		}
		go c.readAll(func([]byte) { credits <- struct{}{} })
		go func() {
			defer close(c.writer)
			var b []byte
			msg := make([]byte, 60)
			for seq := uint32(0); ; seq++ {
				select {
				case <-credits:
				case <-c.eof:
					return
				}
				binary.LittleEndian.PutUint32(msg, seq)
				b = proto.EncodeData(b[:0], c.id, msg)
				c.conn.SetWriteDeadline(time.Now().Add(4 * waitFor))
				if _, err := c.conn.Write(b); err != nil {
					return
				}
				c.sent.Add(1)
			}
		}()
	}
	// Shut down mid-stream.
	eventually(t, "traffic flowing", func() bool {
		for _, c := range cs {
			if c.data.Load() < 1000 {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	start := time.Now()
	shutdown := make(chan error, 1)
	go func() { shutdown <- g.Shutdown(ctx) }()
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrGatewayClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	}
	listenersClosed := time.Since(start)
	if c, err := net.Dial("tcp", g.clientAddr); err == nil {
		c.Close()
		t.Fatal("client port still accepting during Shutdown")
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	drained := time.Since(start)

	// Every peer reads to the end of its stream.
	<-srv.eof
	for i, c := range cs {
		<-c.eof
		c.conn.Close() // ends a write the gateway no longer reads
		<-c.writer
		if c.err != nil || c.outOfSeq != nil {
			t.Fatalf("client %d: %v %v", i, c.err, c.outOfSeq)
		}
	}
	srvConn.Close()
	<-srvWriter
	if srv.err != nil || srv.outOfSeq != nil {
		t.Fatalf("server: %v %v", srv.err, srv.outOfSeq)
	}

	st := g.Stats()
	var sent, echoed, clientCmds int64
	for _, c := range cs {
		sent += c.sent.Load()
		echoed += c.data.Load()
		clientCmds += c.cmds.Load()
	}
	readFromClients := int64(st.Client.FramesIn) - int64(clientCmdsSent)
	readFromServer := int64(st.Server.FramesIn) - int64(srvCmdsSent)
	t.Logf("Shutdown with %d clients streaming: listeners closed after %v, drained in %v", clients, listenersClosed.Round(time.Microsecond), drained.Round(time.Millisecond))
	t.Logf("client→server: clients wrote %d, gateway read %d, server got %d; server→client: server echoed %d (written), gateway read %d, clients got %d; dropped %d",
		sent, readFromClients, srv.data.Load(), srvWritten.Load(), readFromServer, echoed, st.FramesDropped)
	if st.FramesDropped != 0 {
		t.Errorf("FramesDropped = %d, want 0", st.FramesDropped)
	}
	if srv.data.Load() != readFromClients {
		t.Errorf("server got %d data frames, gateway read %d from clients", srv.data.Load(), readFromClients)
	}
	if echoed != readFromServer {
		t.Errorf("clients got %d echoes, gateway read %d from the server", echoed, readFromServer)
	}
	if got := srv.data.Load() + srv.cmds.Load(); got != int64(st.Server.FramesOut) {
		t.Errorf("server got %d frames, gateway wrote %d", got, st.Server.FramesOut)
	}
	if got := echoed + clientCmds; got != int64(st.Client.FramesOut) {
		t.Errorf("clients got %d frames, gateway wrote %d", got, st.Client.FramesOut)
	}
	if st.ClientConns != 0 || st.ServerConns != 0 || st.VirtualConns != 0 {
		t.Errorf("after Shutdown: %+v", st)
	}
	settleGoroutines(t, base-2) // the two Serve goroutines have returned
}

// TestHardeningDrainDeadline: with a client that never reads among
// streaming ones, Shutdown gives up at its context's deadline, closes what
// is left hard, and returns the context's error soon after.
func TestHardeningDrainDeadline(t *testing.T) {
	const deadline = 500 * time.Millisecond
	g, errc := startGWManual(t, Config{ClientSendChanSize: 100000, ClientSendQueueBytes: 1 << 30})
	base := goroutineBaseline(t, g)
	s := g.dialServer(t, 1)
	stuck := g.dialClient(t)
	stuck.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	id, _ := open(t, stuck, s, 1)
	var b []byte
	for range 2000 {
		b = proto.EncodeData(b, id, make([]byte, 16<<10))
	}
	go s.conn.Write(b) // 32 MiB: far more than the socket buffers hold
	eventually(t, "client queue backed up", func() bool { return queuedToClients(g.Gateway) > 1000 })

	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err := g.Shutdown(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if took > deadline+time.Second {
		t.Fatalf("Shutdown took %v with a %v deadline", took, deadline)
	}
	for range 2 {
		<-errc
	}
	s.conn.Close()
	stuck.conn.Close()
	settleGoroutines(t, base-2)
	t.Logf("Shutdown with a client that never reads (%d frames queued to it): returned %v after %v (deadline %v)", queuedToClients(g.Gateway), err, took.Round(time.Millisecond), deadline)
}

// TestHardeningStatsCountLinkOnce: a link's traffic is folded into the
// totals once. During Shutdown a stopped reader tears its link down (and
// untracks it) while the link is still open for flushing, so frames can
// still be pushed to it afterwards (other readers' teardowns send it Close):
// each such frame starts a writer, and the writer, finding the link retired,
// untracks it again. This drives that sequence directly: two frames pushed
// after teardown, each written on its own, must count as 2 frames out.
func TestHardeningStatsCountLinkOnce(t *testing.T) {
	g := New(Config{Logger: discard()})
	near, far := net.Pipe()
	defer far.Close()
	go io.Copy(io.Discard, far)
	l := newLink(g, near, sideClient, 1)
	if !g.track(l) {
		t.Fatal("track refused")
	}
	l.stopRead.Store(true) // as Shutdown's stopReading does
	g.teardown(l)          // as the stopped reader does; the link stays open
	for range 2 {
		if err := l.pushFrame(nil, outFrame{b: proto.Command{Type: proto.CmdClose, ConnID: 7}.Encode(nil)}, pushDrop); err != nil {
			t.Fatal(err)
		}
		eventually(t, "writer done", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return !l.writing })
	}
	if got := g.Stats().Client.FramesOut; got != 2 {
		t.Errorf("Stats counts %d frames written to the link, want 2", got)
	}
	l.close(ReasonShutdown, nil, false)
	g.readers.Done() // the reader track counted, which this test does not run
	g.wg.Done()
	g.Stop()
}

// TestHardeningShutdownPendingHandshake: a server connection still in its
// handshake when Shutdown starts is closed for the shutdown. It did not fail
// its handshake, so it must not count as an auth failure (the operators'
// FastwayServerAuthFailures alert would fire on every deploy) nor charge
// its source in the auth-failure throttle.
func TestHardeningShutdownPendingHandshake(t *testing.T) {
	g, errc := startGWManual(t, Config{})
	conn := dialRaw(t, g.serverAddr)
	conn.SetReadDeadline(time.Now().Add(waitFor))
	var challenge [proto.ChallengeSize]byte
	if _, err := io.ReadFull(conn, challenge[:]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range 2 {
		<-errc
	}
	if err := readToEOF(conn, waitFor); err != nil {
		t.Fatalf("pending handshake not closed: %v", err)
	}
	st := g.Stats()
	g.authLimit.mu.Lock()
	charged := len(g.authLimit.sources)
	g.authLimit.mu.Unlock()
	t.Logf("after Shutdown: auth failures %d, disconnects: auth failed %d, shutdown %d; sources charged in the throttle %d",
		st.AuthFailures, st.Disconnected(ReasonAuthFailed), st.Disconnected(ReasonShutdown), charged)
	if st.AuthFailures != 0 || st.Disconnected(ReasonAuthFailed) != 0 || charged != 0 {
		t.Errorf("a handshake cut by Shutdown counted as an auth failure")
	}
}
