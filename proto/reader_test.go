package proto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/fastway-go/fastway/slab"
)

// countingPool is a slab.Pool that records every Alloc and Free, so a test
// can see what a FrameReader allocated and whether it gave everything back.
// It overwrites freed buffers with 0xEE. With roundUp it hands out slices
// whose capacity is the next power of two, as a size-class pool does.
type countingPool struct {
	roundUp bool

	mu      sync.Mutex
	sizes   []int         // size of every Alloc, in order
	ptrs    []*byte       // first byte of every Alloc, in order
	live    map[*byte]int // outstanding slices: first byte → size
	frees   int           // Frees of slices this pool handed out
	foreign int           // Frees of slices it did not hand out (or twice)
}

func newCountingPool() *countingPool { return &countingPool{live: map[*byte]int{}} }

func (p *countingPool) Alloc(size int) []byte {
	c := max(size, 1)
	if p.roundUp {
		c = 1
		for c < size {
			c <<= 1
		}
	}
	b := make([]byte, size, c)
	ptr := &b[:1][0]
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sizes = append(p.sizes, size)
	p.ptrs = append(p.ptrs, ptr)
	p.live[ptr] = size
	return b
}

func (p *countingPool) Free(b []byte) {
	if cap(b) == 0 {
		p.mu.Lock()
		p.foreign++
		p.mu.Unlock()
		return
	}
	ptr := &b[:1][0]
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.live[ptr]; !ok {
		p.foreign++
		return
	}
	delete(p.live, ptr)
	p.frees++
	// Poison what comes back, so a frame used after its buffer was freed
	// reads as garbage.
	b = b[:cap(b)]
	for i := range b {
		b[i] = 0xEE
	}
}

// allocs returns the sizes of every Alloc so far.
func (p *countingPool) allocs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.sizes...)
}

// outstanding returns how many slices were allocated and not freed.
func (p *countingPool) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// isLive reports whether b starts a slice this pool handed out and that is
// not freed yet.
func (p *countingPool) isLive(b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.live[&b[:1][0]]
	return ok
}

// checkBalanced fails the test unless every slice was freed exactly once.
func (p *countingPool) checkBalanced(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.live) != 0 || p.foreign != 0 {
		tb.Errorf("pool: %d slices never freed, %d foreign or double frees (allocs %v)", len(p.live), p.foreign, p.sizes)
	}
}

// countingReader counts the bytes and Read calls that pass through it.
type countingReader struct {
	r     io.Reader
	n     int // bytes returned
	reads int // Read calls
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// exactReader serves its bytes and then fails the test if it is read again:
// it proves a FrameReader stopped where it had to.
type exactReader struct {
	tb   testing.TB
	data []byte
}

func (e *exactReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		e.tb.Errorf("FrameReader read past the %s", "bytes it needed")
		return 0, errors.New("read past the end")
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

// readerShapes are the ways a stream can be chopped into Reads.
var readerShapes = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one-byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data-err", iotest.DataErrReader},
	{"one-byte-data-err", func(r io.Reader) io.Reader { return iotest.DataErrReader(iotest.OneByteReader(r)) }},
}

// readAll reads frames until an error, copies each frame out, frees it to
// pool and returns the copies with the error that ended the stream.
func readAll(tb testing.TB, fr *FrameReader, pool slab.Pool) ([][]byte, error) {
	tb.Helper()
	var frames [][]byte
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if f != nil {
				tb.Errorf("ReadFrame returned a frame (%d bytes) with error %v", len(f), err)
			}
			return frames, err
		}
		checkFrame(tb, f)
		frames = append(frames, append([]byte(nil), f...))
		pool.Free(f)
		if len(frames) > 1<<16 {
			tb.Fatal("ReadFrame never ends")
		}
	}
}

// checkFrame fails unless f is one whole frame whose Length field matches
// its size.
func checkFrame(tb testing.TB, f []byte) {
	tb.Helper()
	if len(f) < HeaderSize {
		tb.Fatalf("frame of %d bytes is shorter than a header", len(f))
	}
	if l := Header(f).Length(); int(l) != len(f)-SizeOfLength {
		tb.Fatalf("frame Length %d but %d bytes", l, len(f))
	}
}

// stream concatenates frames.
func stream(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// framesEqual fails unless got and want hold the same frames.
func framesEqual(tb testing.TB, got, want [][]byte) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			tb.Fatalf("frame %d = %x, want %x", i, got[i], want[i])
		}
	}
}

