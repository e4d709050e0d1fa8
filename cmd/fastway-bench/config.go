package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// Modes of a run.
const (
	modeEcho    = "echo"
	modeIdle    = "idle"
	modeChurn   = "churn"
	modePublish = "publish"
	modeUnicast = "unicast"
)

// tsSize is the send timestamp at the front of every echo payload: the
// monotonic nanoseconds since the bench started, little-endian.
const tsSize = 8

// config holds the command line, one field per flag.
type config struct {
	mode       string
	clientAddr string
	serverAddr string
	key        string
	baseline   bool
	servers    int
	conns      int
	vconns     int
	k          int
	rate       int
	size       int
	dur        time.Duration
	warmup     time.Duration
	gwpid      int
	listen     string
	relay      string
	interval   time.Duration
	dials      int
	srcips     int
	maxPacket  int
	fanout     bool   // -listen: the bare fan-out process
	batch      int    // fan-out: messages per write
	window     int    // fan-out: messages in flight
	procs      int    // fan-out: receiver processes
	procIdx    int    // fanrecv: this process's index
	fanKind    string // fanrecv, fanpub: the run's mode (publish or unicast)
	ws         bool   // client connections speak WebSocket (docs/protocol.md §8)
	wsPath     string // -ws: the upgrade request's path
}

// flagOrder orders the flags in the usage text.
var flagOrder = []string{
	"mode", "client", "ws", "wspath", "server", "key", "baseline", "servers", "conns", "vconns",
	"k", "rate", "size", "dur", "warmup", "gwpid", "interval", "dials", "srcips", "maxpacket", "batch", "window", "procs",
	"listen", "relay", "fanout", "procidx", "fankind",
}

func newFlagSet(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("fastway-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.mode, "mode", modeEcho, "echo, idle, churn, publish or unicast (see Modes)")
	fs.StringVar(&c.clientAddr, "client", "", "the target's client address, host:port (a gateway's -ClientAddr, or a bare echo process's -listen)")
	fs.BoolVar(&c.ws, "ws", false, "client connections speak WebSocket to -client (a gateway's -ClientWSAddr, or a WebSocket echo server): the upgrade, then the same frames in masked binary messages, one message per write, so the frames written together (the replies to one read: K when K are in flight) share a message (echo, idle, churn)")
	fs.StringVar(&c.wsPath, "wspath", "/", "(-ws) the path of the upgrade request (the gateway's -ClientWSPath)")
	fs.StringVar(&c.serverAddr, "server", "", "the gateway's server address, host:port, where the bench's servers connect (empty: baseline)")
	fs.StringVar(&c.key, "key", "", "the gateway's -ServerAuthPassword")
	fs.BoolVar(&c.baseline, "baseline", false, "the target is a bare echo process (fastway-bench -listen): start no servers; implied by an empty -server or -servers 0")
	fs.IntVar(&c.servers, "servers", 1, "N: backend servers, IDs 1..N; each echoes every data frame on its ConnID; virtual connections dial them round-robin")
	fs.IntVar(&c.conns, "conns", 100, "C: client physical connections")
	fs.IntVar(&c.vconns, "vconns", 1, "V: virtual connections dialed on each client connection (the gateway's -ClientMaxConn must allow them)")
	fs.IntVar(&c.k, "k", 8, "K (echo): messages each virtual connection keeps in flight (keep V×K frames under the gateway's -ClientSendChanSize and V×K×size under its -ClientSendQueueBytes, or it may drop the client as a slow consumer)")
	fs.IntVar(&c.rate, "rate", 0, "R (echo): open loop instead of K in flight: R messages per second in all, spread evenly over every virtual connection, each stamped when written (0: closed loop)")
	fs.IntVar(&c.size, "size", 64, "S (echo): message size in bytes, at least 8 (the send timestamp); the frame adds 8")
	fs.DurationVar(&c.dur, "dur", 10*time.Second, "length of the measured window")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "load run before the measured window, not counted (idle: settle time after every client answered a Ping)")
	fs.IntVar(&c.gwpid, "gwpid", 0, "PID of the target process (gateway or bare echo): its CPU time and RSS over the window are reported")
	fs.DurationVar(&c.interval, "interval", 10*time.Second, "(idle) Ping interval of each client connection, spread evenly")
	fs.IntVar(&c.dials, "dials", 8, "D (churn): Dials each client connection keeps outstanding")
	fs.IntVar(&c.srcips, "srcips", 0, "source addresses in 127.0.0.0/8 the client sockets are spread over, when -client is a 127.x address (0: one per 20,000 connections)")
	fs.IntVar(&c.maxPacket, "maxpacket", proto.DefaultMaxPacket, "largest Length accepted from the target, in bytes (match the gateway's -MaxPacket)")
	fs.StringVar(&c.listen, "listen", "", "run the bare echo process on this address instead of a load (the baseline target); runs until SIGINT or SIGTERM")
	fs.StringVar(&c.relay, "relay", "", "with -listen: instead of echoing, relay every connection byte for byte to this address (a bare two-hop relay in front of an echo process: the latency floor of any proxy)")
	fs.BoolVar(&c.fanout, "fanout", false, "with -listen: the bare fan-out process instead of the echo (the baseline of -mode publish)")
	fs.IntVar(&c.batch, "batch", 16, "B (publish, unicast): messages the publisher writes at once (and a receiver process acknowledges at once)")
	fs.IntVar(&c.window, "window", 64, "W (publish, unicast): messages the publisher keeps in flight, not yet received by every member (a multiple of -batch)")
	fs.IntVar(&c.procs, "procs", 2, "P (publish, unicast): receiver processes the -conns client connections are spread over")
	fs.IntVar(&c.procIdx, "procidx", 0, "(internal: fanrecv) this receiver process's index")
	fs.StringVar(&c.fanKind, "fankind", modePublish, "(internal: fanrecv, fanpub) the run's mode")
	return fs
}

