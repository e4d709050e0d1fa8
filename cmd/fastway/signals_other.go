//go:build !unix

package main

import "os"

// commandSignals is empty: this system has no SIGUSR1.
var commandSignals []os.Signal

// reloadSignals is empty: the keys command reloads.
var reloadSignals []os.Signal
