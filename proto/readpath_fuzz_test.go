package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/fastway-go/fastway/slab"
)

// The gateway's link reader (gateway/link.go readLoop) reads with these
// settings; FuzzReadPath drives a FrameReader the same way.
const (
	linkShareMin     = 1 << 10 // gateway shareMin
	linkMaxReadAhead = 4       // gateway maxReadAhead
)

// maxFuzzStream bounds the bytes one FuzzReadPath input streams.
const maxFuzzStream = 2 << 20

// FuzzReadPath is the differential fuzzer of the gateway's read path: a
// FrameReader over a source that is both a LazyReader and a TryReader, as a
// link is, read exactly as readLoop reads (ReadFrameBorrowed(shareMin),
// ReadMore while no frame is whole, borrowed frames copied at once, frames
// handed out in place held for a while as a writer would), against the plain
// reference parse of the same stream (refParse).
//
// The input steers everything; whatever it leaves open comes from PCG
// generators seeded by seed. conf picks the reader (readPathConfig). frames
// describes the frame stream (genStream), arrivals how it arrives: chunk by
// chunk, each read seeing at most the current chunk, with pauses in which
// nothing has arrived (arrivingSource.nextChunk).
func FuzzReadPath(f *testing.F) {
	f.Add(uint64(0), uint32(0), []byte{}, []byte{})
	f.Add(uint64(1), uint32(31<<10), []byte{}, []byte{3, 3, 3, 0, 5})
	f.Add(uint64(2), uint32(1|20<<10), []byte{6, 7, 8}, []byte{3, 200, 8, 5, 0, 0, 9})
	frames, arrivals := trickleTrigger()
	f.Add(uint64(0), uint32(0), frames, arrivals)
	f.Fuzz(func(t *testing.T, seed uint64, conf uint32, frames, arrivals []byte) {
		cfg := readPathConfig(conf)
		data, endErr := genStream(cfg, seed, frames)
		want, wantErr := refParse(data, cfg.maxPacket)
		if endErr != io.EOF && (wantErr == io.EOF || wantErr == io.ErrUnexpectedEOF) {
			wantErr = endErr
		}
		src := &arrivingSource{t: t, data: data, end: endErr,
			sched: steer{b: arrivals, rng: rand.New(rand.NewPCG(seed, 2))}}
		readPath(t, cfg, src, rand.New(rand.NewPCG(seed, 3)), want, wantErr)
	})
}

// trickleTrigger is the input of the read-path bug an outside review found,
// on a client link (2 KiB buffer): a 45 KiB frame grows the buffer to 64
// KiB; the next 45 KiB frame's tail trickles in as 10 reads of 40 bytes,
// which shrinks the adaptive size to 2 KiB; one burst of 45,136 bytes then
// fills the buffer (the size doubles to 4 KiB) with the rest of it, a
// 15,064-byte frame and the first 4,392 bytes of a 17,393-byte frame. When
// ReadMore makes room for that partial frame, frames handed out in place sit
// before it, so makeRoom moves it to a new buffer of the adaptive size, 4
// KiB: the copy drops 296 bytes, the frame comes out wrong from byte 4096 on,
// and the stream is misaligned after it.
func trickleTrigger() (frames, arrivals []byte) {
	frames = exactFrames(46080, 46080, 15064, 17393, 11679, 5000)
	arrivals = exactArrivals(46080, 46080-1400, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 45136)
	return frames, arrivals
}

// exactFrames encodes frames of the given total sizes for genStream.
func exactFrames(sizes ...int) []byte {
	var b []byte
	for _, n := range sizes {
		b = append(b, kindExact, byte(n-SizeOfLength), byte((n-SizeOfLength)>>8), byte((n-SizeOfLength)>>16))
	}
	return b
}

// exactArrivals encodes chunks of the given sizes for arrivingSource, then
// the rest of the stream at once.
func exactArrivals(sizes ...int) []byte {
	var b []byte
	for _, n := range sizes {
		b = append(b, arriveExact, byte(n), byte(n>>8), byte(n>>16))
	}
	return append(b, arriveRest)
}

// readPathCfg is the reader FuzzReadPath drives.
type readPathCfg struct {
	bufSize   int
	maxPacket int
	pool      int // index into readPathPools
	end       int // how the stream ends, see genStream
	extra     int // random frames after those the input describes
}

var (
	readPathBufSizes = [...]int{2 << 10, 64 << 10, HeaderSize, 64, 512, 4 << 10, 1500, 16 << 10}
	readPathMaxes    = [...]int{DefaultMaxPacket, 64 << 10, 4 << 10, 1 << 20}
	// Shared by every input, as a gateway's pool is by every link; each
	// input sees them through a trackPool.
	fuzzSyncPool = slab.NewSyncPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor)
	fuzzAtomPool = slab.NewAtomPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor, slab.DefaultPageSize)
)

