// Package cmd is fastway's ops command interpreter: it runs the short text
// commands an operator hands a running gateway (docs/protocol.md, section 4,
// "Ops control").
//
// # Operators
//
// The operator writes one command into the command file and sends SIGUSR1:
//
//	echo "cpuprof start" > fastway.cmd && kill -USR1 $(cat fastway.pid)
//
// On each signal the interpreter reads the file (at most MaxCmdFileSize
// bytes; surrounding spaces and the trailing newline are ignored), runs the
// command and logs the result with log/slog: a record "fastway: cmd: command
// done" with the keys cmd and result, or "fastway: cmd: command failed" with
// cmd and err for an unknown command, bad arguments, a failing command, or a
// missing or refused file. Whatever a command does, the process keeps
// running: a handler that panics is recovered and logged as an error with
// its stack. The file is left in place, so another signal runs the same
// command again.
//
// # What the file may be
//
// The file is opened without following a symbolic link (O_NOFOLLOW) and
// without blocking (O_NONBLOCK), then checked on the opened descriptor
// (fstat), so swapping the path between a check and the open fools
// nothing. It is read only if it is a regular file owned by the process's
// effective user, not writable by group or others, with a single link.
// Otherwise the run fails at once with ErrCmdFile and the reason: a link to
// a key, a FIFO or a device put in its place, a file another user wrote, or
// a hard link to some other file, is never read, and never holds up the
// interpreter or a shutdown. Write it as the gateway's user with a umask
// of 022 or stricter (echo stats > fastway.cmd does).
//
// The log holds none of the file's text but the command's name (its first
// word, at most MaxLoggedNameSize bytes, anything but printable ASCII
// replaced by '?'); the arguments stay out of it, and out of the errors the
// built-in commands return. A key pasted into the file shows up as
// cmd=-----BEGIN and nothing more. Config.OnResult, for programs, sees the
// whole line.
//
// A command is a name and its arguments, separated by white space. There is
// no quoting, and the file holds exactly one command (one non-blank line).
// Names are case-sensitive.
//
// # Built-in commands
//
//	cpuprof start       start CPU profiling (an error if it is already running)
//	cpuprof stop        stop it and write fastway.cpu.prof (an error if it is not running)
//	blockprof start [N] turn block profiling on: one sample per N ns blocked (default 10000)
//	blockprof stop      turn it off (the samples stay for lookup block)
//	lookup block        write blocking stacks to fastway.block.prof
//	lookup gc           log a GC summary: number of GCs, last GC and pause, pause total,
//	                    GC CPU share, heap alloc/sys/objects, next GC target, goroutines
//	lookup goroutine    write all goroutine stacks to fastway.goroutine.prof
//	lookup heap         write the heap profile to fastway.heap.prof
//	lookup threadcreate write thread-creation stacks to fastway.threadcreate.prof
//	help                list every registered command with a one-line description
//	help NAME           describe one command
//
// Profiles are written with runtime/pprof in its binary protobuf format, for
// go tool pprof (go tool pprof fastway.heap.prof) and
// github.com/google/pprof/profile. They go into Config.Dir (default: the
// working directory) and are written atomically: a temp file in that
// directory, renamed over the old profile once complete. The result logged
// names the file and its size.
//
// The block profile holds only what was sampled while block profiling was
// on: "blockprof start" turns it on in a running process, Config.BlockProfileRate at New
// (both call runtime.SetBlockProfileRate; a rate of 1 records every
// blocking event, which costs some speed). "lookup block" says in its result
// when profiling is off. The heap profile shows the heap as of the last
// completed GC.
//
// When Serve stops (its context is done) while CPU profiling is running, it
// stops profiling and writes fastway.cpu.prof, so a shutdown does not lose
// the profile.
//
// # Programs
//
// A program creates an Interpreter with New, adds its own commands with
// Interpreter.Register (or with the package-level Register, seen by every
// Interpreter), and runs Serve until shutdown:
//
//	it := cmd.New(cmd.Config{Logger: logger})
//	it.RegisterHelp("stats", "log the gateway's counters", func(args []string) (string, error) {
//		if len(args) != 0 {
//			return "", fmt.Errorf("%w: stats takes no arguments", cmd.ErrBadArgs)
//		}
//		return gatewayStats(), nil
//	})
//	served := make(chan error, 1)
//	go func() { served <- it.Serve(ctx) }()
//	// ... on shutdown: cancel ctx, then
//	err := <-served // Serve has returned and written any running CPU profile
//
// Registering a name that exists replaces the earlier command (last one
// wins). Commands registered on the Interpreter take precedence over those
// registered with the package-level Register, and both over the built-ins,
// so a program may replace a built-in. Exec runs a command line directly,
// without the file or logging; RunFile reads and runs the file once.
package cmd
