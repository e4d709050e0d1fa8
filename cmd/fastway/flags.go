package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fastway-go/fastway/cmd"
	"github.com/fastway-go/fastway/fleet"
	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
	"github.com/fastway-go/fastway/snet"
)

// authPasswordEnv is read when neither -ServerAuthPassword nor
// -ServerAuthKey is given, so the password need not appear in the process
// list.
const authPasswordEnv = "FASTWAY_AUTH_PASSWORD"

// Defaults of the flags the gateway package has no constant for.
const (
	defaultMemPoolType      = "atom"
	defaultClientSnetBuffer = 32 << 10
	defaultServerSnetBuffer = 1 << 20
	defaultSnetInitTimeout  = 10 * time.Second
	defaultSnetWaitTimeout  = 60 * time.Second
	defaultPidFile          = "fastway.pid"
	defaultLogLevel         = "info"
	defaultLogFormat        = "text"
	defaultShutdownTimeout  = 10 * time.Second
)

// minSnetBuffer bounds -ClientSnetBuffer and -ServerSnetBuffer from below:
// an snet port's sockets get buffers of a sixteenth of it, 2 KiB at the
// least (snet.Config.SocketBuffer), which the kernel makes about 4 KiB
// each, so a much smaller rewrite buffer could not hold what they do.
const minSnetBuffer = 16 << 10

// maxSnetBuffer bounds -ClientSnetBuffer and -ServerSnetBuffer from above:
// every snet connection may grow its rewrite buffer to it.
const maxSnetBuffer = 64 << 20

// minTimeout bounds the handshake, reconnect and idle timeouts from below:
// a shorter one could not be met by any peer across a real network.
const minTimeout = 100 * time.Millisecond

// maxSize bounds every size flag: nothing in the gateway needs a buffer,
// frame or page larger than this.
const maxSize = 1 << 30

// maxCount bounds the per-client and per-source count flags: a bound
// larger than this bounds nothing.
const maxCount = 1 << 20

// maxFanout bounds -ServerMaxGroups and -ServerMaxMemberships: a bound
// larger than this (100 GiB of memberships) bounds nothing.
const maxFanout = 1 << 30

// options holds the command line, one field per flag.
type options struct {
	ReusePort        bool
	MaxPacket        size
	LargeFrameBudget size
	// LargeFrameBudgetPerSource is 0 for the gateway's default.
	LargeFrameBudgetPerSource size
	MemPoolType               string
	MemPoolFactor             int
	MemPoolMaxChunk           size
	MemPoolMinChunk           size
	MemPoolPageSize           size

	ClientAddr            string
	ClientMaxConns        int
	ClientMaxConn         int
	ClientMaxServerConns  int
	ClientBufferSize      size
	ClientIdleTimeout     time.Duration
	ClientSendChanSize    int
	ClientSendQueueBytes  size
	ClientSnetEnable      bool
	ClientSnetEncrypt     bool
	ClientSnetBuffer      size
	ClientSnetInitTimeout time.Duration
	ClientSnetWaitTimeout time.Duration
	ClientTLSCert         string
	ClientTLSKey          string

	ClientWSAddr                   string
	ClientWSPath                   string
	ClientWSOrigins                string
	ClientWSTLSCert                string
	ClientWSTLSKey                 string
	ClientWSHandshakeTimeout       time.Duration
	ClientWSMaxHandshakes          int
	ClientWSMaxHandshakesPerSource int

	ServerAddr                    string
	ServerAuthPassword            string
	ServerAuthKey                 string // the original fastway's name for ServerAuthPassword
	ServerAuthPasswordFile        string
	ServerKeyFile                 string
	ServerAuthTimeout             time.Duration
	ServerMaxHandshakes           int
	ServerMaxHandshakesPerSource  int
	ServerAuthFailBurst           int
	ServerAuthFailInterval        time.Duration
	ServerBufferSize              size
	ServerIdleTimeout             time.Duration
	ServerSendChanSize            int
	ServerSendQueueBytes          size
	ServerSendQueueBytesPerClient size
	ServerMaxGroups               int
	ServerMaxMemberships          int
	ServerSnetEnable              bool
	ServerSnetEncrypt             bool
	ServerSnetBuffer              size
	ServerSnetInitTimeout         time.Duration
	ServerSnetWaitTimeout         time.Duration
	ServerTLSCert                 string
	ServerTLSKey                  string
	ServerTLSClientCA             string

	ShutdownTimeout time.Duration
	PidFile         string
	CmdFile         string
	AdminAddr       string
	AdminToken      string // after validate: also what -AdminTokenFile or $FASTWAY_ADMIN_TOKEN gave
	AdminTokenFile  string
	LogLevel        string
	LogFormat       string

	Etcd                  string
	EtcdPrefix            string
	EtcdLeaseTTL          time.Duration
	EtcdDrainWait         time.Duration
	EtcdUser              string
	EtcdPasswordFile      string
	EtcdTLSCA             string
	EtcdTLSCert           string
	EtcdTLSKey            string
	GatewayID             string
	AdvertiseServerAddr   string
	AdvertiseClientAddr   string
	AdvertiseClientWSAddr string
	etcdPassword          string      // what -EtcdPasswordFile held; set by validate
	etcdTLS               *tls.Config // from the -EtcdTLS* files; nil: plain; set by validate

	// clientTLS and serverTLS are the ports' TLS configurations, loaded
	// from the -*TLS* files by validate; nil: plain TCP.
	clientTLS, serverTLS *tls.Config
	// wsTLS is the WebSocket port's TLS configuration (wss), or nil.
	wsTLS *tls.Config
	// auth is where the server password and keys come from; serverKeys
	// is what -ServerKeyFile held at start (nil: no file). Set by validate.
	auth       *serverAuth
	serverKeys *gateway.ServerKeys
}

