// Command fastway-soak runs a load through a real fastway binary on
// loopback and checks what it did to the gateway.
//
// The default mode, soak, runs a steady load through a real fastway binary on
// loopback for a set time and checks that nothing was lost or leaked:
// clients × virtual connections each send numbered messages at a fixed rate
// to echoing servers, and every echo must come back in order. At the start
// and the end it reports the gateway's RSS, heap and goroutines (through the
// ops command "lookup gc") and its own; at the end, messages sent and
// received (which must be equal) and the gateway's disconnects by reason
// (through the ops command "stats"; they must all be zero).
//
// scripts/soak.sh builds the binaries and runs it; see docs/reliability.md.
//
//	fastway-soak -bin ./fastway -dur 10m -clients 100 -vconns 10 -rate 5
//
// -mode flood runs three memory scenarios instead (see flood.go): a client
// flooding a server that reads slowly, or stalls, and a server flooding a
// client that does not read; each checks the gateway's RSS stays under a
// bound derived from its flags and comes back once the load ends.
// scripts/memcheck.sh runs them for each buffer pool.
//
//	fastway-soak -mode flood -bin ./fastway -pool atom
//
// Arguments after the flags (after --) go to the fastway binary:
//
//	fastway-soak -mode flood -bin ./fastway -- -ServerSendQueueBytes=1M
//
// It exits 0 when every check passed, 1 otherwise, 2 on a bad command line.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastway-go/fastway/internal/logfmt"
	"github.com/fastway-go/fastway/proto"
)

type options struct {
	bin      string
	dur      time.Duration
	clients  int
	vconns   int
	servers  int
	rate     float64
	size     int
	key      string
	dir      string
	report   time.Duration
	drainFor time.Duration
	gwArgs   []string // more arguments for the binary
}

