package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The fan-out modes (-mode publish, unicast): one server sends every
// message to C client connections (one virtual connection each), through
// the gateway:
//
//   - publish: as one Publish to a group the C virtual connections joined
//     (docs/protocol.md §7);
//   - unicast: as C data frames, one per virtual connection;
//   - with -baseline, against a bare fan-out process (fastway-bench -listen
//     ADDR -fanout): the physical limit, a process that reads the same
//     Publishes and writes the same frames to C sockets, one write per
//     socket per batch, with no routing, groups or queues.
//
// The load is spread over processes, each with its own descriptors and Go
// runtime: -procs receiver processes (-mode fanrecv) hold the C client
// connections between them, and a publisher process (-mode fanpub) plays
// the server; this process starts them (the bench's own executable),
// steers them over their stdin and stdout, and measures every process's
// CPU time from /proc. The publisher writes -batch messages in one write
// and keeps at most -window messages in flight: each receiver process
// acknowledges, on one of its virtual connections, the messages every one
// of its connections has received, so no member's queue ever grows past
// the window and nobody is dropped as a slow consumer. Each message
// carries its number and the wall-clock time it was written (the processes
// share the box's clock); a receiver process notes when its last
// connection got it, and the latency of a message is the latest of those
// over the processes: Publish to the last member's receipt.

// Internal modes: the processes a fan-out run starts.
const (
	modeFanRecv = "fanrecv"
	modeFanPub  = "fanpub"
)

// fanPayloadMin is the smallest fan-out message: its number and send time.
const fanPayloadMin = 16

// putFanPayload writes message seq, sent at sentNS (Unix nanoseconds), into
// p (at least fanPayloadMin bytes).
func putFanPayload(p []byte, seq uint64, sentNS int64) {
	binary.LittleEndian.PutUint64(p, seq)
	binary.LittleEndian.PutUint64(p[8:], uint64(sentNS))
}

// fanAck is a receiver process's acknowledgement, sent as a data frame on
// its first virtual connection: its index and how many messages, from the
// first on, every one of its connections has received.
func fanAck(proc int, next uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(proc))
	return binary.LittleEndian.AppendUint64(b, next)
}

// wallNS is the wall clock in Unix nanoseconds, the same in every process
// on the box.
func wallNS() int64 { return time.Now().UnixNano() }

// child is a process of a fan-out run, steered line by line.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its stdout, line by line; closed at EOF
}

// startChild starts this executable with args.
func startChild(ctx context.Context, name string, args []string, stderr io.Writer) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c, nil
}

// send writes one command line to the child.
func (c *child) send(cmd string) error {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, cmd, err)
	}
	return nil
}

// expect reads lines until one starts with prefix and returns its rest;
// an "error" line, the end of its output, ctx or the timeout fail it.
// Other lines go to each (nil: dropped).
func (c *child) expect(ctx context.Context, prefix string, timeout time.Duration, each func(string)) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return "", fmt.Errorf("%s ended while the bench waited for %q", c.name, prefix)
			}
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest), nil
			}
			if rest, ok := strings.CutPrefix(l, "error "); ok {
				return "", fmt.Errorf("%s: %s", c.name, rest)
			}
			if each != nil {
				each(l)
			}
		case <-t.C:
			return "", fmt.Errorf("%s: no %q within %v", c.name, prefix, timeout)
		case <-ctx.Done():
			return "", errInterrupted
		}
	}
}

