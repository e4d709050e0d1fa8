//go:build unix

package cmd

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// secretPEM stands for a private key the gateway's user can read.
const secretPEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"

// secretMarker is a piece of secretPEM that must never be logged.
const secretMarker = "MIIEvQIBADAN"

// allLogged returns every record r holds, as text.
func (r *recorder) allLogged() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, rec := range r.recs {
		b.WriteString(rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
			return true
		})
		b.WriteByte('\n')
	}
	return b.String()
}

// TestCmdFileRefused: the command file is read only if it is a regular file
// of this user that group and others cannot write, with one link, and not
// a symbolic link; the refusal says why, and nothing of the file but a
// capped command name is ever logged (issue 14, finding 6).
func TestCmdFileRefused(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(secret, []byte(secretPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string // in the error
	}{
		{"symlink to a key", func(t *testing.T, path string) {
			must(t, os.Symlink(secret, path))
		}, "symbolic link"},
		{"symlink to a FIFO", func(t *testing.T, path string) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			must(t, syscall.Mkfifo(fifo, 0o600))
			must(t, os.Symlink(fifo, path))
		}, "symbolic link"},
		{"FIFO", func(t *testing.T, path string) {
			must(t, syscall.Mkfifo(path, 0o600))
		}, "a FIFO"},
		{"directory", func(t *testing.T, path string) {
			must(t, os.Mkdir(path, 0o700))
		}, "a directory"},
		{"hard link to a key", func(t *testing.T, path string) {
			must(t, os.Link(secret, path))
		}, "2 hard links"},
		{"group-writable", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, []byte("lookup gc\n"), 0o600))
			must(t, os.Chmod(path, 0o664))
		}, "writable by group or others (mode 0664)"},
		{"world-writable", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, []byte("lookup gc\n"), 0o600))
			must(t, os.Chmod(path, 0o646))
		}, "writable by group or others"},
		{"another user's", func(t *testing.T, path string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			must(t, os.WriteFile(path, []byte("lookup gc\n"), 0o644))
			must(t, os.Chown(path, 12345, 12345))
		}, "owned by uid 12345"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), DefaultCmdFile)
			i, rec, results := newTest(t, Config{CmdFile: path})
			tc.setup(t, path)
			done := make(chan error, 1)
			go func() { _, err := i.RunFile(); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrCmdFile) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("RunFile: %v, want ErrCmdFile saying %q", err, tc.want)
				}
			case <-time.After(timeout):
				t.Fatal("RunFile blocked")
			}
			waitResult(t, results)
			if logged := rec.allLogged(); strings.Contains(logged, secretMarker) || strings.Contains(logged, "lookup gc") {
				t.Fatalf("the file's content was logged:\n%s", logged)
			}
		})
	}
}

// TestCmdFileContentNotLogged: a regular file that holds something else
// than a command (a key pasted into it) is refused, and the log holds at
// most its first word, capped and quoted; a long unknown name is cut.
func TestCmdFileContentNotLogged(t *testing.T) {
	for _, tc := range []struct{ name, text, cmd string }{
		{"key", secretPEM, "-----BEGIN"},
		{"one line", "lookup " + secretMarker + "\n", "lookup"},
		{"long name", secretMarker + strings.Repeat("x", 100) + "\n", (secretMarker + strings.Repeat("x", 100))[:MaxLoggedNameSize] + "..."},
		{"control bytes", "st\x1b[2Jats\n", "st?[2Jats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, rec, results := newTest(t, Config{})
			writeCmd(t, i, tc.text)
			if _, err := i.RunFile(); err == nil {
				t.Fatal("RunFile succeeded")
			}
			waitResult(t, results)
			attrs, ok := rec.find(slog.LevelError, "fastway: cmd: command failed")
			if !ok || attrs["cmd"] != tc.cmd {
				t.Fatalf("logged %v, want cmd %q", attrs, tc.cmd)
			}
			logged := rec.allLogged()
			if tc.name != "long name" && strings.Contains(logged, secretMarker) {
				t.Fatalf("the file's content was logged:\n%s", logged)
			}
			if strings.Contains(logged, secretMarker+strings.Repeat("x", 40)) || strings.Contains(logged, "\x1b") {
				t.Fatalf("more than a capped, cleaned name was logged:\n%s", logged)
			}
		})
	}
}

// TestCmdFileSwaps attacks the check and the open: while RunFile runs over
// and over, another goroutine keeps replacing the command file with a
// regular file, a symbolic link to a key and a FIFO. Every run finishes
// promptly; none reads the key or blocks on the FIFO, and what runs is only
// ever the regular file's command.
func TestCmdFileSwaps(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "key.pem")
	must(t, os.WriteFile(secret, []byte(secretPEM), 0o600))
	fifo := filepath.Join(dir, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o600))
	path := filepath.Join(dir, DefaultCmdFile)
	i, rec, _ := newTest(t, Config{CmdFile: path})
	i.cfg.OnResult = nil // nobody reads the results here

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tmp := path + ".tmp"
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			os.Remove(tmp)
			switch k % 3 {
			case 0:
				os.WriteFile(tmp, []byte("lookup gc\n"), 0o644)
			case 1:
				os.Symlink(secret, tmp)
			case 2:
				os.Rename(fifo, tmp)
			}
			os.Rename(tmp, path) // atomically replaces what was there
			if k%3 == 2 {
				// Put the FIFO back where the next round takes it from.
				syscall.Mkfifo(fifo, 0o600)
			}
		}
	}()
	ran, refused := 0, 0
	deadline := time.Now().Add(timeout)
	for n := 0; n < 300; n++ {
		done := make(chan struct{})
		var res string
		var err error
		go func() { res, err = i.RunFile(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Until(deadline)):
			close(stop)
			wg.Wait()
			t.Fatalf("RunFile blocked (run %d)", n)
		}
		switch {
		case err == nil:
			ran++
			if !strings.Contains(res, "gc") {
				t.Fatalf("run %d: result %q", n, res)
			}
		case errors.Is(err, ErrCmdFile):
			refused++
		default:
			t.Fatalf("run %d: %v", n, err)
		}
	}
	close(stop)
	wg.Wait()
	if strings.Contains(rec.allLogged(), secretMarker) {
		t.Fatal("the key was logged")
	}
	t.Logf("300 runs while the file was swapped: %d ran the command, %d refused", ran, refused)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
