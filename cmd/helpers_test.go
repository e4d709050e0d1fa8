package cmd

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.uber.org/goleak"
)

// timeout bounds every wait in these tests.
const timeout = 10 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// result is one call of Config.OnResult.
type result struct {
	cmd, res string
	err      error
}

// newTest returns an Interpreter writing into a fresh temp dir, whose
// command file is in another temp dir, whose log goes to the returned recorder and
// whose results go to the returned channel.
func newTest(t *testing.T, cfg Config) (*Interpreter, *recorder, <-chan result) {
	t.Helper()
	dir := t.TempDir()
	if cfg.Dir == "" {
		cfg.Dir = dir
	}
	if cfg.CmdFile == "" {
		cfg.CmdFile = filepath.Join(t.TempDir(), DefaultCmdFile)
	}
	rec := &recorder{}
	cfg.Logger = slog.New(rec)
	results := make(chan result, 16)
	cfg.OnResult = func(cmd, res string, err error) {
		results <- result{cmd, res, err}
	}
	return New(cfg), rec, results
}

// writeCmd writes text into i's command file.
func writeCmd(t *testing.T, i *Interpreter, text string) {
	t.Helper()
	if err := os.WriteFile(i.cfg.CmdFile, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitResult waits for the next OnResult call.
func waitResult(t *testing.T, results <-chan result) result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(timeout):
		t.Fatalf("no command result within %v", timeout)
		return result{}
	}
}

// serve runs i.Serve until the returned stop is called (or the test ends)
// and waits until Serve watches the signal. stop cancels Serve's context
// and returns what Serve returned.
func serve(t *testing.T, i *Interpreter) (stop func() error) {
	t.Helper()
	ready := make(chan struct{})
	i.testHookServing = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- i.Serve(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Serve returned early: %v", err)
	case <-time.After(timeout):
		cancel()
		t.Fatalf("Serve did not start within %v", timeout)
	}
	var (
		once sync.Once
		err  error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(timeout):
				t.Fatalf("Serve did not return within %v of cancel", timeout)
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// parseProfile parses the profile at path.
func parseProfile(t *testing.T, path string) *profile.Profile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return p
}

// onlyFile fails unless dir holds exactly the file name (no temp file left).
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != name {
		t.Fatalf("dir holds %q, want only %q", names, name)
	}
}

// unregister removes name from the package-level registry.
func unregister(name string) {
	defaultRegistry.mu.Lock()
	defer defaultRegistry.mu.Unlock()
	delete(defaultRegistry.m, name)
}

// recorder is a slog.Handler that keeps the records it handles.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// find returns the attributes of the last record whose message has the
// given prefix, and whether there is one.
func (r *recorder) find(level slog.Level, msgPrefix string) (map[string]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := len(r.recs) - 1; k >= 0; k-- {
		rec := r.recs[k]
		if rec.Level != level || !strings.HasPrefix(rec.Message, msgPrefix) {
			continue
		}
		attrs := map[string]string{}
		rec.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		return attrs, true
	}
	return nil, false
}
