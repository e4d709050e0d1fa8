package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// -mode flood: three scenarios, each against a fastway process of its own,
// that check the gateway's memory toward a peer is bounded in bytes and
// given back once the load ends (docs/reliability.md):
//
//	slow-server  one client floods data frames at full speed for -dur to a
//	             server reading at -readrate; the gateway pauses the client
//	             (ServerSendQueueBytes)
//	stall        the same, but the server reads nothing for -stall, then
//	             reads at full speed until drained
//	slow-client  a server sends MaxPacket-sized frames to a client that never
//	             reads; the gateway must drop it as a slow consumer
//	             (ClientSendQueueBytes)
//
// The gateway's VmRSS is sampled every -sample. A scenario passes when
// peak − baseline ≤ the bound (see limits.bound), when RSS comes back to
// baseline + -slack within -settle of the load's end, and when nothing was
// lost: every frame the client sent reached the server, in order.

// floodOptions configures -mode flood.
type floodOptions struct {
	options                 // bin, key, dir, dur (flood time), gwArgs
	pool      string        // -MemPoolType for the binary ("": its default)
	scenarios []string      // names, in the order run
	frame     int64         // message bytes of the client's data frames
	readRate  int64         // bytes a second the server reads in slow-server
	stall     time.Duration // how long the server reads nothing in stall
	settle    time.Duration // wait for RSS to come back (0: not checked)
	slack     int64         // bytes above the baseline that count as back
	bound     int64         // bytes; 0: limits.bound of the gateway's flags
	sample    time.Duration // RSS sampling interval
}

// defaultFloodDur is -dur in flood mode unless set.
const defaultFloodDur = 7 * time.Second

// addFloodFlags defines the flood mode's flags on fs, bound to fo.
func addFloodFlags(fs *flag.FlagSet, fo *floodOptions) {
	fo.frame, fo.readRate, fo.slack = 16<<10, 20<<20, 20<<20
	fs.StringVar(&fo.pool, "pool", "", "flood: the binary's -MemPoolType, sync, atom, chan or none (empty: its default)")
	fs.Func("scenarios", "flood: scenarios to run, comma-separated (default "+strings.Join(scenarioNames, ",")+")", func(v string) error {
		fo.scenarios = strings.Split(v, ",")
		return nil
	})
	fs.Var(sizeFlag{&fo.frame}, "frame", "flood: message size of the client's data frames (a B, K or M suffix)")
	fs.Var(sizeFlag{&fo.readRate}, "readrate", "flood: bytes a second the server reads in slow-server")
	fs.DurationVar(&fo.stall, "stall", 3*time.Second, "flood: how long the server reads nothing in stall")
	fs.DurationVar(&fo.settle, "settle", time.Minute, "flood: how long RSS may take to come back after the load (0: not checked)")
	fs.Var(sizeFlag{&fo.slack}, "slack", "flood: RSS above the baseline that counts as back")
	fs.Var(sizeFlag{&fo.bound}, "bound", "flood: the bound on peak RSS above the baseline (0: derived from the binary's flags, as the output spells out)")
	fs.DurationVar(&fo.sample, "sample", 100*time.Millisecond, "flood: RSS sampling interval")
}

// validate checks the flood options and fills the default scenarios.
func (fo *floodOptions) validate() error {
	if len(fo.scenarios) == 0 {
		fo.scenarios = scenarioNames
	}
	for _, s := range fo.scenarios {
		if !slices.Contains(scenarioNames, s) {
			return fmt.Errorf("-scenarios: unknown %q (want %s)", s, strings.Join(scenarioNames, ", "))
		}
	}
	lim, err := gatewayLimits(fo.gwArgs)
	if err != nil {
		return err
	}
	switch {
	case fo.bin == "":
		return errors.New("need -bin")
	case fo.dur <= 0:
		return errors.New("-dur must be positive")
	case fo.frame < 8 || fo.frame+proto.SizeOfConnID > lim.maxPacket:
		return fmt.Errorf("-frame must be at least 8 bytes and at most MaxPacket %d - 4", lim.maxPacket)
	case fo.readRate <= 0:
		return errors.New("-readrate must be positive")
	case fo.stall < 0 || fo.settle < 0 || fo.slack < 0:
		return errors.New("-stall, -settle and -slack must not be negative")
	case fo.sample < 10*time.Millisecond || fo.sample > time.Second:
		return errors.New("-sample must be between 10ms and 1s")
	}
	return nil
}

// scenarioNames lists the scenarios in their default order.
var scenarioNames = []string{"slow-server", "stall", "slow-client"}

