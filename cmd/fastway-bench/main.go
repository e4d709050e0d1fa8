// Command fastway-bench is the load generator of fastway: it plays clients
// and servers against a running gateway (or against its own bare echo
// process, the baseline) and prints one key=value line of figures. Run
// fastway-bench -h for the modes, flags and how each figure is computed;
// scripts/bench.sh runs the standard suite and writes docs/benchmarks.md.
//
// Exit codes: 0 after a clean run; 1 when the run failed or saw errors
// (the summary line is still printed when there is one); 2 for a bad
// command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain is main without os.Exit.
func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return exitOK
	}
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		fmt.Fprintf(stderr, "fastway-bench: %s (fastway-bench -h lists the flags)\n", msg)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cfg.listen != "" {
		if err := listenEcho(ctx, &cfg, stderr); err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
		return exitOK
	}
	if err := checkNoFile(cfg.conns + cfg.servers); err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	if cfg.mode == modeFanRecv || cfg.mode == modeFanPub {
		// A process of a fan-out run, steered by the one that started it.
		run := runFanRecv
		if cfg.mode == modeFanPub {
			run = runFanPub
		}
		if err := run(ctx, &cfg, os.Stdin, stdout); err != nil {
			fmt.Fprintf(stdout, "error %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
			fmt.Fprintf(stderr, "fastway-bench %s: %v\n", cfg.mode, err)
			return exitError
		}
		return exitOK
	}
	r, err := run(ctx, &cfg, stderr)
	if r != nil && len(r.b) > 0 {
		fmt.Fprintln(stdout, r)
	}
	if r != nil {
		for _, e := range r.errs {
			fmt.Fprintf(stderr, "fastway-bench: %v\n", e)
		}
		if r.nerrs > len(r.errs) {
			fmt.Fprintf(stderr, "fastway-bench: ... and %d more errors\n", r.nerrs-len(r.errs))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "fastway-bench: %v\n", err)
		return exitError
	}
	if r.nerrs > 0 {
		return exitError
	}
	return exitOK
}

// run starts the servers (unless the target is the baseline), runs the
// mode and stops everything it started. A failure that ends the run is
// returned; failures of single connections are counted in the report.
func run(ctx context.Context, cfg *config, stderr io.Writer) (*report, error) {
	src, err := newSrcAddrs(cfg.clientAddr, cfg.srcips, cfg.conns)
	if err != nil {
		return nil, err
	}
	if cfg.gwpid != 0 {
		if _, err := readProc(cfg.gwpid); err != nil {
			return nil, fmt.Errorf("-gwpid %d: %w", cfg.gwpid, err)
		}
	}
	if cfg.mode == modePublish || cfg.mode == modeUnicast {
		r := &report{}
		if err := runFanout(ctx, cfg, r, stderr); err != nil {
			return r, err
		}
		r.int("errors", int64(r.nerrs))
		return r, nil
	}
	var backends []*backend
	if !cfg.baseline {
		if backends, err = startBackends(ctx, cfg); err != nil {
			return nil, err
		}
	}
	r := &report{}
	switch cfg.mode {
	case modeEcho:
		err = runEcho(ctx, cfg, src, r)
	case modeIdle:
		err = runIdle(ctx, cfg, src, r)
	case modeChurn:
		err = runChurn(ctx, cfg, src, r)
	}
	for _, e := range stopBackends(backends) {
		r.fail(e)
	}
	if err != nil {
		return r, err
	}
	r.int("errors", int64(r.nerrs))
	return r, nil
}

// listenEcho runs the bare echo process until ctx ends.
func listenEcho(ctx context.Context, cfg *config, stderr io.Writer) error {
	if _, err := raiseNoFile(); err != nil {
		return fmt.Errorf("fastway-bench: raising RLIMIT_NOFILE: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("fastway-bench: %w", err)
	}
	if cfg.fanout {
		s := newFanServer(ln, cfg.maxPacket)
		fmt.Fprintf(stderr, "fastway-bench: fan-out listening on %s pid=%d\n", ln.Addr(), os.Getpid())
		return serveUntil(ctx, s.serve, s.close)
	}
	s := newEchoServer(ln, cfg.maxPacket)
	s.relay, s.stderr = cfg.relay, stderr
	if s.relay != "" {
		fmt.Fprintf(stderr, "fastway-bench: relay listening on %s to %s pid=%d\n", ln.Addr(), s.relay, os.Getpid())
	} else {
		fmt.Fprintf(stderr, "fastway-bench: echo listening on %s pid=%d\n", ln.Addr(), os.Getpid())
	}
	return serveUntil(ctx, s.serve, s.close)
}

// serveUntil runs serve until it returns or ctx ends, then closes with
// closeFn and returns serve's error.
func serveUntil(ctx context.Context, serve func() error, closeFn func()) error {
	served := make(chan error, 1)
	go func() { served <- serve() }()
	select {
	case <-ctx.Done():
		closeFn()
		return <-served
	case err := <-served:
		closeFn()
		return err
	}
}
