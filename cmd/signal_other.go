//go:build !unix

package cmd

import "os"

// cmdSignal is nil: this system has no SIGUSR1, and Serve says so.
var cmdSignal os.Signal
