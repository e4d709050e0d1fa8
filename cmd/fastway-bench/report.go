package main

import (
	"os"
	"strconv"
	"time"
)

// maxKeptErrors is how many failures a report keeps to print; it counts
// them all.
const maxKeptErrors = 5

// report is a run's summary: one line of key=value pairs, in the order
// added, and the failures seen.
type report struct {
	b     []byte
	errs  []error
	nerrs int
}

func (r *report) add(key, value string) {
	if len(r.b) > 0 {
		r.b = append(r.b, ' ')
	}
	r.b = append(r.b, key...)
	r.b = append(r.b, '=')
	r.b = append(r.b, value...)
}

func (r *report) int(key string, v int64) { r.add(key, strconv.FormatInt(v, 10)) }

// float adds v with prec decimals.
func (r *report) float(key string, v float64, prec int) {
	r.add(key, strconv.FormatFloat(v, 'f', prec, 64))
}

// micros adds a duration in nanoseconds as microseconds.
func (r *report) micros(key string, ns uint64) { r.float(key, float64(ns)/1e3, 1) }

func (r *report) fail(err error) {
	if err == nil {
		return
	}
	r.nerrs++
	if len(r.errs) < maxKeptErrors {
		r.errs = append(r.errs, err)
	}
}

func (r *report) String() string { return string(r.b) }

// window measures the target process (-gwpid) and the bench itself over
// the measured window.
type window struct {
	pid        int // 0: no target to measure
	start, end time.Time
	t0, t1     procSample // target
	s0, s1     procSample // this process
}

// begin opens the window.
func (w *window) begin() error {
	w.start = time.Now()
	w.s0, _ = readProc(os.Getpid())
	if w.pid == 0 {
		return nil
	}
	var err error
	w.t0, err = readProc(w.pid)
	return err
}

// finish closes the window.
func (w *window) finish() error {
	w.end = time.Now()
	w.s1, _ = readProc(os.Getpid())
	if w.pid == 0 {
		return nil
	}
	var err error
	w.t1, err = readProc(w.pid)
	return err
}

func (w *window) seconds() float64 { return w.end.Sub(w.start).Seconds() }

// targetCPU returns the target's CPU time over the window.
func (w *window) targetCPU() time.Duration { return w.t1.cpu - w.t0.cpu }

// addRate adds the window's length and count per second.
func (w *window) addRate(r *report, count uint64, perSecKey string) {
	r.float("window_s", w.seconds(), 2)
	if s := w.seconds(); s > 0 {
		r.float(perSecKey, float64(count)/s, 0)
	}
}

// addTarget adds, with a target, its CPU time over the window, count per
// target CPU-second (perCPUKey) and its RSS at the end.
func (w *window) addTarget(r *report, count uint64, perCPUKey string) {
	if w.pid == 0 {
		return
	}
	cpu := w.targetCPU()
	r.float("gw_cpu_s", cpu.Seconds(), 2)
	if cpu > 0 {
		r.float(perCPUKey, float64(count)/cpu.Seconds(), 0)
	}
	r.float("gw_rss_mib", mib(w.t1.rss), 1)
}

// addSelf adds the bench's own CPU time and the load average.
func (w *window) addSelf(r *report) {
	r.float("bench_cpu_s", (w.s1.cpu - w.s0.cpu).Seconds(), 2)
	r.float("load1", loadAvg1(), 2)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// target names what the run was aimed at.
func target(cfg *config) string {
	if cfg.baseline {
		return "baseline"
	}
	return "gateway"
}

// addCommon adds the keys every mode starts with.
func addCommon(r *report, cfg *config) {
	r.add("mode", cfg.mode)
	r.add("target", target(cfg))
	if cfg.ws {
		r.add("transport", "ws")
	} else {
		r.add("transport", "tcp")
	}
	r.int("servers", int64(cfg.servers))
	r.int("conns", int64(cfg.conns))
}
