package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// idleBufSize is an idle client's read buffer: it only ever reads Pings.
const idleBufSize = 64

// pingTick is how often the pinger wakes; each time it pings the next
// slice of connections, so that every connection is pinged once per
// -interval and the Pings are spread evenly.
const pingTick = 10 * time.Millisecond

// settleTimeout bounds the wait for every client to have its first Ping
// answered.
const settleTimeout = 60 * time.Second

// idleState is shared by the goroutines of an idle run.
type idleState struct {
	stopping atomic.Bool
	settled  atomic.Int64  // connections whose first Ping was answered
	pongs    atomic.Uint64 // Pings answered
	pings    atomic.Uint64 // Pings sent
	wg       sync.WaitGroup

	mu   sync.Mutex
	errs []error // connections lost before the end
}

func (s *idleState) fail(err error) {
	if s.stopping.Load() {
		return
	}
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

var pingFrame = proto.Command{Type: proto.CmdPing}.Encode(nil)

func runIdle(ctx context.Context, cfg *config, src srcAddrs, r *report) error {
	if cfg.gwpid == 0 {
		r.fail(errors.New("idle without -gwpid measures nothing but the connections"))
	}
	var before procSample
	if cfg.gwpid != 0 {
		var err error
		if before, err = readProc(cfg.gwpid); err != nil {
			return err
		}
	}
	s := &idleState{}
	t0 := time.Now()
	clients, err := dialClients(ctx, cfg, src, cfg.vconns, idleBufSize, func(c *client) error {
		s.wg.Add(1)
		go s.read(c)
		s.pings.Add(1)
		_, err := c.conn.Write(pingFrame)
		return err
	})
	connectTime := time.Since(t0)
	if err != nil {
		s.stopping.Store(true)
		s.wg.Wait()
		return err
	}
	stopPinger := make(chan struct{})
	pingerDone := make(chan struct{})
	go func() {
		defer close(pingerDone)
		s.ping(clients, cfg.interval, stopPinger)
	}()

	err = s.settle(ctx, len(clients))
	w := window{pid: cfg.gwpid}
	var settled procSample
	if err == nil {
		err = sleepCtx(ctx, cfg.warmup)
	}
	if err == nil {
		err = w.begin()
		settled = w.t0
	}
	if err == nil {
		err = sleepCtx(ctx, cfg.dur)
	}
	if err == nil {
		err = w.finish()
	}
	close(stopPinger)
	<-pingerDone
	s.stopping.Store(true)
	closeClients(clients)
	s.wg.Wait()
	if err != nil {
		return err
	}

	for _, e := range s.errs {
		r.fail(e)
	}
	addCommon(r, cfg)
	r.int("vconns", int64(cfg.vconns))
	r.add("interval", cfg.interval.String())
	r.add("dur", cfg.dur.String())
	r.float("connect_s", connectTime.Seconds(), 2)
	r.int("pings", int64(s.pings.Load()))
	r.int("pongs", int64(s.pongs.Load()))
	r.float("window_s", w.seconds(), 2)
	if cfg.gwpid != 0 {
		r.float("gw_cpu_s", w.targetCPU().Seconds(), 2)
		r.float("gw_rss_before_mib", mib(before.rss), 1)
		r.float("gw_rss_settled_mib", mib(settled.rss), 1)
		r.float("gw_rss_mib", mib(w.t1.rss), 1)
		r.float("rss_per_conn_kib", float64(w.t1.rss-before.rss)/float64(cfg.conns)/1024, 2)
	}
	w.addSelf(r)
	return nil
}

// read counts the Pings that come back on c until c is closed.
func (s *idleState) read(c *client) {
	defer s.wg.Done()
	answered := false
	for {
		if err := c.fr.fill(); err != nil {
			s.fail(fmt.Errorf("client %d: %w", c.idx, err))
			return
		}
		for {
			f, err := c.fr.next()
			if err != nil {
				s.fail(fmt.Errorf("client %d: %w", c.idx, err))
				return
			}
			if f == nil {
				break
			}
			if cmd, err := proto.DecodeCommand(f); err == nil && cmd.Type == proto.CmdPing {
				s.pongs.Add(1)
				if !answered {
					answered = true
					s.settled.Add(1)
				}
			}
		}
	}
}

// settle waits until every client has had its first Ping answered.
func (s *idleState) settle(ctx context.Context, n int) error {
	deadline := time.Now().Add(settleTimeout)
	for s.settled.Load() < int64(n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d clients had their first Ping answered within %v", s.settled.Load(), n, settleTimeout)
		}
		if err := sleepCtx(ctx, pingTick); err != nil {
			return err
		}
	}
	return nil
}

// ping sends each client a Ping every interval, spread over the interval,
// until stop is closed. It is the only writer of the clients' sockets once
// they are set up.
func (s *idleState) ping(clients []*client, interval time.Duration, stop <-chan struct{}) {
	ticks := max(int64(interval/pingTick), 1)
	per := int((int64(len(clients)) + ticks - 1) / ticks)
	t := time.NewTicker(pingTick)
	defer t.Stop()
	next := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for range per {
			c := clients[next]
			next = (next + 1) % len(clients)
			if _, err := c.conn.Write(pingFrame); err != nil {
				continue // its reader reports the loss
			}
			s.pings.Add(1)
		}
	}
}
