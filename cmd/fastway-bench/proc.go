package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. The
// kernel reports 100 to user space on every architecture Go supports
// (`getconf CLK_TCK` prints 100), so it is a constant here rather than a
// cgo call to sysconf. CPU figures are therefore 10 ms grained: measured
// windows of a few seconds keep that error below 1 %.
const clockTicks = 100

// procSample is what /proc says about a process at one instant.
type procSample struct {
	cpu time.Duration // utime + stime, all threads
	rss int64         // resident set, bytes (VmRSS)
}

// readProc samples process pid.
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	cpu, err := parseStatCPU(string(stat))
	if err != nil {
		return procSample{}, fmt.Errorf("fastway-bench: /proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	rss, err := parseStatusRSS(string(status))
	if err != nil {
		return procSample{}, fmt.Errorf("fastway-bench: /proc/%d/status: %w", pid, err)
	}
	return procSample{cpu: cpu, rss: rss}, nil
}

// parseStatCPU returns utime+stime from the text of /proc/PID/stat. The
// command name (field 2) is in parentheses and may itself hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	// After the name: field 3 (state) is rest[0], so utime (field 14) is
	// rest[11] and stime (field 15) rest[12].
	rest := strings.Fields(stat[end+1:])
	if len(rest) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(rest))
	}
	var ticks uint64
	for _, f := range rest[11:13] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("utime/stime %q: %w", f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}

// parseStatusRSS returns VmRSS, in bytes, from the text of /proc/PID/status.
func parseStatusRSS(status string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS %q: %w", f[0], err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("no VmRSS line (a kernel thread or a zombie?)")
}

// loadAvg1 returns the one-minute load average, or -1 if unknown.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