// flagSection is one group of flags in the usage text.
type flagSection struct {
	title string
	names []string
}

// sections orders the usage text. Every flag is in exactly one section
// (TestUsageListsEveryFlag).
var sections = []flagSection{
	{"Gateway", []string{"ReusePort", "MaxPacket", "LargeFrameBudget", "LargeFrameBudgetPerSource", "MemPoolType", "MemPoolFactor", "MemPoolMaxChunk", "MemPoolMinChunk", "MemPoolPageSize"}},
	{"Client side", []string{"ClientAddr", "ClientMaxConns", "ClientMaxConn", "ClientMaxServerConns", "ClientBufferSize", "ClientIdleTimeout", "ClientSendChanSize", "ClientSendQueueBytes",
		"ClientTLSCert", "ClientTLSKey",
		"ClientSnetEnable", "ClientSnetEncrypt", "ClientSnetBuffer", "ClientSnetInitTimeout", "ClientSnetWaitTimeout"}},
	{"WebSocket clients", []string{"ClientWSAddr", "ClientWSPath", "ClientWSOrigins", "ClientWSTLSCert", "ClientWSTLSKey", "ClientWSHandshakeTimeout", "ClientWSMaxHandshakes", "ClientWSMaxHandshakesPerSource"}},
	{"Server side", []string{"ServerAddr", "ServerAuthPassword", "ServerAuthKey", "ServerAuthPasswordFile", "ServerKeyFile", "ServerAuthTimeout", "ServerMaxHandshakes", "ServerMaxHandshakesPerSource", "ServerAuthFailBurst", "ServerAuthFailInterval",
		"ServerBufferSize", "ServerIdleTimeout", "ServerSendChanSize", "ServerSendQueueBytes", "ServerSendQueueBytesPerClient",
		"ServerMaxGroups", "ServerMaxMemberships",
		"ServerTLSCert", "ServerTLSKey", "ServerTLSClientCA",
		"ServerSnetEnable", "ServerSnetEncrypt", "ServerSnetBuffer", "ServerSnetInitTimeout", "ServerSnetWaitTimeout"}},
	{"Ops", []string{"ShutdownTimeout", "PidFile", "CmdFile", "AdminAddr", "AdminToken", "AdminTokenFile", "LogLevel", "LogFormat"}},
	{"Fleet", []string{"Etcd", "EtcdPrefix", "EtcdLeaseTTL", "EtcdDrainWait", "EtcdUser", "EtcdPasswordFile", "EtcdTLSCA", "EtcdTLSCert", "EtcdTLSKey",
		"GatewayID", "AdvertiseServerAddr", "AdvertiseClientAddr", "AdvertiseClientWSAddr"}},
}

