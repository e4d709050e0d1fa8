package cmd

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLookupProfiles(t *testing.T) {
	for _, name := range lookupProfiles {
		t.Run(name, func(t *testing.T) {
			cfg := Config{}
			if name == "block" {
				cfg.BlockProfileRate = 1
				t.Cleanup(func() { setBlockProfileRate(0) })
			}
			i, _, _ := newTest(t, cfg)
			if name == "block" {
				pingPong(100)
			}
			res, err := i.Exec("lookup " + name)
			if err != nil {
				t.Fatal(err)
			}
			file := "fastway." + name + ".prof"
			path := filepath.Join(i.cfg.Dir, file)
			if !strings.Contains(res, path) {
				t.Errorf("result %q does not name %s", res, path)
			}
			onlyFile(t, i.cfg.Dir, file)
			p := parseProfile(t, path)
			if len(p.SampleType) == 0 {
				t.Errorf("%s profile has no sample types", name)
			}
			if (name == "goroutine" || name == "block") && len(p.Sample) == 0 {
				t.Errorf("%s profile has no samples", name)
			}
		})
	}
}

// pingPong makes goroutines block on channels n times each way.
func pingPong(n int) {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
		close(pong)
	}()
	for k := range n {
		ping <- k
		<-pong
	}
	close(ping)
	<-pong
}

// TestBlockProf: "blockprof start" turns block profiling on in a running
// process (so "lookup block" has samples), "blockprof stop" turns it off,
// and "lookup block" says when it is off rather than handing out an empty
// profile without a word.
func TestBlockProf(t *testing.T) {
	t.Cleanup(func() { setBlockProfileRate(0) })
	i, _, _ := newTest(t, Config{})
	setBlockProfileRate(0)
	res, err := i.Exec("lookup block")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res, "block profiling is off") {
		t.Errorf("lookup block with profiling off: result %q does not say so", res)
	}
	if res, err = i.Exec("blockprof start"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res, "one sample per 10µs blocked") {
		t.Errorf("blockprof start: result %q does not give the default rate", res)
	}
	if blockRate.Load() != DefaultBlockProfileRate {
		t.Errorf("rate %d after blockprof start, want %d", blockRate.Load(), DefaultBlockProfileRate)
	}
	if _, err = i.Exec("blockprof start 1"); err != nil {
		t.Fatal(err)
	}
	pingPong(100)
	if res, err = i.Exec("lookup block"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res, "off") {
		t.Errorf("lookup block with profiling on: result %q", res)
	}
	if p := parseProfile(t, filepath.Join(i.cfg.Dir, "fastway.block.prof")); len(p.Sample) == 0 {
		t.Error("block profile has no samples after blockprof start and blocking")
	}
	if res, err = i.Exec("blockprof stop"); err != nil {
		t.Fatal(err)
	}
	if blockRate.Load() != 0 || !strings.Contains(res, "off") {
		t.Errorf("after blockprof stop: rate %d, result %q", blockRate.Load(), res)
	}
	for _, bad := range []string{"blockprof", "blockprof go", "blockprof start 0", "blockprof start x", "blockprof start 1 2", "blockprof stop now"} {
		if _, err := i.Exec(bad); !errors.Is(err, ErrBadArgs) {
			t.Errorf("%q: err = %v, want ErrBadArgs", bad, err)
		}
	}
}

func TestLookupOverwrites(t *testing.T) {
	i, _, _ := newTest(t, Config{})
	path := filepath.Join(i.cfg.Dir, "fastway.heap.prof")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := i.Exec("lookup heap"); err != nil {
		t.Fatal(err)
	}
	parseProfile(t, path)
	onlyFile(t, i.cfg.Dir, "fastway.heap.prof")
}

