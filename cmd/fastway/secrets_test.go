package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/fastway-go/fastway/proto"
)

// randomSecret returns prefix followed by 16 random hex digits: a string
// that appears nowhere unless it leaked.
func randomSecret(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// adminEndpoints are every admin path the secrets test reads: each index
// entry, every pprof profile in its text form, and a short CPU profile.
var adminEndpoints = []string{"/", "/metrics", "/healthz", "/readyz", "/servers",
	"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol",
	"/debug/pprof/goroutine?debug=1", "/debug/pprof/goroutine?debug=2", "/debug/pprof/heap?debug=1",
	"/debug/pprof/allocs?debug=1", "/debug/pprof/block?debug=1", "/debug/pprof/mutex?debug=1",
	"/debug/pprof/threadcreate?debug=1", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1"}

// getAuth fetches url with the bearer token (none if empty) and returns
// the status and the body, gunzipped if it is gzip (binary profiles).
func getAuth(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: timeout}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
		if unz, err := io.ReadAll(zr); err == nil {
			b = unz
		}
	}
	return resp.StatusCode, b
}

// TestSecretsStayInside mounts issue 14's finding 3 against the binary, at
// its worst: the password and the admin token given on the command line,
// where ps shows them, plus a key file. Every admin endpoint is read
// (with the token; without it, everything but the probes answers 401), the
// ops commands run, a server fails and passes the handshake, the keys are
// reloaded, and the process stops; no response and no log line holds the
// password, the token or a key. /debug/pprof/cmdline shows them redacted.
func TestSecretsStayInside(t *testing.T) {
	t.Parallel()
	pw, token, key := randomSecret(t, "Pw-"), randomSecret(t, "Tk-"), randomSecret(t, "Ky-")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "server.keys")
	if err := os.WriteFile(keyFile, []byte("7 "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, dir, "-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-AdminAddr=127.0.0.1:0",
		"-ServerAuthPassword="+pw, "-AdminToken", token, "-ServerKeyFile="+keyFile)
	clientAddr, serverAddr := p.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)
	base := p.adminURL()

	// Servers: one with a wrong password, one with the password, one with
	// its own key.
	wrong := dialPeer(t, serverAddr)
	if err := proto.AuthenticateToGateway(wrong.conn, "not-"+pw, 1, timeout); err != nil {
		t.Fatal(err)
	}
	p.waitFrom(0, "server auth failed")
	srv := dialPeer(t, serverAddr)
	if err := proto.AuthenticateToGateway(srv.conn, pw, 1, timeout); err != nil {
		t.Fatal(err)
	}
	srv.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
	srv.readCmd(proto.CmdPing)
	keyed := dialPeer(t, serverAddr)
	if err := proto.AuthenticateToGateway(keyed.conn, key, 7, timeout); err != nil {
		t.Fatal(err)
	}
	keyed.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
	keyed.readCmd(proto.CmdPing)
	cl := dialPeer(t, clientAddr)
	cl.send(proto.Command{Type: proto.CmdDial, RemoteID: 7}.Encode(nil))
	id := cl.readCmd(proto.CmdAccept).ConnID
	keyed.readCmd(proto.CmdConnect)
	cl.send(proto.EncodeData(nil, id, []byte("hello")))
	keyed.readData(id, "hello")

	leaks := func(where string, b []byte) {
		t.Helper()
		for _, s := range []string{pw, token, key} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the secret %.3s...: %.300q", where, s, b)
			}
		}
	}
	for _, path := range adminEndpoints {
		status, body := getAuth(t, base+path, token)
		if status != http.StatusOK {
			t.Errorf("GET %s with the token: %d %.200q", path, status, body)
		}
		leaks("GET "+path, body)
		status, body = getAuth(t, base+path, "")
		leaks("GET "+path+" without the token", body)
		probe := path == "/healthz" || path == "/readyz"
		if probe != (status == http.StatusOK) || !probe && status != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want %s", path, status, map[bool]string{true: "200", false: "401"}[probe])
		}
	}
	_, cmdline := getAuth(t, base+"/debug/pprof/cmdline", token)
	args := strings.Split(string(cmdline), "\x00")
	if !strings.Contains(string(cmdline), "-ServerAuthPassword=<redacted>") || len(args) < 8 || args[6] != "<redacted>" {
		t.Errorf("cmdline %q, want the password and the token redacted", args)
	}

	for _, c := range []string{"stats", "snet", "keys", "help", "keys reload"} {
		p.run(c, false)
	}
	since := p.mark()
	p.signal(syscall.SIGHUP)
	p.waitFrom(since, "server keys reloaded", "trigger", "SIGHUP")
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		leaks("log line", []byte(l.raw))
	}
	t.Logf("%d admin endpoints read with and without the token, %d log lines: no secret in any", len(adminEndpoints), len(p.lines))
}

// TestAdminAddrLoopbackByDefault: an admin address without a host binds
// loopback only; every interface must be named, and without a token that
// logs a warning, with one it does not.
func TestAdminAddrLoopbackByDefault(t *testing.T) {
	t.Parallel()
	token := randomSecret(t, "Tk-")
	for _, tc := range []struct {
		args          []string
		host          string
		warn, tokenOn bool
	}{
		{[]string{"-AdminAddr=:0"}, "127.0.0.1", false, false},
		{[]string{"-AdminAddr=0.0.0.0:0"}, "0.0.0.0", true, false},
		{[]string{"-AdminAddr=0.0.0.0:0", "-AdminToken=" + token}, "0.0.0.0", false, true},
	} {
		p := startProc(t, t.TempDir(), append(slices.Clone(loopbackArgs), tc.args...)...)
		p.ready()
		l := p.waitFrom(0, "listening", "side", "admin")
		host, _, _ := net.SplitHostPort(l.kv["addr"])
		if (host != tc.host && !(tc.host == "0.0.0.0" && isWildcard(host))) || l.kv["token"] != map[bool]string{false: "false", true: "true"}[tc.tokenOn] {
			t.Errorf("%q: logged %q, want host %s", tc.args, l.raw, tc.host)
		}
		p.stop()
		warned := false
		p.mu.Lock()
		for _, l := range p.lines {
			warned = warned || strings.Contains(l.kv["msg"], "reachable from other hosts")
		}
		p.mu.Unlock()
		if warned != tc.warn {
			t.Errorf("%q: warned %v, want %v", tc.args, warned, tc.warn)
		}
	}
}
