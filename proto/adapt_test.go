package proto

import (
	"bytes"
	"errors"
	"io"
	"math/bits"
	"testing"
)

// lazySource is a LazyReader over a byte stream, delivering at most chunk
// bytes per read into the buffer it is given.
type lazySource struct {
	data  []byte
	chunk int
	reads int
	lastP int // size of the buffer the last read was given (its free space)
}

func (s *lazySource) Read(p []byte) (int, error) { return s.read(p) }

func (s *lazySource) ReadLazy(get func() []byte, put func()) (int, error) {
	return s.read(get())
}

func (s *lazySource) read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	s.reads++
	s.lastP = len(p)
	n := copy(p, s.data[:min(len(s.data), s.chunk)])
	s.data = s.data[n:]
	return n, nil
}

// TestLazyReaderBufferAdapts: a lazy reader's buffer grows while reads fill
// it or frames outgrow it, so a stream of 4 KiB frames is read several
// frames per read, and shrinks back to its configured size once reads are
// small.
func TestLazyReaderBufferAdapts(t *testing.T) {
	var stream []byte
	const n = 64
	for i := range n {
		stream = EncodeData(stream, uint32(i+1), bytes.Repeat([]byte{byte(i)}, 4096))
	}
	src := &lazySource{data: stream, chunk: 32 << 10}
	fr := NewFrameReader(src, nil, 2<<10, 0)
	for i := range n {
		f, err := fr.ReadFrame()
		if err != nil || Header(f).ConnID() != uint32(i+1) || len(f) != HeaderSize+4096 {
			t.Fatalf("frame %d: %d bytes, %v", i, len(f), err)
		}
	}
	// 256 KiB in 32 KiB chunks: a reader stuck at 2 KiB would need two
	// reads per frame (128); an adapted one about one per 32 KiB.
	if src.reads > 20 {
		t.Fatalf("%d reads for %d frames of 4 KiB", src.reads, n)
	}
	if fr.size <= 2<<10 {
		t.Fatalf("buffer did not grow: %d", fr.size)
	}
	// Small reads shrink it back.
	var small []byte
	for range 20 {
		small = append(small, Command{Type: CmdPing}.Encode(nil)...)
	}
	src.data, src.chunk = small, PingSize
	for range 20 {
		if _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}
	if fr.size != 2<<10 {
		t.Fatalf("buffer did not shrink back: %d", fr.size)
	}
}

// TestLazyReaderBufferShrinksForTrickle: after a burst grew the buffer, a
// partial frame that trickles in a byte at a time does not keep the large
// buffer.
func TestLazyReaderBufferShrinksForTrickle(t *testing.T) {
	var stream []byte
	for i := range 16 {
		stream = EncodeData(stream, uint32(i+1), make([]byte, 4096))
	}
	tail := EncodeData(nil, 99, make([]byte, 1000))
	src := &lazySource{data: stream, chunk: 64 << 10}
	fr := NewFrameReader(src, nil, 2<<10, 0)
	for range 16 {
		if _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}
	src.data, src.chunk = tail[:len(tail)-1], 1
	if _, err := fr.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	// Near the end of the trickle the reader holds a buffer of at most the
	// configured 2 KiB, not the 64 KiB the burst grew it to.
	if len(fr.buf) > 2<<10 || src.lastP > 2<<10 {
		t.Fatalf("a trickled frame kept a %d-byte buffer (last read into %d bytes)", len(fr.buf), src.lastP)
	}
	if fr.size != 2<<10 {
		t.Fatalf("size %d, want back to 2 KiB", fr.size)
	}
}