func main() {
	var o options
	var fo floodOptions
	fs := flag.NewFlagSet("fastway-soak", flag.ContinueOnError)
	mode := fs.String("mode", "soak", "soak: the steady echo load; flood: the memory scenarios (flood.go), with the flags marked flood")
	fs.StringVar(&o.bin, "bin", "", "path of the fastway binary to run (required)")
	fs.DurationVar(&o.dur, "dur", 10*time.Minute, "how long the load runs (flood: 7s unless set)")
	fs.IntVar(&o.clients, "clients", 100, "client connections")
	fs.IntVar(&o.vconns, "vconns", 10, "virtual connections per client (at most the gateway's ClientMaxConn, 16)")
	fs.IntVar(&o.servers, "servers", 4, "echoing servers (IDs 1..n); virtual connections are spread over them")
	fs.Float64Var(&o.rate, "rate", 5, "messages per second each virtual connection sends")
	fs.IntVar(&o.size, "size", 64, "message size in bytes (at least 8)")
	fs.StringVar(&o.key, "key", "soak-key", "the gateway's ServerAuthPassword")
	fs.StringVar(&o.dir, "dir", "", "working directory of the gateway (pidfile, command file, log); empty: a temporary one")
	fs.DurationVar(&o.report, "report", time.Minute, "interval of the progress lines")
	fs.DurationVar(&o.drainFor, "drain", 30*time.Second, "how long to wait for the last echoes after the load stops")
	addFloodFlags(fs, &fo)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fastway-soak -bin ./fastway [-mode soak|flood] [flags] [-- fastway flags]\n\n"+
			"Arguments after the flags (after --) are passed to the fastway binary.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	o.gwArgs = fs.Args()
	switch *mode {
	case "soak":
	case "flood":
		durSet := false
		fs.Visit(func(f *flag.Flag) { durSet = durSet || f.Name == "dur" })
		if !durSet {
			o.dur = defaultFloodDur
		}
		fo.options = o
		if err := fo.validate(); err != nil {
			fmt.Fprintf(os.Stderr, "fastway-soak: %v\n", err)
			os.Exit(2)
		}
		if _, err := runFlood(fo); err != nil {
			fmt.Printf("FAIL: %v\n", err)
			os.Exit(1)
		}
		fmt.Println("PASS")
		return
	default:
		fmt.Fprintf(os.Stderr, "fastway-soak: -mode %q: want soak or flood\n", *mode)
		os.Exit(2)
	}
	if o.bin == "" || o.clients < 1 || o.vconns < 1 || o.servers < 1 || o.rate <= 0 || o.size < 8 || o.dur <= 0 {
		fmt.Fprintln(os.Stderr, "fastway-soak: need -bin, and positive -clients, -vconns, -servers, -rate, -dur, and -size >= 8")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Printf("FAIL: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("PASS")
}

func run(o options) error {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "fastway-soak-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	gw, err := startGateway(o)
	if err != nil {
		return err
	}
	defer gw.stop()
	// The whole run is bounded: the load time plus 3 minutes for setup,
	// drain and the checks.
	watchdog := time.AfterFunc(o.dur+3*time.Minute, func() {
		gw.cmd.Process.Kill()
		fmt.Printf("FAIL: still running %v after the start; gateway killed\n", o.dur+3*time.Minute)
		os.Exit(1)
	})
	defer watchdog.Stop()
	fmt.Printf("gateway pid=%d client=%s server=%s dir=%s\n", gw.cmd.Process.Pid, gw.clientAddr, gw.serverAddr, o.dir)
	fmt.Printf("load clients=%d vconns=%d servers=%d rate=%g/s per vconn (%g msg/s each way) size=%dB dur=%v\n",
		o.clients, o.vconns, o.servers, o.rate, o.rate*float64(o.clients*o.vconns), o.size, o.dur)

	l, err := setUp(o, gw)
	if err != nil {
		return err
	}
	defer l.close()
	// The snapshots are taken under load: right after it starts and right
	// before it stops, so both count the same goroutines.
	began := time.Now()
	stop := make(chan struct{})
	// stopLoad ends the senders and waits for them, on every path out.
	var stopOnce sync.Once
	stopLoad := func() {
		stopOnce.Do(func() { close(stop) })
		l.senders.Wait()
	}
	defer stopLoad()
	l.run(stop)
	start, err := snapshot(gw)
	if err != nil {
		return err
	}
	fmt.Printf("start %s\n", start)
	tick := time.NewTicker(o.report)
	end := time.NewTimer(o.dur)
	var failure error
loop:
	for {
		select {
		case <-tick.C:
			rss, _ := rssKiB(gw.cmd.Process.Pid)
			fmt.Printf("progress elapsed=%v sent=%d received=%d gateway_rss=%dKiB\n", time.Since(began).Round(time.Second), l.sent.Load(), l.received.Load(), rss)
		case <-end.C:
			break loop
		case <-l.failed:
			failure = l.err()
			break loop
		case <-gw.exited:
			failure = errors.New("the gateway exited during the load")
			break loop
		}
	}
	tick.Stop()
	endSnap, err := snapshot(gw)
	if err != nil {
		if failure != nil {
			return failure // what ended the load, not what it broke next
		}
		return err
	}
	fmt.Printf("end   %s\n", endSnap)
	stopLoad()
	elapsed := time.Since(began)
	// Wait for the last echoes.
	deadline := time.Now().Add(o.drainFor)
	for l.received.Load() < l.sent.Load() && time.Now().Before(deadline) && l.err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	sent, received := l.sent.Load(), l.received.Load()
	if failure == nil {
		failure = l.err()
	}

	stats, err := gw.command("stats")
	if err != nil {
		return err
	}
	kv := parseKV(stats)
	fmt.Printf("messages sent=%d received=%d over %v (%.0f msg/s each way)\n", sent, received, elapsed.Round(time.Second), float64(sent)/elapsed.Seconds())
	var disc []string
	nonzero := 0
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if strings.HasPrefix(k, "disconnects.") || strings.HasPrefix(k, "dials.refused.") || strings.HasPrefix(k, "undelivered_frames.") || k == "frames_dropped" || k == "auth_failures" {
			v := kv[k]
			if k == "dials.refused.unknown_id" && l.setupRefused > 0 {
				// Dials made before their server was registered.
				n, _ := strconv.Atoi(v)
				v = strconv.Itoa(n - l.setupRefused)
				disc = append(disc, fmt.Sprintf("%s=%s (%d more while setting up)", k, v, l.setupRefused))
			} else {
				disc = append(disc, k+"="+v)
			}
			if v != "0" {
				nonzero++
			}
		}
	}
	fmt.Printf("gateway %s\n", strings.Join(disc, " "))
	fmt.Printf("gateway conns.client=%s conns.server=%s conns.virtual=%s client.frames_in=%s client.frames_out=%s queue_high_water.client=%s queue_high_water.server=%s\n",
		kv["conns.client"], kv["conns.server"], kv["conns.virtual"], kv["client.frames_in"], kv["client.frames_out"], kv["queue_high_water.client"], kv["queue_high_water.server"])
	switch {
	case failure != nil:
		return failure
	case sent != received:
		return fmt.Errorf("sent %d messages, received %d echoes", sent, received)
	case nonzero > 0:
		return errors.New("the gateway counted disconnects, refused dials, drops or auth failures")
	}
	return nil
}

// gateway is the fastway process under test.
type gateway struct {
	cmd                    *exec.Cmd
	dir                    string
	clientAddr, serverAddr string
	exited                 chan struct{}

	mu      sync.Mutex
	waiters []func(map[string]string) bool
	log     *os.File
}

func startGateway(o options) (*gateway, error) {
	logf, err := os.Create(filepath.Join(o.dir, "fastway.log"))
	if err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, err
	}
	args := []string{"-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-ServerAuthPassword=" + o.key,
		"-PidFile=" + filepath.Join(o.dir, "fastway.pid"), "-CmdFile=" + filepath.Join(o.dir, "fastway.cmd")}
	cmd := exec.Command(bin, append(args, o.gwArgs...)...)
	cmd.Dir = o.dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	g := &gateway{cmd: cmd, dir: o.dir, exited: make(chan struct{}), log: logf}
	listening := make(chan [2]string, 1)
	var addrs [2]string
	g.wait(func(kv map[string]string) bool {
		switch {
		case kv["msg"] == "listening" && kv["side"] == "client":
			addrs[0] = kv["addr"]
		case kv["msg"] == "listening" && kv["side"] == "server":
			addrs[1] = kv["addr"]
		case kv["msg"] == "fastway: cmd: serving":
			listening <- addrs
			return true
		}
		return false
	})
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			g.dispatch(logfmt.Parse(line))
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(g.exited)
	}()
	select {
	case a := <-listening:
		g.clientAddr, g.serverAddr = a[0], a[1]
	case <-g.exited:
		return nil, fmt.Errorf("the gateway exited at start; see %s", logf.Name())
	case <-time.After(10 * time.Second):
		g.stop()
		return nil, errors.New("the gateway did not log its listening addresses within 10 s")
	}
	if g.clientAddr == "" || g.serverAddr == "" {
		g.stop()
		return nil, errors.New("the gateway did not log both listening addresses")
	}
	return g, nil
}

