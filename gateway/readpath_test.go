package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
)

// FuzzGatewayReadPath sends random frame streams through a real gateway
// over loopback sockets, both ways at once: a client writes one to a
// server and the server one to the client, in random chunks with short
// random pauses (there only to vary the timing), and each end checks that
// every frame arrives byte-exact, in order, and nothing else. The server's
// stream has bursts of many small frames, which the gateway packs into
// shared chunks on the client's queue. conf picks the buffer sizes, the
// pool, the number of virtual connections and whether the client's stream
// starts with the trickle-then-burst sequence of proto's FuzzReadPath seed
// (here without the read-by-read pacing of TestReadPathTrickleTrigger).
func FuzzGatewayReadPath(f *testing.F) {
	f.Add(uint64(1), uint32(0))
	f.Add(uint64(2), uint32(1|1<<3|1<<6))
	f.Add(uint64(3), uint32(2|2<<3|2<<6|1<<8))
	f.Add(uint64(4), uint32(3|3<<3|1<<10))
	f.Add(uint64(5), uint32(4|1<<10))
	// Random streams (no trigger) on which the FrameReader of commit
	// d84beec loses buffered bytes: the client's last frame never reaches
	// the server, whose read times out.
	f.Add(uint64(7), uint32(424))
	f.Add(uint64(116), uint32(1010))
	f.Fuzz(runGatewayReadPath)
}

// runGatewayReadPath is one FuzzGatewayReadPath input.
func runGatewayReadPath(t *testing.T, seed uint64, conf uint32) {
	rng := rand.New(rand.NewPCG(seed, 0))
	g := startGW(t, Config{
		ClientBufferSize:   gwBufSizes[conf&7],
		ServerBufferSize:   gwBufSizes[conf>>3&7],
		MemPool:            gwPools[int(conf>>6&3)%len(gwPools)](),
		ClientSendChanSize: 1 << 20, // the client reads as fast as it can, not slow
	})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	ids := make([]uint32, 1+int(conf>>8&3))
	for i := range ids {
		ids[i], _ = open(t, c, s, 1)
	}
	var up, down [][]byte
	if conf>>10&1 != 0 {
		for _, n := range trickleFrames {
			up = append(up, gwFrame(rng, ids[0], n))
		}
	}
	up = append(up, randomFrames(rng, ids, 256<<10, false)...)
	down = randomFrames(rng, ids, 256<<10, true)
	var upChunks []int
	if conf>>10&1 != 0 {
		upChunks = trickleChunks
	}
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	run := func(f func() error) {
		wg.Go(func() { errs <- f() })
	}
	run(func() error { return chunkedWrite(c.conn, up, upChunks, rand.New(rand.NewPCG(seed, 1))) })
	run(func() error { return chunkedWrite(s.conn, down, nil, rand.New(rand.NewPCG(seed, 2))) })
	run(func() error { return expectFrames(s.conn, s.fr, "server", up) })
	run(func() error { return expectFrames(c.conn, c.fr, "client", down) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Nothing else is on its way: each end's next frame is the answer
	// to its Ping.
	c.ping()
	s.ping()
	// Every share of the server's queue the client took is given back
	// once its frames are written (see clientShares).
	srv := g.servers.newest(1)
	eventually(t, "the client's share of the server's queue given back", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.shares == nil || len(srv.shares.bySource) == 0
	})
}

var (
	gwBufSizes = [...]int{0, 64 << 10, 2 << 10, 512, 64, 4 << 10, 1500, 16 << 10}
	gwPools    = [...]func() slab.Pool{
		func() slab.Pool { return nil }, // the default sync pool
		func() slab.Pool {
			return slab.NewAtomPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor, slab.DefaultPageSize)
		},
		func() slab.Pool { return slab.NoPool{} },
	}
)

// The trickle-then-burst sequence (see proto's trickleTrigger): frame
// sizes, and the chunks the first part of the stream arrives in.
var (
	trickleFrames = []int{46080, 46080, 15064, 17393, 11679, 5000}
	trickleChunks = []int{46080, 46080 - 1400, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 45136}
)

// gwFrame returns a data frame of size bytes in all on id, with a random
// body.
func gwFrame(rng *rand.Rand, id uint32, size int) []byte {
	f := make([]byte, size)
	binary.LittleEndian.PutUint32(f, uint32(size-proto.SizeOfLength))
	binary.LittleEndian.PutUint32(f[proto.SizeOfLength:], id)
	for i := proto.HeaderSize; i < size; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(f[i:], w[:])
	}
	return f
}