// newFlagSet defines every flag on a new flag set bound to o, with its
// default. The set reports nothing itself: the caller prints errors and
// usage.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("fastway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}

	sizeVar := func(p *size, name string, def int, usage string) {
		*p = size(def)
		fs.Var(p, name, usage)
	}

	fs.BoolVar(&o.ReusePort, "ReusePort", false, "listen with SO_REUSEPORT, so several processes can share the ports (rolling restarts)")
	sizeVar(&o.MaxPacket, "MaxPacket", proto.DefaultMaxPacket, "largest frame accepted, in bytes (the Length field); a larger one closes its connection")
	sizeVar(&o.LargeFrameBudget, "LargeFrameBudget", gateway.DefaultLargeFrameBudget, "bytes the client frames larger than their connection's read buffer may hold together while their body arrives (about what has arrived of each); when it is full, the connection of the source furthest over its fair share is closed (at least MaxPacket)")
	fs.Var(&o.LargeFrameBudgetPerSource, "LargeFrameBudgetPerSource", "what the client connections of one source address (IPv6: one /64) may hold of LargeFrameBudget; past it the frame's sender is closed (0: an eighth of it, at least MaxPacket)")
	fs.StringVar(&o.MemPoolType, "MemPoolType", defaultMemPoolType, "buffer pool: sync, atom or chan (none: no pooling)")
	fs.IntVar(&o.MemPoolFactor, "MemPoolFactor", slab.DefaultFactor, "ratio between the pool's neighbouring chunk sizes (at least 2)")
	sizeVar(&o.MemPoolMaxChunk, "MemPoolMaxChunk", slab.DefaultMaxChunk, "largest pooled chunk; larger buffers come from the heap")
	sizeVar(&o.MemPoolMinChunk, "MemPoolMinChunk", slab.DefaultMinChunk, "smallest pooled chunk")
	sizeVar(&o.MemPoolPageSize, "MemPoolPageSize", slab.DefaultPageSize, "slab page the atom and chan pools cut into chunks (at least MemPoolMaxChunk)")

	fs.StringVar(&o.ClientAddr, "ClientAddr", ":0", "client listen address, host:port (port 0: any free port, logged at start)")
	fs.IntVar(&o.ClientMaxConns, "ClientMaxConns", 0, "client connections open at once; past it new ones are closed at once (0: the file descriptor limit less a reserve for servers and the admin port, logged at start)")
	fs.IntVar(&o.ClientMaxConn, "ClientMaxConn", gateway.DefaultClientMaxConn, "virtual connections one client may have dialed at once")
	fs.IntVar(&o.ClientMaxServerConns, "ClientMaxServerConns", gateway.DefaultClientMaxServerConns, "virtual connections servers may have dialed to one client at once; past it a server's Dial to it is refused")
	sizeVar(&o.ClientBufferSize, "ClientBufferSize", gateway.DefaultClientBufferSize, "starting read buffer per client connection (grows to 64K while reads fill it; none held while idle)")
	fs.DurationVar(&o.ClientIdleTimeout, "ClientIdleTimeout", gateway.DefaultClientIdleTimeout, "close a client that sends nothing for this long (0: never)")
	fs.IntVar(&o.ClientSendChanSize, "ClientSendChanSize", gateway.DefaultClientSendChanSize, "frames queued to one client behind its full socket before it is dropped as a slow consumer")
	sizeVar(&o.ClientSendQueueBytes, "ClientSendQueueBytes", gateway.DefaultClientSendQueueBytes, "bytes queued and being written to one client before it is dropped as a slow consumer")
	fs.StringVar(&o.ClientTLSCert, "ClientTLSCert", "", "PEM certificate chain: the client port speaks TLS 1.2+ (with -ClientTLSKey; empty: plain TCP)")
	fs.StringVar(&o.ClientTLSKey, "ClientTLSKey", "", "PEM private key of -ClientTLSCert")
	fs.StringVar(&o.ClientWSAddr, "ClientWSAddr", "", "WebSocket listen address for browser and H5 clients, host:port (empty: off; port 0: any free port, logged at start); they are ordinary clients in every other respect")
	fs.StringVar(&o.ClientWSPath, "ClientWSPath", "/", "request path of the WebSocket upgrade; other paths get 404")
	fs.StringVar(&o.ClientWSOrigins, "ClientWSOrigins", "*", "comma-separated Origins allowed to upgrade (scheme://host[:port]); * allows any page to connect, and clients that send no Origin")
	fs.StringVar(&o.ClientWSTLSCert, "ClientWSTLSCert", "", "PEM certificate chain: the WebSocket port serves wss (with -ClientWSTLSKey; empty: the client port's -ClientTLSCert if set, else plain ws)")
	fs.StringVar(&o.ClientWSTLSKey, "ClientWSTLSKey", "", "PEM private key of -ClientWSTLSCert")
	fs.DurationVar(&o.ClientWSHandshakeTimeout, "ClientWSHandshakeTimeout", 5*time.Second, "time a WebSocket connection has for its TLS handshake and upgrade request together")
	fs.IntVar(&o.ClientWSMaxHandshakes, "ClientWSMaxHandshakes", 1024, "WebSocket handshakes in progress at once; when all are taken the oldest is closed to make room for a new connection (counted overflow)")
	fs.IntVar(&o.ClientWSMaxHandshakesPerSource, "ClientWSMaxHandshakesPerSource", 256, "WebSocket handshakes in progress at once from one source address (IPv6: one /64); past it its new connections are closed at once (counted source; 0: no cap)")
	fs.BoolVar(&o.ClientSnetEnable, "ClientSnetEnable", false, "snet on the client port: clients resume their stream after a broken TCP connection")
	fs.BoolVar(&o.ClientSnetEncrypt, "ClientSnetEncrypt", false, "snet's RC4 encryption on the client port: obfuscation for clients that expect it, not security (needs ClientSnetEnable)")
	sizeVar(&o.ClientSnetBuffer, "ClientSnetBuffer", defaultClientSnetBuffer, "snet rewrite buffer per client connection (allocated as it fills); its sockets get buffers of a sixteenth of it")
	fs.DurationVar(&o.ClientSnetInitTimeout, "ClientSnetInitTimeout", defaultSnetInitTimeout, "snet handshake timeout on the client port")
	fs.DurationVar(&o.ClientSnetWaitTimeout, "ClientSnetWaitTimeout", defaultSnetWaitTimeout, "how long a broken snet client connection waits for a reconnect")

	fs.StringVar(&o.ServerAddr, "ServerAddr", ":0", "server listen address, host:port (port 0: any free port, logged at start)")
	fs.StringVar(&o.ServerAuthPassword, "ServerAuthPassword", "", "key servers authenticate with; required unless ServerAddr is a loopback address or ServerKeyFile is set (default: ServerAuthPasswordFile, else $"+authPasswordEnv+"; both stay out of ps)")
	fs.StringVar(&o.ServerAuthKey, "ServerAuthKey", "", "the same as ServerAuthPassword (the original fastway's name for it); giving both with different values is an error")
	fs.StringVar(&o.ServerAuthPasswordFile, "ServerAuthPasswordFile", "", "file whose one line is the ServerAuthPassword (read at start and on SIGHUP; empty: none)")
	fs.StringVar(&o.ServerKeyFile, "ServerKeyFile", "", "file of per-server keys, lines of \"ID KEY\" or \"FIRST-LAST KEY\": a listed ID registers with its key only, others with ServerAuthPassword if set (read at start and on SIGHUP; empty: none)")
	fs.DurationVar(&o.ServerAuthTimeout, "ServerAuthTimeout", gateway.DefaultServerAuthTimeout, "time a server has to finish its handshake")
	fs.IntVar(&o.ServerMaxHandshakes, "ServerMaxHandshakes", gateway.DefaultServerMaxHandshakes, "server-port connections in their handshake at once; past it new ones are closed at once (0: unlimited)")
	fs.IntVar(&o.ServerMaxHandshakesPerSource, "ServerMaxHandshakesPerSource", gateway.DefaultServerMaxHandshakesPerSource, "server-port connections in their handshake at once from one source IP (IPv6: one /64); past it its new ones are closed at once (0: no per-source cap)")
	fs.IntVar(&o.ServerAuthFailBurst, "ServerAuthFailBurst", gateway.DefaultServerAuthFailBurst, "server handshakes one source IP (IPv6: one /64) may fail in a row, or have in progress at once, before it is throttled (0: no throttle)")
	fs.DurationVar(&o.ServerAuthFailInterval, "ServerAuthFailInterval", gateway.DefaultServerAuthFailInterval, "a throttled source IP may try one handshake per this interval")
	sizeVar(&o.ServerBufferSize, "ServerBufferSize", gateway.DefaultServerBufferSize, "read buffer per server connection (none held while idle)")
	fs.DurationVar(&o.ServerIdleTimeout, "ServerIdleTimeout", gateway.DefaultServerIdleTimeout, "close a server that sends nothing for this long (0: never)")
	fs.IntVar(&o.ServerSendChanSize, "ServerSendChanSize", gateway.DefaultServerSendChanSize, "frames queued to one server before its clients are paused")
	sizeVar(&o.ServerSendQueueBytes, "ServerSendQueueBytes", gateway.DefaultServerSendQueueBytes, "bytes queued and being written to one server before its clients are paused (bounds what the gateway holds for it)")
	sizeVar(&o.ServerSendQueueBytesPerClient, "ServerSendQueueBytesPerClient", gateway.DefaultServerSendQueueBytesPerClient, "bytes one client may have queued and being written to one server before that client alone is paused (bounds what a flooding client puts ahead of the others)")
	fs.IntVar(&o.ServerMaxGroups, "ServerMaxGroups", gateway.DefaultServerMaxGroups, "fan-out groups one server connection may have at once; a Join that would start one more is ignored, counted and logged (0: unlimited)")
	fs.IntVar(&o.ServerMaxMemberships, "ServerMaxMemberships", gateway.DefaultServerMaxMemberships, "memberships one server connection's groups may have at once, about 85 bytes each; a Join past it is ignored, counted and logged (0: unlimited)")
	fs.StringVar(&o.ServerTLSCert, "ServerTLSCert", "", "PEM certificate chain: the server port speaks TLS 1.2+ (with -ServerTLSKey; empty: plain TCP)")
	fs.StringVar(&o.ServerTLSKey, "ServerTLSKey", "", "PEM private key of -ServerTLSCert")
	fs.StringVar(&o.ServerTLSClientCA, "ServerTLSClientCA", "", "PEM CA certificates: servers must present a certificate signed by one (mutual TLS; needs ServerTLSCert)")
	fs.BoolVar(&o.ServerSnetEnable, "ServerSnetEnable", false, "snet on the server port: servers resume their stream after a broken TCP connection")
	fs.BoolVar(&o.ServerSnetEncrypt, "ServerSnetEncrypt", false, "snet's RC4 encryption on the server port: obfuscation, not security (needs ServerSnetEnable)")
	sizeVar(&o.ServerSnetBuffer, "ServerSnetBuffer", defaultServerSnetBuffer, "snet rewrite buffer per server connection (allocated as it fills); its sockets get buffers of a sixteenth of it")
	fs.DurationVar(&o.ServerSnetInitTimeout, "ServerSnetInitTimeout", defaultSnetInitTimeout, "snet handshake timeout on the server port")
	fs.DurationVar(&o.ServerSnetWaitTimeout, "ServerSnetWaitTimeout", defaultSnetWaitTimeout, "how long a broken snet server connection waits for a reconnect")

	fs.DurationVar(&o.ShutdownTimeout, "ShutdownTimeout", defaultShutdownTimeout, "on SIGTERM/SIGINT, how long queued frames may drain before connections are closed hard (0: close at once)")
	fs.StringVar(&o.PidFile, "PidFile", defaultPidFile, "file the process ID is written to at start and removed from at exit (empty: none)")
	fs.StringVar(&o.CmdFile, "CmdFile", cmd.DefaultCmdFile, "command file read on each SIGUSR1")
	fs.StringVar(&o.AdminAddr, "AdminAddr", "", "HTTP admin server, host:port: metrics, probes, pprof (empty: off; no host: 127.0.0.1; 0.0.0.0 for every interface)")
	fs.StringVar(&o.AdminToken, "AdminToken", "", "bearer token every admin endpoint but /healthz and /readyz requires (16 bytes at least; default: AdminTokenFile, else $"+adminTokenEnv+"; empty: none)")
	fs.StringVar(&o.AdminTokenFile, "AdminTokenFile", "", "file whose one line is the AdminToken (read at start; keeps it out of ps)")
	fs.StringVar(&o.LogLevel, "LogLevel", defaultLogLevel, "least severe level logged: debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "LogFormat", defaultLogFormat, "log format on stderr: text (key=value) or json (one object a line)")

	fs.StringVar(&o.Etcd, "Etcd", "", "etcd endpoints, comma-separated (http://host:2379 or https://...): register this gateway there for servers to find (docs/scaling.md; empty: off)")
	fs.StringVar(&o.EtcdPrefix, "EtcdPrefix", fleet.DefaultPrefix, "etcd key prefix of the fleet: the key is <prefix>/gateways/<GatewayID>")
	fs.DurationVar(&o.EtcdLeaseTTL, "EtcdLeaseTTL", fleet.DefaultTTL, "lease of the key, refreshed every third of it: a lost gateway is dropped this long after its last refresh")
	fs.DurationVar(&o.EtcdDrainWait, "EtcdDrainWait", defaultEtcdDrainWait, "on SIGTERM/SIGINT, the key is revoked first, then the drain waits this long (servers and lobbies see the key go) before it closes connections")
	fs.StringVar(&o.EtcdUser, "EtcdUser", "", "etcd user name (with -EtcdPasswordFile; empty: no authentication)")
	fs.StringVar(&o.EtcdPasswordFile, "EtcdPasswordFile", "", "file whose one line is the etcd password of -EtcdUser")
	fs.StringVar(&o.EtcdTLSCA, "EtcdTLSCA", "", "PEM CA certificates etcd's certificate must chain to (empty: the system's, for https endpoints)")
	fs.StringVar(&o.EtcdTLSCert, "EtcdTLSCert", "", "PEM client certificate for etcd (with -EtcdTLSKey; for etcd's --client-cert-auth)")
	fs.StringVar(&o.EtcdTLSKey, "EtcdTLSKey", "", "PEM private key of -EtcdTLSCert")
	fs.StringVar(&o.GatewayID, "GatewayID", "", "this gateway's ID in the fleet, unique, no '/' (empty: hostname-serverport)")
	fs.StringVar(&o.AdvertiseServerAddr, "AdvertiseServerAddr", "", "server-facing host:port registered in etcd (empty: the bound -ServerAddr, a wildcard host replaced by the hostname)")
	fs.StringVar(&o.AdvertiseClientAddr, "AdvertiseClientAddr", "", "client-facing host:port registered in etcd, handed to players (empty: the bound -ClientAddr, a wildcard host replaced by the hostname)")
	fs.StringVar(&o.AdvertiseClientWSAddr, "AdvertiseClientWSAddr", "", "client-facing WebSocket URL registered in etcd, handed to browser players (ws://host:port/path or wss://...; empty: none)")
	return fs
}

