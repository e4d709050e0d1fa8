//go:build unix

package main

import (
	"os"
	"syscall"
)

// commandSignals are the signals the command interpreter answers.
var commandSignals = []os.Signal{syscall.SIGUSR1}

// reloadSignals are the signals that reread the key files.
var reloadSignals = []os.Signal{syscall.SIGHUP}