func TestLookupMissingDir(t *testing.T) {
	i, _, _ := newTest(t, Config{Dir: filepath.Join(t.TempDir(), "nope")})
	_, err := i.Exec("lookup heap")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestCPUProf(t *testing.T) {
	i, _, _ := newTest(t, Config{})
	if _, err := i.Exec("cpuprof stop"); !errors.Is(err, ErrCPUProfNotRunning) {
		t.Fatalf("stop before start: err = %v, want ErrCPUProfNotRunning", err)
	}
	if _, err := i.Exec("cpuprof start"); err != nil {
		t.Fatal(err)
	}
	if _, err := i.Exec("cpuprof start"); !errors.Is(err, ErrCPUProfRunning) {
		t.Fatalf("second start: err = %v, want ErrCPUProfRunning", err)
	}
	// A second Interpreter cannot profile while the first does.
	other, _, _ := newTest(t, Config{})
	if _, err := other.Exec("cpuprof start"); !errors.Is(err, ErrCPUProfRunning) {
		t.Fatalf("start on another Interpreter: err = %v, want ErrCPUProfRunning", err)
	}
	spin(300 * time.Millisecond)
	res, err := i.Exec("cpuprof stop")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(i.cfg.Dir, cpuProfFile)
	if !strings.Contains(res, path) {
		t.Errorf("result %q does not name %s", res, path)
	}
	onlyFile(t, i.cfg.Dir, cpuProfFile)
	p := parseProfile(t, path)
	if p.PeriodType == nil || p.PeriodType.Type != "cpu" {
		t.Errorf("period type = %v, want cpu", p.PeriodType)
	}
	if len(p.Sample) == 0 {
		t.Errorf("CPU profile has no samples")
	}
	if _, err := i.Exec("cpuprof stop"); !errors.Is(err, ErrCPUProfNotRunning) {
		t.Fatalf("second stop: err = %v, want ErrCPUProfNotRunning", err)
	}
	// Profiling can start again after a stop.
	if _, err := i.Exec("cpuprof start"); err != nil {
		t.Fatal(err)
	}
	if _, err := i.Exec("cpuprof stop"); err != nil {
		t.Fatal(err)
	}
}

// spin burns CPU for about d.
func spin(d time.Duration) {
	x := uint64(1)
	for start := time.Now(); time.Since(start) < d; {
		for range 10000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	sink = x
}

var sink uint64

func TestLookupGC(t *testing.T) {
	runtime.GC()
	i, _, _ := newTest(t, Config{})
	res, err := i.Exec("lookup gc")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"num_gc=", "last_gc=", "last_pause=", "pause_total=", "heap_alloc=", "heap_sys="} {
		if !strings.Contains(res, key) {
			t.Errorf("summary %q lacks %s", res, key)
		}
	}
	if strings.Contains(res, "num_gc=0 ") || strings.Contains(res, "last_gc=never") {
		t.Errorf("summary %q does not show the GC that ran", res)
	}
	if strings.Contains(res, "\n") {
		t.Errorf("summary %q is not one line", res)
	}
}

func TestExecErrors(t *testing.T) {
	i, _, _ := newTest(t, Config{})
	for _, tc := range []struct {
		line string
		want error
	}{
		{"", ErrEmptyCommand},
		{" \t\n ", ErrEmptyCommand},
		{"lookup gc\nhelp", ErrMultipleCommands},
		{"nope", ErrUnknownCommand},
		{"CPUPROF start", ErrUnknownCommand},
		{"cpuprof", ErrBadArgs},
		{"cpuprof go", ErrBadArgs},
		{"cpuprof start now", ErrBadArgs},
		{"lookup", ErrBadArgs},
		{"lookup nothing", ErrBadArgs},
		{"lookup cpu", ErrBadArgs},
		{"lookup gc now", ErrBadArgs},
		{"lookup heap heap", ErrBadArgs},
		{"help a b", ErrBadArgs},
		{"help nope", ErrUnknownCommand},
	} {
		res, err := i.Exec(tc.line)
		if !errors.Is(err, tc.want) {
			t.Errorf("Exec(%q) = %q, %v; want %v", tc.line, res, err, tc.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), "fastway: cmd: ") {
			t.Errorf("Exec(%q): error %q lacks the package prefix", tc.line, err)
		}
	}
	_, err := i.Exec("nope x")
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown command error %v does not name the command", err)
	}
	if ents, _ := os.ReadDir(i.cfg.Dir); len(ents) != 0 {
		t.Errorf("failed commands left files: %v", ents)
	}
}

