package proto

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/fastway-go/fastway/slab"
)

// sharedStream returns a stream of data frames of mixed sizes (some above
// the 2 KiB read buffer, many above the sharing threshold) with random
// payloads, and the frames themselves.
func sharedStream(seed uint64, n int) ([]byte, [][]byte) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var want [][]byte
	for i := range n {
		var size int
		switch rng.IntN(4) {
		case 0:
			size = rng.IntN(64)
		case 1:
			size = 256 + rng.IntN(1024)
		case 2:
			size = 2000 + rng.IntN(3000)
		default:
			size = rng.IntN(9000)
		}
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		want = append(want, EncodeData(nil, uint32(i+1), payload))
	}
	return stream(want...), want
}

// TestReadFrameSharedKeepsFrames reads mixed streams with ReadFrameShared,
// and with ReadFrameBorrowed, chopped every way (plain readers and lazy ones
// with small and large reads), and holds every frame until the end: frames
// handed out in place must never be overwritten by later reads, a borrowed
// frame must be intact when returned, and every buffer must go back to the
// pool exactly once, after the last reference to it is released.
func TestReadFrameSharedKeepsFrames(t *testing.T) {
	const minShare = 256
	data, want := sharedStream(7, 400)
	type source struct {
		name string
		r    func() io.Reader
	}
	var sources []source
	for _, sh := range readerShapes {
		sources = append(sources, source{sh.name, func() io.Reader { return sh.wrap(bytes.NewReader(data)) }})
	}
	for _, chunk := range []int{1, 7, 1000, 5000, 1 << 20} {
		sources = append(sources, source{fmt.Sprintf("lazy-%d", chunk), func() io.Reader {
			return &lazySource{data: bytes.Clone(data), chunk: chunk}
		}})
	}
	for _, src := range sources {
		for _, borrow := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/borrow=%v", src.name, borrow), func(t *testing.T) {
				readKeeping(t, src.r(), minShare, borrow, want)
			})
		}
	}
}

// readKeeping reads r to its end with readHolding and checks the frames,
// that some were handed out in place (and, with borrow, borrowed), and the
// pool's balance.
func readKeeping(t *testing.T, r io.Reader, minShare int, borrow bool, want [][]byte) {
	t.Helper()
	pool := newCountingPool()
	pool.roundUp = true
	fr := NewFrameReader(r, pool, 2048, 0)
	got, err := readHolding(t, fr, minShare, borrow, func(f []byte) { checkFrame(t, f) })
	if err != io.EOF {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d frames, want %d", len(got), len(want))
	}
	inPlace, lent := 0, 0
	for i, h := range got {
		if !bytes.Equal(h.frame, want[i]) {
			t.Fatalf("frame %d (%d bytes, in place: %v, borrowed: %v) was changed after it was read", i, len(h.frame), h.shared != nil, h.copied)
		}
		if h.shared != nil {
			inPlace++
		}
		if h.copied {
			lent++
		}
	}
	if inPlace == 0 || (borrow && lent == 0) {
		t.Fatalf("%d frames handed out in place, %d borrowed", inPlace, lent)
	}
	fr.Release()
	releaseHeld(pool, got)
	pool.checkBalanced(t)
	t.Logf("%d of %d frames in place, %d borrowed", inPlace, len(got), lent)
}

// held is a frame read by readHolding, kept until the stream has ended.
type held struct {
	frame  []byte
	shared *Shared // the read buffer it is in, when handed out in place
	copied bool    // a copy of a borrowed frame: nothing to free
}

// readHolding reads fr to its end with ReadFrameShared (or, with borrow,
// ReadFrameBorrowed, copying each borrowed frame at once) and holds every
// frame, so a later read that overwrote one would show. It checks each
// against the thresholds, and check, if not nil, on each as returned. It
// returns the frames and the error that ended the stream.
func readHolding(t *testing.T, fr *FrameReader, minShare int, borrow bool, check func(f []byte)) ([]held, error) {
	t.Helper()
	var got []held
	for {
		var f []byte
		var s *Shared
		var err error
		borrowed := false
		if borrow {
			f, s, borrowed, err = fr.ReadFrameBorrowed(minShare)
		} else {
			f, s, err = fr.ReadFrameShared(minShare)
		}
		if err != nil {
			return got, err
		}
		if s != nil && len(f) < minShare {
			t.Fatalf("a %d-byte frame was handed out in place (threshold %d)", len(f), minShare)
		}
		if borrowed && (s != nil || len(f) >= minShare) {
			t.Fatalf("a %d-byte frame was borrowed (threshold %d, Shared %p)", len(f), minShare, s)
		}
		if check != nil {
			check(f)
		}
		if borrowed {
			f = bytes.Clone(f)
		}
		got = append(got, held{f, s, borrowed})
	}
}

// releaseHeld lets go of frames readHolding returned: each reference, or
// buffer back to pool.
func releaseHeld(pool slab.Pool, hs []held) {
	for _, h := range hs {
		switch {
		case h.shared != nil:
			h.shared.Release()
		case !h.copied:
			pool.Free(h.frame)
		}
	}
}

