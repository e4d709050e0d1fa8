package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// Phases of a run, read by every connection's goroutine per message.
const (
	phaseWarmup  int32 = iota // load runs, nothing is counted
	phaseMeasure              // messages are counted and timed
	phaseStop                 // nothing more is sent; connections are closing
)

// echoConn is a client connection in echo mode. Its goroutine owns every
// field until it returns.
type echoConn struct {
	*client
	hist histogram
	rtts uint64 // round trips completed in the measured window
	bad  uint64 // frames that came back wrong (size, timestamp)
}

func runEcho(ctx context.Context, cfg *config, src srcAddrs, r *report) error {
	frameSize := proto.HeaderSize + cfg.size
	bufSize := max(4<<10, 2*frameSize)
	clients, err := dialClients(ctx, cfg, src, cfg.vconns, bufSize, nil)
	if err != nil {
		return err
	}
	conns := make([]*echoConn, len(clients))
	for i, c := range clients {
		conns[i] = &echoConn{client: c}
	}
	perConn := float64(cfg.rate) / float64(len(clients))
	w, errs, err := runClients(ctx, cfg, clients, func(i int, phase *atomic.Int32) error {
		if cfg.rate > 0 {
			// Connections start spread over one sending period, so they
			// do not all send at the same instant.
			offset := time.Duration(float64(i) / float64(len(clients)) * float64(pacedTick(perConn)))
			return conns[i].runPaced(frameSize, perConn, offset, phase)
		}
		return conns[i].run(cfg, frameSize, phase)
	})
	if err != nil {
		return err
	}

	var (
		h         histogram
		rtts, bad uint64
	)
	for i, c := range conns {
		h.merge(&c.hist)
		rtts += c.rtts
		bad += c.bad
		r.fail(errs[i])
	}
	if bad > 0 {
		r.fail(fmt.Errorf("%d echoed frames came back malformed", bad))
	}
	if rtts == 0 {
		r.fail(fmt.Errorf("no message came back in the measured window"))
	}
	addCommon(r, cfg)
	r.int("vconns", int64(cfg.vconns))
	if cfg.rate > 0 {
		r.int("rate", int64(cfg.rate))
	} else {
		r.int("k", int64(cfg.k))
	}
	r.int("size", int64(cfg.size))
	r.add("dur", cfg.dur.String())
	r.int("rtts", int64(rtts))
	w.addRate(r, rtts, "rtt_per_s")
	if s := w.seconds(); s > 0 {
		r.float("mib_per_s", float64(rtts)*float64(cfg.size)/s/(1<<20), 2)
	}
	r.micros("p50_us", h.percentile(0.50))
	r.micros("p99_us", h.percentile(0.99))
	r.micros("p999_us", h.percentile(0.999))
	r.micros("max_us", h.max)
	w.addTarget(r, rtts, "msgs_per_gw_cpu_s")
	w.addSelf(r)
	return nil
}

// run sends K messages on each virtual connection, then sends each one
// again as soon as it comes back, stamped with the time. The replies to one
// read go out in one write.
func (c *echoConn) run(cfg *config, frameSize int, phase *atomic.Int32) error {
	out := make([]byte, 0, len(c.ids)*cfg.k*frameSize)
	now := nowNS()
	for _, id := range c.ids {
		for range cfg.k {
			n := len(out)
			out = out[:n+frameSize] // fresh capacity: the payload is zeros
			proto.PutHeader(out[n:], id)
			binary.LittleEndian.PutUint64(out[n+proto.HeaderSize:], uint64(now))
		}
	}
	return c.pump(out, phase, func(f, out []byte) ([]byte, error) {
		t, err := c.received(f, frameSize, phase)
		if t == 0 || err != nil {
			return out, err
		}
		n := len(out)
		out = append(out, f...)
		binary.LittleEndian.PutUint64(out[n+proto.HeaderSize:], uint64(t))
		return out, nil
	})
}

// received checks and times one frame that came back: t is when, for a
// good echo (0 for anything else); errStop says the run is over.
func (c *echoConn) received(f []byte, frameSize int, phase *atomic.Int32) (t int64, err error) {
	if proto.Header(f).ConnID() == 0 {
		return 0, c.command(f)
	}
	if len(f) != frameSize {
		c.bad++
		return 0, nil
	}
	t = nowNS() // > 0: time since the process started
	sent := int64(binary.LittleEndian.Uint64(f[proto.HeaderSize:]))
	if sent > t {
		c.bad++
		return 0, nil
	}
	switch phase.Load() {
	case phaseStop:
		return 0, errStop
	case phaseMeasure:
		c.hist.record(uint64(t - sent))
		c.rtts++
	}
	return t, nil
}