func TestHandlerArgs(t *testing.T) {
	i, _, _ := newTest(t, Config{})
	var got []string
	i.RegisterHelp("echo", "echo the arguments", func(args []string) (string, error) {
		got = args
		return strings.Join(args, ","), nil
	})
	res, err := i.Exec("  echo   a\tb  c \r\n")
	if err != nil || res != "a,b,c" || len(got) != 3 {
		t.Fatalf("Exec = %q, %v (args %q); want a,b,c", res, err, got)
	}
	if res, err := i.Exec("echo"); err != nil || res != "" || len(got) != 0 {
		t.Fatalf("Exec without args = %q, %v (args %q)", res, err, got)
	}
	boom := errors.New("boom")
	i.RegisterHelp("fail", "always fails", func([]string) (string, error) { return "", boom })
	if _, err := i.Exec("fail"); err != boom {
		t.Fatalf("err = %v, want the handler's error as is", err)
	}
}

func TestHelp(t *testing.T) {
	i, _, _ := newTest(t, Config{})
	i.RegisterHelp("stats", "log the gateway numbers", func([]string) (string, error) { return "conns=0", nil })
	RegisterHelp("zzpkg", "registered at package level", func([]string) (string, error) { return "", nil })
	t.Cleanup(func() { unregister("zzpkg") })

	res, err := i.Exec("help")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(res, "\n")
	want := []string{"blockprof", "cpuprof", "help", "lookup", "stats", "zzpkg"}
	if len(lines) != len(want) {
		t.Fatalf("help =\n%s\nwant one line for each of %q", res, want)
	}
	for k, name := range want {
		if f := strings.Fields(lines[k]); len(f) < 2 || f[0] != name {
			t.Errorf("help line %d = %q, want %s and its description", k, lines[k], name)
		}
	}
	if !strings.Contains(res, "log the gateway numbers") {
		t.Errorf("help lacks the description of stats:\n%s", res)
	}
	if res, err := i.Exec("stats"); err != nil || res != "conns=0" {
		t.Errorf("stats = %q, %v", res, err)
	}
	one, err := i.Exec("help lookup")
	if err != nil || !strings.HasPrefix(one, "lookup") || strings.Contains(one, "\n") {
		t.Errorf("help lookup = %q, %v", one, err)
	}

	// A package-level command shows in another Interpreter's help too.
	other, _, _ := newTest(t, Config{})
	res, _ = other.Exec("help")
	if !strings.Contains(res, "zzpkg") || strings.Contains(res, "stats") {
		t.Errorf("other Interpreter's help =\n%s\nwant zzpkg and no stats", res)
	}
}

func TestRegisterPrecedence(t *testing.T) {
	i, _, _ := newTest(t, Config{})
	reply := func(s string) Handler { return func([]string) (string, error) { return s, nil } }
	check := func(line, want string) {
		t.Helper()
		if res, err := i.Exec(line); err != nil || res != want {
			t.Errorf("Exec(%q) = %q, %v; want %q", line, res, err, want)
		}
	}
	i.RegisterHelp("x", "first", reply("first"))
	i.RegisterHelp("x", "second", reply("second"))
	check("x", "second")
	check("help x", "x  second")

	RegisterHelp("lookup", "package lookup", reply("package"))
	t.Cleanup(func() { unregister("lookup") })
	check("lookup heap", "package")
	i.RegisterHelp("lookup", "own lookup", reply("own"))
	check("lookup heap", "own")
	check("help lookup", "lookup  own lookup")
}

