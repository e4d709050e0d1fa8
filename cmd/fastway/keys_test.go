package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// registers runs a server handshake with key as id against addr and
// reports whether the gateway registered it (it answers the first Ping);
// the connection stays open until the test ends.
func registers(t *testing.T, addr, key string, id uint32) (*peer, bool) {
	t.Helper()
	s := dialPeer(t, addr)
	if err := proto.AuthenticateToGateway(s.conn, key, id, timeout); err != nil {
		t.Fatal(err)
	}
	s.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
	s.conn.SetReadDeadline(time.Now().Add(timeout))
	if _, err := s.fr.ReadFrame(); err != nil {
		return nil, false
	}
	return s, true
}

// writeKeys replaces the key file atomically, as an operator's tooling
// would.
func writeKeys(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestServerKeyFile mounts issue 14's finding 9 against the binary: with
// -ServerKeyFile and no shared password, a server keyed for ID 1 cannot
// register as ID 2 nor as an unlisted ID; each refusal is logged with the
// ID it claimed. SIGHUP and "keys reload" reread the file: the new keys
// apply to the next handshakes while registered servers keep working, and
// a bad file keeps the keys in use, logged as an error.
func TestServerKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "server.keys")
	writeKeys(t, keyFile, "# per-server keys\n1 key-of-one\n2 key-of-two\n")
	p := startProc(t, dir, "-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-ServerKeyFile="+keyFile, "-ServerAuthFailBurst=0")
	clientAddr, serverAddr := p.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)

	refused := func(key string, id uint32, why string) {
		t.Helper()
		since := p.mark()
		if _, ok := registers(t, serverAddr, key, id); ok {
			t.Fatalf("a server with key %q registered as %d", key, id)
		}
		if l := p.waitFrom(since, "server auth failed"); !strings.Contains(l.kv["error"], why) {
			t.Errorf("refusal logged %q, want it to say %q", l.raw, why)
		}
	}
	one, ok := registers(t, serverAddr, "key-of-one", 1)
	if !ok {
		t.Fatal("server 1 with its key was refused")
	}
	refused("key-of-one", 2, "wrong digest for server ID 2")
	refused("key-of-one", 3, "no key admits server ID 3")
	refused("", 3, "no key admits server ID 3")
	if res := p.run("keys", false).kv["result"]; !strings.Contains(res, "entries=2 ids=1,2 unlisted_ids=refused") || strings.Contains(res, "key-of") {
		t.Errorf("keys: %q", res)
	}

	// SIGHUP: ID 2 now takes ID 1's key.
	writeKeys(t, keyFile, "2 key-of-one\n")
	since := p.mark()
	p.signal(syscall.SIGHUP)
	p.waitFrom(since, "server keys reloaded", "trigger", "SIGHUP")
	if _, ok := registers(t, serverAddr, "key-of-one", 2); !ok {
		t.Fatal("after SIGHUP, server 2 with its new key was refused")
	}
	refused("key-of-two", 2, "wrong digest for server ID 2")
	refused("key-of-one", 1, "no key admits server ID 1")
	// Server 1, registered before, still serves.
	cl := dialPeer(t, clientAddr)
	cl.send(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))
	id := cl.readCmd(proto.CmdAccept).ConnID
	one.readCmd(proto.CmdConnect)
	cl.send(proto.EncodeData(nil, id, []byte("still here")))
	one.readData(id, "still here")

	// A bad file, by command and by SIGHUP: the keys in use stay.
	writeKeys(t, keyFile, "2 key-of-one\n3\n")
	if l := p.run("keys reload", true); !strings.Contains(l.kv["err"], "line 2: no key after the IDs") {
		t.Errorf("keys reload of a bad file: %q", l.raw)
	}
	since = p.mark()
	p.signal(syscall.SIGHUP)
	if l := p.waitFrom(since, "server keys reload failed; the gateway keeps the keys it had", "trigger", "SIGHUP"); l.kv["level"] != "ERROR" {
		t.Errorf("failed reload logged %q", l.raw)
	}
	if _, ok := registers(t, serverAddr, "key-of-one", 2); !ok {
		t.Fatal("after a failed reload, server 2 with its key was refused")
	}
	os.Remove(keyFile)
	p.run("keys reload", true)
	if _, ok := registers(t, serverAddr, "key-of-one", 2); !ok {
		t.Fatal("after a reload of a missing file, server 2 with its key was refused")
	}
	if res := p.run("keys", false).kv["result"]; !strings.Contains(res, "reloads=1 reload_failures=3") {
		t.Errorf("keys: %q", res)
	}

	// And the command works like SIGHUP once the file is good again.
	writeKeys(t, keyFile, "1-2 key-of-one\n")
	p.run("keys reload", false)
	if _, ok := registers(t, serverAddr, "key-of-one", 1); !ok {
		t.Fatal("after keys reload, server 1 with the range's key was refused")
	}
	p.stop()
}