// parseFlags parses args into options. -h and -help return flag.ErrHelp.
// Errors are one line.
func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := newFlagSet(o)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		for _, name := range secretFlags {
			if set[name] {
				// "-ServerAuthPassword = x" makes the password "=" and x a
				// stray argument: x may be the secret, so it is not shown.
				return nil, fmt.Errorf("unexpected argument after the flags (not shown: -%s is set, and it may be its value): every setting is a -Flag=value", name)
			}
		}
		return nil, fmt.Errorf("unexpected argument %q: every setting is a -Flag=value", fs.Arg(0))
	}
	switch {
	case set["ServerAuthKey"] && set["ServerAuthPassword"]:
		if o.ServerAuthKey != o.ServerAuthPassword {
			// The values stay out of the message: they are secrets.
			return nil, errors.New("-ServerAuthKey and -ServerAuthPassword are set to different passwords: they are the same flag, give one")
		}
	case set["ServerAuthKey"]:
		o.ServerAuthPassword = o.ServerAuthKey
	case !set["ServerAuthPassword"] && o.ServerAuthPasswordFile == "":
		o.ServerAuthPassword = os.Getenv(authPasswordEnv)
	}
	if o.ServerAuthPasswordFile != "" && (set["ServerAuthKey"] || set["ServerAuthPassword"]) {
		return nil, errors.New("-ServerAuthPasswordFile and -ServerAuthPassword (or -ServerAuthKey) both give the password: give one")
	}
	if o.AdminTokenFile != "" && set["AdminToken"] {
		return nil, errors.New("-AdminTokenFile and -AdminToken both give the admin token: give one")
	}
	if !set["AdminToken"] && o.AdminTokenFile == "" {
		o.AdminToken = os.Getenv(adminTokenEnv)
	}
	return o, nil
}

