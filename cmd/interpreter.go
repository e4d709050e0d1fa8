package cmd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
)

// Interpreter runs ops commands: from a string with Exec, from the command
// file with RunFile, or on each SIGUSR1 with Serve. Create it with New. It is
// safe for concurrent use.
type Interpreter struct {
	cfg Config

	// cmds holds the commands registered with Interpreter.Register;
	// builtins the built-in commands. Lookup order: cmds, then the
	// package-level defaultRegistry, then builtins.
	cmds     registry
	builtins registry

	// cpu is the CPU profiler's state (see profile.go).
	cpu cpuProf

	serving atomic.Bool

	// testHookServing, if set, is called by Serve once the signal is
	// being watched, so tests know when a signal will be caught.
	testHookServing func()
}

// New returns an Interpreter with the built-in commands registered. If
// cfg.BlockProfileRate is positive it sets the process's block profile rate.
func New(cfg Config) *Interpreter {
	i := &Interpreter{cfg: cfg.withDefaults()}
	if i.cfg.BlockProfileRate > 0 {
		setBlockProfileRate(i.cfg.BlockProfileRate)
	}
	i.builtins.register("cpuprof", "start | stop: start CPU profiling; stop writes "+cpuProfFile, i.cpuprofCmd)
	i.builtins.register("blockprof", "start [RATE] | stop: turn block profiling on (one sample per RATE ns blocked, default 10000) or off; lookup block writes it", i.blockprofCmd)
	i.builtins.register("lookup", "block | gc | goroutine | heap | threadcreate: write fastway.NAME.prof (gc: log a GC summary)", i.lookupCmd)
	i.builtins.register("help", "[command]: list the commands, or describe one", i.helpCmd)
	return i
}

// Register adds the command name, run by h, to this Interpreter only. name
// must be a single word without white space and h must not be nil, or
// Register panics. Registering a name again replaces the earlier command; a
// command registered here takes precedence over one of the same name
// registered with the package-level Register and over a built-in.
func (i *Interpreter) Register(name string, h Handler) {
	i.cmds.register(name, "", h)
}

// RegisterHelp is Register with a one-line description, shown by help.
func (i *Interpreter) RegisterHelp(name, help string, h Handler) {
	i.cmds.register(name, help, h)
}

// lookup finds the command name, honoring the precedence documented on
// Register.
func (i *Interpreter) lookup(name string) (command, bool) {
	if c, ok := i.cmds.get(name); ok {
		return c, true
	}
	if c, ok := defaultRegistry.get(name); ok {
		return c, true
	}
	return i.builtins.get(name)
}