func TestFrameReaderGolden(t *testing.T) {
	want := [][]byte{unhex(t, goldenDial), unhex(t, goldenAccept), unhex(t, goldenData)}
	in := stream(want...)
	for _, shape := range readerShapes {
		for _, bufSize := range []int{0, 1, HeaderSize, 9, 13, 16, 17, 64} {
			for _, roundUp := range []bool{false, true} {
				name := fmt.Sprintf("%s/buf%d/roundUp=%v", shape.name, bufSize, roundUp)
				t.Run(name, func(t *testing.T) {
					pool := newCountingPool()
					pool.roundUp = roundUp
					fr := NewFrameReader(shape.wrap(bytes.NewReader(in)), pool, bufSize, 0)
					got, err := readAll(t, fr, pool)
					if !errors.Is(err, io.EOF) {
						t.Fatalf("end of stream: %v, want io.EOF", err)
					}
					framesEqual(t, got, want)
					fr.Release()
					pool.checkBalanced(t)
				})
			}
		}
	}
}

func TestFrameReaderSeveralFramesOneRead(t *testing.T) {
	want := [][]byte{
		unhex(t, goldenDial),
		unhex(t, goldenAccept),
		unhex(t, goldenData),
		Command{Type: CmdPing}.Encode(nil),
		Command{Type: CmdClose, ConnID: 9527}.Encode(nil),
	}
	cr := &countingReader{r: bytes.NewReader(stream(want...))}
	pool := newCountingPool()
	fr := NewFrameReader(cr, pool, 0, 0)
	for i, w := range want {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(f, w) {
			t.Fatalf("frame %d = %x, want %x", i, f, w)
		}
		pool.Free(f)
		if cr.reads != 1 {
			t.Fatalf("after frame %d: %d Reads, want 1 (all frames arrived in one)", i, cr.reads)
		}
		if wantBuf := len(stream(want[i+1:]...)); fr.Buffered() != wantBuf {
			t.Fatalf("after frame %d: Buffered() = %d, want %d", i, fr.Buffered(), wantBuf)
		}
	}
	if _, err := fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	fr.Release()
	pool.checkBalanced(t)
}

func TestFrameReaderOneByteReads(t *testing.T) {
	var want [][]byte
	for _, c := range allCommands() {
		want = append(want, c.Encode(nil))
	}
	want = append(want, unhex(t, goldenData), EncodeData(nil, 1, nil), EncodeData(nil, 2, bytes.Repeat([]byte("x"), 5000)))
	in := stream(want...)
	cr := &countingReader{r: iotest.OneByteReader(bytes.NewReader(in))}
	pool := newCountingPool()
	fr := NewFrameReader(cr, pool, 0, 0)
	got, err := readAll(t, fr, pool)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	framesEqual(t, got, want)
	if cr.n != len(in) || cr.reads < len(in) {
		t.Fatalf("%d Reads returned %d bytes, want >= %d Reads of %d bytes", cr.reads, cr.n, len(in), len(in))
	}
	fr.Release()
	pool.checkBalanced(t)
}

func TestFrameReaderLargeFrames(t *testing.T) {
	const bufSize = 16
	body := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	want := [][]byte{
		unhex(t, goldenDial),                           // 13 bytes: fits
		EncodeData(nil, 1, body(bufSize-HeaderSize)),   // exactly bufSize
		EncodeData(nil, 2, body(bufSize-HeaderSize+1)), // bufSize+1: the large path
		EncodeData(nil, 3, body(1000)),
		Command{Type: CmdPing}.Encode(nil),
		EncodeData(nil, 4, body(3*bufSize)),
		EncodeData(nil, 5, body(100000)),
		unhex(t, goldenAccept),
	}
	in := stream(want...)
	for _, shape := range readerShapes {
		t.Run(shape.name, func(t *testing.T) {
			pool := newCountingPool()
			fr := NewFrameReader(shape.wrap(bytes.NewReader(in)), pool, bufSize, 0)
			got, err := readAll(t, fr, pool)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("end of stream: %v, want io.EOF", err)
			}
			framesEqual(t, got, want)
			// One read buffer, then per frame one Alloc of its exact
			// size, but for a frame of more than largeFirst bytes past
			// what was buffered: its buffer grows as its body arrives.
			sizes := pool.allocs()
			if len(sizes) == 0 || sizes[0] != bufSize {
				t.Fatalf("allocs %v: want the %d-byte read buffer first", sizes, bufSize)
			}
			sizes = sizes[1:]
			for i, w := range want {
				for len(w) > largeFirst && len(sizes) > 0 && sizes[0] < len(w) {
					sizes = sizes[1:] // a growing frame buffer, freed since
				}
				if len(sizes) == 0 || sizes[0] != len(w) {
					t.Fatalf("frame %d: allocs %v, want Alloc(%d)", i, sizes, len(w))
				}
				sizes = sizes[1:]
			}
			if len(sizes) != 0 {
				t.Fatalf("allocs %v after the last frame", sizes)
			}
			fr.Release()
			pool.checkBalanced(t)
		})
	}
}