// printUsage writes the usage text: every flag with its default, in the
// form -Name=default, grouped by section.
func printUsage(w io.Writer) {
	fs := newFlagSet(&options{})
	fmt.Fprintf(w, "Usage: fastway [-Flag=value ...]\n\n")
	fmt.Fprintf(w, "fastway is a gateway between game clients and servers. Sizes take a B, K, M or G suffix\n")
	fmt.Fprintf(w, "(1K = 1024 bytes); durations are Go durations (500ms, 30s, 1m).\n")
	width := 0
	fs.VisitAll(func(f *flag.Flag) { width = max(width, len(f.Name)+len(showDefault(f))) })
	for _, s := range sections {
		fmt.Fprintf(w, "\n%s:\n", s.title)
		for _, name := range s.names {
			f := fs.Lookup(name)
			pad := width - len(f.Name) - len(showDefault(f))
			fmt.Fprintf(w, "  -%s=%s%*s  %s\n", f.Name, showDefault(f), pad, "", f.Usage)
		}
	}
	fmt.Fprintf(w, "\nSignals: SIGTERM or SIGINT stop the gateway, draining for up to -ShutdownTimeout; SIGUSR1 runs the\n")
	fmt.Fprintf(w, "command in -CmdFile ")
	fmt.Fprintf(w, "(echo \"help\" > fastway.cmd && kill -USR1 $(cat fastway.pid)). See docs/operations.md.\n")
}

// showDefault returns f's default as it is typed on the command line.
func showDefault(f *flag.Flag) string {
	if f.DefValue == "" {
		return `""`
	}
	return f.DefValue
}

