package main

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastway-go/fastway/gateway"
)

// fanSmoke runs a short fan-out run of mode (its publisher and receivers
// are this test binary, see TestMain) and returns its summary's keys.
func fanSmoke(t *testing.T, mode, clientAddr, serverAddr string, extra func(*config)) map[string]string {
	t.Helper()
	t.Setenv(childEnv, "1")
	cfg := config{mode: mode, clientAddr: clientAddr, serverAddr: serverAddr, key: "k", conns: 30, procs: 2, size: 64, vconns: 1, k: 1, dials: 1, interval: time.Second,
		batch: 4, window: 16, warmup: 300 * time.Millisecond, dur: time.Second, gwpid: os.Getpid(), srcips: 2, maxPacket: 1 << 20, fanKind: modePublish}
	if serverAddr == "" {
		cfg.baseline = true
	}
	if extra != nil {
		extra(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	r, err := run(context.Background(), &cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.String())
	for _, e := range r.errs {
		t.Errorf("run error: %v", e)
	}
	kv := map[string]string{}
	for _, f := range strings.Fields(r.String()) {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	for _, k := range []string{"deliveries", "deliveries_per_s", "deliveries_per_gw_cpu_s", "server_cpu_ns_per_delivery", "total_cpu_ns_per_delivery", "p50_us", "p99_us"} {
		v, err := strconv.ParseFloat(kv[k], 64)
		switch {
		case err != nil || v < 0:
			t.Errorf("%s=%s, want a figure ≥ 0", k, kv[k])
		case v == 0 && !(k == "server_cpu_ns_per_delivery" && cfg.rate > 0):
			// A paced run's server (51 Publishes in 1 s) may use less than
			// one clock tick (10 ms) of CPU: 0 is then what /proc says.
			t.Errorf("%s=%s, want > 0", k, kv[k])
		}
	}
	if kv["errors"] != "0" {
		t.Errorf("errors=%s", kv["errors"])
	}
	return kv
}

func TestSmokeFanout(t *testing.T) {
	client, server := startGateway(t, gateway.Config{ServerAuthPassword: "k"})
	t.Run("publish", func(t *testing.T) { fanSmoke(t, modePublish, client, server, nil) })
	t.Run("unicast", func(t *testing.T) { fanSmoke(t, modeUnicast, client, server, nil) })
	t.Run("paced", func(t *testing.T) {
		kv := fanSmoke(t, modePublish, client, server, func(c *config) { c.rate, c.batch, c.window = 50, 1, 4 })
		if kv["rate"] != "50" {
			t.Errorf("rate=%s", kv["rate"])
		}
	})
	t.Run("baseline", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := newFanServer(ln, 1<<20)
		served := make(chan error, 1)
		go func() { served <- s.serve() }()
		defer func() {
			s.close()
			if err := <-served; err != nil {
				t.Error(err)
			}
		}()
		kv := fanSmoke(t, modePublish, ln.Addr().String(), "", nil)
		if kv["target"] != "baseline" {
			t.Errorf("target=%s", kv["target"])
		}
	})
}