func TestFrameReaderMaxPacket(t *testing.T) {
	const maxPacket = 100
	atMax := EncodeData(nil, 7, make([]byte, maxPacket-SizeOfConnID))
	if Header(atMax).Length() != maxPacket {
		t.Fatalf("test frame Length %d", Header(atMax).Length())
	}
	for _, bufSize := range []int{16, 0} {
		t.Run(fmt.Sprintf("Length==MaxPacket/buf%d", bufSize), func(t *testing.T) {
			pool := newCountingPool()
			fr := NewFrameReader(bytes.NewReader(stream(atMax, atMax)), pool, bufSize, maxPacket)
			got, err := readAll(t, fr, pool)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("end of stream: %v, want io.EOF", err)
			}
			framesEqual(t, got, [][]byte{atMax, atMax})
			fr.Release()
			pool.checkBalanced(t)
		})
	}

	t.Run("Length==DefaultMaxPacket", func(t *testing.T) {
		big := EncodeData(nil, 7, make([]byte, DefaultMaxPacket-SizeOfConnID))
		pool := newCountingPool()
		fr := NewFrameReader(bytes.NewReader(big), pool, 0, 0)
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("ReadFrame of a Length == DefaultMaxPacket frame: %v", err)
		}
		if !bytes.Equal(f, big) {
			t.Fatal("frame differs")
		}
		pool.Free(f)
		fr.Release()
		pool.checkBalanced(t)
	})
}

// TestFrameReaderRejectsLength checks that a bad Length is rejected after
// reading the 4 Length bytes only, with nothing allocated for the body.
func TestFrameReaderRejectsLength(t *testing.T) {
	le := func(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	tests := []struct {
		name      string
		length    uint32
		maxPacket int
		want      error
	}{
		{"Length 0", 0, 0, ErrShortFrame},
		{"Length 1", 1, 0, ErrShortFrame},
		{"Length 2", 2, 0, ErrShortFrame},
		{"Length 3", 3, 0, ErrShortFrame},
		{"DefaultMaxPacket+1", DefaultMaxPacket + 1, 0, ErrFrameTooLarge},
		{"MaxPacket+1", 101, 100, ErrFrameTooLarge},
		{"0xFFFFFFFF", 0xFFFFFFFF, 0, ErrFrameTooLarge},
	}
	const bufSize = 64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A stream that goes on after the header (plenty of body bytes):
			// read one byte at a time, the reader must stop after 4.
			in := append(le(tt.length), make([]byte, 4096)...)
			cr := &countingReader{r: iotest.OneByteReader(bytes.NewReader(in))}
			pool := newCountingPool()
			fr := NewFrameReader(cr, pool, bufSize, tt.maxPacket)
			f, err := fr.ReadFrame()
			if !errors.Is(err, tt.want) || f != nil {
				t.Fatalf("ReadFrame = %d bytes, %v; want %v", len(f), err, tt.want)
			}
			if cr.n != SizeOfLength {
				t.Fatalf("consumed %d bytes, want only the %d Length bytes", cr.n, SizeOfLength)
			}
			if sizes := pool.allocs(); len(sizes) != 1 || sizes[0] != bufSize {
				t.Fatalf("allocs %v, want only the %d-byte read buffer", sizes, bufSize)
			}
			// The error sticks: the stream is broken, no body is read later.
			if _, err := fr.ReadFrame(); !errors.Is(err, tt.want) {
				t.Fatalf("second ReadFrame: %v, want %v", err, tt.want)
			}
			if cr.n != SizeOfLength || len(pool.allocs()) != 1 {
				t.Fatalf("second ReadFrame consumed %d bytes, allocs %v", cr.n, pool.allocs())
			}
			fr.Release()
			pool.checkBalanced(t)

			// A stream of exactly the 4 Length bytes: any further Read fails.
			pool = newCountingPool()
			fr = NewFrameReader(&exactReader{tb: t, data: le(tt.length)}, pool, 0, tt.maxPacket)
			if _, err := fr.ReadFrame(); !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame from an exact reader: %v, want %v", err, tt.want)
			}
			if sizes := pool.allocs(); len(sizes) != 1 || sizes[0] != DefaultBufferSize {
				t.Fatalf("allocs %v, want only the read buffer", sizes)
			}
			fr.Release()
			pool.checkBalanced(t)
		})
	}
}

