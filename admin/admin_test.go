package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/internal/httpget"
	"github.com/fastway-go/fastway/proto"
)

// newHTTPClient returns a client whose idle connections are closed when
// the test ends (goleak).
func newHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: within}
}

// startAdmin serves g's admin endpoints on an httptest server.
func startAdmin(t *testing.T, g *testGateway) (url string, client *http.Client) {
	ts := httptest.NewServer(New(g.Gateway, Options{}))
	t.Cleanup(ts.Close)
	return ts.URL, newHTTPClient(t)
}

func TestProbes(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	url, client := startAdmin(t, g)
	g.waitReady(t)
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/healthz", 200, "ok\n"},
		{"/readyz", 200, "ok\n"},
	} {
		if status, body := httpget.Get(t, client, url+tc.path); status != tc.status || body != tc.body {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, status, body, tc.status, tc.body)
		}
	}

	g.stop(t)
	if status, body := httpget.Get(t, client, url+"/readyz"); status != http.StatusServiceUnavailable || body != "not ready\n" {
		t.Errorf("GET /readyz after Shutdown: %d %q, want 503", status, body)
	}
	if status, _ := httpget.Get(t, client, url+"/healthz"); status != 200 {
		t.Errorf("GET /healthz after the gateway's Shutdown: %d, want 200 (the process lives)", status)
	}
}

// TestReadyzOptionsReady: Options.Ready decides /readyz: a program that has
// begun its drain before the gateway's Shutdown answers 503 while the
// gateway itself is still ready; /healthz is not affected.
func TestReadyzOptionsReady(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	g.waitReady(t)
	var draining atomic.Bool
	ts := httptest.NewServer(New(g.Gateway, Options{Ready: func() bool { return !draining.Load() && g.Ready() }}))
	t.Cleanup(ts.Close)
	client := newHTTPClient(t)
	if status, _ := httpget.Get(t, client, ts.URL+"/readyz"); status != http.StatusOK {
		t.Fatalf("GET /readyz: %d, want 200", status)
	}
	draining.Store(true)
	if status, body := httpget.Get(t, client, ts.URL+"/readyz"); status != http.StatusServiceUnavailable || body != "not ready\n" || !g.Ready() {
		t.Errorf("GET /readyz while draining: %d %q (gateway ready: %t), want 503", status, body, g.Ready())
	}
	if status, _ := httpget.Get(t, client, ts.URL+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz while draining: %d, want 200", status)
	}
}

// TestReadyzNeedsBothPorts: a gateway serving only its client port is not
// ready.
func TestReadyzNeedsBothPorts(t *testing.T) {
	g := gateway.New(gateway.Config{ServerAuthPassword: password})
	ln := listen(t)
	errc := make(chan error, 1)
	go func() { errc <- g.ServeClients(ln) }()
	url, client := startAdmin(t, &testGateway{Gateway: g})
	if status, _ := httpget.Get(t, client, url+"/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with the server port closed: %d, want 503", status)
	}
	g.Stop()
	if err := <-errc; !errors.Is(err, gateway.ErrGatewayClosed) {
		t.Errorf("ServeClients: %v", err)
	}
}

