package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/internal/ws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the admin HTTP server. There is no write timeout: a CPU
// profile or trace streams for as long as the client asked.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// Options configure a Server. The zero value works.
type Options struct {
	// Logger receives the HTTP server's and the metrics handler's errors,
	// and the refused requests, rate-limited (nil: slog.Default()).
	Logger *slog.Logger
	// Token, when not empty, is required on every endpoint but /healthz
	// and /readyz, as "Authorization: Bearer <Token>"; a request without
	// it gets 401 and is counted (fastway_admin_requests_refused_total) and
	// logged. Empty: no token, every endpoint is open (keep the server on
	// loopback then).
	Token string
	// Cmdline is what /debug/pprof/cmdline shows, one argument per entry:
	// the caller's command line with its secrets redacted. nil shows the
	// program's name only (os.Args[0]): the arguments may hold a password.
	Cmdline []string
	// Ready, when not nil, decides /readyz instead of the gateway's own
	// Ready: a program that starts its drain before the gateway's Shutdown
	// (fastway leaves the etcd fleet first) reports not ready from then on.
	Ready func() bool
	// WS, when set, gives the WebSocket port's handshake counters for
	// /metrics (fastway_ws_*).
	WS func() ws.Stats
}

// Server serves a gateway's admin endpoints (see the package doc). It is
// an http.Handler; Serve and Shutdown run it on a listener of your own.
type Server struct {
	g       *gateway.Gateway
	log     *slog.Logger
	reg     *prometheus.Registry
	mux     *http.ServeMux
	srv     *http.Server
	auth    *tokenAuth
	cmdline []string
	ready   func() bool
}

// New returns the admin server of g. Its metrics registry is private: it
// holds the gateway collector and the Go runtime and process collectors.
func New(g *gateway.Gateway, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{g: g, log: log, reg: prometheus.NewRegistry(), mux: http.NewServeMux(), cmdline: opts.Cmdline, ready: opts.Ready}
	if s.ready == nil {
		s.ready = g.Ready
	}
	if s.cmdline == nil {
		s.cmdline = os.Args[:min(len(os.Args), 1)]
	}
	s.auth = newTokenAuth(opts.Token, log)
	s.reg.MustRegister(s.auth.refusedCounter(),
		NewCollector(g),
		newWSCollector(opts.WS),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)

	s.mux.HandleFunc("GET /{$}", s.index)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:      errLog,
		ErrorHandling: promhttp.ContinueOnError,
	}))
	s.mux.HandleFunc("GET /healthz", healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /servers", s.servers)
	// The pprof handlers on this mux only: importing net/http/pprof also
	// registers them on http.DefaultServeMux, which fastway never serves.
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", s.pprofCmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)

	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          errLog,
	}
	return s
}

// Registry returns the server's private metrics registry, for a caller
// that wants to add its own collectors.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// ServeHTTP implements http.Handler: with a token, every path but
// /healthz and /readyz needs it first.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !s.auth.allow(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// pprofCmdline answers the command line as net/http/pprof does (its
// arguments separated by NUL bytes), but Options.Cmdline instead of
// os.Args: never a password given on the command line.
func (s *Server) pprofCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(strings.Join(s.cmdline, "\x00")))
}

// Serve serves the admin endpoints on ln until Shutdown, then returns
// http.ErrServerClosed, as http.Server.Serve does.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops the server: the listener closes at once, requests in
// flight may finish until ctx ends, then the remaining connections are
// closed. It returns ctx's error in that case.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// index lists the endpoints.
func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("fastway admin\n\n" +
		"/metrics        Prometheus metrics\n" +
		"/healthz        liveness: 200 while the process runs (no token needed)\n" +
		"/readyz         readiness: 200 while both ports listen and no shutdown is under way, else 503 (no token needed)\n" +
		"/servers        registered servers (JSON)\n" +
		"/debug/pprof/   profiles\n"))
}

// healthz answers 200 "ok": the process is alive and serving HTTP.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// readyz answers 200 while the gateway is ready (Options.Ready, else
// gateway.Ready), else 503.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("not ready\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

// serverJSON is one entry of /servers.
type serverJSON struct {
	ID            uint32  `json:"id"`
	Addr          string  `json:"addr"`
	VirtualConns  int     `json:"virtual_conns"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Newest        bool    `json:"newest"`
	// Fan-out (docs/protocol.md §7): groups and memberships now,
	// deliveries, skipped ConnIDs and refused Joins since it registered.
	Groups       int64  `json:"groups"`
	Memberships  int64  `json:"memberships"`
	Deliveries   uint64 `json:"fanout_deliveries"`
	Skipped      uint64 `json:"fanout_skipped"`
	JoinsRefused uint64 `json:"joins_refused"`
}

// servers answers the registered server connections as a JSON array,
// sorted by ID, oldest first within an ID ([] when there are none).
func (s *Server) servers(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	list := s.g.Servers()
	out := make([]serverJSON, 0, len(list))
	for _, si := range list {
		out = append(out, serverJSON{
			ID:            si.ID,
			Addr:          si.Addr,
			VirtualConns:  si.VirtualConns,
			UptimeSeconds: math.Round(max(now.Sub(si.Since), 0).Seconds()*1000) / 1000,
			Newest:        si.Newest,
			Groups:        si.Groups,
			Memberships:   si.Memberships,
			Deliveries:    si.Deliveries,
			Skipped:       si.Skipped,
			JoinsRefused:  si.JoinsRefused,
		})
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		s.log.Debug("admin: /servers", slog.String("error", err.Error()))
	}
}
