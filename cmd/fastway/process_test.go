package main

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/google/pprof/profile"
)

// loopbackArgs start fastway on free loopback ports.
var loopbackArgs = []string{"-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-ServerAuthPassword=" + password}

// TestRelay starts fastway on ":0" ports, reads the real ports from its
// log, and passes data both ways between a client and a server.
func TestRelay(t *testing.T) {
	t.Parallel()
	p := startProc(t, t.TempDir(), loopbackArgs...)
	clientAddr, serverAddr := p.ready()
	p.checkPidFile()
	exchange(t, loopback(t, clientAddr), loopback(t, serverAddr), 1)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	checkNoPidFile(t, p.dir)
}

// TestDefaultAddrs runs fastway as the README does (go run ./cmd/fastway
// -ServerAuthPassword=secret): both ports on ":0", every other flag at its
// default.
func TestDefaultAddrs(t *testing.T) {
	t.Parallel()
	p := startProc(t, t.TempDir(), "-ServerAuthPassword="+password)
	clientAddr, serverAddr := p.ready()
	for _, a := range []string{clientAddr, serverAddr} {
		host, _, _ := net.SplitHostPort(a)
		if !isWildcard(host) {
			t.Errorf("listening on %q, want all interfaces", a)
		}
	}
	exchange(t, loopback(t, clientAddr), loopback(t, serverAddr), 7)
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0", code)
	}
	checkNoPidFile(t, p.dir)
}

// TestServerAuthKeyBinary runs fastway with the password given as -ServerAuthKey
// (the original fastway's name), alone and on the original's whole command
// line, and as -ServerAuthPassword: in each case a server authenticating
// with it registers (here as ID 0, which the original allowed) and relays,
// and one with another key is closed.
func TestServerAuthKeyBinary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"ServerAuthKey", []string{"-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-ServerAuthKey=" + password}},
		{"original command line", originalFlags},
		{"ServerAuthPassword", loopbackArgs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startProc(t, t.TempDir(), tc.args...)
			clientAddr, serverAddr := p.ready()
			clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)
			exchange(t, clientAddr, serverAddr, 0)
			p.waitFrom(0, "server registered", "id", "0")

			wrong := dialPeer(t, serverAddr)
			if err := proto.AuthenticateToGateway(wrong.conn, "not-"+password, 1, timeout); err != nil {
				t.Fatal(err)
			}
			wrong.conn.SetReadDeadline(time.Now().Add(timeout))
			if _, err := wrong.fr.ReadFrame(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("server with another key: %v, want the connection closed", err)
			}
			p.waitFrom(0, "server auth failed")
			p.stop()
		})
	}
}

// TestCommands sends every ops command through the command file and
// SIGUSR1 and checks its effect; the gateway keeps serving throughout.
func TestCommands(t *testing.T) {
	t.Parallel()
	p := startProc(t, t.TempDir(), loopbackArgs...)
	clientAddr, serverAddr := p.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)

	p.run("cpuprof start", false)
	exchange(t, clientAddr, serverAddr, 1)
	p.run("cpuprof stop", false)
	parseProfile(t, filepath.Join(p.dir, "fastway.cpu.prof"))
	if res := p.run("lookup block", false).kv["result"]; !strings.Contains(res, "block profiling is off") {
		t.Errorf("lookup block before blockprof start: result %q does not say profiling is off", res)
	}
	p.run("blockprof start", false)
	exchange(t, clientAddr, serverAddr, 3)
	for _, name := range []string{"block", "goroutine", "heap", "threadcreate"} {
		if res := p.run("lookup "+name, false).kv["result"]; strings.Contains(res, "off") {
			t.Errorf("lookup %s with block profiling on: result %q", name, res)
		}
		parseProfile(t, filepath.Join(p.dir, "fastway."+name+".prof"))
	}
	p.run("blockprof stop", false)
	p.run("lookup gc", false)

	res := p.run("stats", false).kv["result"]
	for _, want := range []string{"conns.client=", "conns.virtual=", "accepted.client=2", "accepted.server=2", "dials.accepted=2",
		"dials.refused.unknown_id=0", "disconnects.peer_closed=", "client.bytes_in="} {
		if !strings.Contains(res, want) {
			t.Errorf("stats result %q lacks %q", res, want)
		}
	}
	if strings.Contains(res, "\n") {
		t.Errorf("stats result %q is not one line", res)
	}
	res = p.run("help", false).kv["result"]
	for _, want := range []string{"blockprof", "cpuprof", "lookup", "help", "stats"} {
		if !strings.Contains(res, want) {
			t.Errorf("help result %q lacks %q", res, want)
		}
	}
	if l := p.run("reboot now", true); l.kv["level"] != "ERROR" || !strings.Contains(l.kv["err"], "unknown command") {
		t.Errorf("unknown command logged %q", l.raw)
	}
	exchange(t, clientAddr, serverAddr, 2)

	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func parseProfile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := profile.Parse(f); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}

// TestStopSignals stops fastway with SIGTERM and SIGINT while a client and
// a server are connected: both see their connection closed, the process
// exits 0 and removes its pidfile.
func TestStopSignals(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			p := startProc(t, t.TempDir(), loopbackArgs...)
			clientAddr, serverAddr := p.ready()
			srv := dialServer(t, loopback(t, serverAddr), 1)
			cl := dialPeer(t, loopback(t, clientAddr))
			cl.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
			cl.readCmd(proto.CmdPing)
			p.checkPidFile()

			p.signal(sig)
			for _, pe := range []*peer{cl, srv} {
				pe.conn.SetReadDeadline(time.Now().Add(timeout))
				if _, err := pe.fr.ReadFrame(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("read after %v: %v, want the connection closed", sig, err)
				}
			}
			if code := p.wait(); code != 0 {
				t.Fatalf("exit code %d after %v, want 0", code, sig)
			}
			p.waitFrom(0, "stopped")
			checkNoPidFile(t, p.dir)
		})
	}
}

// TestReusePort starts two processes on the same ports with -ReusePort;
// a third without it cannot listen there.
func TestReusePort(t *testing.T) {
	t.Parallel()
	first := startProc(t, t.TempDir(), append([]string{"-ReusePort"}, loopbackArgs...)...)
	clientAddr, serverAddr := first.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)

	second := startProc(t, t.TempDir(), "-ReusePort", "-ClientAddr="+clientAddr, "-ServerAddr="+serverAddr, "-ServerAuthPassword="+password)
	c2, s2 := second.ready()
	if c2 != clientAddr || s2 != serverAddr {
		t.Fatalf("second process listens on %s and %s, want %s and %s", c2, s2, clientAddr, serverAddr)
	}
	cl := dialPeer(t, clientAddr)
	cl.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
	cl.readCmd(proto.CmdPing)

	third := startProc(t, t.TempDir(), "-ClientAddr="+clientAddr, "-ServerAddr=127.0.0.1:0", "-ServerAuthPassword="+password)
	if code := third.wait(); code != exitError {
		t.Errorf("without -ReusePort: exit code %d, want %d", code, exitError)
	}
	third.waitFrom(0, "cannot listen", "side", "client")

	for _, p := range []*proc{first, second} {
		p.signal(syscall.SIGTERM)
		if code := p.wait(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
	}
}
