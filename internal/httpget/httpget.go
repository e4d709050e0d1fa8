// Package httpget is for tests that read an HTTP endpoint (the admin
// server's /metrics, /healthz, /servers): Get fetches a URL and hands back
// its status and body, failing the test on a transport error.
package httpget

import (
	"io"
	"net/http"
	"testing"
)

// Get fetches url with client and returns the status and the whole body.
// A request or read error fails tb.
func Get(tb testing.TB, client *http.Client, url string) (int, string) {
	tb.Helper()
	resp, err := client.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}
