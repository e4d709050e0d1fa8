package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/proto"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkForwardScraped measures what exporting metrics costs the
// forwarding path: a raw client writes batches of 64 data frames of 64
// bytes on one virtual connection through an in-process gateway, a raw
// server drains them, while an HTTP client scrapes /metrics (gzip, as
// Prometheus asks) every second, every 100 ms, or never (no admin server).
// One op is one frame, from the client's write to the server's read.
func BenchmarkForwardScraped(b *testing.B) {
	for _, bc := range []struct {
		name  string
		every time.Duration // 0: no admin server
	}{
		{"admin=off", 0},
		{"scrape=1s", time.Second},
		{"scrape=100ms", 100 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := startGateway(b, gateway.Config{})
			s := g.dialServer(b, 1)
			c := g.dialClient(b)
			id := open(b, c, s, 1)
			var scrapes atomic.Int64
			if bc.every > 0 {
				stop := scrape(b, g.Gateway, bc.every, &scrapes)
				defer stop()
			}
			const batch, size = 64, 64
			var frames []byte
			for range batch {
				frames = proto.EncodeData(frames, id, make([]byte, size))
			}
			frameLen := len(frames) / batch

			// The server drains raw bytes: count, do not parse. It is timed
			// with the writes (hence b.N, not b.Loop, whose timer would stop
			// before the last frames left the gateway's queues).
			want := int64(b.N) * int64(frameLen)
			drained := make(chan error, 1)
			b.ReportAllocs()
			b.SetBytes(int64(frameLen))
			b.ResetTimer()
			go func() {
				buf := make([]byte, 256<<10)
				s.conn.SetReadDeadline(time.Now().Add(time.Minute))
				for total := int64(0); total < want; {
					n, err := s.conn.Read(buf)
					total += int64(n)
					if err != nil {
						drained <- err
						return
					}
				}
				drained <- nil
			}()
			for sent := 0; sent < b.N; sent += batch {
				chunk := frames[:min(b.N-sent, batch)*frameLen]
				c.conn.SetWriteDeadline(time.Now().Add(time.Minute))
				if _, err := c.conn.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-drained; err != nil {
				b.Fatalf("drain: %v", err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			if bc.every > 0 {
				b.ReportMetric(float64(scrapes.Load()), "scrapes")
			}
		})
	}
}

// scrape serves g's admin endpoints on loopback and GETs /metrics every
// interval until stop is called; each completed scrape adds to n.
func scrape(b *testing.B, g *gateway.Gateway, every time.Duration, n *atomic.Int64) (stop func()) {
	srv := New(g, Options{})
	ln := listen(b)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tr := &http.Transport{}
	client := &http.Client{Transport: tr, Timeout: within}
	url := "http://" + ln.Addr().String() + "/metrics"
	done := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Errorf("scrape: %d %v", resp.StatusCode, err)
				return
			}
			n.Add(1)
		}
	}()
	return func() {
		close(done)
		<-scraped
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			b.Error(err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			b.Error(err)
		}
	}
}

// BenchmarkScrape measures the CPU one scrape takes from the gateway's
// process: "http" serves a whole /metrics request in process (gzip, as
// Prometheus asks: gateway, Go runtime and process metrics), "collector"
// gathers the gateway's metrics alone. At one scrape every T, the share of
// one core is (ns/op)/T.
func BenchmarkScrape(b *testing.B) {
	g := startGateway(b, gateway.Config{})
	s := g.dialServer(b, 1)
	c := g.dialClient(b)
	open(b, c, s, 1)
	b.Run("http", func(b *testing.B) {
		srv := New(g.Gateway, Options{})
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("GET /metrics: %d", w.Code)
			}
		}
	})
	b.Run("collector", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCollector(g.Gateway))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
