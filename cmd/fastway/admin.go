package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/fastway-go/fastway/admin"
	"github.com/fastway-go/fastway/fleet"
	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/internal/ws"
	"github.com/prometheus/client_golang/prometheus"
)

// adminShutdownTimeout bounds the admin server's shutdown, which comes
// after the gateway's: a request still running then (a CPU profile, say)
// is cut off.
const adminShutdownTimeout = 2 * time.Second

// adminServer is the -AdminAddr HTTP server while it runs.
type adminServer struct {
	srv    *admin.Server
	served chan error
	log    *slog.Logger
}

// listenAdmin opens the admin listener, or returns nil when -AdminAddr is
// empty. With -ReusePort it shares the port like the gateway's, so a
// rolling restart does not fail on it.
func listenAdmin(o *options) (net.Listener, error) {
	if o.AdminAddr == "" {
		return nil, nil
	}
	return listen(adminListenAddr(o.AdminAddr), o.ReusePort, nil)
}

// adminListenAddr is where a validated -AdminAddr listens: an address
// without a host (":6060") means loopback, 127.0.0.1; every interface must
// be asked for (0.0.0.0:6060, [::]:6060).
func adminListenAddr(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// serveAdmin logs where ln listens (with a warning when other hosts can
// reach it without a token) and serves g's admin endpoints on it, behind
// token if it is not empty. /readyz answers ready(): false from the start
// of the drain, before the gateway's Shutdown (the etcd drain wait comes
// first). /debug/pprof/cmdline shows the command line
// with its secrets redacted.
func serveAdmin(ln net.Listener, g *gateway.Gateway, wsLn *ws.Listener, token string, ready func() bool, log *slog.Logger) *adminServer {
	addr := ln.Addr().String()
	log.Info("listening", "side", "admin", "addr", addr, "token", token != "")
	if tcp, ok := ln.Addr().(*net.TCPAddr); (!ok || !tcp.IP.IsLoopback()) && token == "" {
		log.Warn("admin endpoints are reachable from other hosts without a token, /debug/pprof/ included: set -AdminTokenFile, listen on loopback or firewall the port", "addr", addr)
	}
	opts := admin.Options{Logger: log, Token: token, Cmdline: redactArgs(os.Args), Ready: ready}
	if wsLn != nil {
		opts.WS = wsLn.Stats
	}
	a := &adminServer{srv: admin.New(g, opts), served: make(chan error, 1), log: log}
	go func() {
		err := a.srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server failed; the gateway goes on without it", "addr", addr, "err", err)
		}
		a.served <- err
	}()
	return a
}

// shutdown stops the admin server, waiting up to adminShutdownTimeout for
// requests in flight. A nil a is a no-op.
func (a *adminServer) shutdown() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.log.Warn("admin server shutdown cut short", "err", err)
	}
	<-a.served
}

// registerEtcd adds the etcd registration's counters to /metrics
// (fastway_etcd_*, read from r at scrape time; the "etcd" and "stats"
// commands print the same). A nil a or r is a no-op.
func (a *adminServer) registerEtcd(r *fleet.Registrar) {
	if a == nil || r == nil {
		return
	}
	counter := func(name, help string, v func(fleet.RegistrarStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(r.Stats())) })
	}
	gauge := func(name, help string, v func(fleet.RegistrarStats) bool) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			if v(r.Stats()) {
				return 1
			}
			return 0
		})
	}
	a.srv.Registry().MustRegister(
		counter("fastway_etcd_registrations_total", "Leases granted and keys written in etcd, the first included.",
			func(s fleet.RegistrarStats) uint64 { return s.Registrations }),
		counter("fastway_etcd_reregistrations_total", "Registrations in etcd after the first (after a lease expired during an outage).",
			func(s fleet.RegistrarStats) uint64 { return s.Reregistrations }),
		counter("fastway_etcd_refreshes_total", "Refreshes that kept the lease alive and rewrote the key.",
			func(s fleet.RegistrarStats) uint64 { return s.Refreshes }),
		counter("fastway_etcd_failures_total", "Registrations, refreshes and revocations that failed (etcd unreachable).",
			func(s fleet.RegistrarStats) uint64 { return s.Failures }),
		counter("fastway_etcd_leases_lost_total", "Leases found expired, then registered again.",
			func(s fleet.RegistrarStats) uint64 { return s.LeasesLost }),
		gauge("fastway_etcd_registered", "1 while this gateway's key is held in etcd.",
			func(s fleet.RegistrarStats) bool { return s.Registered }),
		gauge("fastway_etcd_up", "1 while etcd answered the last registration request.",
			func(s fleet.RegistrarStats) bool { return s.Up }),
	)
}