func TestServersJSON(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	url, client := startAdmin(t, g)

	if status, body := httpget.Get(t, client, url+"/servers"); status != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET /servers with none registered: %d %q, want 200 []", status, body)
	}
	s2old := g.dialServer(t, 2)
	s1 := g.dialServer(t, 1)
	s2new := g.dialServer(t, 2)
	c := g.dialClient(t)
	open(t, c, s2new, 2)
	open(t, c, s2new, 2)
	id := open(t, c, s1, 1)
	s1.send(proto.Fanout{Type: proto.CmdJoin, GroupID: 9, ConnID: id}.Append(nil))
	s1.send(proto.AppendMulticast(nil, []byte("hi"), id, 1<<30))
	c.read()

	resp, err := client.Get(url + "/servers")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var got []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id     float64
		peer   *rawPeer
		vconns float64
		newest bool
	}{{1, s1, 1, true}, {2, s2old, 0, false}, {2, s2new, 2, true}}
	if len(got) != len(want) {
		t.Fatalf("got %d servers, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		e := got[i]
		if e["id"] != w.id || e["addr"] != w.peer.conn.LocalAddr().String() || e["virtual_conns"] != w.vconns || e["newest"] != w.newest {
			t.Errorf("server %d: %v, want id %v addr %s virtual_conns %v newest %v", i, e, w.id, w.peer.conn.LocalAddr(), w.vconns, w.newest)
		}
		if w.peer == s1 && (e["groups"] != 1.0 || e["memberships"] != 1.0 || e["fanout_deliveries"] != 1.0 || e["fanout_skipped"] != 1.0 || e["joins_refused"] != 0.0) {
			t.Errorf("server %d: fan-out %v, want 1 group, 1 membership, 1 delivery, 1 skipped", i, e)
		}
		if up, ok := e["uptime_seconds"].(float64); !ok || up < 0 || up > 60 {
			t.Errorf("server %d: uptime_seconds %v, want a few seconds", i, e["uptime_seconds"])
		}
		if len(e) != 10 {
			t.Errorf("server %d has keys %v, want id, addr, virtual_conns, uptime_seconds, newest, groups, memberships, fanout_deliveries, fanout_skipped, joins_refused", i, e)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	url, client := startAdmin(t, g)
	traffic(t, g)
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	status, body := httpget.Get(t, client, url+"/metrics")
	if status != 200 {
		t.Fatalf("GET /metrics: %d", status)
	}
	want := []string{
		`fastway_connections{side="client"} 1`,
		`fastway_dials_refused_total{reason="unknown id"} 1`,
		`fastway_disconnects_total{reason="protocol error"} 1`,
		"go_goroutines ",
		"go_memstats_heap_alloc_bytes ",
	}
	if runtime.GOOS == "linux" {
		want = append(want, "process_cpu_seconds_total ", "process_open_fds ")
	}
	for _, w := range want {
		if !strings.Contains(body, "\n"+w) {
			t.Errorf("/metrics lacks %q", w)
		}
	}
}

// TestPrivateRegistry checks nothing lands in the global registry.
func TestPrivateRegistry(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	New(g.Gateway, Options{})
	New(g.Gateway, Options{}) // a second one would panic on a shared registry
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "fastway_") {
			t.Errorf("%s is in the global registry", mf.GetName())
		}
	}
}

func TestRoutes(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	url, client := startAdmin(t, g)
	for _, tc := range []struct {
		method, path string
		status       int
		contains     string
	}{
		{"GET", "/", 200, "/metrics"},
		{"GET", "/debug/pprof/", 200, "goroutine"},
		{"GET", "/debug/pprof/cmdline", 200, ""},
		{"GET", "/debug/pprof/goroutine?debug=1", 200, "goroutine profile"},
		{"GET", "/debug/pprof/heap?debug=1", 200, "heap profile"},
		{"POST", "/debug/pprof/symbol", 200, "num_symbols"},
		{"GET", "/nothing", 404, ""},
		{"POST", "/healthz", 405, ""},
		{"DELETE", "/servers", 405, ""},
		{"HEAD", "/readyz", 200, ""},
	} {
		req, err := http.NewRequestWithContext(context.Background(), tc.method, url+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.contains) {
			t.Errorf("%s %s: %d, want %d with %q; body %.200q", tc.method, tc.path, resp.StatusCode, tc.status, tc.contains, b)
		}
	}
}

// TestServeShutdown runs the Server on its own listener and stops it.
func TestServeShutdown(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	s := New(g.Gateway, Options{})
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	client := newHTTPClient(t)
	url := "http://" + ln.Addr().String()
	if status, _ := httpget.Get(t, client, url+"/healthz"); status != 200 {
		t.Fatalf("GET /healthz: %d", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want http.ErrServerClosed", err)
	}
	if _, err := client.Get(url + "/healthz"); err == nil {
		t.Fatal("GET after Shutdown succeeded")
	}
}