// TestLazyReaderKeepsBufferForSplitFrames: in a busy stream of 4 KiB
// frames whose reads end mid-frame, the short read that completes a frame
// does not shrink the buffer (which would take more reads for the same
// bytes); several short reads in a row still do (a trickle).
func TestLazyReaderKeepsBufferForSplitFrames(t *testing.T) {
	var stream []byte
	for i := range 600 {
		stream = EncodeData(stream, uint32(i+1), make([]byte, 4096))
	}
	// A burst grows the buffer to 64 KiB; then the stream arrives in
	// pieces of 30,000 and 500 bytes in turn, like a sender's large writes
	// caught mid-way: a piece ends mid-frame and a short piece follows.
	src := &arrivalSource{lazySource: lazySource{data: stream}, arrivals: []int{600 << 10, 30000, 500}}
	fr := NewFrameReader(src, nil, 2<<10, 0)
	small := 0
	for i := range 600 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		checkFrame(t, f)
		// The burst is the first 150 frames. (A short piece that starts
		// at a frame boundary is read lazily, and shrinks the buffer, as
		// a stream that turned quiet should.)
		if i >= 150 && fr.size < maxAdaptiveBuffer {
			small++
		}
	}
	if small > 45 {
		t.Fatalf("the buffer was below 64 KiB after %d of 450 frames of a busy stream", small)
	}
	t.Logf("below 64 KiB after %d of 450 frames", small)
}

// arrivalSource is a LazyReader over a stream that arrives in pieces, like
// a socket's: a read returns at most what is left of the piece being read,
// however large its buffer.
type arrivalSource struct {
	lazySource
	arrivals []int // piece sizes: the first, then the others in turn
	next     int   // index of the next piece's size
	left     int   // bytes of the current piece not read yet
}

func (s *arrivalSource) Read(p []byte) (int, error) { return s.readPiece(p) }

func (s *arrivalSource) ReadLazy(get func() []byte, put func()) (int, error) {
	return s.readPiece(get())
}

func (s *arrivalSource) readPiece(p []byte) (int, error) {
	if s.left == 0 {
		i := s.next
		if i > 0 {
			i = 1 + (i-1)%(len(s.arrivals)-1)
		}
		s.left = min(s.arrivals[i], len(s.data))
		s.next++
	}
	s.chunk = s.left
	n, err := s.read(p)
	s.left -= n
	return n, err
}

// shapedSource is a lazySource whose reads return big bytes at a time for
// the first fast bytes, then slow at a time.
type shapedSource struct {
	data       []byte
	fast, slow int
	sent       int
}

func (s *shapedSource) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	chunk := s.slow
	if s.sent < s.fast {
		chunk = s.fast - s.sent
	}
	n := copy(p, s.data[:min(len(s.data), chunk)])
	s.data, s.sent = s.data[n:], s.sent+n
	return n, nil
}

func (s *shapedSource) ReadLazy(get func() []byte, put func()) (int, error) {
	return s.Read(get())
}

// TestTrickleDoesNotReallocate: a frame that trickles into a grown buffer
// in 10-byte reads moves to a smaller buffer a few times at most, not on
// every read (a buffer the pool rounded up must not look oversized).
func TestTrickleDoesNotReallocate(t *testing.T) {
	var burst []byte
	for len(burst) < 64<<10 {
		burst = EncodeData(burst, 1, make([]byte, 1000))
	}
	slowFrame := EncodeData(nil, 2, make([]byte, 40000))
	pool := &roundingPool{}
	src := &shapedSource{data: append(bytes.Clone(burst), slowFrame...), fast: len(burst) + 100, slow: 10}
	fr := NewFrameReader(src, pool, 2<<10, 0)
	var got [][]byte
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if last := got[len(got)-1]; !bytes.Equal(last, slowFrame) {
		t.Fatalf("the trickled frame came out wrong (%d bytes)", len(last))
	}
	if pool.big > 8 {
		t.Fatalf("%d buffers of 16 KiB or more taken for one trickled frame, want a few", pool.big)
	}
}

// roundingPool rounds every buffer up to a power of two, as slab pools do,
// and counts the large ones.
type roundingPool struct{ big int }

func (p *roundingPool) Alloc(n int) []byte {
	if n >= 16<<10 {
		p.big++
	}
	return make([]byte, n, 1<<bits.Len(uint(n-1)))
}

func (p *roundingPool) Free([]byte) {}
