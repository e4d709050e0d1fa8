package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/fastway-go/fastway/proto"
)

// A receiver process of a fan-out run (-mode fanrecv): -conns client
// connections, one virtual connection each, that read every frame. It
// prints "ready" once they are connected, answers "mark" with the data
// frames received so far, and "stop" with one "lat SEQ SENT NS" line per
// message all its connections received (NS: from SENT to the last of them),
// then "done".

// fanSrcIPs is how many source addresses a receiver process spreads its
// connections over when -srcips is 0.
const fanSrcIPs = 16

// fanSlot counts the connections that received one message (ring: the
// message's number modulo len).
type fanSlot struct {
	got atomic.Int64
}

// fanDone is a message every connection of the process received.
type fanDone struct {
	seq      uint64
	sent, at int64 // Unix ns: written by the publisher, received by the last connection
}

func runFanRecv(ctx context.Context, cfg *config, stdin io.Reader, stdout io.Writer) error {
	// Each receiver process binds its sockets to addresses of its own
	// (fanSrcIPs of them, or -srcips): sockets bound before they connect
	// cannot reuse a port that a closed one holds in TIME_WAIT, and runs
	// one after the other leave thousands.
	n := cfg.srcips
	if n == 0 {
		n = fanSrcIPs
	}
	src, err := newSrcAddrs(cfg.clientAddr, n, cfg.conns)
	if err != nil {
		return err
	}
	src.off = cfg.procIdx * n
	clients, err := dialClients(ctx, cfg, src, 1, 4<<10, nil)
	if err != nil {
		return err
	}
	defer closeClients(clients)
	members := int64(len(clients))
	ring := make([]fanSlot, 4*cfg.window+4*cfg.batch)
	done := make(chan fanDone, len(ring))
	counts := make([]atomic.Uint64, len(clients))
	var wg sync.WaitGroup
	failed := make(chan error, 1)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	var stopping atomic.Bool
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.fr.serve(nil, func(f, out []byte) ([]byte, error) {
				if proto.Header(f).ConnID() == 0 {
					return out, c.command(f)
				}
				p := f[proto.HeaderSize:]
				if len(p) < fanPayloadMin {
					return out, fmt.Errorf("a %d-byte message", len(p))
				}
				counts[i].Add(1)
				seq := binary.LittleEndian.Uint64(p)
				if ring[seq%uint64(len(ring))].got.Add(1) == members {
					done <- fanDone{seq: seq, sent: int64(binary.LittleEndian.Uint64(p[8:])), at: wallNS()}
				}
				return out, nil
			}, func(b []byte) error { _, err := c.conn.Write(b); return err })
			if err != nil && !stopping.Load() {
				fail(fmt.Errorf("client %d: %w", c.idx, err))
			}
		}()
	}
	fmt.Fprintln(stdout, "ready")

	// The collector: completed messages, in order, acknowledged on the
	// first connection every -batch messages.
	var mu sync.Mutex
	var results []fanDone
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		complete := map[uint64]bool{}
		var next, acked uint64
		ack := clients[0]
		for d := range done {
			ring[d.seq%uint64(len(ring))].got.Store(0)
			mu.Lock()
			results = append(results, d)
			mu.Unlock()
			complete[d.seq] = true
			for complete[next] {
				delete(complete, next)
				next++
			}
			if next >= acked+uint64(cfg.batch) {
				acked = next
				if _, err := ack.conn.Write(proto.EncodeData(nil, ack.ids[0], fanAck(cfg.procIdx, next))); err != nil && !stopping.Load() {
					fail(fmt.Errorf("ack: %w", err))
				}
			}
		}
	}()

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case l, ok := <-lines:
			if !ok || l == "stop" {
				stopping.Store(true)
				closeClients(clients)
				wg.Wait()
				close(done)
				<-collected
				w := bufio.NewWriter(stdout)
				for _, d := range results {
					fmt.Fprintf(w, "lat %d %d %d\n", d.seq, d.sent, d.at-d.sent)
				}
				fmt.Fprintln(w, "done")
				return w.Flush()
			}
			if l == "mark" {
				var total uint64
				for i := range counts {
					total += counts[i].Load()
				}
				fmt.Fprintf(stdout, "mark %d\n", total)
			}
		case err := <-failed:
			stopping.Store(true)
			closeClients(clients)
			wg.Wait()
			return err
		case <-ctx.Done():
			stopping.Store(true)
			closeClients(clients)
			wg.Wait()
			return errInterrupted
		}
	}
}
