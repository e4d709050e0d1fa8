package cmd

import "log/slog"

// Defaults used for the zero values of Config's fields.
const (
	// DefaultCmdFile is the command file read on each signal.
	DefaultCmdFile = "fastway.cmd"

	// DefaultDir is where profile files are written: the working directory.
	DefaultDir = "."

	// MaxCmdFileSize bounds, in bytes, how much of the command file is
	// read. A larger file is refused (ErrCmdFile) rather than cut.
	MaxCmdFileSize = 4 << 10
)

// Config configures an Interpreter. The zero Config works: it reads
// fastway.cmd and writes profiles into the working directory.
type Config struct {
	// CmdFile is the path of the command file read on each SIGUSR1. A
	// relative path is relative to the working directory (not to Dir).
	// Zero means DefaultCmdFile.
	CmdFile string

	// Dir is the directory profile files are written into. It must exist.
	// Zero means DefaultDir, the working directory.
	Dir string

	// Logger receives one record per command run by RunFile (the result,
	// or the error), plus Serve's start and stop. Nil means slog.Default(),
	// looked up each time it is used.
	Logger *slog.Logger

	// BlockProfileRate, when positive, is passed by New to
	// runtime.SetBlockProfileRate: one blocking event is sampled per
	// BlockProfileRate nanoseconds spent blocked (1 samples every event).
	// The setting is process-wide and stays after the Interpreter is gone.
	// Zero or negative leaves the process's rate unchanged (the runtime's
	// default is off); the "blockprof start" command turns it on later.
	BlockProfileRate int

	// OnResult, if not nil, is called after each RunFile with the command
	// line (trimmed; empty when the file could not be read or was blank),
	// the result and the error. It runs on the goroutine that called
	// RunFile (Serve's, for a signal), after the record is logged, so it
	// must not block for long. Tests and programs use it to observe
	// commands without parsing logs.
	OnResult func(cmd, result string, err error)
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.CmdFile == "" {
		c.CmdFile = DefaultCmdFile
	}
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	return c
}
