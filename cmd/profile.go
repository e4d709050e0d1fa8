package cmd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// cpuProfFile is the file "cpuprof stop" writes.
const cpuProfFile = "fastway.cpu.prof"

// lookupProfiles are the runtime/pprof profiles "lookup NAME" writes to
// fastway.NAME.prof.
var lookupProfiles = []string{"block", "goroutine", "heap", "threadcreate"}

// cpuProf is an Interpreter's CPU profiler. runtime/pprof allows one CPU
// profile per process; f is the temp file this Interpreter's profile is
// being written to, nil when it is not profiling.
type cpuProf struct {
	mu sync.Mutex
	f  *os.File
}

// cpuprofCmd is the "cpuprof start|stop" command.
func (i *Interpreter) cpuprofCmd(args []string) (string, error) {
	if len(args) == 1 {
		switch args[0] {
		case "start":
			return i.startCPUProfile()
		case "stop":
			return i.stopCPUProfile()
		}
	}
	return "", badArgs("cpuprof", args, "start or stop")
}

func (i *Interpreter) startCPUProfile() (string, error) {
	i.cpu.mu.Lock()
	defer i.cpu.mu.Unlock()
	if i.cpu.f != nil {
		return "", ErrCPUProfRunning
	}
	f, err := i.createTemp(cpuProfFile)
	if err != nil {
		return "", err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		// The only error is that some other code is profiling.
		discard(f)
		return "", fmt.Errorf("%w: %w", ErrCPUProfRunning, err)
	}
	i.cpu.f = f
	return "CPU profiling started; cpuprof stop writes " + i.path(cpuProfFile), nil
}

func (i *Interpreter) stopCPUProfile() (string, error) {
	i.cpu.mu.Lock()
	defer i.cpu.mu.Unlock()
	if i.cpu.f == nil {
		return "", ErrCPUProfNotRunning
	}
	pprof.StopCPUProfile()
	f := i.cpu.f
	i.cpu.f = nil
	return i.commit(f, cpuProfFile)
}

// cpuProfiling reports whether this Interpreter is CPU profiling.
func (i *Interpreter) cpuProfiling() bool {
	i.cpu.mu.Lock()
	defer i.cpu.mu.Unlock()
	return i.cpu.f != nil
}

// DefaultBlockProfileRate is the rate "blockprof start" sets when given
// none: one blocking event sampled per 10 µs spent blocked, cheap enough to
// leave on for a while in production (1 records every event).
const DefaultBlockProfileRate = 10000

// blockRate is the process's block profile rate as last set through this
// package (New with Config.BlockProfileRate, or "blockprof"); the runtime
// has no getter. Zero: off, as far as this package knows.
var blockRate atomic.Int64

// setBlockProfileRate sets the process's block profile rate and records it.
func setBlockProfileRate(rate int) {
	runtime.SetBlockProfileRate(rate)
	blockRate.Store(int64(max(rate, 0)))
}

// blockprofCmd is the "blockprof start [RATE] | stop" command: it turns the
// process's block profiling on (one sample per RATE nanoseconds blocked,
// default DefaultBlockProfileRate) or off, without a restart. "lookup block"
// writes what was sampled; turning it off keeps the samples.
func (i *Interpreter) blockprofCmd(args []string) (string, error) {
	switch {
	case len(args) >= 1 && len(args) <= 2 && args[0] == "start":
		rate := DefaultBlockProfileRate
		if len(args) == 2 {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return "", badArgs("blockprof", args, "start [RATE], RATE a whole number of nanoseconds >= 1, or stop")
			}
			rate = n
		}
		setBlockProfileRate(rate)
		return fmt.Sprintf("block profiling on, one sample per %v blocked; lookup block writes %s",
			time.Duration(rate), i.path("fastway.block.prof")), nil
	case len(args) == 1 && args[0] == "stop":
		setBlockProfileRate(0)
		return "block profiling off; lookup block still writes what was sampled", nil
	}
	return "", badArgs("blockprof", args, "start [RATE] or stop")
}

