package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

// rssKiB returns the resident set size of process pid, in KiB.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// TestRSSAfterBurst measures how much memory fastway gives back after a
// burst, for each pool type: clients send 16 KiB frames for 3 s while the
// server does not read (a stall), so the frames pile up in fastway's queue
// toward it (up to -ServerSendChanSize, 100,000 frames); then the server
// reads everything and the clients go quiet (a Ping every 5 s). It logs
// fastway's RSS before, at the end of the stall, at its peak, when the queue
// has drained, and every 10 s for a minute after.
//
// It runs only when FASTWAY_RSS_POOLS lists the pool types to measure
// (such as sync,atom,chan,none): each takes over a minute and a few GB of
// RAM. FASTWAY_RSS_BIN measures another build. The figures of
// docs/reliability.md ("Memory after a burst") come from it.
func TestRSSAfterBurst(t *testing.T) {
	pools := os.Getenv("FASTWAY_RSS_POOLS")
	if pools == "" {
		t.Skip("set FASTWAY_RSS_POOLS=sync,atom,chan,none to measure")
	}
	bin := binary
	if b := os.Getenv("FASTWAY_RSS_BIN"); b != "" {
		bin = b
	}
	after := time.Duration(envInt(t, "FASTWAY_RSS_AFTER", 60)) * time.Second
	for _, pool := range strings.Split(pools, ",") {
		t.Run(pool, func(t *testing.T) { measureBurst(t, bin, pool, after) })
	}
}

func measureBurst(t *testing.T, bin, pool string, after time.Duration) {
	const clients, size, stall = 8, 16 << 10, 3 * time.Second
	p := startBinary(t, bin, t.TempDir(), append(loopbackArgs, "-MemPoolType="+pool)...)
	clientAddr, serverAddr := p.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)
	pid := p.cmd.Process.Pid

	srv := dialServer(t, serverAddr, 1)
	var quit sync.WaitGroup
	stop := make(chan struct{})
	defer func() { close(stop); quit.Wait() }()
	keepAlive := func(c net.Conn, mu *sync.Mutex) {
		quit.Go(func() {
			tk := time.NewTicker(5 * time.Second)
			defer tk.Stop()
			for {
				select {
				case <-tk.C:
					mu.Lock()
					c.SetWriteDeadline(time.Now().Add(timeout))
					c.Write(proto.Command{Type: proto.CmdPing}.Encode(nil))
					mu.Unlock()
				case <-stop:
					return
				}
			}
		})
	}
	var srvMu sync.Mutex
	keepAlive(srv.conn, &srvMu)

	type client struct {
		*peer
		id uint32
		mu sync.Mutex
	}
	var sent atomic.Int64
	var cls []*client
	for range clients {
		c := &client{peer: dialPeer(t, clientAddr)}
		c.send(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))
		c.id = c.readCmd(proto.CmdAccept).ConnID
		srv.readCmd(proto.CmdConnect)
		keepAlive(c.conn, &c.mu)
		quit.Go(func() { io.Copy(io.Discard, c.conn) }) // the Ping answers
		cls = append(cls, c)
	}
	baseline := rssKiB(t, pid)
	var peak atomic.Int64
	sampling := make(chan struct{})
	quit.Go(func() { // the peak, sampled every 50 ms until the queue drained
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			if r := rssKiB(t, pid); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-tk.C:
			case <-sampling:
				return
			}
		}
	})

	// The stall: the server reads nothing while the clients send.
	burstEnd := time.Now().Add(stall)
	var senders sync.WaitGroup
	for _, c := range cls {
		senders.Go(func() {
			b := proto.EncodeData(nil, c.id, make([]byte, size-proto.HeaderSize))
			for time.Now().Before(burstEnd) {
				c.mu.Lock()
				c.conn.SetWriteDeadline(burstEnd)
				_, err := c.conn.Write(b)
				c.mu.Unlock()
				if err != nil {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						t.Errorf("client write: %v", err)
					}
					return
				}
				sent.Add(1)
			}
		})
	}
	senders.Wait()
	// A write cut by its deadline may have sent part of a frame: finish it.
	for _, c := range cls {
		c.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	endOfStall := rssKiB(t, pid)

	// The server reads everything.
	var got atomic.Int64
	drained := make(chan struct{})
	quit.Go(func() {
		defer close(drained)
		for got.Load() < sent.Load() {
			srv.conn.SetReadDeadline(time.Now().Add(timeout))
			f, err := srv.fr.ReadFrame()
			if err != nil {
				t.Errorf("server read: %v", err)
				return
			}
			if proto.Header(f).ConnID() != 0 {
				got.Add(1)
			}
		}
	})
	select {
	case <-drained:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the server got %d of %d frames in 2 min", got.Load(), sent.Load())
	}
	drainedAt := time.Now()
	atDrain := rssKiB(t, pid)
	close(sampling)
	samples := []string{}
	for d := 10 * time.Second; d <= after; d += 10 * time.Second {
		poll.Until(t, d+time.Second, "time to pass", func() bool { return time.Since(drainedAt) >= d })
		samples = append(samples, fmt.Sprintf("+%v %.1f MiB", d, float64(rssKiB(t, pid))/1024))
	}
	t.Logf("-MemPoolType=%s: %d frames of %d KiB in the %v stall; RSS baseline %.1f MiB, end of stall %.1f MiB, peak %.1f MiB, drained %.1f MiB (%v after the stall); after the drain: %s",
		pool, sent.Load(), size>>10, stall, float64(baseline)/1024, float64(endOfStall)/1024, float64(peak.Load())/1024, float64(atDrain)/1024,
		drainedAt.Sub(burstEnd).Round(100*time.Millisecond), strings.Join(samples, ", "))
	p.mu.Lock()
	for _, l := range p.lines {
		if l.kv["msg"] == "memory released" {
			at, _ := time.Parse(time.RFC3339Nano, l.kv["time"])
			t.Logf("  %+.1fs after the drain: memory released pool_released_bytes=%s forced=%s heap_retained_bytes=%s heap_live_bytes=%s heap_retained_after_bytes=%s",
				at.Sub(drainedAt).Seconds(), l.kv["pool_released_bytes"], l.kv["forced"], l.kv["heap_retained_bytes"], l.kv["heap_live_bytes"], l.kv["heap_retained_after_bytes"])
		}
	}
	p.mu.Unlock()
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