// readPathConfig decodes conf: bits 0-2 the buffer size (2 KiB, the client
// default, first; 64 KiB, the server default, next), 3-5 the pool, 6-7
// MaxPacket, 8-9 the end of the stream, 10-14 how many random frames follow
// those the input describes.
func readPathConfig(conf uint32) readPathCfg {
	return readPathCfg{
		bufSize:   readPathBufSizes[conf&7],
		pool:      int(conf>>3&7) % 5,
		maxPacket: readPathMaxes[conf>>6&3],
		end:       int(conf >> 8 & 3),
		extra:     int(conf >> 10 & 31),
	}
}

// newPool returns the pool of cfg, which checks that everything it handed
// out comes back once.
func (cfg readPathCfg) newPool() balancedPool {
	switch cfg.pool {
	case 1:
		p := newCountingPool()
		p.roundUp = true
		return p
	case 2:
		return newTrackPool(fuzzSyncPool)
	case 3:
		return newTrackPool(fuzzAtomPool)
	case 4:
		return newTrackPool(slab.NoPool{})
	}
	return newCountingPool()
}

// steer hands out the input's bytes, then bytes of rng once they run out.
type steer struct {
	b   []byte
	rng *rand.Rand
}

func (s *steer) explicit() bool { return len(s.b) > 0 }