// validate checks the options, reporting the first problem in one line
// that names the flag.
func (o *options) validate() error {
	for _, f := range []struct {
		side            string
		enable, encrypt bool
	}{{"Client", o.ClientSnetEnable, o.ClientSnetEncrypt}, {"Server", o.ServerSnetEnable, o.ServerSnetEncrypt}} {
		if f.encrypt && !f.enable {
			return fmt.Errorf("-%sSnetEncrypt needs -%sSnetEnable: the encryption is part of snet", f.side, f.side)
		}
	}
	for _, f := range []struct {
		name string
		v    size
	}{
		{"MaxPacket", o.MaxPacket},
		{"LargeFrameBudget", o.LargeFrameBudget},
		{"ClientSendQueueBytes", o.ClientSendQueueBytes},
		{"ServerSendQueueBytes", o.ServerSendQueueBytes},
		{"ServerSendQueueBytesPerClient", o.ServerSendQueueBytesPerClient},
		{"MemPoolMaxChunk", o.MemPoolMaxChunk},
		{"MemPoolMinChunk", o.MemPoolMinChunk},
		{"MemPoolPageSize", o.MemPoolPageSize},
		{"ClientBufferSize", o.ClientBufferSize},
		{"ClientSnetBuffer", o.ClientSnetBuffer},
		{"ServerBufferSize", o.ServerBufferSize},
		{"ServerSnetBuffer", o.ServerSnetBuffer},
	} {
		if f.v <= 0 || f.v > maxSize {
			return fmt.Errorf("-%s=%s: want a size from 1B to %s", f.name, f.v.String(), formatSize(maxSize))
		}
	}
	if o.MaxPacket < proto.MinLength {
		return fmt.Errorf("-MaxPacket=%s: want at least %s", o.MaxPacket.String(), formatSize(proto.MinLength))
	}
	// A frame is its 4-byte Length field and Length bytes.
	if o.LargeFrameBudget < o.MaxPacket+proto.SizeOfLength {
		return fmt.Errorf("-LargeFrameBudget=%s is below -MaxPacket=%s plus its 4-byte header: no frame of MaxPacket bytes could ever be read", o.LargeFrameBudget.String(), o.MaxPacket.String())
	}
	if o.LargeFrameBudgetPerSource != 0 && o.LargeFrameBudgetPerSource < o.MaxPacket+proto.SizeOfLength {
		return fmt.Errorf("-LargeFrameBudgetPerSource=%s is below -MaxPacket=%s plus its 4-byte header: no frame of MaxPacket bytes could ever be read", o.LargeFrameBudgetPerSource.String(), o.MaxPacket.String())
	}
	for _, f := range []struct {
		name string
		v    size
	}{{"ClientSnetBuffer", o.ClientSnetBuffer}, {"ServerSnetBuffer", o.ServerSnetBuffer}} {
		if f.v > maxSnetBuffer {
			return fmt.Errorf("-%s=%s: want at most %s (every snet connection may hold it)", f.name, f.v.String(), formatSize(maxSnetBuffer))
		}
	}
	for _, f := range []struct {
		name string
		v    size
	}{{"ClientSnetBuffer", o.ClientSnetBuffer}, {"ServerSnetBuffer", o.ServerSnetBuffer}} {
		if f.v < minSnetBuffer {
			return fmt.Errorf("-%s=%s: want at least %s (the port's socket buffers are a sixteenth of it)", f.name, f.v.String(), formatSize(minSnetBuffer))
		}
	}
	if o.MemPoolMinChunk > o.MemPoolMaxChunk {
		return fmt.Errorf("-MemPoolMinChunk=%s is above -MemPoolMaxChunk=%s", o.MemPoolMinChunk.String(), o.MemPoolMaxChunk.String())
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"ClientMaxConn", o.ClientMaxConn},
		{"ClientMaxServerConns", o.ClientMaxServerConns},
		{"ClientSendChanSize", o.ClientSendChanSize},
		{"ServerSendChanSize", o.ServerSendChanSize},
	} {
		if f.v <= 0 {
			return fmt.Errorf("-%s=%d: want at least 1", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
		zero string
	}{
		{"ClientMaxConns", o.ClientMaxConns, "derived from the file descriptor limit"},
		{"ServerMaxHandshakes", o.ServerMaxHandshakes, "unlimited"},
		{"ServerMaxHandshakesPerSource", o.ServerMaxHandshakesPerSource, "no per-source cap"},
		{"ServerAuthFailBurst", o.ServerAuthFailBurst, "no throttle"},
		{"ServerMaxGroups", o.ServerMaxGroups, "unlimited"},
		{"ServerMaxMemberships", o.ServerMaxMemberships, "unlimited"},
	} {
		if f.v < 0 {
			return fmt.Errorf("-%s=%d: must not be negative (0: %s)", f.name, f.v, f.zero)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"ClientMaxServerConns", o.ClientMaxServerConns},
		{"ServerMaxHandshakesPerSource", o.ServerMaxHandshakesPerSource},
	} {
		if f.v > maxCount {
			return fmt.Errorf("-%s=%d: want at most %d", f.name, f.v, maxCount)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"ServerMaxGroups", o.ServerMaxGroups},
		{"ServerMaxMemberships", o.ServerMaxMemberships},
	} {
		if f.v > maxFanout {
			return fmt.Errorf("-%s=%d: want at most %d (0: unlimited)", f.name, f.v, maxFanout)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"ClientIdleTimeout", o.ClientIdleTimeout},
		{"ServerIdleTimeout", o.ServerIdleTimeout},
		{"ShutdownTimeout", o.ShutdownTimeout},
	} {
		if f.v < 0 {
			return fmt.Errorf("-%s=%v: must not be negative", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"ServerAuthTimeout", o.ServerAuthTimeout},
		{"ServerAuthFailInterval", o.ServerAuthFailInterval},
		{"ClientSnetInitTimeout", o.ClientSnetInitTimeout},
		{"ClientSnetWaitTimeout", o.ClientSnetWaitTimeout},
		{"ServerSnetInitTimeout", o.ServerSnetInitTimeout},
		{"ServerSnetWaitTimeout", o.ServerSnetWaitTimeout},
	} {
		if f.v <= 0 {
			return fmt.Errorf("-%s=%v: must be positive", f.name, f.v)
		}
		if f.v < minTimeout {
			return fmt.Errorf("-%s=%v: want at least %v (no handshake or reconnect completes faster)", f.name, f.v, minTimeout)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"ClientIdleTimeout", o.ClientIdleTimeout},
		{"ServerIdleTimeout", o.ServerIdleTimeout},
	} {
		if f.v > 0 && f.v < minTimeout {
			return fmt.Errorf("-%s=%v: want 0 (never) or at least %v", f.name, f.v, minTimeout)
		}
	}
	clientPort, err := checkAddr("ClientAddr", o.ClientAddr)
	if err != nil {
		return err
	}
	serverPort, err := checkAddr("ServerAddr", o.ServerAddr)
	if err != nil {
		return err
	}
	if clientPort != 0 && clientPort == serverPort && sameHost(o.ClientAddr, o.ServerAddr) {
		return fmt.Errorf("-ClientAddr=%s and -ServerAddr=%s overlap: give them different ports", o.ClientAddr, o.ServerAddr)
	}
	if o.AdminAddr != "" {
		adminPort, err := checkAddr("AdminAddr", o.AdminAddr)
		if err != nil {
			return err
		}
		for _, other := range []struct {
			name, addr string
			port       uint16
		}{{"ClientAddr", o.ClientAddr, clientPort}, {"ServerAddr", o.ServerAddr, serverPort}} {
			if adminPort != 0 && adminPort == other.port && sameHost(o.AdminAddr, other.addr) {
				return fmt.Errorf("-AdminAddr=%s and -%s=%s overlap: give them different ports", o.AdminAddr, other.name, other.addr)
			}
		}
	}
	if _, err := parseLogLevel(o.LogLevel); err != nil {
		return err
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return fmt.Errorf("-LogFormat=%q: want text or json", o.LogFormat)
	}
	if o.CmdFile == "" {
		return errors.New("-CmdFile must not be empty")
	}
	// Last, as they read files: the secrets and the TLS configurations.
	o.auth = &serverAuth{fixed: o.ServerAuthPassword, passwordFile: o.ServerAuthPasswordFile, keyFile: o.ServerKeyFile}
	if o.ServerAuthPassword, o.serverKeys, err = o.auth.load(); err != nil {
		return err
	}
	// "localhost" is decided once the port is bound, by the IP it bound
	// (checkBoundLoopback).
	if o.ServerAuthPassword == "" && o.serverKeys == nil && !mayBeLoopback(o.ServerAddr) {
		return fmt.Errorf("-ServerAuthPassword is empty but -ServerAddr=%s is open to other hosts: set a password (-ServerAuthPasswordFile or $%s), give servers their keys (-ServerKeyFile), or listen on a loopback address such as 127.0.0.1:0", o.ServerAddr, authPasswordEnv)
	}
	if o.AdminTokenFile != "" {
		if o.AdminToken, err = readLineSecret("AdminTokenFile", o.AdminTokenFile); err != nil {
			return err
		}
	}
	if o.AdminToken != "" && len(o.AdminToken) < minAdminToken {
		return fmt.Errorf("the admin token is %d bytes: want at least %d, too long to guess (openssl rand -hex 16 makes one)", len(o.AdminToken), minAdminToken)
	}
	for _, c := range []byte(o.AdminToken) {
		if c <= ' ' || c > '~' {
			return errors.New("the admin token holds white space or a byte that is not printable ASCII: an Authorization header cannot carry it intact")
		}
	}
	if err := o.validateFleet(); err != nil {
		return err
	}
	if o.clientTLS, err = loadTLS("Client", o.ClientTLSCert, o.ClientTLSKey, ""); err != nil {
		return err
	}
	if o.serverTLS, err = loadTLS("Server", o.ServerTLSCert, o.ServerTLSKey, o.ServerTLSClientCA); err != nil {
		return err
	}
	return o.validateWS()
}

// validateWS checks the WebSocket flags and loads the wss certificate.
func (o *options) validateWS() error {
	if o.ClientWSAddr == "" {
		return nil
	}
	if _, err := checkAddr("ClientWSAddr", o.ClientWSAddr); err != nil {
		return err
	}
	if !strings.HasPrefix(o.ClientWSPath, "/") || strings.ContainsAny(o.ClientWSPath, "?# ") {
		return fmt.Errorf("-ClientWSPath=%q: want a path starting with / (no query)", o.ClientWSPath)
	}
	for _, origin := range o.wsOrigins() {
		if origin == "*" {
			continue
		}
		u, err := url.Parse(origin)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("-ClientWSOrigins: %q is not an origin (want scheme://host[:port], or *)", origin)
		}
	}
	if o.ClientWSHandshakeTimeout <= 0 {
		return fmt.Errorf("-ClientWSHandshakeTimeout=%v: want a positive duration", o.ClientWSHandshakeTimeout)
	}
	if o.ClientWSMaxHandshakes <= 0 {
		return fmt.Errorf("-ClientWSMaxHandshakes=%d: want at least 1", o.ClientWSMaxHandshakes)
	}
	if o.ClientWSMaxHandshakesPerSource < 0 {
		return fmt.Errorf("-ClientWSMaxHandshakesPerSource=%d: want 0 (no cap) or more", o.ClientWSMaxHandshakesPerSource)
	}
	var err error
	if o.ClientWSTLSCert != "" || o.ClientWSTLSKey != "" {
		o.wsTLS, err = loadTLS("ClientWS", o.ClientWSTLSCert, o.ClientWSTLSKey, "")
		return err
	}
	o.wsTLS = o.clientTLS
	return nil
}

// wsOrigins splits -ClientWSOrigins.
func (o *options) wsOrigins() []string {
	var out []string
	for _, s := range strings.Split(o.ClientWSOrigins, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkAddr checks that addr is host:port with a numeric port and returns
// the port.
func checkAddr(name, addr string) (uint16, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("-%s=%q: %v", name, addr, err)
	}
	if strings.ContainsAny(host, " \t") {
		return 0, fmt.Errorf("-%s=%q: bad host %q", name, addr, host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("-%s=%q: port must be a number from 0 to 65535", name, addr)
	}
	return uint16(p), nil
}

// sameHost reports whether two validated addresses may bind the same
// socket: the same host, or either a wildcard.
func sameHost(a, b string) bool {
	ha, _, _ := net.SplitHostPort(a)
	hb, _, _ := net.SplitHostPort(b)
	return ha == hb || isWildcard(ha) || isWildcard(hb)
}

func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}

// mayBeLoopback reports whether the validated address addr may accept
// connections from this host only: a loopback IP, or the name localhost,
// which checkBoundLoopback then decides by the IP the listener bound (a
// name can resolve to anything: /etc/hosts, a resolver). An empty host, a
// wildcard, another IP or any other name may be reachable from elsewhere.
func mayBeLoopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkBoundLoopback checks, for a server port without a password, that
// the address its listener bound is a loopback IP: "localhost" in
// -ServerAddr may resolve to any address. Its error is one line that names
// the flags.
func checkBoundLoopback(o *options, bound net.Addr) error {
	if o.ServerAuthPassword != "" || o.serverKeys != nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(bound.String())
	if err == nil && ap.Addr().Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("-ServerAuthPassword is empty but -ServerAddr=%s bound %s, which is not a loopback address: set a password (-ServerAuthPasswordFile or $%s), give servers their keys (-ServerKeyFile), or listen on a loopback IP such as 127.0.0.1:0", o.ServerAddr, bound, authPasswordEnv)
}

// size is a flag holding a byte count: plain bytes ("65536", "64B") or a
// K, M or G suffix, 1024-based ("64K", "1M"). String prints it the same
// way, so -h shows "512K", not 524288.
type size int

func (s *size) String() string { return formatSize(int(*s)) }

func (s *size) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = size(n)
	return nil
}

// units maps a size suffix (lower case) to its multiplier.
var units = map[string]int{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
}

// parseSize parses a size as size.Set documents.
func parseSize(v string) (int, error) {
	s := strings.TrimSpace(v)
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("negative size")
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, errors.New("want a number of bytes, optionally with a B, K, M or G suffix")
	}
	mult, ok := units[strings.ToLower(s[i:])]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q: want B, K, M or G", s[i:])
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n > math.MaxInt/int64(mult) {
		return 0, errors.New("size too large")
	}
	return int(n) * mult, nil
}

