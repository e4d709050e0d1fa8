package gateway

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// startWS serves WebSocket clients for g on a loopback port of their own
// and returns the ws:// URL; the listener closes with the gateway.
func startWS(t testing.TB, g *testGW, cfg ws.Config) string {
	t.Helper()
	url, _ := startWSL(t, g, cfg)
	return url
}

// dialWS connects a WebSocket client and wraps it as a raw peer: frames
// written go out one per message; frames read come from the stream of
// binary messages.
func dialWS(t testing.TB, url string, o ws.DialOptions) (*peer, *ws.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if o.Protocols == nil {
		o.Protocols = []string{ws.Subprotocol}
	}
	c, err := ws.Dial(ctx, url, o)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return newPeer(t, c), c
}

// TestWSClientBasics: a WebSocket client dials a server, exchanges data
// both ways, pings, and closes, exactly as a TCP client does; the
// subprotocol is chosen and the connection is counted as ws.
func TestWSClientBasics(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 7)
	c, wc := dialWS(t, url, ws.DialOptions{})
	if wc.Protocol != ws.Subprotocol {
		t.Fatalf("subprotocol %q, want %q", wc.Protocol, ws.Subprotocol)
	}
	c.ping()
	id, _ := open(t, c, s, 7)
	c.sendData(id, "hello")
	s.expectData(id, "hello")
	s.sendData(id, "world")
	c.expectData(id, "world")
	if st := g.Stats(); st.WS.Conns != 1 || st.WS.Accepts != 1 || st.ClientConns != 1 {
		t.Fatalf("stats: ws %+v, client conns %d", st.WS, st.ClientConns)
	}
	c.send(proto.Command{Type: proto.CmdClose, ConnID: id})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	wc.Close()
	eventually(t, "the ws client counted gone", func() bool {
		st := g.Stats()
		return st.WS.Conns == 0 && st.WS.Disconnects[ReasonPeerClosed] == 1
	})
}

// TestWSSplitAndPacked: frames split across messages (and across
// fragments of one message), and several frames packed into one message,
// arrive whole and in order.
func TestWSSplitAndPacked(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 7)
	c, wc := dialWS(t, url, ws.DialOptions{})
	id, _ := open(t, c, s, 7)

	var packed []byte
	for i := range 5 {
		packed = proto.EncodeData(packed, id, bytes.Repeat([]byte{byte('a' + i)}, i*100))
	}
	if _, err := wc.Write(packed); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s.expectData(id, string(bytes.Repeat([]byte{byte('a' + i)}, i*100)))
	}
	// One frame byte by byte, one message per byte.
	one := proto.EncodeData(nil, id, []byte("split across eleven+ messages"))
	for i := range one {
		if _, err := wc.Write(one[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	s.expect(one)
	// One frame in fragments of one message, with a Ping between them.
	two := proto.EncodeData(nil, id, bytes.Repeat([]byte("xyz"), 1000))
	if err := wc.WriteFrame(gws.OpBinary, false, two[:3]); err != nil {
		t.Fatal(err)
	}
	if err := wc.WriteFrame(gws.OpPing, true, []byte("p")); err != nil {
		t.Fatal(err)
	}
	for _, part := range [][]byte{two[3:4], two[4:504], two[504:]} {
		if err := wc.WriteFrame(gws.OpContinuation, len(part) == len(two)-504, part); err != nil {
			t.Fatal(err)
		}
	}
	s.expect(two)
	// And a frame split across two messages, each in fragments.
	three := proto.EncodeData(nil, id, bytes.Repeat([]byte("q"), 70000))
	if err := wc.WriteFragmented(three[:40000], 1, 2, 30000); err != nil {
		t.Fatal(err)
	}
	if err := wc.WriteFragmented(three[40000:], 9); err != nil {
		t.Fatal(err)
	}
	s.expect(three)
	c.ping()
}

// TestWSTextIsProtocolError: a text message closes the client as a
// protocol error, with Close status 1003, and touches nobody else.
func TestWSTextIsProtocolError(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 7)
	other, _ := dialWS(t, url, ws.DialOptions{})
	oid, _ := open(t, other, s, 7)
	c, wc := dialWS(t, url, ws.DialOptions{})
	c.ping()
	if err := wc.WriteFrame(gws.OpText, true, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	wc.SetReadDeadline(time.Now().Add(waitFor))
	_, _, err := wc.ReadMessage()
	var ce *ws.CloseError
	if !errors.As(err, &ce) || ce.Code != gws.StatusUnsupportedData {
		t.Fatalf("got %v, want a Close frame with status 1003", err)
	}
	eventually(t, "the text sender closed as a protocol error", func() bool {
		return g.Stats().WS.Disconnects[ReasonProtocolError] == 1
	})
	other.sendData(oid, "still here")
	s.expectData(oid, "still here")
}
