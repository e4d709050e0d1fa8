package gateway

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// The WebSocket upgrade (docs/protocol.md §8) through the real gateway:
// each refusal answered and counted by reason, nobody else touched.

// upgradeRequest is a valid upgrade request for path with extra header
// lines (each ending in \r\n).
func upgradeRequest(path, extra string) string {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
}

// rawUpgrade writes req to a new connection to addr and returns the
// response's status and the reader behind it.
func rawUpgrade(t testing.TB, addr, req string) (int, *bufio.Reader, net.Conn) {
	t.Helper()
	resp, br, c := rawUpgradeResp(t, addr, req)
	return resp.StatusCode, br, c
}

func rawUpgradeResp(t testing.TB, addr, req string) (*http.Response, *bufio.Reader, net.Conn) {
	t.Helper()
	c := dialRaw(t, addr)
	c.SetDeadline(time.Now().Add(waitFor))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return resp, br, c
}

func TestWSHandshakeRefusals(t *testing.T) {
	g := startGW(t, Config{})
	url, wl := startWSL(t, g, ws.Config{Path: "/ws", Origins: []string{"https://game.example.com", "http://localhost:8080"}})
	addr := wl.Addr().String()
	s := g.dialServer(t, 1)
	// A client that is in while the others are refused.
	in, _ := dialWS(t, url, ws.DialOptions{Origin: "https://GAME.example.com"})
	inID, _ := open(t, in, s, 1)

	cases := []struct {
		name string
		req  string
		code int
		f    ws.Failure
	}{
		{"wrong path", upgradeRequest("/other", ""), 404, ws.FailPath},
		{"path prefix", upgradeRequest("/wss", ""), 404, ws.FailPath},
		{"origin refused", upgradeRequest("/ws", "Origin: https://evil.example.com\r\n"), 403, ws.FailOrigin},
		{"origin's port differs", upgradeRequest("/ws", "Origin: http://localhost:8081\r\n"), 403, ws.FailOrigin},
		{"no upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 400, ws.FailRequest},
		{"version 8", strings.Replace(upgradeRequest("/ws", ""), "Version: 13", "Version: 8", 1), 426, ws.FailRequest},
		{"no key", strings.Replace(upgradeRequest("/ws", ""), "Sec-WebSocket-Key", "X-Key", 1), 400, ws.FailRequest},
		{"HTTP/1.0", strings.Replace(upgradeRequest("/ws", ""), "HTTP/1.1", "HTTP/1.0", 1), 505, ws.FailRequest},
		{"POST", strings.Replace(upgradeRequest("/ws", ""), "GET", "POST", 1), 405, ws.FailRequest},
		{"too large", upgradeRequest("/ws", "X-Pad: "+strings.Repeat("a", 8<<10)+"\r\n"), 431, ws.FailTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := wl.Stats().Failed[tc.f]
			resp, _, c := rawUpgradeResp(t, addr, tc.req)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if v := resp.Header.Get("Sec-WebSocket-Version"); tc.code == 426 && v != "13" {
				t.Fatalf("426 with Sec-WebSocket-Version %q, want 13", v)
			}
			expectSocketEnd(t, c)
			eventually(t, "the failure counted as "+tc.f.String(), func() bool { return wl.Stats().Failed[tc.f] == before+1 })
		})
	}
	// Allowed: an Origin in the list (any case, a trailing slash), none
	// at all (not a browser), and no subprotocol offered.
	for _, o := range []string{"http://localhost:8080", "https://game.example.com/", ""} {
		c, _ := dialWS(t, url, ws.DialOptions{Origin: o})
		c.ping()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	plain, err := ws.Dial(ctx, url, ws.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Protocol != "" {
		t.Fatalf("chose subprotocol %q, none offered", plain.Protocol)
	}
	pp := newPeer(t, plain)
	pp.ping()
	// A subprotocol not ours alone: no subprotocol chosen, still served.
	other, err := ws.Dial(ctx, url, ws.DialOptions{Protocols: []string{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	if other.Protocol != "" {
		t.Fatalf("chose %q for an offer of chat", other.Protocol)
	}
	newPeer(t, other).ping()
	st := wl.Stats()
	if st.Upgrades != 6 || st.Subproto != 4 {
		t.Fatalf("upgrades %d, subprotocol %d; want 6, 4", st.Upgrades, st.Subproto)
	}
	in.sendData(inID, "untouched")
	s.expectData(inID, "untouched")
}

// TestWSHandshakeTimeout: a client that trickles its request a byte at a
// time is closed once the handshake timeout passes, counted as timeout;
// one that sends nothing too; a client upgrading meanwhile is served.
func TestWSHandshakeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	g := startGW(t, Config{})
	url, wl := startWSL(t, g, ws.Config{HandshakeTimeout: timeout})
	addr := wl.Addr().String()
	trickle := dialRaw(t, addr)
	silent := dialRaw(t, addr)
	start := time.Now()
	req := upgradeRequest("/", "")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(req)-2; i++ { // never the final CRLF
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := trickle.Write([]byte{req[i]}); err != nil {
				return
			}
		}
	}()
	c, _ := dialWS(t, url, ws.DialOptions{})
	c.ping()
	expectSocketEnd(t, trickle)
	expectSocketEnd(t, silent)
	close(stop)
	<-done
	if d := time.Since(start); d < timeout*3/4 || d > timeout+2*time.Second {
		t.Fatalf("closed after %v, timeout %v", d, timeout)
	}
	eventually(t, "two timeouts counted", func() bool {
		st := wl.Stats()
		return st.Failed[ws.FailTimeout] == 2 && st.InProgress == 0
	})
	c.ping()
}

// TestWSMaxHandshakes: past MaxHandshakes handshakes in progress, the
// oldest is closed to make room for the new connection, counted as
// overflow; once one ends, a client gets in again.
func TestWSMaxHandshakes(t *testing.T) {
	g := startGW(t, Config{})
	url, wl := startWSL(t, g, ws.Config{MaxHandshakes: 3})
	addr := wl.Addr().String()
	var slow []net.Conn
	for range 3 {
		slow = append(slow, dialRaw(t, addr))
	}
	eventually(t, "three handshakes in progress", func() bool { return wl.Stats().InProgress == 3 })
	// A fourth: the oldest handshake makes room for it, and is counted.
	over := dialRaw(t, addr)
	expectSocketEnd(t, slow[0])
	eventually(t, "the overflow counted", func() bool { return wl.Stats().Failed[ws.FailOverflow] == 1 })
	eventually(t, "three handshakes in progress", func() bool { return wl.Stats().InProgress == 3 })
	over.Close()
	eventually(t, "one handshake ended", func() bool { return wl.Stats().InProgress == 2 })
	c, _ := dialWS(t, url, ws.DialOptions{})
	c.ping()
	if st := wl.Stats(); st.Failed[ws.FailOverflow] != 1 || st.Failed[ws.FailIO] != 1 || st.Upgrades != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestWSEarlyBytes: frames a client sends in the same write as its
// upgrade request, before the 101, are read as frames, not lost.
func TestWSEarlyBytes(t *testing.T) {
	g := startGW(t, Config{})
	_, wl := startWSL(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	var frames []byte
	frames = append(frames, wsFrame(gws.OpBinary, true, proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))...)
	frames = append(frames, wsFrame(gws.OpBinary, true, proto.Command{Type: proto.CmdPing}.Encode(nil))...)
	code, br, c := rawUpgrade(t, wl.Addr().String(), upgradeRequest("/", "Sec-WebSocket-Protocol: fastway\r\n")+string(frames))
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", code)
	}
	k := s.readCmd()
	if k.Type != proto.CmdConnect {
		t.Fatalf("server got %+v, want Connect", k)
	}
	// The replies, in one message or two: each message whole frames.
	var want []byte
	want = proto.Command{Type: proto.CmdAccept, ConnID: k.ConnID, RemoteID: 1}.Encode(want)
	want = proto.Command{Type: proto.CmdPing}.Encode(want)
	var got []byte
	for len(got) < len(want) {
		h, err := gws.ReadHeader(br)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil || h.OpCode != gws.OpBinary {
			t.Fatalf("opcode %d, %v", h.OpCode, err)
		}
		if _, err := wholeFrames(p); err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
	}
	if string(got) != string(want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	c.Write(wsFrame(gws.OpBinary, true, proto.EncodeData(nil, k.ConnID, []byte("hi"))))
	s.expectData(k.ConnID, "hi")
}

// TestWSParallelHandshakes: a few hundred clients upgrading at once all
// get in (MaxHandshakes is 1024) and are served.
func TestWSParallelHandshakes(t *testing.T) {
	n := scaled(400, 300, 100)
	g := startGW(t, Config{})
	// All from one address: no per-source cap here (TestHandshakesPerSource
	// in internal/ws has it).
	url, wl := startWSL(t, g, ws.Config{MaxHandshakesPerSource: -1})
	s := g.dialServer(t, 1)
	clients := make([]*ws.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	for i := range n {
		wg.Go(func() { clients[i], errs[i] = ws.Dial(ctx, url, ws.DialOptions{Protocols: []string{ws.Subprotocol}}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { clients[i].Close() })
	}
	eventually(t, fmt.Sprint(n, " clients in"), func() bool { return g.Stats().WS.Conns == int64(n) })
	// Each dials the server, pipelined: all Accepted.
	for _, c := range clients {
		c.Write(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))
	}
	for i := range n {
		if k := s.readCmd(); k.Type != proto.CmdConnect {
			t.Fatalf("connect %d: %+v", i, k)
		}
	}
	st := wl.Stats()
	var failed uint64
	for _, f := range st.Failed {
		failed += f
	}
	if st.Upgrades != uint64(n) || failed != 0 || st.Subproto != uint64(n) {
		t.Fatalf("upgrades %d, failed %d, subprotocol %d; want %d, 0, %d", st.Upgrades, failed, st.Subproto, n, n)
	}
}
