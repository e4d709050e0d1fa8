// Command backend is the fleet example's server (examples/fleet): one
// logical server over every gateway of a fleet (proto.NewFleet), found in
// etcd (-etcd), from a fixed list (-static) or in DNS (-dns). It echoes
// what players send and streams numbered messages to a fleet-wide room
// (a proto.FleetGroup, one Publish per gateway with members).
//
// Messages, each a data frame on a player's virtual connection (the first
// byte says what it is):
//
//	'E' ...         player → backend: echoed back unchanged
//	'J'             player → backend: join the stream room; each time another
//	                -stream-members players have joined, the backend publishes
//	                -stream-count messages to the room, one every -stream-interval
//	'S' seq total   backend → room: seq from 0 to total-1, both uint32
//	                little-endian
//
// The gateways' password is $FASTWAY_AUTH_PASSWORD or the one line of
// -password-file. The Kubernetes and compose recipes in deploy/ run it,
// and scripts/fleet-netns.sh drives it with examples/fleet/players.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fastway-go/fastway/fleet"
	"github.com/fastway-go/fastway/proto"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Message types, the first byte of every message.
const (
	msgEcho   = 'E'
	msgJoin   = 'J'
	msgStream = 'S'
)

// streamConfig is the stream to the room.
type streamConfig struct {
	members  int           // start once this many players joined (0: never)
	count    int           // messages
	interval time.Duration // between two messages
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	id := fs.Uint("id", 1, "the server ID players dial")
	etcd := fs.String("etcd", "", "etcd endpoints, comma-separated (http://host:2379): discover the gateways registered there")
	prefix := fs.String("etcd-prefix", fleet.DefaultPrefix, "the gateways' -EtcdPrefix")
	static := fs.String("static", "", "the gateways' server addresses, comma-separated host:port (instead of -etcd)")
	dnsName := fs.String("dns", "", "a DNS name whose A/AAAA records are the gateways (with -dns-port), or whose SRV records are (with -dns-service)")
	dnsPort := fs.Int("dns-port", 4001, "the gateways' server port, for -dns A/AAAA records")
	dnsService := fs.String("dns-service", "", "SRV service name for -dns (such as fastway-server); empty: A/AAAA records")
	passwordFile := fs.String("password-file", "", "file whose one line is the gateways' -ServerAuthPassword (default: $FASTWAY_AUTH_PASSWORD)")
	var sc streamConfig
	fs.IntVar(&sc.members, "stream-members", 0, "start a stream each time this many more players have joined the room (0: no stream)")
	fs.IntVar(&sc.count, "stream-count", 1000, "messages the stream publishes to the room")
	fs.DurationVar(&sc.interval, "stream-interval", 2*time.Millisecond, "time between two stream messages")
	logFormat := fs.String("log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *logFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(h)
	key, err := password(*passwordFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		return 2
	}
	var d proto.Discovery
	switch {
	case *etcd != "":
		d = &fleet.Discovery{Etcd: clientv3.Config{Endpoints: strings.Split(*etcd, ","), DialTimeout: 3 * time.Second}, Prefix: *prefix}
	case *static != "":
		d = proto.Static(strings.Split(*static, ",")...)
	case *dnsName != "":
		d = proto.DNS{Name: *dnsName, Port: *dnsPort, Service: *dnsService}
	default:
		fmt.Fprintln(os.Stderr, "backend: give -etcd, -static or -dns")
		return 2
	}
	f, err := proto.NewFleet(proto.FleetConfig{
		EndPoint:  proto.EndPointCfg{ServerID: uint32(*id), AuthKey: key},
		Discovery: d,
		Logger:    log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("fleet backend started", "id", *id, "stream_members", sc.members, "stream_count", sc.count)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	serve(f, sc, log)
	log.Info("fleet backend stopped", "stats", fmt.Sprintf("%+v", f.Stats()))
	return 0
}

// password reads the gateways' password from file, else
// $FASTWAY_AUTH_PASSWORD.
func password(file string) (string, error) {
	if file == "" {
		return os.Getenv("FASTWAY_AUTH_PASSWORD"), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("-password-file=%s: want one line", file)
	}
	return s, nil
}

// serve accepts the virtual connections of every gateway of f until f
// closes, and serves each; it returns once all of them have ended.
func serve(f *proto.Fleet, sc streamConfig, log *slog.Logger) {
	room := f.NewGroup()
	defer room.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	var (
		mu     sync.Mutex
		joined int
	)
	done := make(chan struct{})
	defer close(done)
	join := func(c *proto.FleetConn) {
		if err := room.Join(c); err != nil {
			log.Warn("join", "gateway", c.Gateway(), "err", err)
			return
		}
		mu.Lock()
		joined++
		start := sc.members > 0 && joined%sc.members == 0
		mu.Unlock()
		if start {
			wg.Go(func() { stream(room, sc, done, log) })
		}
	}
	for {
		c, err := f.Accept()
		if err != nil {
			return
		}
		wg.Go(func() { echo(c, join) })
	}
}

// echo serves one player: echoes 'E' messages, joins the room on 'J'.
func echo(c *proto.FleetConn, join func(*proto.FleetConn)) {
	defer c.Close()
	for {
		m, err := c.Receive()
		if err != nil {
			return
		}
		b, _ := m.([]byte)
		if len(b) == 0 {
			continue
		}
		switch b[0] {
		case msgEcho:
			if c.Send(b) != nil {
				return
			}
		case msgJoin:
			join(c)
		}
	}
}

// stream publishes sc.count numbered messages to room.
func stream(room *proto.FleetGroup, sc streamConfig, done <-chan struct{}, log *slog.Logger) {
	log.Info("stream starting", "members", room.Len(), "count", sc.count, "interval", sc.interval)
	t := time.NewTicker(sc.interval)
	defer t.Stop()
	start := time.Now()
	for i := range sc.count {
		msg := make([]byte, 9)
		msg[0] = msgStream
		binary.LittleEndian.PutUint32(msg[1:], uint32(i))
		binary.LittleEndian.PutUint32(msg[5:], uint32(sc.count))
		if err := room.Publish(msg, nil); err != nil {
			log.Warn("publish", "seq", i, "err", err)
		}
		select {
		case <-t.C:
		case <-done:
			return
		}
	}
	log.Info("stream done", "count", sc.count, "took", time.Since(start).Round(time.Millisecond), "members", room.Len())
}
