package gateway

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// Issue 14, finding 8: bounds on what one server can make the gateway hold.

// TestServerUnreadReplies (finding 8): a server that sends Pings and reads
// nothing. Its replies are queued without waiting (pushForce: a server's
// reader must not block on its own writer), and they had no bound: the
// queue grew for as long as the server kept sending. Past
// ServerSendQueueBytes + maxUnreadReplies the server is now closed as a
// slow consumer, counted and logged with the cause.
func TestServerUnreadReplies(t *testing.T) {
	rec := &logRecorder{}
	g := startGW(t, Config{Logger: slog.New(rec)})
	c := dialRaw(t, g.serverAddr)
	if err := c.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	if err := proto.AuthenticateToGateway(c, testKey, 1, waitFor); err != nil {
		t.Fatal(err)
	}
	eventually(t, "server registered", func() bool { return g.servers.newest(1) != nil })
	var pings []byte
	for len(pings) < 64<<10 {
		pings = proto.Command{Type: proto.CmdPing}.Encode(pings)
	}
	const most = 256 << 20
	sent := 0
	var err error
	for sent < most && err == nil {
		c.SetWriteDeadline(time.Now().Add(waitFor))
		var n int
		n, err = c.Write(pings)
		sent += n
	}
	if err == nil {
		t.Fatalf("the server sent %d MiB of Pings without reading, and is still connected", sent>>20)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("after %d MiB the gateway stopped reading, but did not close: %v", sent>>20, err)
	}
	eventually(t, "the disconnect counted", func() bool { return g.Stats().Disconnected(ReasonSlowConsumer) == 1 })
	eventually(t, "the disconnect logged", func() bool {
		for _, a := range rec.find("disconnect") {
			if a["reason"].String() == ReasonSlowConsumer.String() && strings.Contains(a["error"].String(), "does not read the replies") {
				return true
			}
		}
		return false
	})
	t.Logf("a server that sent Pings and read nothing was closed after %.1f MiB (queue bound %d KiB + %d KiB of replies; the rest in socket buffers)",
		float64(sent)/(1<<20), g.Config().ServerSendQueueBytes>>10, maxUnreadReplies>>10)
}

// TestClientMaxServerConns (finding 8): servers may dial a client only
// ClientMaxServerConns times at once; the next Dial is refused and counted,
// and a Close makes room again. The client's own Dials count apart
// (ClientMaxConn).
func TestClientMaxServerConns(t *testing.T) {
	if got := New(Config{ServerAuthPassword: testKey, Logger: discard()}).Config().ClientMaxServerConns; got != DefaultClientMaxServerConns {
		t.Fatalf("default ClientMaxServerConns %d, want %d", got, DefaultClientMaxServerConns)
	}
	const max = 3
	g := startGW(t, Config{ClientMaxServerConns: max})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	_, cid := open(t, c, s, 1) // the client's own: not counted
	dial := func() (uint32, bool) {
		t.Helper()
		s.send(proto.Command{Type: proto.CmdDial, RemoteID: cid})
		r := s.readCmd()
		switch r.Type {
		case proto.CmdRefuse:
			if r.RemoteID != cid {
				t.Fatalf("got %+v, want Refuse(%d)", r, cid)
			}
			return 0, false
		case proto.CmdAccept:
			c.expectCmd(proto.Command{Type: proto.CmdConnect, ConnID: r.ConnID, RemoteID: 1})
			return r.ConnID, true
		}
		t.Fatalf("got %+v, want Accept or Refuse", r)
		return 0, false
	}
	var ids []uint32
	for i := range max {
		id, ok := dial()
		if !ok {
			t.Fatalf("server Dial %d of %d refused", i+1, max)
		}
		ids = append(ids, id)
	}
	if _, ok := dial(); ok {
		t.Fatalf("server Dial %d accepted, past ClientMaxServerConns %d", max+1, max)
	}
	if n := g.Stats().Refused(RefuseLimit); n != 1 {
		t.Fatalf("%d Dials refused for the limit, want 1", n)
	}
	// The client's own Dials are unaffected, and a Close makes room.
	open(t, c, s, 1)
	s.send(proto.Command{Type: proto.CmdClose, ConnID: ids[0]})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: ids[0]})
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: ids[0]})
	if _, ok := dial(); !ok {
		t.Fatal("server Dial refused after one of its connections closed")
	}
}
