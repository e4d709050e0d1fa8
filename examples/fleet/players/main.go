// Command players is the fleet example's load: -players players spread
// round-robin over the gateways' client addresses (-gateways), each one
// client connection with one virtual connection to server -id (the
// examples/fleet backend). It prints one line per gateway and a total, as
// key=value pairs.
//
//	-mode echo    each player keeps one 'E' message in flight for -dur:
//	              round trips, round trips/s, p50/p99/max latency
//	-mode stream  each player joins the backend's room ('J') and counts the
//	              numbered messages it gets until the last (-count of them,
//	              the backend's -stream-count): received, lost (missing
//	              from the sequence), and players whose connection closed
//	              before the end (their gateway went away)
//
// Players first all connect; -ready FILE is written once they have (so a
// script can start the backend's stream, or kill a gateway, after it).
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fastway-go/fastway/proto"
)

type config struct {
	gateways []string
	players  int
	id       uint32
	mode     string
	dur      time.Duration
	size     int
	count    int
	timeout  time.Duration
	ready    string
}

// result is one player's outcome.
type result struct {
	gateway  string
	err      error // connecting failed
	rtts     []time.Duration
	received int
	lost     int
	closed   bool // the connection ended before the last message
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("players", flag.ContinueOnError)
	var c config
	gws := fs.String("gateways", "127.0.0.1:4000", "the gateways' client addresses, comma-separated host:port")
	fs.IntVar(&c.players, "players", 10, "players, spread round-robin over the gateways")
	id := fs.Uint("id", 1, "the backend's server ID")
	fs.StringVar(&c.mode, "mode", "echo", "echo or stream")
	fs.DurationVar(&c.dur, "dur", 5*time.Second, "echo: how long each player sends")
	fs.IntVar(&c.size, "size", 64, "echo: message size in bytes (at least 9)")
	fs.IntVar(&c.count, "count", 1000, "stream: messages the backend publishes (its -stream-count)")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "bound on the whole run")
	fs.StringVar(&c.ready, "ready", "", "file written once every player is connected (and, in stream mode, joined)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c.gateways, c.id = strings.Split(*gws, ","), uint32(*id)
	if c.size < 9 || (c.mode != "echo" && c.mode != "stream") || c.players < 1 {
		fmt.Fprintln(os.Stderr, "players: want -mode echo or stream, -players ≥ 1, -size ≥ 9")
		return 2
	}
	results, err := play(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "players:", err)
		return 1
	}
	fmt.Print(report(c, results))
	for _, r := range results {
		if r.err != nil {
			return 1
		}
	}
	return 0
}

// player is one connected player.
type player struct {
	gateway string
	ep      *proto.EndPoint
	conn    *proto.Conn
}

// play connects every player, signals -ready, then runs the mode.
func play(c config) ([]result, error) {
	deadline := time.Now().Add(c.timeout)
	ps := make([]*player, c.players)
	results := make([]result, c.players)
	var wg sync.WaitGroup
	for i := range ps {
		gw := c.gateways[i%len(c.gateways)]
		results[i].gateway = gw
		wg.Go(func() {
			ep, err := proto.DialClientAddr("tcp", gw, proto.EndPointCfg{})
			if err != nil {
				results[i].err = err
				return
			}
			conn, err := ep.Dial(c.id)
			if err == nil && c.mode == "stream" {
				err = conn.Send([]byte{'J'})
			}
			if err != nil {
				ep.Close()
				results[i].err = err
				return
			}
			ps[i] = &player{gateway: gw, ep: ep, conn: conn}
		})
	}
	wg.Wait()
	defer func() {
		for _, p := range ps {
			if p != nil {
				p.ep.Close()
			}
		}
	}()
	for _, r := range results {
		if r.err != nil {
			return results, nil
		}
	}
	if c.ready != "" {
		if err := os.WriteFile(c.ready, []byte("ready\n"), 0o644); err != nil {
			return nil, err
		}
	}
	for i, p := range ps {
		wg.Go(func() {
			if c.mode == "echo" {
				results[i].rtts, results[i].closed = echo(p, c.size, time.Now().Add(c.dur))
			} else {
				results[i].received, results[i].lost, results[i].closed = stream(p, c.count, deadline)
			}
		})
	}
	wg.Wait()
	return results, nil
}

// echo keeps one message in flight until end and returns the round trips.
func echo(p *player, size int, end time.Time) (rtts []time.Duration, closed bool) {
	msg := make([]byte, size)
	msg[0] = 'E'
	for time.Now().Before(end) {
		t0 := time.Now()
		binary.LittleEndian.PutUint64(msg[1:], uint64(t0.UnixNano()))
		if p.conn.Send(msg) != nil {
			return rtts, true
		}
		m, err := p.conn.Receive()
		if err != nil {
			return rtts, true
		}
		if b, _ := m.([]byte); len(b) != size || b[0] != 'E' || binary.LittleEndian.Uint64(b[1:]) != uint64(t0.UnixNano()) {
			return rtts, true
		}
		rtts = append(rtts, time.Since(t0))
	}
	return rtts, false
}

// stream counts the room's messages until the last one, the connection's
// end or the deadline.
func stream(p *player, count int, deadline time.Time) (received, lost int, closed bool) {
	timer := time.AfterFunc(time.Until(deadline), func() { p.conn.Close() })
	defer timer.Stop()
	next := 0
	for next < count {
		m, err := p.conn.Receive()
		if err != nil {
			return received, lost + count - next, true
		}
		b, _ := m.([]byte)
		if len(b) != 9 || b[0] != 'S' {
			continue
		}
		seq := int(binary.LittleEndian.Uint32(b[1:]))
		if seq < next {
			continue // a repeat would be a bug; not counted as received
		}
		lost += seq - next
		received++
		next = seq + 1
	}
	return received, lost, false
}

// report formats one line per gateway, then the total.
func report(c config, results []result) string {
	var b strings.Builder
	line := func(name string, rs []result) {
		var rtts []time.Duration
		players, failed, closed, received, lost := 0, 0, 0, 0, 0
		for _, r := range rs {
			players++
			if r.err != nil {
				failed++
				continue
			}
			rtts = append(rtts, r.rtts...)
			received += r.received
			if r.closed {
				closed++
				continue
			}
			lost += r.lost
		}
		fmt.Fprintf(&b, "%s mode=%s players=%d failed=%d closed=%d", name, c.mode, players, failed, closed)
		if c.mode == "echo" {
			slices.Sort(rtts)
			q := func(f float64) float64 {
				if len(rtts) == 0 {
					return 0
				}
				return float64(rtts[min(len(rtts)-1, int(f*float64(len(rtts))))].Microseconds())
			}
			fmt.Fprintf(&b, " rtts=%d rtt_per_s=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f", len(rtts),
				float64(len(rtts))/c.dur.Seconds(), q(0.5), q(0.99), q(1))
		} else {
			fmt.Fprintf(&b, " count=%d received=%d lost_on_open=%d", c.count, received, lost)
		}
		b.WriteByte('\n')
	}
	for _, gw := range c.gateways {
		var rs []result
		for _, r := range results {
			if r.gateway == gw {
				rs = append(rs, r)
			}
		}
		line("gateway="+gw, rs)
	}
	line("total", results)
	return b.String()
}