// TestFrameReaderLength4 checks that Length 4 is legal framing: an empty
// data frame is delivered, and a command with no Type byte is delivered as a
// frame that DecodeCommand rejects.
func TestFrameReaderLength4(t *testing.T) {
	emptyData := unhex(t, "04000000 01000000")
	noType := unhex(t, "04000000 00000000")
	pool := newCountingPool()
	fr := NewFrameReader(bytes.NewReader(stream(emptyData, noType)), pool, 0, 0)
	got, err := readAll(t, fr, pool)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	framesEqual(t, got, [][]byte{emptyData, noType})
	if _, err := DecodeCommand(got[1]); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("DecodeCommand(Length 4, ConnID 0) = %v, want ErrBadCommand", err)
	}
	fr.Release()
	pool.checkBalanced(t)
}

func TestFrameReaderEOF(t *testing.T) {
	t.Run("empty stream", func(t *testing.T) {
		for _, shape := range readerShapes {
			pool := newCountingPool()
			fr := NewFrameReader(shape.wrap(bytes.NewReader(nil)), pool, 0, 0)
			for range 2 { // and it stays at EOF
				if f, err := fr.ReadFrame(); !errors.Is(err, io.EOF) || f != nil {
					t.Fatalf("%s: ReadFrame = %x, %v; want io.EOF", shape.name, f, err)
				}
			}
			fr.Release()
			pool.checkBalanced(t)
		}
	})
	t.Run("between frames", func(t *testing.T) {
		in := stream(unhex(t, goldenDial), unhex(t, goldenData))
		for _, shape := range readerShapes {
			pool := newCountingPool()
			fr := NewFrameReader(shape.wrap(bytes.NewReader(in)), pool, 0, 0)
			got, err := readAll(t, fr, pool)
			if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%s: end of stream: %v, want io.EOF", shape.name, err)
			}
			if len(got) != 2 {
				t.Fatalf("%s: %d frames, want 2", shape.name, len(got))
			}
			if _, err := fr.ReadFrame(); !errors.Is(err, io.EOF) {
				t.Fatalf("%s: ReadFrame after EOF: %v", shape.name, err)
			}
			fr.Release()
			pool.checkBalanced(t)
		}
	})
}

func TestFrameReaderUnexpectedEOF(t *testing.T) {
	dial := unhex(t, goldenDial)
	large := EncodeData(nil, 3, bytes.Repeat([]byte("L"), 100))
	tests := []struct {
		name    string
		in      []byte
		frames  int // whole frames before the cut
		bufSize int
	}{
		{"1 Length byte", dial[:1], 0, 0},
		{"3 Length bytes", dial[:3], 0, 0},
		{"Length only", dial[:4], 0, 0},
		{"Length and part of ConnID", dial[:6], 0, 0},
		{"header only", dial[:HeaderSize], 0, 0},
		{"one byte short", dial[:len(dial)-1], 0, 0},
		{"whole frame then part of a header", stream(dial, dial[:2]), 1, 0},
		{"whole frame then one byte short", stream(dial, dial[:len(dial)-1]), 1, 0},
		{"large frame header only", large[:HeaderSize], 0, 16},
		{"large frame half", large[:len(large)/2], 0, 16},
		{"large frame one byte short", large[:len(large)-1], 0, 16},
		{"frame then large frame cut", stream(dial, large[:50]), 1, 16},
	}
	for _, tt := range tests {
		for _, shape := range readerShapes {
			t.Run(tt.name+"/"+shape.name, func(t *testing.T) {
				pool := newCountingPool()
				fr := NewFrameReader(shape.wrap(bytes.NewReader(tt.in)), pool, tt.bufSize, 0)
				got, err := readAll(t, fr, pool)
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("ReadFrame: %v, want io.ErrUnexpectedEOF", err)
				}
				if len(got) != tt.frames {
					t.Fatalf("%d frames before the cut, want %d", len(got), tt.frames)
				}
				// The frame allocated for the cut-off body went back to the
				// pool: only the read buffer is still out.
				if n := pool.outstanding(); n > 1 {
					t.Fatalf("%d slices outstanding after the error, want at most the read buffer", n)
				}
				fr.Release()
				pool.checkBalanced(t)
			})
		}
	}
}

