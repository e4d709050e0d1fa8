//go:build unix

package cmd

import (
	"os"
	"syscall"
)

// cmdSignal is the signal that makes Serve run the command file.
var cmdSignal os.Signal = syscall.SIGUSR1
