package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

// waitFor bounds every blocking step of a test.
const waitFor = 5 * time.Second

const testKey = "secret"

// testGW is a gateway listening on loopback for one test.
type testGW struct {
	*Gateway
	clientAddr, serverAddr string
}

// startGW starts a gateway with cfg on 127.0.0.1:0 for both ports and shuts
// it down when the test ends, checking that both Serve calls return
// ErrGatewayClosed.
func startGW(t testing.TB, cfg Config) *testGW {
	t.Helper()
	g, errc := startGWManual(t, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		for range 2 {
			if err := <-errc; !errors.Is(err, ErrGatewayClosed) {
				t.Errorf("Serve returned %v, want ErrGatewayClosed", err)
			}
		}
	})
	return g
}

// startGWManual is startGW for tests that shut the gateway down themselves:
// it returns the channel the two Serve calls report to, and only stops the
// gateway at the end in case the test failed before its own Shutdown.
func startGWManual(t testing.TB, cfg Config) (*testGW, <-chan error) {
	t.Helper()
	if cfg.ServerAuthPassword == "" {
		cfg.ServerAuthPassword = testKey
	}
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	g := New(cfg)
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	go func() { errc <- g.ServeClients(cl) }()
	go func() { errc <- g.ServeServers(sl) }()
	t.Cleanup(g.Stop)
	return &testGW{Gateway: g, clientAddr: cl.Addr().String(), serverAddr: sl.Addr().String()}, errc
}

// peer is a raw protocol peer: it writes and reads frames byte by byte, so
// tests see exactly what the gateway puts on the wire.
type peer struct {
	t    testing.TB
	conn net.Conn
	fr   *proto.FrameReader
}

func newPeer(t testing.TB, conn net.Conn) *peer {
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, conn: conn, fr: proto.NewFrameReader(conn, nil, 0, 1<<24)}
}

// dialClient connects a raw client.
func (g *testGW) dialClient(t testing.TB) *peer {
	t.Helper()
	c, err := net.Dial("tcp", g.clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	return newPeer(t, c)
}

// dialServer connects a raw server, authenticates it as id and waits until
// the gateway has registered it (the answer to its first Ping proves it).
func (g *testGW) dialServer(t testing.TB, id uint32) *peer {
	t.Helper()
	c, err := net.Dial("tcp", g.serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.AuthenticateToGateway(c, testKey, id, waitFor); err != nil {
		t.Fatal(err)
	}
	p := newPeer(t, c)
	p.ping()
	return p
}

func (p *peer) write(b []byte) {
	p.t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *peer) send(c proto.Command) { p.t.Helper(); p.write(c.Encode(nil)) }

func (p *peer) sendData(id uint32, msg string) {
	p.t.Helper()
	p.write(proto.EncodeData(nil, id, []byte(msg)))
}

// read returns the next frame, failing the test after waitFor.
func (p *peer) read() []byte {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(waitFor))
	f, err := p.fr.ReadFrame()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return f
}

// expect reads the next frame and checks it is exactly want.
func (p *peer) expect(want []byte) {
	p.t.Helper()
	if got := p.read(); !bytes.Equal(got, want) {
		p.t.Fatalf("got frame %s, want %s", hex.EncodeToString(got), hex.EncodeToString(want))
	}
}

func (p *peer) expectCmd(c proto.Command) { p.t.Helper(); p.expect(c.Encode(nil)) }

func (p *peer) expectData(id uint32, msg string) {
	p.t.Helper()
	p.expect(proto.EncodeData(nil, id, []byte(msg)))
}

// readCmd reads the next frame as a command.
func (p *peer) readCmd() proto.Command {
	p.t.Helper()
	f := p.read()
	c, err := proto.DecodeCommand(f)
	if err != nil {
		p.t.Fatalf("frame %s is not a command: %v", hex.EncodeToString(f), err)
	}
	return c
}

// ping sends a Ping and waits for its answer: every frame the gateway sent
// before it has been read by the time ping returns, and nothing else came.
func (p *peer) ping() {
	p.t.Helper()
	p.send(proto.Command{Type: proto.CmdPing})
	p.expectCmd(proto.Command{Type: proto.CmdPing})
}

// expectEOF waits for the gateway to close the connection, skipping nothing:
// any frame before EOF fails the test.
func (p *peer) expectEOF() {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(waitFor))
	f, err := p.fr.ReadFrame()
	if err == nil {
		p.t.Fatalf("got frame %s, want the connection closed", hex.EncodeToString(f))
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		p.t.Fatalf("got %v, want the connection closed", err)
	}
}

// drainToEOF reads and discards frames until the connection closes.
func (p *peer) drainToEOF() {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(waitFor))
	for {
		if _, err := p.fr.ReadFrame(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.t.Fatal("connection not closed in time")
			}
			return
		}
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe)
}

// open dials server sid from client c and returns the ConnID, checking the
// Accept and Connect frames the gateway sends, and that Connect names
// clientID (0: any).
func open(t testing.TB, c, s *peer, sid uint32) (connID, clientID uint32) {
	t.Helper()
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: sid})
	a := c.readCmd()
	if a.Type != proto.CmdAccept || a.RemoteID != sid || a.ConnID == 0 {
		t.Fatalf("got %+v, want Accept from %d", a, sid)
	}
	k := s.readCmd()
	if k.Type != proto.CmdConnect || k.ConnID != a.ConnID || k.RemoteID == 0 {
		t.Fatalf("got %+v, want Connect for ConnID %d", k, a.ConnID)
	}
	return a.ConnID, k.RemoteID
}

// eventually waits for cond to hold, failing the test after waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, waitFor, what, cond)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