func TestRegisterInvalid(t *testing.T) {
	h := func([]string) (string, error) { return "", nil }
	for _, tc := range []struct {
		name string
		h    Handler
	}{
		{"", h},
		{"two words", h},
		{" lead", h},
		{"tab\t", h},
		{"ok", nil},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q, nil=%v) did not panic", tc.name, tc.h == nil)
				}
			}()
			New(Config{}).RegisterHelp(tc.name, "", tc.h)
		}()
	}
}

func TestHandlerPanic(t *testing.T) {
	i, rec, results := newTest(t, Config{})
	i.RegisterHelp("crash", "panics", func([]string) (string, error) { panic("kaboom") })
	res, err := i.Exec("crash")
	if !errors.Is(err, ErrHandlerPanic) || res != "" {
		t.Fatalf("Exec = %q, %v; want ErrHandlerPanic", res, err)
	}
	if !strings.Contains(err.Error(), "kaboom") || !strings.Contains(err.Error(), `"crash"`) {
		t.Errorf("error %q lacks the command or the panic value", err)
	}

	writeCmd(t, i, "crash\n")
	if _, err := i.RunFile(); !errors.Is(err, ErrHandlerPanic) {
		t.Fatalf("RunFile: err = %v, want ErrHandlerPanic", err)
	}
	if r := waitResult(t, results); !errors.Is(r.err, ErrHandlerPanic) || r.cmd != "crash" {
		t.Errorf("OnResult got %+v", r)
	}
	attrs, ok := rec.find(slog.LevelError, "fastway: cmd: command failed")
	if !ok {
		t.Fatal("the panic was not logged as an error")
	}
	if !strings.Contains(attrs["stack"], "TestHandlerPanic") {
		t.Errorf("logged stack does not show the handler:\n%s", attrs["stack"])
	}

	// The interpreter still works.
	if _, err := i.Exec("lookup gc"); err != nil {
		t.Fatal(err)
	}
}

func TestRunFile(t *testing.T) {
	i, rec, results := newTest(t, Config{})
	i.RegisterHelp("stats", "numbers", func(args []string) (string, error) {
		return fmt.Sprintf("args=%d", len(args)), nil
	})
	for _, tc := range []struct {
		name, text, cmd, res string
		want                 error
	}{
		{"newline", "stats\n", "stats", "args=0", nil},
		{"spaces", "  \t stats   a  b \r\n\n", "stats   a  b", "args=2", nil},
		{"no newline", "stats", "stats", "args=0", nil},
		{"full size", "stats" + strings.Repeat(" ", MaxCmdFileSize-5), "stats", "args=0", nil},
		{"too large", "stats" + strings.Repeat(" ", MaxCmdFileSize-4), "", "", ErrCmdFile},
		{"empty", "", "", "", ErrEmptyCommand},
		{"blank", "\n \n", "", "", ErrEmptyCommand},
		{"two commands", "stats\nlookup gc\n", "stats\nlookup gc", "", ErrMultipleCommands},
		{"unknown", "statz\n", "statz", "", ErrUnknownCommand},
		{"bad args", "cpuprof restart\n", "cpuprof restart", "", ErrBadArgs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeCmd(t, i, tc.text)
			res, err := i.RunFile()
			if !errors.Is(err, tc.want) || res != tc.res {
				t.Fatalf("RunFile = %q, %v; want %q, %v", res, err, tc.res, tc.want)
			}
			r := waitResult(t, results)
			if r.cmd != tc.cmd || r.res != tc.res || r.err != err {
				t.Errorf("OnResult got %+v, want cmd %q, result %q, err %v", r, tc.cmd, tc.res, err)
			}
			if tc.want == nil {
				attrs, ok := rec.find(slog.LevelInfo, "fastway: cmd: command done")
				if !ok || attrs["cmd"] != logName(tc.cmd) || attrs["result"] != tc.res {
					t.Errorf("logged %v, %v; want cmd %q, result %q", attrs, ok, logName(tc.cmd), tc.res)
				}
			} else {
				attrs, ok := rec.find(slog.LevelError, "fastway: cmd: command failed")
				if !ok || attrs["err"] != err.Error() {
					t.Errorf("logged %v, %v; want err %q", attrs, ok, err)
				}
			}
		})
	}
}

