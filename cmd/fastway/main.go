// Command fastway runs the gateway: clients connect to -ClientAddr, game
// servers to -ServerAddr, and fastway routes virtual connections between
// them (docs/protocol.md). Run fastway -h for the flags; docs/operations.md
// covers signals, the SIGUSR1 command file, nohup and docker deployments.
//
// Exit codes: 0 after a clean stop (SIGTERM or SIGINT) or -h; 1 when the
// gateway cannot start or stops on an error (a port in use, say); 2 for a
// bad command line, with a one-line message on stderr.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
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

// realMain is main without os.Exit: flags, config, validate, then run until
// a signal stops the gateway. It returns the exit code.
func realMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return exitOK
	}
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		return usageError(stderr, err)
	}
	cfg, err := o.gatewayConfig()
	if err != nil {
		return usageError(stderr, err)
	}
	log := newLogger(stderr, o.LogLevel, o.LogFormat)
	slog.SetDefault(log)
	cfg.Logger = log
	return run(o, cfg, log)
}

// usageError prints err on one line and returns exitUsage.
func usageError(stderr io.Writer, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintf(stderr, "fastway: %s (fastway -h lists the flags)\n", msg)
	return exitUsage
}
