package gateway

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
)

// bytesPool tracks the bytes of the gateway's buffers in use (allocated and
// not yet freed, by capacity) and their peak.
type bytesPool struct {
	slab.Pool
	inUse, peak atomic.Int64
}

func (p *bytesPool) Alloc(n int) []byte {
	b := p.Pool.Alloc(n)
	v := p.inUse.Add(int64(cap(b)))
	for {
		old := p.peak.Load()
		if v <= old || p.peak.CompareAndSwap(old, v) {
			return b
		}
	}
}

func (p *bytesPool) Free(b []byte) {
	p.inUse.Add(-int64(cap(b)))
	p.Pool.Free(b)
}

// resetPeak sets the peak to the current level and returns it.
func (p *bytesPool) resetPeak() int64 {
	v := p.inUse.Load()
	p.peak.Store(v)
	return v
}

// TestHardeningSlowConsumer: one server streams numbered messages to 100
// clients. In phase A the 99 honest clients alone receive rounds rounds (one
// message each per round); in phase B the server also pushes a 4 KiB frame
// per round, at full speed, to a 100th client that never reads. That client
// is disconnected as a slow consumer within a bounded time and with bounded
// memory (the gateway holds less than ClientSendQueueBytes plus one frame
// for it, queued and being written),
// while the 99 lose nothing and keep their throughput.
//
// The server runs at most window rounds ahead of the slowest honest client
// (an application's flow control); it does not wait for the slow one.
func TestHardeningSlowConsumer(t *testing.T) {
	const honest, window, msgSize, slowSize = 99, 256, 64, 4 << 10
	rounds := scaled(3000, 1500, 500)
	pool := &bytesPool{Pool: slab.NewAtomPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor, slab.DefaultPageSize)}
	g := startGW(t, Config{MemPool: pool})
	queueBytes := g.Config().ClientSendQueueBytes

	srv := newRawConn(dialRaw(t, g.serverAddr))
	if err := proto.AuthenticateToGateway(srv, testKey, 1, waitFor); err != nil {
		t.Fatal(err)
	}
	srv.Write(proto.Command{Type: proto.CmdPing}.Encode(nil))
	if c, err := srv.readCmd(); err != nil || c.Type != proto.CmdPing {
		t.Fatalf("server ping: %+v, %v", c, err)
	}

	// Clients: 99 honest, then the slow one, which never reads and keeps a
	// small receive buffer.
	ids := make([]uint32, honest+1)
	conns := make([]*rawConn, honest+1)
	for i := range conns {
		c := newRawConn(dialRaw(t, g.clientAddr))
		if i == honest {
			c.Conn.(*net.TCPConn).SetReadBuffer(4 << 10)
		}
		c.SetDeadline(time.Now().Add(waitFor))
		c.Write(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))
		a, err := c.readCmd()
		if err != nil || a.Type != proto.CmdAccept {
			t.Fatalf("client %d: %+v, %v", i, a, err)
		}
		if k, err := srv.readCmd(); err != nil || k.Type != proto.CmdConnect || k.ConnID != a.ConnID {
			t.Fatalf("server: %+v, %v", k, err)
		}
		c.SetDeadline(time.Time{})
		ids[i], conns[i] = a.ConnID, c
	}
	slowID := ids[honest]

	// The honest readers check every frame and count, until the test ends.
	var received [honest]atomic.Int64
	var errs collector
	var readers sync.WaitGroup
	var finished atomic.Bool
	for i := range honest {
		readers.Add(1)
		go func() {
			defer readers.Done()
			c := conns[i]
			f := make([]byte, proto.HeaderSize+msgSize)
			for seq := uint32(0); ; seq++ {
				c.SetReadDeadline(time.Now().Add(4 * waitFor))
				if _, err := io.ReadFull(c.r, f); err != nil {
					if !finished.Load() {
						errs.fail("client %d: frame %d: %v", i, seq, err)
					}
					return
				}
				h := proto.Header(f)
				if h.Length() != proto.SizeOfConnID+msgSize || h.ConnID() != ids[i] || binary.LittleEndian.Uint32(f[proto.HeaderSize:]) != seq {
					errs.fail("client %d: frame %x, want message %d on ConnID %d", i, f[:12], seq, ids[i])
					return
				}
				received[i].Add(1)
			}
		}()
	}
	minReceived := func() int64 {
		m := received[0].Load()
		for i := range received {
			m = min(m, received[i].Load())
		}
		return m
	}

	// The server's reader watches for the slow client's Close.
	var slowClosed atomic.Bool
	slowClosedAt := make(chan time.Time, 1)
	go func() {
		for {
			c, err := srv.readCmd()
			if err != nil {
				return
			}
			if c.Type == proto.CmdClose && c.ConnID == slowID && !slowClosed.Swap(true) {
				slowClosedAt <- time.Now()
			}
		}
	}()

	// stream sends rounds from from on, at least n of them; with slow, also
	// a slowSize frame for the slow client in every round until it is
	// closed, and then it goes on until that happens. It returns the round
	// it stopped before.
	var batch []byte
	slowMsg := make([]byte, slowSize)
	msg := make([]byte, msgSize)
	stream := func(from, n int, slow bool) (int, error) {
		srv.SetWriteDeadline(time.Now().Add(4 * waitFor))
		r := from
		for ; r < from+n || (slow && !slowClosed.Load()); r++ {
			if r > from+20*n {
				return r, fmt.Errorf("slow client not disconnected after %d rounds; stats %+v", r-from, g.Stats())
			}
			for int64(r)-minReceived() >= window {
				if err := errs.get(); err != nil {
					return r, err
				}
				runtime.Gosched()
			}
			batch = batch[:0]
			binary.LittleEndian.PutUint32(msg, uint32(r))
			for i := range honest {
				batch = proto.EncodeData(batch, ids[i], msg)
			}
			if slow && !slowClosed.Load() {
				batch = proto.EncodeData(batch, slowID, slowMsg)
			}
			if _, err := srv.Write(batch); err != nil {
				return r, err
			}
		}
		return r, nil
	}
	// Heap in use, sampled every 10 ms in both phases.
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	// phase streams rounds [from, to) and returns how long the honest
	// clients took to get them, the peak of the gateway's buffers in use
	// above their level at the start, and the same for the heap.
	phase := func(from int, slow bool) (int, time.Duration, int64, int64) {
		t.Helper()
		base := heapInuse()
		peak.Store(base)
		poolBase := pool.resetPeak()
		start := time.Now()
		to, err := stream(from, rounds, slow)
		if err != nil {
			t.Fatalf("server: %v", err)
		}
		eventually(t, "honest clients caught up", func() bool { errs.check(t); return minReceived() == int64(to) })
		return to, time.Since(start), pool.peak.Load() - poolBase, int64(peak.Load() - base)
	}

	base := heapInuse()
	endA, timeA, bufA, heapA := phase(0, false)
	phaseB := time.Now()
	endB, timeB, bufB, heapB := phase(endA, true)
	disconnect := (<-slowClosedAt).Sub(phaseB)
	close(stopSampling)
	<-sampled
	st := g.Stats()
	finished.Store(true)
	for _, c := range conns {
		c.Close()
	}
	readers.Wait()
	errs.check(t)
	residual := int64(heapInuse()) - int64(base)
	if n := st.Disconnected(ReasonSlowConsumer); n != 1 {
		t.Fatalf("slow-consumer disconnects = %d, want 1", n)
	}
	for _, r := range Reasons() {
		if r != ReasonSlowConsumer && st.Disconnected(r) != 0 {
			t.Fatalf("%d disconnects for %q", st.Disconnected(r), r)
		}
	}
	rateA := float64(honest*endA) / timeA.Seconds()
	rateB := float64(honest*(endB-endA)) / timeB.Seconds()
	t.Logf("99 honest clients: without the slow client %.0f msg/s (%d rounds in %v), with it %.0f msg/s (%d rounds in %v), ratio %.2f; none lost",
		rateA, endA, timeA.Round(time.Millisecond), rateB, endB-endA, timeB.Round(time.Millisecond), rateB/rateA)
	t.Logf("slow client disconnected %v after it stopped reading (queue limit %s, frames of %d B); gateway buffers in use, peak above the phase's start: %s without, %s with the slow client",
		disconnect.Round(time.Millisecond), mib(int64(queueBytes)), slowSize+proto.HeaderSize, mib(bufA), mib(bufB))
	t.Logf("process heap in use (garbage included), peak above the phase's start: %s without, %s with the slow client; %s after both phases and a GC",
		mib(heapA), mib(heapB), mib(residual))
	if rateB < rateA/2 {
		t.Fatalf("honest throughput with the slow client %.0f msg/s, below half of %.0f", rateB, rateA)
	}
	// What the gateway may hold for the slow client: its queue and the
	// batch its writer took from it and is blocked writing, together under
	// ClientSendQueueBytes plus one frame, each frame in a pool chunk of at
	// most twice its size; plus the honest clients' window and 1 MiB of
	// read buffers.
	if bound := int64(2*(queueBytes+slowSize+proto.HeaderSize) + window*honest*2*(msgSize+proto.HeaderSize) + 1<<20); bufB > bound {
		t.Fatalf("the gateway's buffers grew by %s with the slow client, above %s", mib(bufB), mib(bound))
	}
	if pool.inUse.Load() > 1<<20 {
		t.Fatalf("%s of buffers still in use after the slow client left", mib(pool.inUse.Load()))
	}
}
