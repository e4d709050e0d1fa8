package cmd

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
)

// Handler runs one command. args are the words after the command name
// (split on white space; there is no quoting), possibly none. The returned
// string is the result that RunFile logs; an error is logged instead. A
// handler that does not understand its arguments should return an error
// wrapping ErrBadArgs. RunFile logs the error but never the arguments (nor
// anything of the file but the command's name): keep them out of the error
// too, since the file may not hold what the operator meant. A panic is recovered and turned into an error
// wrapping ErrHandlerPanic.
//
// Handlers run one at a time when driven by Serve, but Exec may be called
// from several goroutines at once, so a handler guards its own state.
type Handler func(args []string) (string, error)

// command is one registered command.
type command struct {
	name string
	help string
	h    Handler
}

// run calls the handler, turning a panic into an error.
func (c command) run(args []string) (res string, err error) {
	defer func() {
		if v := recover(); v != nil {
			res, err = "", &panicError{name: c.name, value: v, stack: debug.Stack()}
		}
	}()
	return c.h(args)
}

// panicError is the error for a handler that panicked. It keeps the stack
// so that RunFile can log where the panic came from.
type panicError struct {
	name  string
	value any
	stack []byte
}

func (e *panicError) Error() string {
	return fmt.Sprintf("%v in %q: %v", ErrHandlerPanic, e.name, e.value)
}

func (e *panicError) Unwrap() error { return ErrHandlerPanic }

// registry maps command names to commands. It is safe for concurrent use.
type registry struct {
	mu sync.RWMutex
	m  map[string]command
}

// register adds or replaces the command name. It panics on a name that is
// not a single word or on a nil handler: both are programming errors.
func (r *registry) register(name, help string, h Handler) {
	if f := strings.Fields(name); len(f) != 1 || f[0] != name {
		panic("fastway: cmd: Register: command name must be one word, got " + strconv.Quote(name))
	}
	if h == nil {
		panic("fastway: cmd: Register: nil handler for " + strconv.Quote(name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]command)
	}
	r.m[name] = command{name: name, help: strings.TrimSpace(help), h: h}
}

func (r *registry) get(name string) (command, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.m[name]
	return c, ok
}

// names appends the registered names to dst.
func (r *registry) names(dst []string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for name := range r.m {
		dst = append(dst, name)
	}
	return dst
}

// defaultRegistry holds the commands registered with the package-level
// Register; every Interpreter sees them.
var defaultRegistry registry

// Register adds the command name, run by h, to every Interpreter, including
// ones already created. name must be a single word without white space and h
// must not be nil, or Register panics. RegisterHelp does the same with a
// one-line description for the help command.
//
// Registering a name again replaces the earlier command. A command
// registered with Interpreter.Register takes precedence over one registered
// here, which takes precedence over a built-in of the same name: a program
// may replace a built-in.
func Register(name string, h Handler) {
	defaultRegistry.register(name, "", h)
}

// RegisterHelp is Register with a one-line description, shown by help.
func RegisterHelp(name, help string, h Handler) {
	defaultRegistry.register(name, help, h)
}
