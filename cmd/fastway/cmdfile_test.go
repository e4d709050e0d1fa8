//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// keyPEM stands for a TLS key the gateway's user can read; keyMarker is a
// piece of it that must never reach the log.
const (
	keyPEM    = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"
	keyMarker = "MIIEvQIBADAN"
)

// TestCmdFileAttacks mounts issue 14's finding 6 against the binary:
// fastway.cmd as a symbolic link to a key, then as a FIFO. Each SIGUSR1 is
// refused at once with the reason and nothing of the key is logged; a
// SIGTERM sent right after a SIGUSR1 with the FIFO in place stops the
// process within its usual time.
func TestCmdFileAttacks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startProc(t, dir, loopbackArgs...)
	p.ready()
	cmdFile := filepath.Join(dir, "fastway.cmd")
	key := filepath.Join(dir, "tls.key")
	if err := os.WriteFile(key, []byte(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}

	refused := func(what, reason string) {
		t.Helper()
		since := p.mark()
		p.signal(syscall.SIGUSR1)
		l := p.waitFrom(since, "fastway: cmd: command failed")
		if !strings.Contains(l.kv["err"], reason) {
			t.Errorf("%s: err %q, want it to say %q", what, l.kv["err"], reason)
		}
	}
	if err := os.Symlink(key, cmdFile); err != nil {
		t.Fatal(err)
	}
	refused("symlink to a key", "symbolic link: refused")
	if err := os.Remove(cmdFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(key, cmdFile); err != nil {
		t.Fatal(err)
	}
	refused("hard link to a key", "2 hard links: refused")
	os.Remove(cmdFile)
	if err := os.WriteFile(cmdFile, []byte("stats\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(cmdFile, 0o666)
	refused("world-writable file", "writable by group or others")
	os.Remove(cmdFile)
	if err := syscall.Mkfifo(cmdFile, 0o600); err != nil {
		t.Fatal(err)
	}
	refused("FIFO", "not a regular file (a FIFO)")

	// The commands still work once the file is sane again.
	os.Remove(cmdFile)
	p.run("lookup gc", false)

	// SIGUSR1 with a FIFO in place, then SIGTERM at once.
	os.Remove(cmdFile)
	if err := syscall.Mkfifo(cmdFile, 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGUSR1)
	start := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	t.Logf("SIGUSR1 with a FIFO as the command file, then SIGTERM: exited in %v", time.Since(start).Round(time.Millisecond))

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.Contains(l.raw, keyMarker) || strings.Contains(l.raw, "PRIVATE KEY") {
			t.Errorf("the key reached the log: %s", l.raw)
		}
	}
}