// floodResult is one scenario's figures and verdict.
type floodResult struct {
	pool, scenario      string
	baseline, peak      int64 // KiB: sampled VmRSS before the load, and its maximum
	hwm                 int64 // KiB: VmHWM at the end
	atEnd               int64 // KiB: VmRSS when the load ended
	bound               int64 // bytes
	boundWhy            string
	back                time.Duration // from the load's end to RSS ≤ baseline + slack
	backChecked, isBack bool
	sent, received      string
	failures            []string
}

func (r *floodResult) failf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// peakKiB is the higher of the sampled peak and VmHWM (which misses no
// spike between samples).
func (r *floodResult) peakKiB() int64 { return max(r.peak, r.hwm) }

// runFlood runs the scenarios and prints each one's progress and a table
// of the figures. It returns the results and an error naming the
// scenarios that failed.
func runFlood(fo floodOptions) ([]floodResult, error) {
	if fo.dir == "" {
		d, err := os.MkdirTemp("", "fastway-flood-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		fo.dir = d
	}
	lim, err := gatewayLimits(fo.gwArgs)
	if err != nil {
		return nil, err
	}
	if fo.pool != "" {
		fo.gwArgs = append(slices.Clone(fo.gwArgs), "-MemPoolType="+fo.pool)
	}
	var results []floodResult
	for _, name := range fo.scenarios {
		r := floodResult{pool: fo.pool, scenario: name, bound: lim.bound(), boundWhy: lim.formula()}
		if r.pool == "" {
			r.pool = "default"
		}
		if fo.bound > 0 {
			r.bound, r.boundWhy = fo.bound, "given by -bound"
		}
		runScenario(fo, lim, &r)
		for _, f := range r.failures {
			fmt.Printf("%s: FAIL: %s\n", name, f)
		}
		results = append(results, r)
	}
	printTable(results, fo)
	var failed []string
	for _, r := range results {
		if len(r.failures) > 0 {
			failed = append(failed, r.scenario)
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("pool %s: %s failed", results[0].pool, strings.Join(failed, ", "))
	}
	return results, nil
}

// runScenario runs one scenario against a gateway of its own, filling r.
func runScenario(fo floodOptions, lim limits, r *floodResult) {
	o := fo.options
	o.dir = filepath.Join(fo.dir, r.pool+"-"+r.scenario)
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		r.failf("%v", err)
		return
	}
	gw, err := startGateway(o)
	if err != nil {
		r.failf("start the gateway: %v", err)
		return
	}
	defer gw.stop()
	// Every wait below is bounded; this bounds them all: a gateway still
	// running past it is killed, which ends every read and write.
	limit := fo.dur + fo.stall + fo.settle + 3*time.Minute
	watchdog := time.AfterFunc(limit, func() {
		fmt.Printf("%s: still running %v after the start; gateway killed\n", r.scenario, limit)
		gw.cmd.Process.Kill()
	})
	defer watchdog.Stop()
	pid := gw.cmd.Process.Pid
	fmt.Printf("%s: gateway pid=%d pool=%s args=%q dir=%s\n", r.scenario, pid, r.pool, fo.gwArgs, o.dir)
	fmt.Printf("%s: bound %s = %s\n", r.scenario, mib(r.bound), r.boundWhy)

	var sc *loadRun
	switch r.scenario {
	case "slow-server", "stall":
		sc, err = setUpToServer(fo, lim, gw)
	case "slow-client":
		sc, err = setUpToClient(fo, lim, gw)
	default:
		err = fmt.Errorf("unknown scenario %q", r.scenario)
	}
	if err != nil {
		r.failf("set up: %v", err)
		return
	}
	defer sc.close()

	s := newSampler(pid, fo.sample)
	defer s.stop()
	r.baseline = s.last()
	fmt.Printf("%s: baseline rss=%s\n", r.scenario, kib(r.baseline))
	began := time.Now()
	loadErr := sc.run(r.scenario, fo, began, func(what string) {
		fmt.Printf("%s: %5.1fs rss=%s %s\n", r.scenario, time.Since(began).Seconds(), kib(s.last()), what)
	}, gw.exited)
	loadEnd := time.Now()
	r.atEnd = s.take()
	if loadErr != nil {
		r.failf("%v", loadErr)
	}
	fmt.Printf("%s: %5.1fs rss=%s load ended; %s\n", r.scenario, loadEnd.Sub(began).Seconds(), kib(r.atEnd), sc.summary())

	if fo.settle > 0 && loadErr == nil {
		r.backChecked = true
		r.back, r.isBack = settle(r, s, fo, loadEnd, gw.exited)
		if r.isBack {
			fmt.Printf("%s: back within baseline+%s %.1fs after the load ended\n", r.scenario, mib(fo.slack), r.back.Seconds())
		} else {
			r.failf("RSS %s still above baseline %s + %s %v after the load ended", kib(s.last()), kib(r.baseline), mib(fo.slack), fo.settle)
		}
	}
	r.peak = s.peakKiB()
	if hwm, err := procStatusKiB(pid, "VmHWM"); err == nil {
		r.hwm = hwm
	}
	fmt.Printf("%s: peak rss sampled=%s VmHWM=%s\n", r.scenario, kib(r.peak), kib(r.hwm))
	if d := (r.peakKiB() - r.baseline) << 10; d > r.bound {
		r.failf("peak RSS %s is %s above the baseline %s, past the bound %s", kib(r.peakKiB()), mib(d), kib(r.baseline), mib(r.bound))
	}
	r.sent, r.received = sc.sentReceived()
	if err := sc.check(r.scenario, gw); err != nil {
		r.failf("%v", err)
	}
	if gc, err := gw.command("lookup gc"); err == nil {
		kv := parseKV(gc)
		fmt.Printf("%s: gateway heap_alloc=%s heap_sys=%s num_gc=%s goroutines=%s\n", r.scenario, kv["heap_alloc"], kv["heap_sys"], kv["num_gc"], kv["goroutines"])
	}
}

// settle waits, at most fo.settle from loadEnd, for RSS to come back to
// baseline + fo.slack, printing it every 5 s.
func settle(r *floodResult, s *sampler, fo floodOptions, loadEnd time.Time, exited <-chan struct{}) (time.Duration, bool) {
	tick := time.NewTicker(fo.sample)
	defer tick.Stop()
	lastPrint := time.Now()
	for {
		rss := s.last()
		since := time.Since(loadEnd)
		if (rss-r.baseline)<<10 <= fo.slack {
			return since, true
		}
		if since >= fo.settle {
			return since, false
		}
		if time.Since(lastPrint) >= 5*time.Second {
			fmt.Printf("%s: settle +%.0fs rss=%s\n", r.scenario, since.Seconds(), kib(rss))
			lastPrint = time.Now()
		}
		select {
		case <-tick.C:
		case <-exited:
			return since, false
		}
	}
}

// loadRun is one scenario's endpoints.
type loadRun struct {
	client *floodClient // slow-server and stall
	server *floodServer
	silent net.Conn // slow-client: a client that never reads

	sentToClient counts // slow-client: what the server sent
}

func (l *loadRun) close() {
	if l.client != nil {
		l.client.close()
	}
	if l.silent != nil {
		l.silent.Close()
	}
	l.server.close()
}

// setUpToServer connects server 1 and a client with a virtual connection
// to it.
func setUpToServer(fo floodOptions, lim limits, gw *gateway) (*loadRun, error) {
	srv, err := dialFloodServer(gw.serverAddr, fo.key, int(lim.maxPacket), int(fo.frame))
	if err != nil {
		return nil, err
	}
	l := &loadRun{server: srv}
	if l.client, err = dialFloodClient(gw.clientAddr); err != nil {
		l.close()
		return nil, err
	}
	if _, err := srv.waitConnect(10 * time.Second); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// setUpToClient connects server 1 and a client that dials it and then
// reads nothing, not even the Accept.
func setUpToClient(fo floodOptions, lim limits, gw *gateway) (*loadRun, error) {
	srv, err := dialFloodServer(gw.serverAddr, fo.key, int(lim.maxPacket), 0)
	if err != nil {
		return nil, err
	}
	l := &loadRun{server: srv}
	if l.silent, err = net.Dial("tcp", gw.clientAddr); err != nil {
		l.close()
		return nil, err
	}
	l.silent.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := l.silent.Write(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil)); err != nil {
		l.close()
		return nil, err
	}
	if _, err := srv.waitConnect(10 * time.Second); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// run applies the load from began, calling progress every second, and
// returns once it has ended: for slow-server and stall, once the server
// has received every frame the client sent; for slow-client, once the
// server has seen the client's virtual connection closed and stopped
// sending.
func (l *loadRun) run(scenario string, fo floodOptions, began time.Time, progress func(string), exited <-chan struct{}) error {
	deadline := began.Add(fo.dur)
	// What the stall holds back flows once it ends: a frame cut by the
	// flood's end may have to wait for it.
	reading := began
	if scenario == "stall" {
		reading = began.Add(fo.stall)
	}
	grace := time.Until(reading) + 30*time.Second
	stop := make(chan struct{})
	var flooded error
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop) // on an early return, end the flood
	switch scenario {
	case "slow-server":
		l.server.pace.set(float64(fo.readRate), began)
	case "stall":
		l.server.pace.set(0, began.Add(fo.stall))
	}
	floodDone := make(chan struct{})
	wg.Go(func() {
		defer close(floodDone)
		if l.client != nil {
			flooded = l.client.flood(dataFrame(l.client.connID, int(fo.frame)), deadline, grace, stop, &l.client.sent)
			return
		}
		// The frame's Length is MaxPacket: the largest the gateway takes.
		frame := dataFrame(l.server.connID.Load(), int(l.server.maxPacket)-proto.SizeOfConnID)
		flooded = l.server.flood(frame, deadline, grace, l.server.closed, &l.sentToClient)
	})
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for flooding := true; flooding; {
		select {
		case <-floodDone:
			flooding = false
		case <-tick.C:
			progress(l.progress())
		case <-exited:
			return errors.New("the gateway exited during the load")
		}
	}
	if flooded != nil {
		return fmt.Errorf("flood: %w", flooded)
	}
	if l.client == nil {
		select {
		case <-l.server.closed:
			return nil
		default:
			return fmt.Errorf("the gateway did not drop the client that reads nothing within %v (the server sent %s)", fo.dur, &l.sentToClient)
		}
	}
	// Toward a server the load ends once it has read everything; it fails
	// when the server, reading, receives nothing more for 10 s.
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	moved := func() time.Time { // now, or the stall's end if later
		if now := time.Now(); now.After(reading) {
			return now
		}
		return reading
	}
	lastCount, lastMove := l.server.received.frames.Load(), moved()
	for {
		if err := errors.Join(l.client.failure(), l.server.failure()); err != nil {
			return err
		}
		got := l.server.received.frames.Load()
		if got == l.client.sent.frames.Load() {
			return nil
		}
		if got != lastCount {
			lastCount, lastMove = got, moved()
		} else if time.Since(lastMove) > 10*time.Second {
			return fmt.Errorf("the server received %s of the %s the client sent, and nothing more for 10 s", &l.server.received, &l.client.sent)
		}
		select {
		case <-poll.C:
		case <-tick.C:
			progress(l.progress())
		case <-exited:
			return errors.New("the gateway exited during the load")
		}
	}
}

func (l *loadRun) progress() string {
	if l.client == nil {
		return fmt.Sprintf("server sent %s", &l.sentToClient)
	}
	return fmt.Sprintf("client sent %s, server received %s", &l.client.sent, &l.server.received)
}

func (l *loadRun) summary() string {
	if l.client == nil {
		return fmt.Sprintf("the server sent %s to the client that reads nothing", &l.sentToClient)
	}
	return fmt.Sprintf("the client sent %s, the server received %s", &l.client.sent, &l.server.received)
}

// sentReceived returns what was sent and what arrived, for the table.
func (l *loadRun) sentReceived() (string, string) {
	if l.client == nil {
		return l.sentToClient.String(), "none read"
	}
	return l.client.sent.String(), l.server.received.String()
}

// check reads the gateway's counters ("stats") and checks them: toward a
// server nothing was dropped and nobody disconnected, and what the client
// sent is what the server received; toward the client that reads nothing,
// exactly that client was disconnected, as a slow consumer.
func (l *loadRun) check(scenario string, gw *gateway) error {
	var kv map[string]string
	deadline := time.Now().Add(5 * time.Second)
	for {
		stats, err := gw.command("stats")
		if err != nil {
			return err
		}
		kv = parseKV(stats)
		// The server learns of the drop from the Close that follows it;
		// give the counter a moment all the same.
		if l.client != nil || kv["disconnects.slow_consumer"] != "0" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var disc []string
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if strings.HasPrefix(k, "disconnects.") && kv[k] != "0" {
			disc = append(disc, k+"="+kv[k])
		}
	}
	fmt.Printf("%s: gateway queue_high_water.client=%s queue_high_water.server=%s frames_dropped=%s disconnects: %s\n",
		scenario, kv["queue_high_water.client"], kv["queue_high_water.server"], kv["frames_dropped"], orNone(disc))
	if l.client == nil {
		if len(disc) != 1 || disc[0] != "disconnects.slow_consumer=1" {
			return fmt.Errorf("the gateway counted disconnects %s, want disconnects.slow_consumer=1 only", orNone(disc))
		}
		return nil
	}
	var errs []error
	if len(disc) > 0 {
		errs = append(errs, fmt.Errorf("the gateway counted disconnects %s, want none", orNone(disc)))
	}
	if kv["frames_dropped"] != "0" {
		errs = append(errs, fmt.Errorf("the gateway dropped %s frames", kv["frames_dropped"]))
	}
	sent, got := &l.client.sent, &l.server.received
	if sent.frames.Load() != got.frames.Load() || sent.bytes.Load() != got.bytes.Load() {
		errs = append(errs, fmt.Errorf("the client sent %s, the server received %s", sent, got))
	}
	return errors.Join(errs...)
}