// wait registers f, called with every later log line until it returns true.
func (g *gateway) wait(f func(map[string]string) bool) {
	g.mu.Lock()
	g.waiters = append(g.waiters, f)
	g.mu.Unlock()
}

func (g *gateway) dispatch(kv map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	keep := g.waiters[:0]
	for _, f := range g.waiters {
		if !f(kv) {
			keep = append(keep, f)
		}
	}
	g.waiters = keep
}

// command runs an ops command through the command file and SIGUSR1 and
// returns its logged result.
func (g *gateway) command(line string) (string, error) {
	res := make(chan map[string]string, 1)
	// The log names the command only (its first word), not its arguments;
	// commands run one at a time here, so the name is enough.
	name := strings.Fields(line)[0]
	g.wait(func(kv map[string]string) bool {
		if kv["cmd"] == name && strings.HasPrefix(kv["msg"], "fastway: cmd: command") {
			res <- kv
			return true
		}
		return false
	})
	if err := os.WriteFile(filepath.Join(g.dir, "fastway.cmd"), []byte(line+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := g.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return "", err
	}
	select {
	case kv := <-res:
		if kv["msg"] != "fastway: cmd: command done" {
			return "", fmt.Errorf("command %q: %s", line, kv["err"])
		}
		return kv["result"], nil
	case <-time.After(10 * time.Second):
		return "", fmt.Errorf("command %q: no answer within 10 s", line)
	}
}

// stop ends the gateway with SIGTERM (SIGKILL after 15 s).
func (g *gateway) stop() {
	select {
	case <-g.exited:
		return
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
	g.log.Close()
}

// parseKV splits "a=1 b=2" into a map.
func parseKV(s string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// rssKiB reads VmRSS of process pid from /proc.
func rssKiB(pid int) (int64, error) { return procStatusKiB(pid, "VmRSS") }

// procStatusKiB reads a field of /proc/<pid>/status given in kB, such as
// VmRSS or VmHWM (the peak RSS).
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no " + field)
}

// snapshot reports the gateway's RSS, heap and goroutines and this
// process's, on one line.
func snapshot(gw *gateway) (string, error) {
	gc, err := gw.command("lookup gc")
	if err != nil {
		return "", err
	}
	kv := parseKV(gc)
	rss, err := rssKiB(gw.cmd.Process.Pid)
	if err != nil {
		return "", err
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	own, _ := rssKiB(os.Getpid())
	return fmt.Sprintf("gateway_rss=%dKiB gateway_heap_alloc=%s gateway_goroutines=%s soak_rss=%dKiB soak_heap_inuse=%dKiB soak_goroutines=%d",
		rss, kv["heap_alloc"], kv["goroutines"], own, ms.HeapInuse>>10, runtime.NumGoroutine()), nil
}

// load is the soak's endpoints and counters.
type load struct {
	o       options
	servers []*proto.EndPoint
	clients []*proto.EndPoint
	conns   [][]*proto.Conn // per client
	// setupRefused counts the Dials refused while setting up, before a
	// server was registered (dialRetry): expected, and not a failure.
	setupRefused int
	sent         atomic.Int64
	received     atomic.Int64
	senders      sync.WaitGroup
	workers      sync.WaitGroup

	failOnce sync.Once
	failed   chan struct{}
	mu       sync.Mutex
	first    error
}

func (l *load) fail(err error) {
	l.mu.Lock()
	if l.first == nil {
		l.first = err
	}
	l.mu.Unlock()
	l.failOnce.Do(func() { close(l.failed) })
}

func (l *load) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

// setUp connects the echoing servers and the clients and opens every
// virtual connection.
func setUp(o options, gw *gateway) (*load, error) {
	l := &load{o: o, failed: make(chan struct{})}
	for id := 1; id <= o.servers; id++ {
		ep, err := proto.DialServerAddr("tcp", gw.serverAddr, proto.EndPointCfg{ServerID: uint32(id), AuthKey: o.key})
		if err != nil {
			l.close()
			return nil, fmt.Errorf("server %d: %w", id, err)
		}
		l.servers = append(l.servers, ep)
		l.workers.Add(1)
		go l.echo(ep)
	}
	for i := range o.clients {
		ep, err := proto.DialClientAddr("tcp", gw.clientAddr, proto.EndPointCfg{})
		if err != nil {
			l.close()
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		l.clients = append(l.clients, ep)
		var cs []*proto.Conn
		for v := range o.vconns {
			sid := uint32((i*o.vconns+v)%o.servers + 1)
			c, refused, err := dialRetry(ep, sid)
			l.setupRefused += refused
			if err != nil {
				l.close()
				return nil, fmt.Errorf("client %d: dial server %d: %w", i, sid, err)
			}
			cs = append(cs, c)
		}
		l.conns = append(l.conns, cs)
	}
	return l, nil
}

// dialRetry dials sid, retrying for a while when it is refused: a server
// is dialable only once the gateway has checked its handshake.
// It also returns how many times it was refused.
func dialRetry(ep *proto.EndPoint, sid uint32) (*proto.Conn, int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for refused := 0; ; refused++ {
		c, err := ep.Dial(sid)
		if err == nil || !errors.Is(err, proto.ErrRefused) || time.Now().After(deadline) {
			return c, refused, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// echo answers every message on every virtual connection of server ep.
func (l *load) echo(ep *proto.EndPoint) {
	defer l.workers.Done()
	for {
		c, err := ep.Accept()
		if err != nil {
			return
		}
		l.workers.Add(1)
		go func() {
			defer l.workers.Done()
			defer c.Close()
			for {
				m, err := c.Receive()
				if err != nil {
					return
				}
				if err := c.Send(m); err != nil {
					return
				}
			}
		}()
	}
}

// run starts, per client, one sender that sends on each of its virtual
// connections at the set rate until stop, and one receiver per virtual
// connection that checks the echoes come back in order.
func (l *load) run(stop <-chan struct{}) {
	interval := time.Duration(float64(time.Second) / l.o.rate)
	for i, cs := range l.conns {
		next := make([]atomic.Uint32, len(cs)) // next sequence number to send
		for v, c := range cs {
			l.workers.Add(1)
			go func() {
				defer l.workers.Done()
				for want := uint32(0); ; want++ {
					m, err := c.Receive()
					if err != nil {
						if !errors.Is(err, io.EOF) || want < next[v].Load() {
							select {
							case <-stop:
							default:
								l.fail(fmt.Errorf("client %d conn %d: receive %d: %v", i, c.ConnID(), want, err))
							}
						}
						return
					}
					b := m.([]byte)
					if got := binary.LittleEndian.Uint32(b); got != want || len(b) != l.o.size {
						l.fail(fmt.Errorf("client %d conn %d: got message %d (%d bytes), want %d", i, c.ConnID(), got, len(b), want))
						return
					}
					l.received.Add(1)
				}
			}()
		}
		l.senders.Add(1)
		go func() {
			defer l.senders.Done()
			// Spread the clients' ticks over the interval.
			select {
			case <-time.After(time.Duration(i) * interval / time.Duration(len(l.conns))):
			case <-stop:
				return
			}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			msg := make([]byte, l.o.size)
			for {
				for v, c := range cs {
					binary.LittleEndian.PutUint32(msg, next[v].Load())
					if err := c.Send(msg); err != nil {
						l.fail(fmt.Errorf("client %d conn %d: send: %v", i, c.ConnID(), err))
						return
					}
					next[v].Add(1)
					l.sent.Add(1)
				}
				select {
				case <-tick.C:
				case <-stop:
					return
				}
			}
		}()
	}
}

func (l *load) close() {
	for _, ep := range l.clients {
		ep.Close()
	}
	for _, ep := range l.servers {
		ep.Close()
	}
	done := make(chan struct{})
	go func() { l.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}