// randomFrames returns frames of about total bytes on ids: mostly small
// (under 1 KiB), some medium (1-64 KiB), a few large (up to 512 KiB); with
// bursts, also runs of tens to hundreds of small frames.
func randomFrames(rng *rand.Rand, ids []uint32, total int, bursts bool) [][]byte {
	var frames [][]byte
	for n := 0; n < total; {
		id := ids[rng.IntN(len(ids))]
		var sizes []int
		switch k := rng.IntN(20); {
		case bursts && k == 0:
			for range 20 + rng.IntN(400) {
				sizes = append(sizes, proto.HeaderSize+rng.IntN(200))
			}
		case k < 12:
			sizes = []int{proto.HeaderSize + rng.IntN(1<<10-proto.HeaderSize)}
		case k < 19:
			sizes = []int{1<<10 + rng.IntN(63<<10)}
		default:
			sizes = []int{64<<10 + rng.IntN(proto.DefaultMaxPacket-64<<10)}
		}
		for _, size := range sizes {
			frames = append(frames, gwFrame(rng, id, size))
			n += size
		}
	}
	return frames
}

// chunkedWrite writes frames to c as one stream, the first chunks of the
// sizes given, then random ones: tiny, medium, bursts, and now and then a
// trickle of tiny chunks then a burst; with short random pauses between
// some.
func chunkedWrite(c net.Conn, frames [][]byte, chunks []int, rng *rand.Rand) error {
	data := bytes.Join(frames, nil)
	c.SetWriteDeadline(time.Now().Add(waitFor))
	for len(data) > 0 {
		if len(chunks) == 0 && rng.IntN(24) == 0 {
			// A trickle of tiny chunks, then a burst, as in the
			// reviewed sequence but of random sizes.
			for range 4 + rng.IntN(9) {
				chunks = append(chunks, 1+rng.IntN(64))
			}
			chunks = append(chunks, 16<<10+rng.IntN(128<<10))
		}
		var n int
		switch k := rng.IntN(10); {
		case len(chunks) > 0:
			n, chunks = chunks[0], chunks[1:]
			if len(chunks) > 0 && chunks[0] < 64 {
				// A trickle: mostly one read each.
				time.Sleep(500 * time.Microsecond)
			}
		case k < 3:
			n = 1 + rng.IntN(64)
		case k < 6:
			n = 64 + rng.IntN(16<<10)
		case k < 9:
			n = 16<<10 + rng.IntN(256<<10)
		default:
			n = len(data)
		}
		n = min(n, len(data))
		if _, err := c.Write(data[:n]); err != nil {
			return fmt.Errorf("writing %d bytes (%d to go): %w", n, len(data), err)
		}
		data = data[n:]
		if rng.IntN(4) == 0 {
			time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
		}
	}
	return nil
}

// expectFrames reads frames from c, the peer's connection (parsing them
// itself: Length, then the rest), and checks they are want, in order.
// Whatever the peer's FrameReader buffered must be nothing.
func expectFrames(c net.Conn, fr *proto.FrameReader, who string, want [][]byte) error {
	if fr.Buffered() != 0 {
		return fmt.Errorf("%s: %d bytes buffered before the stream", who, fr.Buffered())
	}
	c.SetReadDeadline(time.Now().Add(waitFor))
	r := bufio.NewReaderSize(c, 16<<10)
	var got []byte
	for i, w := range want {
		got = got[:0]
		var hdr [proto.SizeOfLength]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("%s: frame %d of %d: %w", who, i, len(want), err)
		}
		n := int(binary.LittleEndian.Uint32(hdr[:]))
		if n > proto.DefaultMaxPacket {
			return fmt.Errorf("%s: frame %d of %d: Length %d, want %d", who, i, len(want), n, len(w)-proto.SizeOfLength)
		}
		got = append(got, hdr[:]...)
		got = append(got, make([]byte, n)...)
		if _, err := io.ReadFull(r, got[proto.SizeOfLength:]); err != nil {
			return fmt.Errorf("%s: frame %d of %d: %w", who, i, len(want), err)
		}
		if !bytes.Equal(got, w) {
			return fmt.Errorf("%s: frame %d of %d: %s", who, i, len(want), frameDiff(got, w))
		}
	}
	if r.Buffered() != 0 {
		return fmt.Errorf("%s: %d bytes after the last frame", who, r.Buffered())
	}
	return nil
}

// frameDiff describes how got differs from want.
func frameDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("%d bytes (header %x), want %d (header %x); they differ from byte %d on",
		len(got), got[:min(len(got), proto.HeaderSize)], len(want), want[:proto.HeaderSize], i)
}
