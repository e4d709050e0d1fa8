package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/fastway-go/fastway/admin"
	"github.com/fastway-go/fastway/gateway"
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
	return listen(o.AdminAddr, o.ReusePort, nil)
}

// serveAdmin logs where ln listens (with a warning when other hosts can
// reach it) and serves g's admin endpoints on it.
func serveAdmin(ln net.Listener, g *gateway.Gateway, log *slog.Logger) *adminServer {
	addr := ln.Addr().String()
	log.Info("listening", "side", "admin", "addr", addr)
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		log.Warn("admin endpoints are reachable from other hosts, /debug/pprof/ included: listen on a loopback address or firewall the port", "addr", addr)
	}
	a := &adminServer{srv: admin.New(g, admin.Options{Logger: log}), served: make(chan error, 1), log: log}
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
