package main

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/fastway-go/fastway/proto"
)

// churnBufSize is a churn client's first read buffer: replies are 13-17
// bytes.
const churnBufSize = 4 << 10

// churnConn is a client connection in churn mode. Its goroutine owns every
// field until it returns.
type churnConn struct {
	*client
	servers int
	hist    histogram
	accepts uint64 // Accepts in the measured window
	refused uint64 // Refuses in the measured window

	sent       []int64 // send times of the outstanding Dials, a ring
	head, n    int
	dialsSoFar int // picks the next server round-robin
}

func runChurn(ctx context.Context, cfg *config, src srcAddrs, r *report) error {
	clients, err := dialClients(ctx, cfg, src, 0, churnBufSize, nil)
	if err != nil {
		return err
	}
	conns := make([]*churnConn, len(clients))
	for i, c := range clients {
		conns[i] = &churnConn{client: c, servers: cfg.servers, sent: make([]int64, cfg.dials)}
	}
	w, errs, err := runClients(ctx, cfg, clients, func(i int, phase *atomic.Int32) error {
		return conns[i].run(cfg.dials, phase)
	})
	if err != nil {
		return err
	}

	var (
		h                histogram
		accepts, refused uint64
	)
	for i, c := range conns {
		h.merge(&c.hist)
		accepts += c.accepts
		refused += c.refused
		r.fail(errs[i])
	}
	if accepts == 0 {
		r.fail(fmt.Errorf("no Dial was accepted in the measured window"))
	}
	addCommon(r, cfg)
	r.int("dials", int64(cfg.dials))
	r.add("dur", cfg.dur.String())
	r.int("accepts", int64(accepts))
	r.int("refused", int64(refused))
	w.addRate(r, accepts, "dials_per_s")
	r.micros("p50_us", h.percentile(0.50))
	r.micros("p99_us", h.percentile(0.99))
	r.micros("p999_us", h.percentile(0.999))
	w.addTarget(r, accepts, "dials_per_gw_cpu_s")
	w.addSelf(r)
	return nil
}

// dial appends a Dial to the next server and notes its send time.
func (c *churnConn) dial(out []byte, now int64) []byte {
	c.sent[(c.head+c.n)%len(c.sent)] = now
	c.n++
	c.dialsSoFar++
	return proto.Command{Type: proto.CmdDial, RemoteID: remoteID(c.servers, c.idx+c.dialsSoFar)}.Encode(out)
}

// reply returns the send time of the oldest outstanding Dial, which the
// reply just read answers (replies come back in order).
func (c *churnConn) reply() (int64, bool) {
	if c.n == 0 {
		return 0, false
	}
	t := c.sent[c.head]
	c.head = (c.head + 1) % len(c.sent)
	c.n--
	return t, true
}

// run keeps dials Dials outstanding: each Accept is answered with Close of
// the new ConnID and a new Dial, each Refuse with a new Dial.
func (c *churnConn) run(dials int, phase *atomic.Int32) error {
	out := make([]byte, 0, dials*(proto.CloseSize+proto.DialSize))
	now := nowNS()
	for range dials {
		out = c.dial(out, now)
	}
	return c.pump(out, phase, func(f, out []byte) ([]byte, error) {
		if proto.Header(f).ConnID() != 0 {
			return out, nil // no data is sent in churn mode
		}
		cmd, err := proto.DecodeCommand(f)
		if err != nil {
			return out, err
		}
		if cmd.Type != proto.CmdAccept && cmd.Type != proto.CmdRefuse {
			return out, nil // Close acknowledgements, Ping answers
		}
		sent, ok := c.reply()
		if !ok {
			return out, fmt.Errorf("%s with no Dial outstanding", cmd.Type)
		}
		t := nowNS()
		p := phase.Load()
		if p == phaseStop {
			return out, errStop
		}
		if cmd.Type == proto.CmdAccept {
			if p == phaseMeasure {
				c.hist.record(uint64(t - sent))
				c.accepts++
			}
			out = proto.Command{Type: proto.CmdClose, ConnID: cmd.ConnID}.Encode(out)
		} else if p == phaseMeasure {
			c.refused++
		}
		return c.dial(out, t), nil
	})
}
