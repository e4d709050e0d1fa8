package main

import (
	"errors"
	"syscall"
)

var (
	// errTooManyFiles is accept's error when the process is out of file
	// descriptors: the accept loop backs off instead of failing.
	errTooManyFiles = syscall.EMFILE

	// errInterrupted ends a run stopped by SIGINT or SIGTERM.
	errInterrupted = errors.New("fastway-bench: interrupted")
)