func TestFrameReaderReadError(t *testing.T) {
	errBoom := errors.New("boom")
	dial := unhex(t, goldenDial)
	large := EncodeData(nil, 3, bytes.Repeat([]byte("L"), 100))
	tests := []struct {
		name    string
		prefix  []byte
		frames  int
		bufSize int
	}{
		{"at start", nil, 0, 0},
		{"between frames", dial, 1, 0},
		{"mid header", dial[:3], 0, 0},
		{"mid body", dial[:10], 0, 0},
		{"mid large body", large[:40], 0, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := newCountingPool()
			r := io.MultiReader(bytes.NewReader(tt.prefix), iotest.ErrReader(errBoom))
			fr := NewFrameReader(r, pool, tt.bufSize, 0)
			got, err := readAll(t, fr, pool)
			if !errors.Is(err, errBoom) {
				t.Fatalf("ReadFrame: %v, want the reader's error", err)
			}
			if len(got) != tt.frames {
				t.Fatalf("%d frames, want %d", len(got), tt.frames)
			}
			fr.Release()
			pool.checkBalanced(t)
		})
	}
}

func TestFrameReaderFramesFromPool(t *testing.T) {
	want := [][]byte{
		unhex(t, goldenDial),
		unhex(t, goldenAccept),
		unhex(t, goldenData),
		EncodeData(nil, 5, bytes.Repeat([]byte("z"), 200)), // larger than the buffer
	}
	const bufSize = 32
	pool := newCountingPool()
	pool.roundUp = true
	fr := NewFrameReader(bytes.NewReader(stream(want...)), pool, bufSize, 0)
	var held [][]byte
	for i, w := range want {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(f, w) {
			t.Fatalf("frame %d = %x, want %x", i, f, w)
		}
		if !pool.isLive(f) {
			t.Fatalf("frame %d was not allocated from the pool", i)
		}
		if got := pool.allocs(); len(got) != i+2 || got[i+1] != len(w) {
			t.Fatalf("after frame %d: allocs %v, want one Alloc(%d) per frame", i, got, len(w))
		}
		held = append(held, f)
	}
	// Frames stay valid while the caller holds them: later reads do not
	// overwrite them.
	for i, f := range held {
		if !bytes.Equal(f, want[i]) {
			t.Fatalf("held frame %d changed to %x", i, f)
		}
	}
	if n := pool.outstanding(); n != 1+len(want) {
		t.Fatalf("%d slices outstanding, want the read buffer and %d frames", n, len(want))
	}
	for _, f := range held {
		pool.Free(f)
	}
	if n := pool.outstanding(); n != 1 {
		t.Fatalf("%d slices outstanding, want the read buffer", n)
	}
	pool.checkBalancedAfterRelease(t, fr)
}

// checkBalancedAfterRelease releases fr and checks that the read buffer went
// back to p, the only slice outstanding.
func (p *countingPool) checkBalancedAfterRelease(tb testing.TB, fr *FrameReader) {
	tb.Helper()
	p.mu.Lock()
	buf := p.ptrs[0]
	_, ok := p.live[buf]
	p.mu.Unlock()
	if !ok {
		tb.Fatal("the read buffer was freed before Release")
	}
	fr.Release()
	p.mu.Lock()
	_, ok = p.live[buf]
	p.mu.Unlock()
	if ok {
		tb.Fatal("Release did not free the read buffer")
	}
	p.checkBalanced(tb)
}