func TestRunFileUnreadable(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		i, rec, results := newTest(t, Config{})
		_, err := i.RunFile()
		if !errors.Is(err, ErrCmdFile) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want ErrCmdFile and fs.ErrNotExist", err)
		}
		if r := waitResult(t, results); r.err != err || r.cmd != "" {
			t.Errorf("OnResult got %+v", r)
		}
		if _, ok := rec.find(slog.LevelError, "fastway: cmd: command failed"); !ok {
			t.Error("missing file not logged as an error")
		}
	})
	t.Run("directory", func(t *testing.T) {
		i, _, _ := newTest(t, Config{CmdFile: t.TempDir()})
		if _, err := i.RunFile(); !errors.Is(err, ErrCmdFile) {
			t.Fatalf("err = %v, want ErrCmdFile", err)
		}
	})
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	i := New(Config{Logger: slog.New(&recorder{})})
	if i.cfg.CmdFile != DefaultCmdFile || i.cfg.Dir != DefaultDir {
		t.Fatalf("defaults: CmdFile %q, Dir %q", i.cfg.CmdFile, i.cfg.Dir)
	}
	if err := os.WriteFile(DefaultCmdFile, []byte("lookup goroutine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := i.RunFile(); err != nil {
		t.Fatal(err)
	}
	parseProfile(t, filepath.Join(dir, "fastway.goroutine.prof"))
}

func TestDefaultLogger(t *testing.T) {
	rec := &recorder{}
	old := slog.Default()
	slog.SetDefault(slog.New(rec))
	t.Cleanup(func() { slog.SetDefault(old) })
	i := New(Config{CmdFile: filepath.Join(t.TempDir(), "missing")})
	i.RunFile()
	if _, ok := rec.find(slog.LevelError, "fastway: cmd: command failed"); !ok {
		t.Error("nil Logger did not log to slog.Default()")
	}
}

func TestConcurrentUse(t *testing.T) {
	i, _, _ := newTest(t, Config{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range 20 {
				name := fmt.Sprintf("c%d_%d", g, k)
				i.RegisterHelp(name, "x", func([]string) (string, error) { return name, nil })
				if res, err := i.Exec(name); err != nil || res != name {
					t.Errorf("Exec(%q) = %q, %v", name, res, err)
				}
				if _, err := i.Exec("help"); err != nil {
					t.Error(err)
				}
				if _, err := i.Exec("lookup gc"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

func TestFmtBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0B"},
		{1023, "1023B"},
		{1024, "1.0KiB"},
		{1536, "1.5KiB"},
		{20 << 20, "20.0MiB"},
		{3 << 30, "3.0GiB"},
		{5 << 40, "5.0TiB"},
		{5 << 50, "5120.0TiB"},
	} {
		if got := fmtBytes(tc.n); got != tc.want {
			t.Errorf("fmtBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestRegisterNameHandler: the two-argument form, as embedding programs call
// it (cmd.Register(name, handler)), on an Interpreter and package-wide.
func TestRegisterNameHandler(t *testing.T) {
	i := New(Config{Dir: t.TempDir()})
	i.Register("ping", func([]string) (string, error) { return "pong", nil })
	Register("zzpkg2", func(args []string) (string, error) { return strings.Join(args, "+"), nil })
	t.Cleanup(func() { unregister("zzpkg2") })
	if res, err := i.Exec("ping"); err != nil || res != "pong" {
		t.Fatalf("ping = %q, %v", res, err)
	}
	if res, err := i.Exec("zzpkg2 a b"); err != nil || res != "a+b" {
		t.Fatalf("zzpkg2 = %q, %v", res, err)
	}
	help, err := i.Exec("help")
	if err != nil || !strings.Contains(help, "ping") || !strings.Contains(help, "zzpkg2") {
		t.Fatalf("help = %q, %v", help, err)
	}
}