// parseFlags parses args; -h returns flag.ErrHelp.
func parseFlags(args []string) (config, error) {
	var c config
	fs := newFlagSet(&c)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.serverAddr == "" || c.servers == 0 {
		c.baseline = true
	}
	if c.baseline {
		c.servers = 0
	}
	return c, c.validate()
}

// validate reports every invalid flag.
func (c config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.maxPacket < proto.MinLength {
		bad("-maxpacket %d is below %d", c.maxPacket, proto.MinLength)
	}
	if c.relay != "" && c.listen == "" {
		bad("-relay needs -listen")
	}
	if c.fanout && (c.listen == "" || c.relay != "") {
		bad("-fanout needs -listen, and no -relay")
	}
	if c.listen != "" {
		if _, _, err := net.SplitHostPort(c.listen); err != nil {
			bad("-listen: %v", err)
		}
		if c.relay != "" {
			if _, _, err := net.SplitHostPort(c.relay); err != nil {
				bad("-relay: %v", err)
			}
		}
		return errors.Join(errs...)
	}
	switch c.mode {
	case modeEcho, modeIdle, modeChurn, modePublish, modeUnicast, modeFanRecv, modeFanPub:
	default:
		bad("-mode %q is not echo, idle, churn, publish or unicast", c.mode)
	}
	switch c.mode {
	case modePublish, modeUnicast, modeFanRecv, modeFanPub:
		if c.size < fanPayloadMin {
			bad("-size %d: a fan-out message needs at least %d bytes (its number and send time)", c.size, fanPayloadMin)
		}
		if c.batch < 1 || c.window < c.batch || c.window%c.batch != 0 {
			bad("-batch %d, -window %d: need a -window that is a positive multiple of -batch", c.batch, c.window)
		}
		if c.procs < 1 || c.procs > c.conns {
			bad("-procs %d: need 1 to -conns (%d)", c.procs, c.conns)
		}
		if c.mode == modeUnicast && c.baseline {
			bad("-mode unicast has no baseline: the bare fan-out process is -mode publish's")
		}
		if c.ws {
			bad("-ws is for -mode echo, idle and churn")
		}
		if c.fanKind != modePublish && c.fanKind != modeUnicast {
			bad("-fankind %q is not publish or unicast", c.fanKind)
		}
	}
	if _, _, err := net.SplitHostPort(c.clientAddr); err != nil {
		bad("-client %q: need host:port", c.clientAddr)
	}
	if !c.baseline {
		if _, _, err := net.SplitHostPort(c.serverAddr); err != nil {
			bad("-server %q: need host:port", c.serverAddr)
		}
	}
	positive := []struct {
		name string
		v    int
	}{{"conns", c.conns}, {"vconns", c.vconns}, {"k", c.k}, {"dials", c.dials}}
	for _, p := range positive {
		if p.v < 1 {
			bad("-%s %d: need at least 1", p.name, p.v)
		}
	}
	if c.servers < 0 {
		bad("-servers %d is negative", c.servers)
	}
	if c.rate < 0 {
		bad("-rate %d is negative", c.rate)
	}
	if c.rate > 0 && c.mode != modeEcho && c.mode != modePublish && c.mode != modeUnicast && c.mode != modeFanPub && c.mode != modeFanRecv {
		bad("-rate is for -mode echo, publish and unicast, not %s", c.mode)
	}
	if c.ws && (c.wsPath == "" || c.wsPath[0] != '/') {
		bad("-wspath %q: need a path starting with /", c.wsPath)
	}
	if c.size < tsSize {
		bad("-size %d: need at least %d bytes for the send timestamp", c.size, tsSize)
	}
	if c.size+proto.SizeOfConnID > c.maxPacket {
		bad("-size %d does not fit in -maxpacket %d", c.size, c.maxPacket)
	}
	if c.dur <= 0 {
		bad("-dur %v: need a positive duration", c.dur)
	}
	if c.warmup < 0 {
		bad("-warmup %v is negative", c.warmup)
	}
	if c.interval <= 0 {
		bad("-interval %v: need a positive duration", c.interval)
	}
	if c.srcips < 0 || c.srcips > maxSrcIPs {
		bad("-srcips %d: need 0..%d", c.srcips, maxSrcIPs)
	}
	if c.gwpid < 0 {
		bad("-gwpid %d is negative", c.gwpid)
	}
	return errors.Join(errs...)
}

