package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastway-go/fastway/cmd"
	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/snet"
)

// cmdStopTimeout bounds the wait for the command interpreter at exit: for
// the command running then, if any, and the CPU profile it writes if
// profiling was on.
const cmdStopTimeout = 5 * time.Second

// run listens on both ports (and -AdminAddr), writes the pidfile and
// serves until SIGTERM or SIGINT (or until a listener fails), then shuts the
// gateway down, then the admin server, and removes the pidfile. It returns
// the exit code.
func run(o *options, cfg gateway.Config, log *slog.Logger) int {
	// Watch the stop signals before anything else, so one that arrives
	// during the start is not lost.
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	// SIGUSR1 kills a process that does not watch it. The interpreter
	// watches it only while it serves; this guard keeps the process alive
	// before and after (a command sent then is dropped).
	if len(commandSignals) > 0 {
		signal.Notify(make(chan os.Signal, 1), commandSignals...)
	}
	// SIGHUP rereads the key files; watched from here on, so one that
	// comes during the start waits instead of killing the process.
	hup := make(chan os.Signal, 1)
	if len(reloadSignals) > 0 {
		signal.Notify(hup, reloadSignals...)
		defer signal.Stop(hup)
	}

	clientPort, serverPort := o.ports()
	clientLn, err := clientPort.listen()
	if err != nil {
		log.Error("cannot listen", "side", "client", "addr", o.ClientAddr, "err", err)
		return exitError
	}
	serverLn, err := serverPort.listen()
	if err != nil {
		clientLn.Close()
		log.Error("cannot listen", "side", "server", "addr", o.ServerAddr, "err", err)
		return exitError
	}
	if err := checkBoundLoopback(o, serverLn.Addr()); err != nil {
		clientLn.Close()
		serverLn.Close()
		log.Error("refusing to serve", "err", err)
		return exitUsage
	}
	wsLn, err := listenWS(o, log)
	if err != nil {
		clientLn.Close()
		serverLn.Close()
		log.Error("cannot listen", "side", "ws", "addr", o.ClientWSAddr, "err", err)
		return exitError
	}
	adminLn, err := listenAdmin(o)
	if err != nil {
		clientLn.Close()
		serverLn.Close()
		closeWS(wsLn)
		log.Error("cannot listen", "side", "admin", "addr", o.AdminAddr, "err", err)
		return exitError
	}
	if err := writePidFile(o.PidFile); err != nil {
		clientLn.Close()
		serverLn.Close()
		closeWS(wsLn)
		if adminLn != nil {
			adminLn.Close()
		}
		log.Error("cannot write the pidfile", "err", err)
		return exitError
	}
	defer removePidFile(o.PidFile, log)

	g := gateway.New(cfg)
	o.auth.start(g, log, cfg.ServerAuthPassword, cfg.ServerKeys)
	if o.ServerKeyFile != "" {
		log.Info("server keys", "keys", o.auth.summary())
	}
	hupStop, hupDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(hupDone)
		for {
			select {
			case <-hup:
				o.auth.reload("SIGHUP")
			case <-hupStop:
				return
			}
		}
	}()
	defer func() {
		close(hupStop)
		<-hupDone
	}()
	for _, p := range []struct {
		port
		ln net.Listener
	}{{clientPort, clientLn}, {serverPort, serverLn}} {
		log.Info("listening", "side", p.side, "addr", p.ln.Addr().String(), "tls", p.tlsMode(), "snet", p.snetMode())
		if p.tls != nil {
			if leaf := p.tls.Certificates[0].Leaf; leaf != nil && time.Now().After(leaf.NotAfter) {
				log.Warn("the TLS certificate has expired: peers will refuse the handshake", "side", p.side, "not_after", leaf.NotAfter)
			}
		}
	}
	// draining is set as the stop begins, before the etcd drain wait: from
	// then on /readyz answers 503, so a load balancer sends no new player
	// while the fleet sees the key go.
	var draining atomic.Bool
	ready := func() bool { return !draining.Load() && g.Ready() }
	serving := 2
	if wsLn != nil {
		log.Info("listening", "side", "ws", "addr", wsLn.Addr().String(), "tls", wsTLSMode(o), "path", o.ClientWSPath, "origins", o.ClientWSOrigins)
		serving++
	}
	var adm *adminServer
	if adminLn != nil {
		adm = serveAdmin(adminLn, g, wsLn, o.AdminToken, ready, log)
	}
	served := make(chan error, serving)
	go func() { served <- g.ServeClients(clientLn) }()
	go func() { served <- g.ServeServers(serverLn) }()
	if wsLn != nil {
		go func() { served <- g.ServeClients(wsLn) }()
	}

	var regWS net.Listener
	if wsLn != nil {
		regWS = wsLn
	}
	reg, err := startRegistration(o, g, clientLn, serverLn, regWS, log)
	if err != nil {
		log.Error("etcd registration off", "err", err)
	}
	if reg != nil {
		defer reg.Close()
	}
	adm.registerEtcd(reg)

	it := cmd.New(cmd.Config{CmdFile: o.CmdFile, Logger: log})
	it.RegisterHelp("etcd", "log the etcd registration's state and counters on one line", etcdCommand(reg))
	it.RegisterHelp("stats", "log the gateway's counters on one line", statsCommand(g, reg))
	var snetPorts []snetPort
	for _, p := range []struct {
		side string
		ln   net.Listener
	}{{"client", clientLn}, {"server", serverLn}} {
		if sl, ok := p.ln.(*snet.Listener); ok {
			snetPorts = append(snetPorts, snetPort{p.side, sl})
		}
	}
	it.RegisterHelp("snet", "log the snet ports' counters on one line", snetCommand(snetPorts))
	it.RegisterHelp("ws", "log the WebSocket port's counters on one line (handshakes, failures by reason, connections, traffic)", wsCommand(g, wsLn))
	it.RegisterHelp("keys", "[reload]: which server IDs have keys of their own (never a key); reload rereads -ServerKeyFile and -ServerAuthPasswordFile, as SIGHUP does", keysCommand(o.auth))
	cmdCtx, cmdStop := context.WithCancel(context.Background())
	defer cmdStop()
	cmdDone := make(chan struct{})
	go func() {
		defer close(cmdDone)
		if err := it.Serve(cmdCtx); err != nil {
			log.Error("command interpreter", "err", err)
		}
	}()
	fd := gateway.FDLimits(cfg)
	maxConns := g.Config().ClientMaxConns
	log.Info("started", "pid", os.Getpid(), "pidfile", o.PidFile, "cmdfile", o.CmdFile, "reuseport", o.ReusePort,
		"client_max_conns", maxConns, "fd_limit", fd.Limit, "fd_reserve", fd.Reserve)
	if fd.Limit > 0 && maxConns > fd.Limit-fd.Reserve {
		// The derived cap is below the limit less the reserve unless the
		// limit is too low to hold the reserve (fd.Short).
		log.Warn("client connections may take the file descriptors kept for servers and the admin port: raise the limit (ulimit -n) or lower -ClientMaxConns",
			"client_max_conns", maxConns, "fd_limit", fd.Limit, "fd_reserve", fd.Reserve)
	}

	code := exitOK
	select {
	case sig := <-stop:
		log.Info("shutting down", "signal", sig.String(), "timeout", o.ShutdownTimeout)
	case err := <-served:
		serving--
		log.Error("listener failed; shutting down", "err", err)
		code = exitError
	}
	draining.Store(true)
	// Out of the fleet first, so no new server or player is sent here.
	hurry := deregister(reg, o, stop, log)
	ctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if hurry {
		cancel()
	}
	go func() {
		select {
		case sig := <-stop:
			log.Warn("second signal: closing the connections now", "signal", sig.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := g.Shutdown(ctx); err != nil && o.ShutdownTimeout > 0 {
		log.Warn("shutdown cut short; the remaining connections were closed hard, without flushing", "err", err)
	}
	for ; serving > 0; serving-- {
		if err := <-served; err != nil && !errors.Is(err, gateway.ErrGatewayClosed) {
			log.Warn("listener", "err", err)
		}
	}
	// The admin server goes last, so /readyz answers 503 and /metrics
	// stays up while the gateway drains.
	adm.shutdown()
	// Stopping the interpreter writes the CPU profile if one is running.
	cmdStop()
	select {
	case <-cmdDone:
	case <-time.After(cmdStopTimeout):
		// A command still running (a handler stuck, say) must not keep the
		// process from exiting; what it was doing is lost.
		log.Warn("the command interpreter did not stop in time; exiting without it", "timeout", cmdStopTimeout)
	}
	log.Info("stopped", "stats", formatStats(g.Stats()))
	return code
}

// writePidFile writes the process ID to path (nothing if path is empty),
// atomically: a reader sees the old file or the whole new one.
func writePidFile(path string) error {
	if path == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(tmp, "%d\n", os.Getpid())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// removePidFile removes the pidfile if it still holds this process's ID: a
// newer process sharing the directory (a -ReusePort restart) may have
// replaced it.
func removePidFile(path string, log *slog.Logger) {
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		log.Warn("pidfile", "err", err)
		return
	}
	if pid := strings.TrimSpace(string(b)); pid != strconv.Itoa(os.Getpid()) {
		log.Warn("pidfile now belongs to another process; left in place", "pidfile", path, "pid", pid)
		return
	}
	if err := os.Remove(path); err != nil {
		log.Warn("pidfile", "err", err)
	}
}