func TestFrameReaderRelease(t *testing.T) {
	t.Run("before any read", func(t *testing.T) {
		pool := newCountingPool()
		fr := NewFrameReader(bytes.NewReader(nil), pool, 0, 0)
		fr.Release()
		fr.Release()
		if len(pool.allocs()) != 0 {
			t.Fatalf("allocs %v before any read", pool.allocs())
		}
		pool.checkBalanced(t)
	})
	t.Run("returns the buffer and stays usable", func(t *testing.T) {
		pool := newCountingPool()
		r := &pausingReader{}
		fr := NewFrameReader(r, pool, 0, 0)
		r.feed(unhex(t, goldenDial))
		f, err := fr.ReadFrame()
		if err != nil || !bytes.Equal(f, unhex(t, goldenDial)) {
			t.Fatalf("ReadFrame = %x, %v", f, err)
		}
		pool.Free(f)
		pool.checkBalancedAfterRelease(t, fr)
		fr.Release() // twice is harmless: no double Free
		pool.checkBalanced(t)

		// Usable again: it allocates a new read buffer.
		r.feed(unhex(t, goldenAccept))
		f, err = fr.ReadFrame()
		if err != nil || !bytes.Equal(f, unhex(t, goldenAccept)) {
			t.Fatalf("ReadFrame after Release = %x, %v", f, err)
		}
		pool.Free(f)
		if sizes := pool.allocs(); len(sizes) != 4 || sizes[2] != DefaultBufferSize {
			t.Fatalf("allocs %v, want buffer, frame, new buffer, frame", sizes)
		}
		if _, err := fr.ReadFrame(); !errors.Is(err, io.EOF) {
			t.Fatalf("end: %v", err)
		}
		fr.Release()
		pool.checkBalanced(t)
	})
	t.Run("discards buffered bytes", func(t *testing.T) {
		pool := newCountingPool()
		fr := NewFrameReader(bytes.NewReader(stream(unhex(t, goldenDial), unhex(t, goldenData))), pool, 0, 0)
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		pool.Free(f)
		if fr.Buffered() != len(unhex(t, goldenData)) {
			t.Fatalf("Buffered() = %d", fr.Buffered())
		}
		fr.Release()
		if fr.Buffered() != 0 {
			t.Fatalf("Buffered() after Release = %d, want 0", fr.Buffered())
		}
		pool.checkBalanced(t)
	})
}

// pausingReader returns what was fed to it so far and io.EOF when empty, so
// a test can hand a FrameReader a stream in pieces.
type pausingReader struct{ data []byte }

func (p *pausingReader) feed(b []byte) { p.data = append(p.data, b...) }

func (p *pausingReader) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.data)
	p.data = p.data[n:]
	return n, nil
}

func TestFrameReaderDefaults(t *testing.T) {
	// A nil pool means slab.NoPool; zero sizes mean the defaults.
	fr := NewFrameReader(bytes.NewReader(unhex(t, goldenAccept)), nil, 0, 0)
	if fr.bufSize != DefaultBufferSize || fr.maxPacket != DefaultMaxPacket {
		t.Fatalf("bufSize %d maxPacket %d, want defaults", fr.bufSize, fr.maxPacket)
	}
	f, err := fr.ReadFrame()
	if err != nil || !bytes.Equal(f, unhex(t, goldenAccept)) {
		t.Fatalf("ReadFrame = %x, %v", f, err)
	}
	fr.Release()
	// A buffer too small for a header is raised to one header.
	if fr := NewFrameReader(nil, nil, 3, 0); fr.bufSize != HeaderSize {
		t.Fatalf("bufSize 3 became %d, want %d", fr.bufSize, HeaderSize)
	}
}

// TestFrameReaderSlabPools runs a mixed stream through every real pool kind,
// which hand out chunks with stale bytes and spare capacity.
func TestFrameReaderSlabPools(t *testing.T) {
	var want [][]byte
	for i := range 200 {
		want = append(want, EncodeData(nil, uint32(i+1), bytes.Repeat([]byte{byte(i)}, i*37%3000)))
		want = append(want, Command{Type: CmdClose, ConnID: uint32(i)}.Encode(nil))
	}
	in := stream(want...)
	for _, kind := range []string{"none", "sync", "atom", "chan"} {
		t.Run(kind, func(t *testing.T) {
			pool, err := slab.New(kind, slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor, slab.DefaultPageSize)
			if err != nil {
				t.Fatal(err)
			}
			for _, shape := range readerShapes[:3] {
				fr := NewFrameReader(shape.wrap(bytes.NewReader(in)), pool, 512, 0)
				got, err := readAll(t, fr, pool)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("%s: end of stream: %v", shape.name, err)
				}
				framesEqual(t, got, want)
				fr.Release()
			}
		})
	}
}
