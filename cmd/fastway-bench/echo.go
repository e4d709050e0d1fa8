package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
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
	errs := make([]error, len(clients))
	var (
		phase atomic.Int32
		wg    sync.WaitGroup
	)
	start := make(chan struct{})
	for i, c := range clients {
		conns[i] = &echoConn{client: c}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = conns[i].run(cfg, frameSize, start, &phase)
		}()
	}
	close(start)

	w, err := measureWindow(ctx, cfg, &phase, clients, &wg)
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
	r.int("k", int64(cfg.k))
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
func (c *echoConn) run(cfg *config, frameSize int, start <-chan struct{}, phase *atomic.Int32) error {
	<-start
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
	return c.pump(out, phase, func(f, out []byte) ([]byte, bool, error) {
		if proto.Header(f).ConnID() == 0 {
			return out, false, c.command(f)
		}
		if len(f) != frameSize {
			c.bad++
			return out, false, nil
		}
		t := nowNS()
		sent := int64(binary.LittleEndian.Uint64(f[proto.HeaderSize:]))
		if sent > t {
			c.bad++
			return out, false, nil
		}
		switch phase.Load() {
		case phaseStop:
			return out, true, nil
		case phaseMeasure:
			c.hist.record(uint64(t - sent))
			c.rtts++
		}
		n := len(out)
		out = append(out, f...)
		binary.LittleEndian.PutUint64(out[n+proto.HeaderSize:], uint64(t))
		return out, false, nil
	})
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
