package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// The WebSocket port of the real binary (docs/protocol.md §8), as a user
// meets it: its flags, refusals, the ws command's counters, wss with
// certificate files, and a SIGTERM drain ending in Close 1001.

// wsPeer is a WebSocket client of the binary, wrapped as a frame peer.
func wsPeer(t *testing.T, url string, o ws.DialOptions) (*peer, *ws.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := ws.Dial(ctx, url, o)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c, fr: proto.NewFrameReader(c, nil, 0, 0)}, c
}

// upgradeStatus sends an upgrade request for path with an Origin (none
// when empty) and returns the status of the answer.
func upgradeStatus(t *testing.T, addr, path, origin string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	req := "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// wsCounters parses the ws command's result: ws.key=value pairs.
func wsCounters(res string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(res) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

// TestWSBinary: fastway with -ClientWSAddr, -ClientWSPath and
// -ClientWSOrigins serves a WebSocket client end to end, refuses another
// path (404) and Origin (403), counts them in the ws command, and at
// SIGTERM delivers what it queued for the client, then Close 1001, and
// exits 0.
func TestWSBinary(t *testing.T) {
	p := startProc(t, t.TempDir(), "-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-ServerAuthPassword="+password,
		"-ClientWSAddr=127.0.0.1:0", "-ClientWSPath=/game", "-ClientWSOrigins=https://game.example.com,http://localhost:8080")
	_, serverAddr := p.ready()
	wsAddr := loopback(t, p.waitFrom(0, "listening", "side", "ws").kv["addr"])
	url := "ws://" + wsAddr + "/game"

	if code := upgradeStatus(t, wsAddr, "/", ""); code != http.StatusNotFound {
		t.Fatalf("path /: %d, want 404", code)
	}
	if code := upgradeStatus(t, wsAddr, "/game", "https://evil.example.com"); code != http.StatusForbidden {
		t.Fatalf("a foreign Origin: %d, want 403", code)
	}
	srv := dialServer(t, serverAddr, 5)
	c, wc := wsPeer(t, url, ws.DialOptions{Origin: "https://game.example.com", Protocols: []string{ws.Subprotocol}})
	if wc.Protocol != ws.Subprotocol {
		t.Fatalf("subprotocol %q", wc.Protocol)
	}
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: 5}.Encode(nil))
	acc := c.readCmd(proto.CmdAccept)
	srv.readCmd(proto.CmdConnect)
	c.send(proto.EncodeData(nil, acc.ConnID, []byte("hello over ws")))
	srv.readData(acc.ConnID, "hello over ws")

	got := wsCounters(p.run("ws", false).kv["result"])
	for k, v := range map[string]string{"ws.upgrades": "1", "ws.subprotocol": "1", "ws.failed.path": "1", "ws.failed.origin": "1", "ws.conns": "1"} {
		if got[k] != v {
			t.Fatalf("ws command: %s=%q, want %s (all: %v)", k, got[k], v, got)
		}
	}

	// Frames queued for the client while it does not read, then SIGTERM.
	const n = 200
	for i := range n {
		srv.send(proto.EncodeData(nil, acc.ConnID, []byte(fmt.Sprint("queued ", i))))
	}
	srv.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
	srv.readCmd(proto.CmdPing)
	p.signal(syscall.SIGTERM)
	for i := range n {
		c.readData(acc.ConnID, fmt.Sprint("queued ", i))
	}
	wc.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, _, err := wc.ReadMessage()
		if err == nil {
			continue // the Close of the virtual connection
		}
		var ce *ws.CloseError
		if !errors.As(err, &ce) || ce.Code != gws.StatusGoingAway {
			t.Fatalf("after the queued frames: %v, want Close 1001", err)
		}
		break
	}
	wc.Close()
	srv.conn.Close()
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestWSSBinary: -ClientWSTLSCert/-ClientWSTLSKey serve wss:// with the
// certificate files; a client trusting the CA exchanges data, one that
// speaks plain ws is counted as tls in the ws command.
func TestWSSBinary(t *testing.T) {
	pki := newPKI(t)
	p := startProc(t, t.TempDir(), "-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-ServerAuthPassword="+password,
		"-ClientWSAddr=127.0.0.1:0", "-ClientWSTLSCert="+pki.certFile, "-ClientWSTLSKey="+pki.keyFile)
	_, serverAddr := p.ready()
	l := p.waitFrom(0, "listening", "side", "ws")
	wsAddr := loopback(t, l.kv["addr"])
	srv := dialServer(t, serverAddr, 6)
	c, _ := wsPeer(t, "wss://"+wsAddr+"/", ws.DialOptions{TLS: &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}})
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: 6}.Encode(nil))
	acc := c.readCmd(proto.CmdAccept)
	srv.readCmd(proto.CmdConnect)
	big := strings.Repeat("x", 100000)
	srv.send(proto.EncodeData(nil, acc.ConnID, []byte(big)))
	c.readData(acc.ConnID, big)
	c.send(proto.EncodeData(nil, acc.ConnID, []byte(big)))
	srv.readData(acc.ConnID, big)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := ws.Dial(ctx, "ws://"+wsAddr+"/", ws.DialOptions{}); err == nil {
		t.Fatal("a plain ws client upgraded on the wss port")
	}
	deadline := time.Now().Add(timeout)
	for {
		got := wsCounters(p.run("ws", false).kv["result"])
		if got["ws.failed.tls"] == "1" && got["ws.upgrades"] == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ws command: %v, want ws.failed.tls=1 ws.upgrades=1", got)
		}
	}
}