// commands returns every command this Interpreter would run, sorted by name.
func (i *Interpreter) commands() []command {
	names := i.cmds.names(nil)
	names = defaultRegistry.names(names)
	names = i.builtins.names(names)
	slices.Sort(names)
	names = slices.Compact(names)
	cmds := make([]command, 0, len(names))
	for _, n := range names {
		if c, ok := i.lookup(n); ok {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// Exec runs one command line: a command name and its arguments, separated
// by white space. Surrounding white space is ignored. It returns the
// handler's result, or an error: ErrEmptyCommand, ErrMultipleCommands,
// ErrUnknownCommand, or whatever the handler returned (ErrBadArgs, ...),
// with a panic turned into ErrHandlerPanic. Exec does not log.
func (i *Interpreter) Exec(line string) (string, error) {
	words, err := split(line)
	if err != nil {
		return "", err
	}
	c, ok := i.lookup(words[0])
	if !ok {
		return "", fmt.Errorf("%w %q", ErrUnknownCommand, capName(words[0]))
	}
	return c.run(words[1:])
}

// split trims line and splits it into words; it fails on a blank line or
// on more than one line.
func split(line string) ([]string, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil, ErrEmptyCommand
	}
	if strings.ContainsAny(line, "\r\n") {
		return nil, ErrMultipleCommands
	}
	return strings.Fields(line), nil
}

// RunFile reads the command file (Config.CmdFile), runs the command it
// holds with Exec, logs the result or the error, and calls Config.OnResult.
// A missing, oversized or refused file (see readCmdFile) gives an error
// wrapping ErrCmdFile, logged like any other.
//
// The log never holds the file's text: only the command's name, cut to
// MaxLoggedNameSize bytes with anything but printable ASCII replaced (key
// cmd), and the error or the result. If the file is not what the operator
// meant (a key pasted into it, say), no more than a word of it reaches the
// log. Config.OnResult still sees the whole line.
func (i *Interpreter) RunFile() (string, error) {
	var line, res string
	text, err := i.readCmdFile()
	if err == nil {
		line = strings.TrimSpace(text)
		res, err = i.Exec(line)
	}
	log := i.logger()
	name := logName(line)
	switch pe := (*panicError)(nil); {
	case errors.As(err, &pe):
		log.Error("fastway: cmd: command failed", "cmd", name, "err", err, "stack", string(pe.stack))
	case err != nil:
		log.Error("fastway: cmd: command failed", "cmd", name, "err", err)
	default:
		log.Info("fastway: cmd: command done", "cmd", name, "result", res)
	}
	if i.cfg.OnResult != nil {
		i.cfg.OnResult(line, res, err)
	}
	return res, err
}

// MaxLoggedNameSize bounds, in bytes, the command name RunFile logs and
// the name an unknown-command error quotes.
const MaxLoggedNameSize = 32

// logName returns the first word of line as it may be logged: at most
// MaxLoggedNameSize bytes (then "..."), every byte that is not printable
// ASCII replaced by '?'.
func logName(line string) string {
	words := strings.Fields(line)
	if len(words) == 0 {
		return ""
	}
	return capName(words[0])
}

// capName applies logName's rules to one word.
func capName(w string) string {
	cut := len(w) > MaxLoggedNameSize
	if cut {
		w = w[:MaxLoggedNameSize]
	}
	b := []byte(w)
	for k, c := range b {
		if c <= ' ' || c > '~' {
			b[k] = '?'
		}
	}
	if cut {
		return string(b) + "..."
	}
	return string(b)
}

// readCmdFile returns the text of the command file. It is opened without
// following a symbolic link and without blocking (openCmdFile), and read
// only if it is a regular file of this process's user that group and
// others cannot write, with a single link; at most MaxCmdFileSize bytes. So
// a link to a secret, a FIFO or a device put in its place, or a file
// someone else can write, is refused at once and the interpreter (and a
// shutdown waiting for it) is never held up.
func (i *Interpreter) readCmdFile() (string, error) {
	path := i.cfg.CmdFile
	f, err := openCmdFile(path)
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", ErrCmdFile, path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCmdFileSize+1))
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", ErrCmdFile, path, err)
	}
	if len(b) > MaxCmdFileSize {
		return "", fmt.Errorf("%w %s: larger than %d bytes", ErrCmdFile, path, MaxCmdFileSize)
	}
	return string(b), nil
}

func (i *Interpreter) logger() *slog.Logger {
	if i.cfg.Logger != nil {
		return i.cfg.Logger
	}
	return slog.Default()
}

// helpCmd lists the commands, one per line ("name  help"), sorted by name,
// or describes the one named in its argument.
func (i *Interpreter) helpCmd(args []string) (string, error) {
	var cmds []command
	switch len(args) {
	case 0:
		cmds = i.commands()
	case 1:
		c, ok := i.lookup(args[0])
		if !ok {
			return "", fmt.Errorf("%w %q", ErrUnknownCommand, capName(args[0]))
		}
		cmds = []command{c}
	default:
		return "", badArgs("help", args, "at most one command name")
	}
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	var b strings.Builder
	for k, c := range cmds {
		if k > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%-*s  %s", width, c.name, c.help)
	}
	return b.String(), nil
}

// badArgs returns the ErrBadArgs error for command name. The arguments
// stay out of it: RunFile logs the error, and the log never holds more of
// the command file than the command's name.
func badArgs(name string, args []string, want string) error {
	return fmt.Errorf("%w for %s (%d given): want %s", ErrBadArgs, name, len(args), want)
}
