package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	fastway "github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/slab"
)

// The flood mode's measures: the bound on the gateway's memory derived
// from its flags, the RSS sampler, and the figures' formats.

// sizeFlag is a flag.Value for a size in bytes, written as parseSize takes it.
type sizeFlag struct{ p *int64 }

func (f sizeFlag) String() string {
	if f.p == nil {
		return ""
	}
	return formatSize(*f.p)
}

// formatSize prints n bytes in the largest unit that divides it exactly,
// as parseSize reads it back.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (f sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err == nil {
		*f.p = n
	}
	return err
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

// clientReadBufferMax is what a client connection's read buffer grows to
// while reads fill it (the ClientBufferSize flag's doc: "grows to 64K").
const clientReadBufferMax = 64 << 10

// runtimeSlack is the bound's allowance for the Go runtime: its own
// memory, and a heap that may grow to twice what is live before a GC.
const runtimeSlack = 32 << 20

// limits are the gateway's settings the memory bound is built from: the
// defaults, or what the arguments passed to the binary set.
type limits struct {
	maxPacket   int64 // MaxPacket
	clientQueue int64 // ClientSendQueueBytes
	serverQueue int64 // ServerSendQueueBytes
	clientBuf   int64 // ClientBufferSize
	serverBuf   int64 // ServerBufferSize
	factor      int64 // MemPoolFactor
}

// gatewayLimits reads the limits from the binary's arguments (-Name=value
// or -Name value, one or two dashes), each default where not set.
func gatewayLimits(args []string) (limits, error) {
	l := limits{
		maxPacket: fastway.DefaultMaxPacket, clientQueue: fastway.DefaultClientSendQueueBytes,
		serverQueue: fastway.DefaultServerSendQueueBytes, clientBuf: fastway.DefaultClientBufferSize,
		serverBuf: fastway.DefaultServerBufferSize, factor: slab.DefaultFactor,
	}
	fields := map[string]*int64{
		"MaxPacket": &l.maxPacket, "ClientSendQueueBytes": &l.clientQueue, "ServerSendQueueBytes": &l.serverQueue,
		"ClientBufferSize": &l.clientBuf, "ServerBufferSize": &l.serverBuf, "MemPoolFactor": &l.factor,
	}
	for i := 0; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		p, ok := fields[name]
		if !ok {
			continue
		}
		if !hasVal {
			if i+1 == len(args) {
				return l, fmt.Errorf("gateway flag -%s: no value", name)
			}
			i++
			val = args[i]
		}
		n, err := parseSize(val)
		if err != nil {
			return l, fmt.Errorf("gateway flag -%s=%s: %v", name, val, err)
		}
		*p = n
	}
	return l, nil
}

// bound is how far above its baseline the gateway's RSS may go in any of
// the scenarios:
//
//	MemPoolFactor × (ServerSendQueueBytes + ClientSendQueueBytes
//	                 + 3 × MaxPacket + max(ClientBufferSize, 64 KiB) + ServerBufferSize)
//	+ 32 MiB
//
// The two queues are bounded in bytes; past each bound the gateway holds
// one more frame (the one that found it full: a MaxPacket each), and a
// frame larger than the read buffer being read takes one more; the read
// buffers are the client's (grown to 64 KiB) and the server's. The pool
// rounds a buffer up to its size class, up to MemPoolFactor times (a 16 KiB
// frame with its 8-byte header takes a 32 KiB chunk). 32 MiB is for the Go
// runtime: its own memory and a heap allowed to double before a GC.
func (l limits) bound() int64 {
	held := l.serverQueue + l.clientQueue + 3*l.maxPacket + max(l.clientBuf, clientReadBufferMax) + l.serverBuf
	return l.factor*held + runtimeSlack
}

// formula spells bound out with the values it used.
func (l limits) formula() string {
	return fmt.Sprintf("MemPoolFactor %d × (ServerSendQueueBytes %s + ClientSendQueueBytes %s + 3 × MaxPacket %s + client read buffer %s + ServerBufferSize %s) + %s runtime slack",
		l.factor, mib(l.serverQueue), mib(l.clientQueue), mib(l.maxPacket), mib(max(l.clientBuf, clientReadBufferMax)), mib(l.serverBuf), mib(runtimeSlack))
}

// parseSize parses a size as the fastway binary's flags take it: a number
// of bytes, optionally with a B, K, M or G suffix (binary units).
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	mult, ok := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[strings.ToLower(s[i:])]
	if i == 0 || !ok {
		return 0, fmt.Errorf("want a number of bytes, optionally with a B, K, M or G suffix")
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, errors.New("size too large")
	}
	return n * mult, nil
}

// mib formats n bytes in MiB, or in KiB below a MiB.
func mib(n int64) string {
	if n < 1<<20 && n > -1<<20 {
		return fmt.Sprintf("%.0fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
}

// kib formats n KiB (as /proc reports) in MiB.
func kib(n int64) string { return mib(n << 10) }

// sampler reads a process's VmRSS every interval and keeps the last value
// and the highest.
type sampler struct {
	pid  int
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	lastKiB int64
	maxKiB  int64
}

func newSampler(pid int, every time.Duration) *sampler {
	s := &sampler{pid: pid, done: make(chan struct{})}
	s.take()
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.take()
			}
		}
	})
	return s
}

// take samples VmRSS now and returns the last sample.
func (s *sampler) take() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rss, err := procStatusKiB(s.pid, "VmRSS"); err == nil { // else the process is gone; the load reports it
		s.lastKiB, s.maxKiB = rss, max(s.maxKiB, rss)
	}
	return s.lastKiB
}

func (s *sampler) last() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastKiB
}

func (s *sampler) peakKiB() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxKiB
}

func (s *sampler) stop() {
	close(s.done)
	s.wg.Wait()
}

// printTable prints one row of figures per scenario.
func printTable(rs []floodResult, fo floodOptions) {
	back := fmt.Sprintf("from the load's end to RSS <= baseline + %s, within %v", mib(fo.slack), fo.settle)
	if fo.settle == 0 {
		back = "not checked (-settle 0)"
	}
	fmt.Printf("\nfigures (RSS in MiB; peak = max(sampled VmRSS, VmHWM); back = %s):\n", back)
	// Fixed widths, so the tables of several runs line up
	// (scripts/memcheck.sh prints them together).
	const row = "%-7s %-11s %8s %8s %9s %7s %7s %-11s %-24s %-24s %s\n"
	fmt.Printf(row, "pool", "scenario", "baseline", "peak", "peak-base", "bound", "at-end", "back", "sent", "received", "result")
	for _, r := range rs {
		back := "not checked"
		switch {
		case r.backChecked && r.isBack:
			back = fmt.Sprintf("%.1fs", r.back.Seconds())
		case r.backChecked:
			back = fmt.Sprintf("no (>%v)", fo.settle)
		}
		result := "PASS"
		if len(r.failures) > 0 {
			result = "FAIL"
		}
		m := func(k int64) string { return fmt.Sprintf("%.1f", float64(k)/1024) }
		fmt.Printf(row, r.pool, r.scenario, m(r.baseline), m(r.peakKiB()), m(r.peakKiB()-r.baseline), m(r.bound>>10), m(r.atEnd),
			back, r.sent, r.received, result)
	}
	if len(rs) > 0 {
		fmt.Printf("bound: %s\n", rs[0].boundWhy)
	}
}
