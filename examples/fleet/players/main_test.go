package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/internal/testbin"
)

var backend string

func TestMain(m *testing.M) { testbin.Main(m, "../backend", &backend) }

const key = "fleet-example-secret"

// testGW is an in-process gateway on loopback ports.
type testGW struct {
	g                      *gateway.Gateway
	clientAddr, serverAddr string
	served                 sync.WaitGroup
	once                   sync.Once
}

func startGW(t *testing.T) *testGW {
	t.Helper()
	g := gateway.New(gateway.Config{ServerAuthPassword: key, Logger: slog.New(slog.DiscardHandler)})
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := &testGW{g: g, clientAddr: cl.Addr().String(), serverAddr: sl.Addr().String()}
	gw.served.Go(func() { g.ServeClients(cl) })
	gw.served.Go(func() { g.ServeServers(sl) })
	t.Cleanup(gw.stop)
	return gw
}

// stop closes the gateway at once, as a SIGKILL would its connections.
func (gw *testGW) stop() {
	gw.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		gw.g.Shutdown(ctx)
		gw.served.Wait()
	})
}

// startBackend runs the backend binary over gws until the test ends.
func startBackend(t *testing.T, gws []*testGW, args ...string) *bytes.Buffer {
	t.Helper()
	var addrs []string
	for _, gw := range gws {
		addrs = append(addrs, gw.serverAddr)
	}
	var log bytes.Buffer
	cmd := exec.Command(backend, append([]string{"-static=" + strings.Join(addrs, ",")}, args...)...)
	cmd.Env = append(os.Environ(), "FASTWAY_AUTH_PASSWORD="+key)
	cmd.Stderr = &syncWriter{w: &log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("backend: %v\n%s", err, log.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("backend did not stop on SIGINT\n%s", log.String())
		}
	})
	for _, gw := range gws {
		poll.Until(t, 10*time.Second, "the backend to register on every gateway", func() bool { return len(gw.g.Servers()) == 1 })
	}
	return &log
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestEcho: players on two gateways get their echoes from the one backend.
func TestEcho(t *testing.T) {
	gws := []*testGW{startGW(t), startGW(t)}
	startBackend(t, gws)
	c := config{gateways: []string{gws[0].clientAddr, gws[1].clientAddr}, players: 6, id: 1, mode: "echo",
		dur: 300 * time.Millisecond, size: 64, timeout: 10 * time.Second}
	rs, err := play(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.err != nil || r.closed || len(r.rtts) == 0 {
			t.Errorf("player on %s: err %v closed %t, %d round trips", r.gateway, r.err, r.closed, len(r.rtts))
		}
	}
	out := report(c, rs)
	if !strings.Contains(out, "total mode=echo players=6 failed=0 closed=0 rtts=") {
		t.Errorf("report:\n%s", out)
	}
}

// TestStream: the backend's fleet-wide room reaches the players on both
// gateways, every message; a gateway stopped mid-stream closes its players,
// and those on the other still get every message.
func TestStream(t *testing.T) {
	gws := []*testGW{startGW(t), startGW(t)}
	const players, count = 8, 400
	startBackend(t, gws, "-stream-members=8", "-stream-count=400", "-stream-interval=2ms")
	ready := filepath.Join(t.TempDir(), "ready")
	c := config{gateways: []string{gws[0].clientAddr, gws[1].clientAddr}, players: players, id: 1, mode: "stream",
		count: count, timeout: 20 * time.Second, ready: ready}
	var rs []result
	var err error
	var wg sync.WaitGroup
	wg.Go(func() { rs, err = play(c) })
	poll.Until(t, 10*time.Second, "the players to connect", func() bool { _, err := os.Stat(ready); return err == nil })
	// Mid-stream (the stream takes about 0.8 s): stop the second gateway.
	poll.Until(t, 10*time.Second, "the stream to run", func() bool { return gws[1].g.Stats().Fanout.Deliveries > 400 })
	gws[1].stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		switch {
		case r.err != nil:
			t.Errorf("player on %s: %v", r.gateway, r.err)
		case r.gateway == gws[0].clientAddr && (r.closed || r.received != count || r.lost != 0):
			t.Errorf("player on the live gateway: closed %t, received %d of %d, lost %d", r.closed, r.received, count, r.lost)
		case r.gateway == gws[1].clientAddr && !r.closed:
			t.Errorf("player on the stopped gateway: not closed (received %d)", r.received)
		}
	}
	if out := report(c, rs); !strings.Contains(out, "gateway="+gws[0].clientAddr+" mode=stream players=4 failed=0 closed=0 count=400 received=1600 lost_on_open=0") {
		t.Errorf("report:\n%s", out)
	}
}