// TestSharedBufferFreedWithLastReference: a read buffer that frames were
// handed out of goes back to the pool only when the reader has moved on and
// every frame is released, in any order.
func TestSharedBufferFreedWithLastReference(t *testing.T) {
	pool := newCountingPool()
	a := EncodeData(nil, 1, bytes.Repeat([]byte{'a'}, 600))
	b := EncodeData(nil, 2, bytes.Repeat([]byte{'b'}, 600))
	fr := NewFrameReader(&lazySource{data: stream(a, b), chunk: 1 << 20}, pool, 2048, 0)
	fa, sa, err := fr.ReadFrameShared(256)
	if err != nil || sa == nil {
		t.Fatalf("first frame: shared %v, err %v; want it in place", sa, err)
	}
	fb, sb, err := fr.ReadFrameShared(256)
	if err != nil || sb != sa {
		t.Fatalf("second frame: shared %p (first %p), err %v; want the same buffer", sb, sa, err)
	}
	// The stream is drained, so the reader let go of the buffer already;
	// the two frames still hold it.
	if n := pool.outstanding(); n != 1 {
		t.Fatalf("%d buffers outstanding, want the one read buffer", n)
	}
	if !bytes.Equal(fb, b) {
		t.Fatal("the second frame is not the one sent")
	}
	sb.Release()
	if !bytes.Equal(fa, a) || pool.outstanding() != 1 {
		t.Fatal("releasing one frame freed the buffer the other still uses")
	}
	sa.Release()
	if n := pool.outstanding(); n != 0 {
		t.Fatalf("%d buffers outstanding after the last release, want 0", n)
	}
	pool.checkBalanced(t)
	if _, _, err := fr.ReadFrameShared(256); err != io.EOF {
		t.Fatalf("after the stream: %v, want EOF", err)
	}
	fr.Release()
	pool.checkBalanced(t)
}

// TestReadFrameBorrowed: frames below the threshold come back borrowed, in
// place in the read buffer, with no buffer of their own; the last one of a
// read stays valid until the next call, even though the reader lets go of
// its buffer then (the test pool poisons what is freed), and a frame
// handed out in place from the same buffer keeps it after that.
func TestReadFrameBorrowed(t *testing.T) {
	small1 := EncodeData(nil, 1, []byte("tiny"))
	big := EncodeData(nil, 2, bytes.Repeat([]byte{'b'}, 600))
	small2 := Command{Type: CmdClose, ConnID: 9}.Encode(nil)
	pool := newCountingPool()
	fr := NewFrameReader(&lazySource{data: stream(small1, big, small2), chunk: 1 << 20}, pool, 2048, 0)

	f, s, borrowed, err := fr.ReadFrameBorrowed(256)
	if err != nil || !borrowed || s != nil || !bytes.Equal(f, small1) {
		t.Fatalf("first frame: %x borrowed %v shared %p err %v; want it borrowed", f, borrowed, s, err)
	}
	buf := fr.buf
	if &f[0] != &buf[0] {
		t.Fatal("a borrowed frame is not in the read buffer")
	}
	fb, sb, borrowed, err := fr.ReadFrameBorrowed(256)
	if err != nil || borrowed || sb == nil || !bytes.Equal(fb, big) {
		t.Fatalf("large frame: borrowed %v shared %p err %v; want it in place, shared", borrowed, sb, err)
	}
	f, s, borrowed, err = fr.ReadFrameBorrowed(256)
	if err != nil || !borrowed || s != nil {
		t.Fatalf("last frame: borrowed %v shared %p err %v; want it borrowed", borrowed, s, err)
	}
	if n := len(pool.allocs()); n != 1 {
		t.Fatalf("%d buffers taken, want the one read buffer", n)
	}
	if !bytes.Equal(f, small2) {
		t.Fatalf("the last frame of the buffer = %x before the next call, want %x", f, small2)
	}
	if _, _, _, err := fr.ReadFrameBorrowed(256); err != io.EOF {
		t.Fatalf("after the stream: %v, want EOF", err)
	}
	// The reader let go of the buffer; the large frame still holds it.
	if !pool.isLive(buf) || !bytes.Equal(fb, big) {
		t.Fatal("the shared frame lost its buffer when the reader moved on")
	}
	sb.Release()
	fr.Release()
	pool.checkBalanced(t)

	// Without a shared frame, the last borrowed frame is all that keeps
	// the buffer until the next call.
	pool = newCountingPool()
	fr = NewFrameReader(&lazySource{data: stream(small1, small2), chunk: 1 << 20}, pool, 2048, 0)
	for _, want := range [][]byte{small1, small2} {
		f, _, borrowed, err := fr.ReadFrameBorrowed(256)
		if err != nil || !borrowed || !bytes.Equal(f, want) {
			t.Fatalf("frame %x borrowed %v err %v, want %x borrowed", f, borrowed, err, want)
		}
	}
	if _, _, _, err := fr.ReadFrameBorrowed(256); err != io.EOF {
		t.Fatalf("after the stream: %v, want EOF", err)
	}
	fr.Release()
	pool.checkBalanced(t)
}

