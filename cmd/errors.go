package cmd

import "errors"

var (
	// ErrEmptyCommand is returned for a command line (or command file) that
	// holds nothing but white space.
	ErrEmptyCommand = errors.New("fastway: cmd: empty command")

	// ErrMultipleCommands is returned for a command line (or command file)
	// that holds more than one non-blank line: exactly one command is run
	// per signal.
	ErrMultipleCommands = errors.New("fastway: cmd: more than one command")

	// ErrUnknownCommand is returned when no command of that name is
	// registered. The error wraps it with the name.
	ErrUnknownCommand = errors.New("fastway: cmd: unknown command")

	// ErrBadArgs is returned when a command's arguments are missing, extra
	// or not understood. The error wraps it with the command, the arguments
	// and what was expected. Handlers registered by a program should wrap
	// it too, so that callers can tell a typo from a failure.
	ErrBadArgs = errors.New("fastway: cmd: bad arguments")

	// ErrHandlerPanic is returned when a command's handler panicked. The
	// panic is recovered; the error wraps it with the command name and the
	// panic value, and RunFile logs the handler's stack beside it.
	ErrHandlerPanic = errors.New("fastway: cmd: handler panicked")

	// ErrCPUProfRunning is returned by "cpuprof start" when CPU profiling is
	// already running, whether started by this command or by other code in
	// the process.
	ErrCPUProfRunning = errors.New("fastway: cmd: CPU profiling already running")

	// ErrCPUProfNotRunning is returned by "cpuprof stop" when this
	// Interpreter has not started CPU profiling.
	ErrCPUProfNotRunning = errors.New("fastway: cmd: CPU profiling not running")

	// ErrCmdFile is returned by RunFile when the command file cannot be
	// read: it is missing, not a regular file, or larger than
	// MaxCmdFileSize. The error also wraps the underlying error, if any, so
	// errors.Is(err, fs.ErrNotExist) tells a missing file.
	ErrCmdFile = errors.New("fastway: cmd: cannot read command file")

	// ErrServing is returned by Serve when the Interpreter is already
	// serving: a second Serve would run every command twice.
	ErrServing = errors.New("fastway: cmd: Serve already running")
)