// lookupCmd is the "lookup NAME" command.
func (i *Interpreter) lookupCmd(args []string) (string, error) {
	if len(args) == 1 {
		name := args[0]
		if name == "gc" {
			return gcSummary(), nil
		}
		for _, p := range lookupProfiles {
			if p != name {
				continue
			}
			res, err := i.writeFile("fastway."+name+".prof", func(w io.Writer) error {
				// debug=0: the gzipped protobuf format that go tool
				// pprof reads.
				return pprof.Lookup(name).WriteTo(w, 0)
			})
			if err == nil && name == "block" && blockRate.Load() == 0 {
				res += "; block profiling is off (blockprof start turns it on), so it holds only what was sampled before"
			}
			return res, err
		}
	}
	return "", badArgs("lookup", args, "block, gc, goroutine, heap or threadcreate")
}

// gcSummary returns the GC and heap numbers "lookup gc" logs, as one line of
// key=value pairs.
func gcSummary() string {
	var s debug.GCStats
	debug.ReadGCStats(&s)
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	last, lastPause := "never", time.Duration(0)
	if s.NumGC > 0 {
		last = s.LastGC.UTC().Format(time.RFC3339)
		lastPause = s.Pause[0]
	}
	return fmt.Sprintf("num_gc=%d last_gc=%s last_pause=%s pause_total=%s gc_cpu=%.3f%% "+
		"heap_alloc=%s heap_sys=%s heap_objects=%d next_gc=%s goroutines=%d",
		s.NumGC, last, lastPause, s.PauseTotal, m.GCCPUFraction*100,
		fmtBytes(m.HeapAlloc), fmtBytes(m.HeapSys), m.HeapObjects, fmtBytes(m.NextGC),
		runtime.NumGoroutine())
}

// fmtBytes formats n bytes with a binary unit: 512B, 1.5KiB, 20.0MiB.
func fmtBytes(n uint64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, k := float64(n)/unit, 0
	for v >= unit && k < 3 {
		v /= unit
		k++
	}
	return fmt.Sprintf("%.1f%s", v, [...]string{"KiB", "MiB", "GiB", "TiB"}[k])
}

// writeFile writes the file name in Config.Dir atomically: write does its
// work on a temp file in the same directory, which is then renamed over
// name, so a reader never sees half a file.
func (i *Interpreter) writeFile(name string, write func(io.Writer) error) (string, error) {
	f, err := i.createTemp(name)
	if err != nil {
		return "", err
	}
	if err := write(f); err != nil {
		discard(f)
		return "", fmt.Errorf("fastway: cmd: write %s: %w", i.path(name), err)
	}
	return i.commit(f, name)
}

// createTemp creates the temp file that will become name.
func (i *Interpreter) createTemp(name string) (*os.File, error) {
	f, err := os.CreateTemp(i.cfg.Dir, "."+name+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("fastway: cmd: create %s: %w", i.path(name), err)
	}
	return f, nil
}

// commit syncs and closes the temp file f and renames it to name, or removes
// it on failure. It returns the result line for the log.
func (i *Interpreter) commit(f *os.File, name string) (string, error) {
	path := i.path(name)
	size := int64(-1)
	err := f.Sync()
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if err == nil {
		// CreateTemp makes the file 0600; a profile is as readable as a
		// file made by os.Create.
		err = f.Chmod(0o644)
	}
	if err != nil {
		discard(f)
		return "", fmt.Errorf("fastway: cmd: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("fastway: cmd: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), filepath.Join(i.cfg.Dir, name)); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("fastway: cmd: write %s: %w", path, err)
	}
	return fmt.Sprintf("wrote %s (%d bytes)", path, size), nil
}

// discard closes and removes a temp file that will not be committed.
func discard(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// path returns the absolute path of the file name in Config.Dir, for
// messages (the relative one if it cannot be made absolute).
func (i *Interpreter) path(name string) string {
	p := filepath.Join(i.cfg.Dir, name)
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
