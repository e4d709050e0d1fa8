package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/fastway-go/fastway/gateway"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// get sends a GET with the Authorization header auth (none if empty).
func get(t *testing.T, client *http.Client, url, auth string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// TestToken: with Options.Token every endpoint but the probes answers 401
// without it or with another, each refusal counted; with it every endpoint
// answers as usual.
func TestToken(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	g.waitReady(t)
	const token = "t0ken-Of-32-bytes-or-so-abcdefgh"
	srv := New(g.Gateway, Options{Token: token, Logger: slog.New(slog.DiscardHandler)})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	client := newHTTPClient(t)

	refused := 0
	for _, path := range []string{"/", "/metrics", "/servers", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1",
		"/debug/pprof/goroutine?debug=2", "/debug/pprof/symbol", "/nothing", "//healthz", "/healthz/", "/readyz/x"} {
		for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + token, "Bearer " + token + "x", token} {
			status, h, body := get(t, client, ts.URL+path, auth)
			refused++
			if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("GET %s with %q: %d, want 401 with WWW-Authenticate: Bearer; body %.100q", path, auth, status, body)
			}
		}
		if status, _, _ := get(t, client, ts.URL+path, "Bearer "+token); status == http.StatusUnauthorized {
			t.Errorf("GET %s with the token: 401", path)
		}
		if status, _, _ := get(t, client, ts.URL+path, "bearer  "+token+" "); status == http.StatusUnauthorized {
			t.Errorf("GET %s with the token, scheme in lower case: 401", path)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, _, body := get(t, client, ts.URL+path, ""); status != http.StatusOK {
			t.Errorf("GET %s without a token: %d %q, want 200", path, status, body)
		}
	}
	if got := testutil.ToFloat64(srv.auth.refusedCounter()); got != float64(refused) {
		t.Errorf("refused counter %v, want %d", got, refused)
	}
}

// TestCmdline: /debug/pprof/cmdline shows Options.Cmdline, NUL-separated
// as net/http/pprof does, and by default only the program's name: never
// the arguments, which may hold a password.
func TestCmdline(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	client := newHTTPClient(t)
	for _, tc := range []struct {
		cmdline []string
		want    string
	}{
		{nil, os.Args[0]},
		{[]string{"fastway", "-ServerAuthPassword=<redacted>"}, "fastway\x00-ServerAuthPassword=<redacted>"},
	} {
		ts := httptest.NewServer(New(g.Gateway, Options{Cmdline: tc.cmdline}))
		status, _, body := get(t, client, ts.URL+"/debug/pprof/cmdline", "")
		ts.Close()
		if status != http.StatusOK || body != tc.want {
			t.Errorf("cmdline %q: %d %q, want %q", tc.cmdline, status, body, tc.want)
		}
	}
	// Other spellings of the path reach no other handler that would show
	// os.Args.
	ts := httptest.NewServer(New(g.Gateway, Options{Cmdline: []string{"fastway"}}))
	defer ts.Close()
	for _, path := range []string{"/debug/pprof/cmdline/", "/debug/pprof//cmdline", "/debug/pprof/./cmdline", "/debug/pprof/%63mdline", "/debug/pprof/cmdline?debug=1"} {
		_, _, body := get(t, client, ts.URL+path, "")
		for _, a := range os.Args[1:] {
			if strings.Contains(body, a) {
				t.Errorf("GET %s shows the argument %q: %.200q", path, a, body)
			}
		}
	}
}