// formatSize prints n in the largest unit that divides it exactly.
func formatSize(n int) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.Itoa(n>>30) + "G"
	case n != 0 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "M"
	case n != 0 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "K"
	}
	return strconv.Itoa(n) + "B"
}

// gatewayConfig builds the gateway's configuration from validated options:
// the buffer pool, then every field. Errors are one line.
func (o *options) gatewayConfig() (gateway.Config, error) {
	pool, err := slab.New(o.MemPoolType, int(o.MemPoolMinChunk), int(o.MemPoolMaxChunk), o.MemPoolFactor, int(o.MemPoolPageSize))
	if errors.Is(err, slab.ErrUnknownKind) {
		return gateway.Config{}, fmt.Errorf("-MemPoolType=%q: want sync, atom, chan or none", o.MemPoolType)
	}
	if err != nil {
		return gateway.Config{}, fmt.Errorf("-MemPool flags: %s", strings.TrimPrefix(err.Error(), "fastway: "))
	}
	cfg := gateway.Config{
		MaxPacket:                     int(o.MaxPacket),
		LargeFrameBudget:              int64(o.LargeFrameBudget),
		LargeFrameBudgetPerSource:     int64(o.LargeFrameBudgetPerSource),
		ClientSendQueueBytes:          int(o.ClientSendQueueBytes),
		ServerSendQueueBytes:          int(o.ServerSendQueueBytes),
		ServerSendQueueBytesPerClient: int(o.ServerSendQueueBytesPerClient),
		MemPool:                       pool,
		ClientMaxConns:                o.ClientMaxConns,
		ClientMaxConn:                 o.ClientMaxConn,
		ClientMaxServerConns:          o.ClientMaxServerConns,
		ClientBufferSize:              int(o.ClientBufferSize),
		ClientIdleTimeout:             never(o.ClientIdleTimeout),
		ClientSendChanSize:            o.ClientSendChanSize,
		ServerAuthPassword:            o.ServerAuthPassword,
		ServerKeys:                    o.serverKeys,
		ServerAuthTimeout:             o.ServerAuthTimeout,
		ServerMaxHandshakes:           unlimited(o.ServerMaxHandshakes),
		ServerMaxHandshakesPerSource:  unlimited(o.ServerMaxHandshakesPerSource),
		ServerAuthFailBurst:           unlimited(o.ServerAuthFailBurst),
		ServerAuthFailInterval:        o.ServerAuthFailInterval,
		ServerBufferSize:              int(o.ServerBufferSize),
		ServerIdleTimeout:             never(o.ServerIdleTimeout),
		ServerSendChanSize:            o.ServerSendChanSize,
		ServerMaxGroups:               unlimited(o.ServerMaxGroups),
		ServerMaxMemberships:          unlimited(o.ServerMaxMemberships),
	}
	// The derived -ClientMaxConns also keeps out of the clients' reach the
	// connections an snet port holds in their handshake, before the
	// gateway sees them (snet.DefaultMaxHandshakes each).
	cfg.FDReserve = gateway.DefaultFDReserve(cfg)
	for _, on := range []bool{o.ClientSnetEnable, o.ServerSnetEnable} {
		if on {
			cfg.FDReserve += snet.DefaultMaxHandshakes
		}
	}
	// So do the WebSocket port's handshakes in progress: not links yet,
	// they are not counted in ClientMaxConns.
	if o.ClientWSAddr != "" {
		cfg.FDReserve += o.ClientWSMaxHandshakes
	}
	if err := cfg.Validate(); err != nil {
		return gateway.Config{}, errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return cfg, nil
}

// unlimited maps the flags' "0: no limit" to the gateway's negative value
// (its 0 means the default).
func unlimited(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// never maps the flags' "0: never" to the gateway's negative timeout.
func never(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