func (s *steer) byte() byte {
	if len(s.b) == 0 {
		return byte(s.rng.Uint32())
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

// uint returns the next n bytes as a little-endian number.
func (s *steer) uint(n int) int {
	v := 0
	for i := range n {
		v |= int(s.byte()) << (8 * i)
	}
	return v
}

// Frame kinds in genStream's input (the first byte of each frame, mod 16).
const (
	kindExact   = 14 // Length from the next 3 bytes, as is (may be illegal)
	kindExact32 = 15 // Length from the next 4 bytes, as is
)

// errFuzzReset is a source's error other than EOF (a reset connection).
var errFuzzReset = errors.New("fuzz: connection reset")

// genStream returns the frame stream frames describes, cfg.extra random
// frames after it, and how the source ends: io.EOF, or, by cfg.end, a
// stream cut short (1), an error other than EOF (2), an illegal Length
// appended (3). Each frame takes one kind byte, then its size bytes:
// small frames (< 1 KiB) most often, then medium ones (1-65 KiB), sizes
// around the buffer and around 64 KiB, large ones up to MaxPacket, and
// exact Lengths. ConnIDs and bodies are random.
func genStream(cfg readPathCfg, seed uint64, frames []byte) ([]byte, error) {
	s := steer{b: frames, rng: rand.New(rand.NewPCG(seed, 1))}
	rng := rand.New(rand.NewPCG(seed, 4))
	var data []byte
	for extra := 0; len(data) < maxFuzzStream; {
		explicit := s.explicit()
		if !explicit {
			if extra >= cfg.extra {
				break
			}
			extra++
		}
		length := frameLength(cfg, &s, explicit)
		data = binary.LittleEndian.AppendUint32(data, uint32(length))
		if length < MinLength || length > cfg.maxPacket {
			data = appendRandom(data, rng, rng.IntN(16))
			break // nothing after an illegal Length is read
		}
		id := rng.Uint32()
		if rng.IntN(8) == 0 {
			id = 0
		}
		data = binary.LittleEndian.AppendUint32(data, id)
		data = appendRandom(data, rng, length-SizeOfConnID)
	}
	switch cfg.end {
	case 1:
		data = data[:len(data)-rng.IntN(min(len(data), 1<<16)+1)]
	case 2:
		return data, errFuzzReset
	case 3:
		illegal := [...]uint32{0, 1, 3, uint32(cfg.maxPacket) + 1, ^uint32(0)}
		data = binary.LittleEndian.AppendUint32(data, illegal[rng.IntN(len(illegal))])
		data = appendRandom(data, rng, rng.IntN(64))
	}
	return data, io.EOF
}

// frameLength decodes one frame's Length. Only lengths the input gives
// explicitly may be illegal.
func frameLength(cfg readPathCfg, s *steer, explicit bool) int {
	var body int
	switch k := s.byte(); k % 16 {
	case 0, 1, 2, 3, 4:
		body = s.uint(1) | s.uint(1)&3<<8
	case 5:
		body = int(k >> 4) // commands and other tiny frames
	case 6, 7, 8, 9:
		body = 1<<10 + s.uint(2)
	case 10, 11:
		body = cfg.bufSize - HeaderSize + int(int8(s.byte()))/8
	case 12:
		body = maxAdaptiveBuffer - HeaderSize + int(int8(s.byte()))/8
	case 13:
		body = maxAdaptiveBuffer + s.uint(3)%max(1, cfg.maxPacket-maxAdaptiveBuffer)
	case kindExact, kindExact32:
		n := 3
		if k%16 == kindExact32 {
			n = 4
		}
		length := s.uint(n)
		if !explicit && (length < MinLength || length > cfg.maxPacket) {
			length = MinLength + length%(cfg.maxPacket-MinLength+1)
		}
		return length
	}
	return min(max(body, 0)+SizeOfConnID, cfg.maxPacket)
}

func appendRandom(b []byte, rng *rand.Rand, n int) []byte {
	for ; n >= 8; n -= 8 {
		b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
	}
	for ; n > 0; n-- {
		b = append(b, byte(rng.Uint32()))
	}
	return b
}

// Arrival tokens in the arrivals input (a token's first byte, mod 8).
const (
	arrivePause  = 0 // nothing has arrived yet at the next read attempt
	arriveExact  = 6 // a chunk of the next 3 bytes' size
	arriveRest   = 7 // all the rest at once
	maxFuzzChunk = 1 << 20
)

// arrivingSource is a socket as a link sees it: a LazyReader and a
// TryReader over a stream that arrives in chunks (nextChunk): a read
// returns at most what is left of the current chunk. At a pause, a lazy
// read puts its buffer back and gets it again (as readReady does on EAGAIN)
// and TryRead returns 0; a blocking Read waits it out.
type arrivingSource struct {
	t      *testing.T
	data   []byte
	end    error // returned once data is all read
	sched  steer
	left   int // bytes of the current chunk not read yet
	trick  int // chunks of a trickle still to come
	size   int // their size
	noRoom int // Reads into no room
}

// ready reports whether a read attempt finds bytes (or the end) now.
func (s *arrivingSource) ready() bool {
	if s.left > 0 || len(s.data) == 0 {
		return true
	}
	n := s.nextChunk()
	if n == 0 {
		return false // a pause: the next attempt takes the next arrival
	}
	s.left = min(n, len(s.data))
	return true
}

// nextChunk decodes the next arrival: a chunk's size, or 0 for a pause.
func (s *arrivingSource) nextChunk() int {
	if s.trick > 0 {
		s.trick--
		return s.size
	}
	k := s.sched.byte()
	switch k % 8 {
	case arrivePause:
		return 0
	case 1, 2:
		return 1 + int(k>>3) // a tiny chunk
	case 3: // a trickle: many tiny chunks
		s.trick, s.size = 1+int(s.sched.byte()%16), 1+int(s.sched.byte()%64)
		return s.size
	case 4:
		return 1 + s.sched.uint(2)
	case 5:
		return 1 + s.sched.uint(3)%maxFuzzChunk
	case arriveExact:
		return max(1, s.sched.uint(3))
	}
	return len(s.data)
}

func (s *arrivingSource) take(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, s.end
	}
	n := copy(p, s.data[:min(s.left, len(p))])
	s.data, s.left = s.data[n:], s.left-n
	return n, nil
}

// Read is the blocking read (link.Read) the reader uses for what it needs
// buffered and for frames larger than its buffer.
func (s *arrivingSource) Read(p []byte) (int, error) {
	if len(p) == 0 {
		// A socket returns 0, nil; the reader asked to buffer more
		// than its buffer has room for.
		if s.noRoom++; s.noRoom == 1 {
			s.t.Errorf("Read into no room (%d bytes not read yet)", len(s.data))
		}
		return 0, nil
	}
	for !s.ready() {
	}
	return s.take(p)
}

// ReadLazy is link.ReadLazy: get before each attempt, put before waiting.
func (s *arrivingSource) ReadLazy(get func() []byte, put func()) (int, error) {
	for {
		p := get()
		if s.ready() {
			if len(p) == 0 {
				s.t.Fatal("ReadLazy got no room: a socket read would return 0, which is EOF")
			}
			return s.take(p)
		}
		put()
	}
}

// TryRead is link.TryRead: what has arrived, 0 at a pause.
func (s *arrivingSource) TryRead(p []byte) (int, error) {
	if len(p) == 0 {
		s.t.Fatal("TryRead with no room")
	}
	if !s.ready() {
		return 0, nil
	}
	return s.take(p)
}

// heldFrame is a frame the fuzzer keeps, as a writer would until its
// write, with its index in the reference parse.
type heldFrame struct {
	frame  []byte
	shared *Shared
	index  int
}

// readPath reads src as readLoop does and checks it against want and
// wantErr: every frame byte-exact when returned, frames held for a while
// still intact when let go of, nothing lost or added, the same error at the
// end, and every pool buffer and budget byte given back.
func readPath(t *testing.T, cfg readPathCfg, src *arrivingSource, rng *rand.Rand, want [][]byte, wantErr error) {
	pool := cfg.newPool()
	budget := NewBudget(64 << 20)
	fr := NewFrameReader(src, pool, cfg.bufSize, cfg.maxPacket)
	fr.SetBudget(budget)
	var held []heldFrame
	release := func(n int) {
		for _, h := range held[:n] {
			if !bytes.Equal(h.frame, want[h.index]) {
				t.Fatalf("frame %d changed while held: %s", h.index, frameDiff(h.frame, want[h.index]))
			}
			if h.shared != nil {
				h.shared.Release()
			} else {
				pool.Free(h.frame)
			}
		}
		held = append(held[:0], held[n:]...)
	}
	got, ahead := 0, 0
	var err error
	for {
		var frame []byte
		var shared *Shared
		var borrowed bool
		if frame, shared, borrowed, err = fr.ReadFrameBorrowed(linkShareMin); err != nil {
			break
		}
		if got >= len(want) {
			t.Fatalf("frame %d (%d bytes) past the %d of the stream", got, len(frame), len(want))
		}
		if !bytes.Equal(frame, want[got]) {
			t.Fatalf("frame %d of %d: %s", got, len(want), frameDiff(frame, want[got]))
		}
		switch {
		case shared != nil && len(frame) < linkShareMin:
			t.Fatalf("a %d-byte frame was handed out in place", len(frame))
		case borrowed && (shared != nil || len(frame) >= linkShareMin):
			t.Fatalf("a %d-byte frame was borrowed", len(frame))
		case !borrowed:
			held = append(held, heldFrame{frame, shared, got})
		}
		got++
		if len(held) > 0 && rng.IntN(2) == 0 {
			release(rng.IntN(len(held) + 1))
		}
		for ahead < linkMaxReadAhead && !fr.HasFrame() && fr.ReadMore() {
			ahead++
		}
		if !fr.HasFrame() {
			ahead = 0
			if rng.IntN(4) != 0 {
				release(len(held)) // the flush wrote them out
			}
		}
	}
	if errKind(err) != wantErr {
		t.Fatalf("stream ended after %d frames with %v, want %v", got, err, wantErr)
	}
	if got != len(want) {
		t.Fatalf("%d frames read, the stream has %d", got, len(want))
	}
	fr.Release()
	release(len(held))
	pool.checkBalanced(t)
	if n := budget.Used(); n != 0 {
		t.Fatalf("%d budget bytes still reserved", n)
	}
}

// frameDiff describes how got differs from want.
func frameDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("%d bytes, want %d; they differ from byte %d on", len(got), len(want), i)
}