// readMore calls fr.ReadMore until done reports true or ReadMore reads
// nothing, at most 100 times: a ReadMore that keeps reporting progress
// fails the test instead of spinning.
func readMore(t *testing.T, fr *FrameReader, done func() bool) {
	t.Helper()
	for range 100 {
		if done() || !fr.ReadMore() {
			return
		}
	}
	t.Fatal("ReadMore reported progress 100 times in a row")
}

// tryLazySource is a lazySource that can also read without waiting: it
// serves avail bytes at a time to TryRead and counts the calls.
type tryLazySource struct {
	lazySource
	tries int
	err   error // returned by TryRead once data runs out, if set
}

func (s *tryLazySource) TryRead(p []byte) (int, error) {
	if len(p) == 0 {
		panic("TryRead with no room: a socket would return 0, nil, which reads as EOF")
	}
	s.tries++
	if len(s.data) == 0 {
		return 0, s.err
	}
	return s.read(p)
}

// TestReadMore: ReadMore reads on only after a read that filled its
// buffer, never waits, appends to what is buffered (a split frame is
// completed), holds no buffer when it found nothing, and leaves an error
// for the next ReadFrame.
func TestReadMore(t *testing.T) {
	frames := [][]byte{
		EncodeData(nil, 1, bytes.Repeat([]byte{1}, 1500)),
		EncodeData(nil, 2, bytes.Repeat([]byte{2}, 1500)),
		EncodeData(nil, 3, bytes.Repeat([]byte{3}, 10)),
	}
	data := stream(frames...)

	t.Run("after a short read it does nothing", func(t *testing.T) {
		src := &tryLazySource{lazySource: lazySource{data: bytes.Clone(frames[2]), chunk: 1 << 20}}
		fr := NewFrameReader(src, nil, 2048, 0)
		if _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		if fr.ReadMore() || src.tries != 0 {
			t.Fatalf("ReadMore after a short read: tried %d times", src.tries)
		}
	})

	t.Run("after a full read it completes a split frame", func(t *testing.T) {
		pool := newCountingPool()
		// The first read fills the 2 KiB buffer: frame 1 and part of 2.
		src := &tryLazySource{lazySource: lazySource{data: bytes.Clone(data), chunk: 2048}}
		fr := NewFrameReader(src, pool, 2048, 0)
		f, s, err := fr.ReadFrameShared(1024)
		if err != nil || !bytes.Equal(f, frames[0]) {
			t.Fatalf("first frame: %v", err)
		}
		if fr.HasFrame() {
			t.Fatal("the second frame is whole after the first read")
		}
		readMore(t, fr, fr.HasFrame)
		if !fr.HasFrame() || src.tries == 0 {
			t.Fatalf("ReadMore did not complete the split frame (%d tries)", src.tries)
		}
		for _, want := range frames[1:] {
			g, gs, err := fr.ReadFrameShared(1024)
			if err != nil || !bytes.Equal(g, want) {
				t.Fatalf("frame %d: %v", Header(want).ConnID(), err)
			}
			releaseHeld(pool, []held{{frame: g, shared: gs}})
		}
		if !bytes.Equal(f, frames[0]) {
			t.Fatal("the first frame changed while ReadMore read on")
		}
		releaseHeld(pool, []held{{frame: f, shared: s}})
		// Nothing is waiting now: no buffer is kept.
		readMore(t, fr, func() bool { return false })
		if fr.buf != nil {
			t.Fatal("a buffer is held after ReadMore found nothing")
		}
		fr.Release()
		pool.checkBalanced(t)
	})

	t.Run("a frame larger than the buffer is left to ReadFrame", func(t *testing.T) {
		// The buffer is at its largest (64 KiB), and a read fills it
		// with nothing but the start of a larger frame.
		big := EncodeData(nil, 9, bytes.Repeat([]byte{9}, 100000))
		all := stream(big, frames[2], big)
		src := &tryLazySource{lazySource: lazySource{data: bytes.Clone(all), chunk: 64 << 10}}
		fr := NewFrameReader(src, nil, 64<<10, 0)
		var got [][]byte
		for range 3 {
			readMore(t, fr, fr.HasFrame)
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, f)
		}
		framesEqual(t, got, [][]byte{big, frames[2], big})
	})

	t.Run("an error waits for the next read", func(t *testing.T) {
		src := &tryLazySource{lazySource: lazySource{data: bytes.Clone(data[:2048]), chunk: 2048}, err: io.ErrClosedPipe}
		fr := NewFrameReader(src, nil, 2048, 0)
		if _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		if fr.ReadMore() {
			t.Fatal("ReadMore read from a drained source")
		}
		if _, err := fr.ReadFrame(); err != io.ErrClosedPipe {
			t.Fatalf("ReadFrame after ReadMore met an error: %v, want it", err)
		}
	})
}
