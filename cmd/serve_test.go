//go:build unix

package cmd

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// signalCmd writes text into i's command file, sends SIGUSR1 to this
// process as an operator would, and waits for the command's result.
func signalCmd(t *testing.T, i *Interpreter, results <-chan result, text string) result {
	t.Helper()
	writeCmd(t, i, text)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	return waitResult(t, results)
}

func TestServe(t *testing.T) {
	i, _, results := newTest(t, Config{})
	i.RegisterHelp("stats", "gateway numbers", func([]string) (string, error) { return "conns=3", nil })
	stop := serve(t, i)

	if r := signalCmd(t, i, results, "stats\n"); r.err != nil || r.cmd != "stats" || r.res != "conns=3" {
		t.Fatalf("stats: got %+v", r)
	}
	if r := signalCmd(t, i, results, "lookup heap\n"); r.err != nil {
		t.Fatalf("lookup heap: %v", r.err)
	}
	parseProfile(t, filepath.Join(i.cfg.Dir, "fastway.heap.prof"))
	if r := signalCmd(t, i, results, "reboot\n"); !errors.Is(r.err, ErrUnknownCommand) {
		t.Fatalf("unknown command: got %+v", r)
	}
	if r := signalCmd(t, i, results, "help\n"); r.err != nil || !strings.Contains(r.res, "stats") {
		t.Fatalf("help: got %+v", r)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
}

func TestServeMissingFile(t *testing.T) {
	i, _, results := newTest(t, Config{})
	serve(t, i)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, results); !errors.Is(r.err, ErrCmdFile) || !errors.Is(r.err, fs.ErrNotExist) {
		t.Fatalf("got %+v, want ErrCmdFile", r)
	}
	// Serve goes on.
	if r := signalCmd(t, i, results, "lookup gc"); r.err != nil {
		t.Fatalf("lookup gc after a missing file: %v", r.err)
	}
}

func TestServeFIFO(t *testing.T) {
	i, _, results := newTest(t, Config{})
	if err := syscall.Mkfifo(i.cfg.CmdFile, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	serve(t, i)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, results); !errors.Is(r.err, ErrCmdFile) {
		t.Fatalf("got %+v, want ErrCmdFile", r)
	}
}

func TestServeCPUProfileOnExit(t *testing.T) {
	i, rec, results := newTest(t, Config{})
	stop := serve(t, i)
	if r := signalCmd(t, i, results, "cpuprof start\n"); r.err != nil {
		t.Fatalf("cpuprof start: %v", r.err)
	}
	spin(50e6)
	if err := stop(); err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	if i.cpuProfiling() {
		t.Fatal("CPU profiling still running after Serve returned")
	}
	parseProfile(t, filepath.Join(i.cfg.Dir, cpuProfFile))
	onlyFile(t, i.cfg.Dir, cpuProfFile)
	if _, ok := rec.find(0, "fastway: cmd: stopped; CPU profiling stopped"); !ok {
		t.Error("writing the CPU profile on exit was not logged")
	}
}

func TestServeTwice(t *testing.T) {
	i, _, _ := newTest(t, Config{})
	serve(t, i)
	if err := i.Serve(context.Background()); !errors.Is(err, ErrServing) {
		t.Fatalf("second Serve = %v, want ErrServing", err)
	}
}

func TestServeCancelled(t *testing.T) {
	i, _, _ := newTest(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := i.Serve(ctx); err != nil {
		t.Fatalf("Serve with a done context = %v, want nil", err)
	}
	// It can serve again once it has returned.
	if err := serve(t, i)(); err != nil {
		t.Fatal(err)
	}
}
