package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/internal/testbin"
)

// fastwayBin is the fastway binary TestMain builds once for every test.
var fastwayBin string

func TestMain(m *testing.M) { testbin.Main(m, "../fastway", &fastwayBin) }

// short is a soak of a second and a half: small, but every part of a real
// one (the binary, ops commands through SIGUSR1, servers, clients, the
// echo checks and the final stats).
func short(t *testing.T) options {
	return options{
		bin: fastwayBin, dir: t.TempDir(), key: "soak-test",
		dur: 1500 * time.Millisecond, clients: 3, vconns: 2, servers: 2,
		rate: 50, size: 64, report: 500 * time.Millisecond, drainFor: 5 * time.Second,
	}
}

// TestSoakPasses: a short soak through the real binary passes, with every
// message echoed and nothing counted as dropped.
func TestSoakPasses(t *testing.T) {
	if err := run(short(t)); err != nil {
		t.Fatalf("soak failed: %v", err)
	}
}

// TestSoakFailsWhenTheGatewayDies: a soak whose gateway is killed under
// load reports a failure instead of passing or hanging.
func TestSoakFailsWhenTheGatewayDies(t *testing.T) {
	o := short(t)
	o.dur = time.Minute // ended by the kill, not by the clock
	done := make(chan error, 1)
	go func() { done <- run(o) }()
	var pid int
	ended := false
	t.Cleanup(func() {
		// Should the test fail before the soak ends, end it: kill its
		// gateway, which fails the load, and wait for run to return.
		if ended {
			return
		}
		if pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the soak did not end within 30 s of its gateway being killed")
		}
	})
	poll.UntilNil(t, 20*time.Second, "the gateway's pidfile", func() error {
		b, err := os.ReadFile(filepath.Join(o.dir, "fastway.pid"))
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	// The start snapshot is an ops command the gateway logs as done; it is
	// taken once the load runs.
	poll.UntilNil(t, 20*time.Second, "the load to start", func() error {
		b, err := os.ReadFile(filepath.Join(o.dir, "fastway.log"))
		if err == nil && !strings.Contains(string(b), "command done") {
			err = fmt.Errorf("no ops command done yet")
		}
		return err
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		ended = true
		if err == nil {
			t.Fatal("soak passed with its gateway killed")
		}
		if strings.Contains(err.Error(), "process already finished") {
			t.Fatalf("soak reported %q, an effect, not what ended the load", err)
		}
		t.Logf("soak failed as it should: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("soak still running 30 s after its gateway was killed")
	}
}
