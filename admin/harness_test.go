package admin

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// within bounds every wait in these tests.
const within = 5 * time.Second

const password = "secret"

// testGateway is an in-process gateway on loopback ports.
type testGateway struct {
	*gateway.Gateway
	clientAddr, serverAddr string
	stopped                bool
	errc                   chan error
}

// startGateway starts a gateway with cfg on 127.0.0.1:0 for both ports and
// shuts it down when the test ends (unless the test did).
func startGateway(t testing.TB, cfg gateway.Config) *testGateway {
	t.Helper()
	cfg.ServerAuthPassword = password
	cfg.Logger = slog.New(slog.DiscardHandler)
	g := &testGateway{Gateway: gateway.New(cfg), errc: make(chan error, 2)}
	cl := listen(t)
	sl := listen(t)
	g.clientAddr, g.serverAddr = cl.Addr().String(), sl.Addr().String()
	go func() { g.errc <- g.ServeClients(cl) }()
	go func() { g.errc <- g.ServeServers(sl) }()
	t.Cleanup(func() { g.stop(t) })
	return g
}

// stop shuts the gateway down and waits for both Serve calls to return.
func (g *testGateway) stop(t testing.TB) {
	t.Helper()
	if g.stopped {
		return
	}
	g.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Errorf("gateway Shutdown: %v", err)
	}
	for range 2 {
		if err := <-g.errc; !errors.Is(err, gateway.ErrGatewayClosed) {
			t.Errorf("Serve returned %v, want ErrGatewayClosed", err)
		}
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// waitReady polls until the gateway serves both ports: Serve registers its
// listener in its own goroutine.
func (g *testGateway) waitReady(t testing.TB) {
	t.Helper()
	eventually(t, "gateway ready", func() bool { return g.Ready() })
}

// eventually waits for cond to hold, failing the test after within.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, within, what, cond)
}

// rawPeer is a client or server speaking the wire protocol byte by byte.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	fr   *proto.FrameReader
}

func dialRaw(t testing.TB, addr string) *rawPeer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, within)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn, fr: proto.NewFrameReader(conn, nil, 0, 1<<20)}
}

// dialClient connects a raw client.
func (g *testGateway) dialClient(t testing.TB) *rawPeer { return dialRaw(t, g.clientAddr) }

// dialServer connects a raw server as id; a Ping answered proves the
// gateway registered it.
func (g *testGateway) dialServer(t testing.TB, id uint32) *rawPeer {
	t.Helper()
	p := dialRaw(t, g.serverAddr)
	if err := proto.AuthenticateToGateway(p.conn, password, id, within); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	p.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
	p.expectCmd(proto.CmdPing)
	return p
}

func (p *rawPeer) send(b []byte) {
	p.t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(within))
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *rawPeer) read() []byte {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(within))
	f, err := p.fr.ReadFrame()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return f
}

func (p *rawPeer) expectCmd(want proto.Cmd) proto.Command {
	p.t.Helper()
	c, err := proto.DecodeCommand(p.read())
	if err != nil || c.Type != want {
		p.t.Fatalf("got %+v (%v), want %v", c, err, want)
	}
	return c
}

// expectEOF waits for the gateway to close the connection.
func (p *rawPeer) expectEOF() {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(within))
	if f, err := p.fr.ReadFrame(); err == nil {
		p.t.Fatalf("got frame % x, want the connection closed", f)
	}
}

// open has client c dial server s (registered as id) and returns the ConnID.
func open(t testing.TB, c, s *rawPeer, id uint32) uint32 {
	t.Helper()
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: id}.Encode(nil))
	acc := c.expectCmd(proto.CmdAccept)
	if con := s.expectCmd(proto.CmdConnect); con.ConnID != acc.ConnID {
		t.Fatalf("Connect on ConnID %d, Accept on %d", con.ConnID, acc.ConnID)
	}
	return acc.ConnID
}