// balancedPool is a pool that can tell whether all it handed out came back.
type balancedPool interface {
	slab.Pool
	checkBalanced(tb testing.TB)
}

// trackPool is countingPool's bookkeeping over a real pool: it records what
// it hands out, poisons what comes back before passing it on, and passes on
// no slice it did not hand out (or a second time).
type trackPool struct {
	inner slab.Pool
	live  map[*byte]int
	bad   int
}

func newTrackPool(inner slab.Pool) *trackPool {
	return &trackPool{inner: inner, live: map[*byte]int{}}
}

func (p *trackPool) Alloc(size int) []byte {
	b := p.inner.Alloc(size)
	if cap(b) == 0 {
		b = make([]byte, size, 1)
	}
	p.live[&b[:1][0]] = size
	return b
}

func (p *trackPool) Free(b []byte) {
	if cap(b) == 0 {
		p.bad++
		return
	}
	ptr := &b[:1][0]
	if _, ok := p.live[ptr]; !ok {
		p.bad++
		return
	}
	delete(p.live, ptr)
	for rest := b[:cap(b)]; len(rest) > 0; {
		rest = rest[copy(rest, poison[:]):]
	}
	p.inner.Free(b)
}

// poison is what trackPool overwrites freed buffers with (0xEE, as
// countingPool), a copy at a time.
var poison = func() (p [4096]byte) {
	for i := range p {
		p[i] = 0xEE
	}
	return p
}()

func (p *trackPool) checkBalanced(tb testing.TB) {
	tb.Helper()
	if len(p.live) != 0 || p.bad != 0 {
		tb.Errorf("pool: %d slices never freed, %d foreign or double frees", len(p.live), p.bad)
	}
}