// printUsage writes the -h text.
func printUsage(w io.Writer) {
	var c config
	fs := newFlagSet(&c)
	fmt.Fprint(w, `Usage: fastway-bench -client ADDR [-ws [-wspath PATH]] [-server ADDR -key KEY] [-mode echo|idle|churn|publish|unicast] [flags]
       fastway-bench -listen ADDR [-relay ECHOADDR | -fanout]

fastway-bench loads a running fastway gateway from both ends: it connects N
backend servers to the gateway's server port (MD5 handshake with -key; each
echoes every data frame back on its ConnID, bytes unchanged) and C client
connections to its client port, each dialing V virtual connections to the
servers round-robin (raw protocol, docs/protocol.md). After -warmup it
measures for -dur and prints one key=value line on stdout.

With -listen it is instead the baseline target: a bare echo process that
answers Dial with Accept, echoes data frames, Ping and Close, so a run
against it (-baseline) measures the same framed echo with no gateway in the
way. Compare a gateway run with a baseline run made on the same box at the
same time: scripts/bench.sh does, and computes the ratios. With -listen and
-relay it is a bare relay that copies every connection byte for byte to an
echo process: two hops, like a gateway in front of a server, and so the
latency floor of any proxy on the box.

With -ws the client connections are WebSocket ones (docs/protocol.md §8):
-client is then a gateway's -ClientWSAddr (or a WebSocket echo server), each
connection upgrades with a GET of -wspath offering the fastway subprotocol,
and carries the same frames in binary messages, masked with a fresh key per
message as RFC 6455 requires of clients. Like an SDK, a connection sends
what it writes at once as one message: in echo mode the replies to one read
(with K messages in flight, several frames per message), in idle mode one
Ping. Server messages are read as one byte stream. -ws is for the echo,
idle and churn modes.

The bench's clients and servers, the gateway and the echo process all share
the box: on a small machine throughput figures measure the box as much as
the gateway. Hence -gwpid: the target's own CPU time (utime+stime from
/proc/PID/stat, at USER_HZ = 100 ticks/s, so 10 ms grained) over the
measured window gives messages per target CPU-second, a figure that holds
however the cores were shared.

Modes:
  echo   each virtual connection keeps K messages of S bytes in flight; a
         message carries its send time (8 bytes, monotonic ns) and is sent
         again as soon as it comes back. With -rate R it is an open loop
         instead: R messages a second in all, spread over the virtual
         connections, whatever comes back (latency at a given load).
           rtt_per_s          round trips (echoed messages) per second
           mib_per_s          rtt_per_s x S, in MiB/s (payload, one way)
           p50/p99/p999_us    round-trip latency (log-linear histogram, 1.6 %)
           msgs_per_gw_cpu_s  round trips / target CPU-seconds (with -gwpid)
  idle   C connections x V virtual connections that only send a Ping every
         -interval (spread evenly). Needs -gwpid.
           rss_per_conn_kib   (target RSS at the end of the window - its RSS
                              before the first client connected) / C
  churn  each of C connections keeps D Dials outstanding: every Accept is
         answered with Close of that ConnID and a new Dial.
           dials_per_s        Accepts per second
           p50/p99_us         Dial -> Accept latency
           dials_per_gw_cpu_s Accepts / target CPU-seconds (with -gwpid)
  publish  one server (a process of its own) sends each message of S bytes
         to C client connections (one virtual connection each, spread over
         P receiver processes) as one Publish to a group they all joined;
         B messages per write, W in flight (each receiver process
         acknowledges what all its connections received). With -baseline
         the target is a bare fan-out process (-listen ADDR -fanout): the
         same Publishes read, the same frames written to C sockets, one
         write per socket per batch. With -rate R the publisher writes R
         messages a second (a burst of B every B/R s), still at most W in
         flight: the latency at a game's tick rate rather than at the
         box's limit.
           deliveries_per_s           data frames received by the members
           deliveries_per_gw_cpu_s    ... per target CPU-second (-gwpid)
           deliveries_per_gw_write    deliveries per write syscall of the target (syscw)
           server_cpu_ns_per_delivery the publisher's CPU per delivery
           total_cpu_ns_per_delivery  target + publisher CPU per delivery
           p50/p99/max_us             a message's latency: from its write
                                      by the publisher to its receipt by the
                                      last member (wall clock)
  unicast  the same, each message sent as C data frames, one per member
  Every mode reports gw_cpu_s and gw_rss_mib (with -gwpid), bench_cpu_s (this
  process), load1 and errors; the exit status is 1 when errors > 0.

Client sockets aimed at a 127.x address are bound to source addresses spread
over 127.0.0.0/8 (-srcips), so one box can open 100,000 connections (about
28,000 ephemeral ports per source address). The tool raises its
RLIMIT_NOFILE to the hard limit; the gateway needs as many descriptors.

Flags:
`)
	for _, name := range flagOrder {
		f := fs.Lookup(name)
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  -%s=%s\n      %s\n", f.Name, def, f.Usage)
	}
}
