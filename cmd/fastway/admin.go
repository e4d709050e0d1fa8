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
// token if it is not empty. /debug/pprof/cmdline shows the command line
// with its secrets redacted.
func serveAdmin(ln net.Listener, g *gateway.Gateway, token string, log *slog.Logger) *adminServer {
	addr := ln.Addr().String()
	log.Info("listening", "side", "admin", "addr", addr, "token", token != "")
	if tcp, ok := ln.Addr().(*net.TCPAddr); (!ok || !tcp.IP.IsLoopback()) && token == "" {
		log.Warn("admin endpoints are reachable from other hosts without a token, /debug/pprof/ included: set -AdminTokenFile, listen on loopback or firewall the port", "addr", addr)
	}
	opts := admin.Options{Logger: log, Token: token, Cmdline: redactArgs(os.Args)}
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