// stop closes the child's stdin and waits for it.
func (c *child) stop() error {
	c.stdin.Close()
	err := c.cmd.Wait()
	for range c.lines {
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	return nil
}

// childArgs are the flags a fan-out run passes on to its processes.
func (cfg *config) childArgs(mode string) []string {
	a := []string{"-mode", mode, "-fankind", cfg.mode, "-size", strconv.Itoa(cfg.size), "-batch", strconv.Itoa(cfg.batch),
		"-window", strconv.Itoa(cfg.window), "-procs", strconv.Itoa(cfg.procs), "-maxpacket", strconv.Itoa(cfg.maxPacket),
		"-client", cfg.clientAddr, "-srcips", strconv.Itoa(cfg.srcips), "-rate", strconv.Itoa(cfg.rate)}
	if cfg.baseline {
		a = append(a, "-baseline")
	} else {
		a = append(a, "-server", cfg.serverAddr, "-key", cfg.key)
	}
	return a
}

// runFanout is -mode publish and -mode unicast: it starts the publisher and
// the receivers, runs the warm-up and the measured window, and reports.
func runFanout(ctx context.Context, cfg *config, r *report, stderr io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var children []*child
	defer func() {
		cancel()
		for _, c := range children {
			c.stop()
		}
	}()
	pub, err := startChild(ctx, "publisher", append(cfg.childArgs(modeFanPub), "-conns", strconv.Itoa(cfg.conns)), stderr)
	if err != nil {
		return err
	}
	children = append(children, pub)
	if _, err := pub.expect(ctx, "registered", setupTimeout, nil); err != nil {
		return err
	}
	var recvs []*child
	for i := range cfg.procs {
		n := cfg.conns/cfg.procs + btoi(i < cfg.conns%cfg.procs)
		c, err := startChild(ctx, fmt.Sprintf("receiver %d", i), append(cfg.childArgs(modeFanRecv), "-conns", strconv.Itoa(n), "-procidx", strconv.Itoa(i)), stderr)
		if err != nil {
			return err
		}
		children = append(children, c)
		recvs = append(recvs, c)
	}
	for _, c := range recvs {
		if _, err := c.expect(ctx, "ready", 2*setupTimeout, nil); err != nil {
			return err
		}
	}
	if _, err := pub.expect(ctx, "ready", 2*setupTimeout, nil); err != nil {
		return err
	}
	if err := pub.send("start"); err != nil {
		return err
	}
	if err := sleepCtx(ctx, cfg.warmup); err != nil {
		return err
	}
	m0, err := fanMark(ctx, cfg, pub, recvs)
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, cfg.dur); err != nil {
		return err
	}
	m1, err := fanMark(ctx, cfg, pub, recvs)
	if err != nil {
		return err
	}
	if err := pub.send("stop"); err != nil {
		return err
	}
	if _, err := pub.expect(ctx, "done", setupTimeout, nil); err != nil {
		return err
	}
	// Each message's latency: the latest of the receiver processes' (a
	// message not every process completed is left out), for the messages
	// sent in the window.
	lat := map[uint64][]int64{}
	for _, c := range recvs {
		if err := c.send("stop"); err != nil {
			return err
		}
		_, err := c.expect(ctx, "done", setupTimeout, func(l string) {
			f := strings.Fields(l)
			if len(f) != 4 || f[0] != "lat" {
				return
			}
			seq, _ := strconv.ParseUint(f[1], 10, 64)
			sent, _ := strconv.ParseInt(f[2], 10, 64)
			d, _ := strconv.ParseInt(f[3], 10, 64)
			if sent >= m0.wall && sent < m1.wall {
				lat[seq] = append(lat[seq], d)
			}
		})
		if err != nil {
			return err
		}
	}
	var h histogram
	for _, ds := range lat {
		if len(ds) == len(recvs) {
			h.record(uint64(max(slices.Max(ds), 0)))
		}
	}
	deliveries := m1.received - m0.received
	secs := float64(m1.wall-m0.wall) / 1e9
	gwCPU := (m1.target.cpu - m0.target.cpu).Seconds()
	pubCPU := (m1.pub.cpu - m0.pub.cpu).Seconds()
	r.add("mode", cfg.mode)
	r.add("target", target(cfg))
	r.int("conns", int64(cfg.conns))
	r.int("procs", int64(cfg.procs))
	r.int("size", int64(cfg.size))
	r.int("batch", int64(cfg.batch))
	r.int("window", int64(cfg.window))
	if cfg.rate > 0 {
		r.int("rate", int64(cfg.rate))
	}
	r.add("dur", cfg.dur.String())
	r.int("deliveries", int64(deliveries))
	r.int("messages", int64(h.total))
	r.float("window_s", secs, 2)
	if secs > 0 {
		r.float("deliveries_per_s", float64(deliveries)/secs, 0)
	}
	if deliveries == 0 {
		r.fail(errors.New("no delivery in the measured window"))
	}
	if cfg.gwpid != 0 {
		r.float("gw_cpu_s", gwCPU, 2)
		if gwCPU > 0 {
			r.float("deliveries_per_gw_cpu_s", float64(deliveries)/gwCPU, 0)
		}
		if deliveries > 0 {
			r.float("gw_cpu_ns_per_delivery", gwCPU*1e9/float64(deliveries), 1)
			if w := m1.targetIO.syscw - m0.targetIO.syscw; m0.targetIO.ok && m1.targetIO.ok && w > 0 {
				r.float("deliveries_per_gw_write", float64(deliveries)/float64(w), 1)
			}
		}
		r.float("gw_rss_mib", mib(m1.target.rss), 1)
	}
	r.float("server_cpu_s", pubCPU, 2)
	if deliveries > 0 {
		r.float("server_cpu_ns_per_delivery", pubCPU*1e9/float64(deliveries), 1)
		r.float("total_cpu_ns_per_delivery", (gwCPU+pubCPU)*1e9/float64(deliveries), 1)
	}
	r.micros("p50_us", h.percentile(0.50))
	r.micros("p99_us", h.percentile(0.99))
	r.micros("max_us", h.max)
	var recvCPU time.Duration
	for i := range recvs {
		recvCPU += m1.recv[i].cpu - m0.recv[i].cpu
	}
	r.float("receivers_cpu_s", recvCPU.Seconds(), 2)
	r.float("load1", loadAvg1(), 2)
	for _, c := range children {
		if err := c.stop(); err != nil {
			r.fail(err)
		}
	}
	children = nil
	return nil
}

// fanMarkPoint is what a mark of the window sampled.
type fanMarkPoint struct {
	wall     int64 // Unix ns
	received uint64
	target   procSample
	targetIO ioSample
	pub      procSample
	recv     []procSample
}

// fanMark samples every process and asks the receivers how many frames
// they have received.
func fanMark(ctx context.Context, cfg *config, pub *child, recvs []*child) (fanMarkPoint, error) {
	var m fanMarkPoint
	var err error
	m.wall = wallNS()
	if cfg.gwpid != 0 {
		if m.target, err = readProc(cfg.gwpid); err != nil {
			return m, err
		}
		m.targetIO = readProcIO(cfg.gwpid)
	}
	if m.pub, err = readProc(pub.cmd.Process.Pid); err != nil {
		return m, err
	}
	for _, c := range recvs {
		s, err := readProc(c.cmd.Process.Pid)
		if err != nil {
			return m, err
		}
		m.recv = append(m.recv, s)
		if err := c.send("mark"); err != nil {
			return m, err
		}
	}
	for _, c := range recvs {
		v, err := c.expect(ctx, "mark", setupTimeout, nil)
		if err != nil {
			return m, err
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: mark %q", c.name, v)
		}
		m.received += n
	}
	return m, nil
}

// ioSample is a process's count of write system calls (syscw in
// /proc/PID/io: write, writev and the like).
type ioSample struct {
	syscw uint64
	ok    bool
}

func readProcIO(pid int) ioSample {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return ioSample{}
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscw:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return ioSample{syscw: n, ok: err == nil}
		}
	}
	return ioSample{}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