// pacedTick is how often a paced connection sending perConn messages a
// second wakes to send: once per message, but not more than every
// minPacedSleep (it then sends the messages that fell due together).
func pacedTick(perConn float64) time.Duration {
	return max(minPacedSleep, time.Duration(float64(time.Second)/perConn))
}

// maxPacedBurst bounds the messages one wake-up of a paced sender writes
// (a sender that fell far behind catches up over several).
const maxPacedBurst = 4096

// runPaced is the open loop (-rate): a sender goroutine writes perConn
// messages a second, round-robin over the virtual connections, and this
// goroutine reads and times the echoes. The first message is due offset
// after the start. Messages carry the time they are written, not the time
// they fell due: the bench's own timer jitter is not the target's latency,
// and as the sender never waits for echoes, a stalled target cannot delay
// its sends (until socket buffers fill, far above the rates this is for).
//
// The sender ends with this goroutine: when the reading stops (the run is
// over, or a read failed) the sender is told to stop and waited for.
func (c *echoConn) runPaced(frameSize int, perConn float64, offset time.Duration, phase *atomic.Int32) error {
	sendErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() { sendErr <- c.sendPaced(frameSize, perConn, nowNS()+int64(offset), phase, stop) }()
	err := c.pump(nil, phase, func(f, out []byte) ([]byte, error) {
		_, err := c.received(f, frameSize, phase)
		return out, err
	})
	close(stop)
	if serr := <-sendErr; err == nil {
		err = serr
	}
	return err
}

// minPacedSleep is the shortest a paced sender sleeps: above 1,000 messages
// a second per connection it sends the ones that fell due together.
const minPacedSleep = time.Millisecond

// sendPaced writes the messages of runPaced from t0 on, each when it falls
// due (every 1/perConn s), until the run stops, stop is closed or a write
// fails.
func (c *echoConn) sendPaced(frameSize int, perConn float64, t0 int64, phase *atomic.Int32, stop <-chan struct{}) error {
	every := float64(time.Second) / perConn // nanoseconds between messages
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var out []byte
	var sent int64
	for phase.Load() != phaseStop {
		now := nowNS()
		due := int64(0)
		if now >= t0 {
			due = int64(float64(now-t0)/every) + 1
		}
		for n := 0; sent < due && n < maxPacedBurst; n++ {
			i := len(out)
			out = append(out, make([]byte, frameSize)...)
			proto.PutHeader(out[i:], c.ids[sent%int64(len(c.ids))])
			binary.LittleEndian.PutUint64(out[i+proto.HeaderSize:], uint64(now))
			sent++
		}
		if len(out) > 0 {
			if _, err := c.conn.Write(out); err != nil {
				return c.fail(phase, err)
			}
			out = out[:0]
		}
		if sent < due {
			continue // behind: catch up at once
		}
		// Sleep until the next message falls due (the first one's due
		// time is t0, which spreads the connections' sends).
		next := t0 + int64(float64(sent)*every)
		timer.Reset(max(time.Duration(next-nowNS()), minPacedSleep))
		select {
		case <-timer.C:
		case <-stop:
			return nil
		}
	}
	return nil
}

// command handles a command frame on an echo client: the target closing a
// virtual connection is a failure; Ping answers are ignored.
func (c *client) command(f []byte) error {
	cmd, err := proto.DecodeCommand(f)
	if err != nil {
		return err
	}
	if cmd.Type == proto.CmdClose {
		return fmt.Errorf("the target closed virtual connection %d", cmd.ConnID)
	}
	return nil
}

// fail returns err with the connection's index, or nil once the run is
// stopping (the error is then the bench closing the socket).
func (c *client) fail(phase *atomic.Int32, err error) error {
	if phase.Load() == phaseStop {
		return nil
	}
	return fmt.Errorf("client %d: %w", c.idx, err)
}

// sleepCtx waits d, or until ctx ends (errInterrupted).
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return errInterrupted
	}
}
