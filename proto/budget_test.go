package proto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestFrameReaderBudget: a frame larger than the read buffer reserves its
// size in the Budget while its body arrives and releases it when it is
// complete or fails; a frame that does not fit is refused before anything
// is allocated for it.
func TestFrameReaderBudget(t *testing.T) {
	large := EncodeData(nil, 7, make([]byte, 1000)) // 1008 bytes > a 64-byte buffer
	b := NewBudget(int64(len(large)))

	// Fits: read whole, then released.
	fr := NewFrameReader(bytes.NewReader(large), nil, 64, 0)
	fr.SetBudget(b)
	f, err := fr.ReadFrame()
	if err != nil || !bytes.Equal(f, large) {
		t.Fatalf("ReadFrame = %d bytes, %v", len(f), err)
	}
	if b.Used() != 0 {
		t.Fatalf("Used after a complete frame = %d", b.Used())
	}

	// A body that never completes is released on failure.
	fr = NewFrameReader(bytes.NewReader(large[:500]), nil, 64, 0)
	fr.SetBudget(b)
	if _, err := fr.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
	if b.Used() != 0 {
		t.Fatalf("Used after a failed frame = %d", b.Used())
	}

	// Over the budget: refused, nothing allocated for the body.
	if !b.reserve(1) {
		t.Fatal("reserve(1) refused on an empty budget")
	}
	pool := newCountingPool()
	fr = NewFrameReader(bytes.NewReader(large), pool, 64, 0)
	fr.SetBudget(b)
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("over budget: %v, want ErrBudgetExceeded", err)
	}
	for _, n := range pool.allocs() {
		if n >= len(large) {
			t.Fatalf("allocated %d bytes for a refused frame", n)
		}
	}
	b.release(1)

	// Small frames never touch the budget.
	fr = NewFrameReader(bytes.NewReader(EncodeData(nil, 1, []byte("hi"))), nil, 64, 0)
	fr.SetBudget(NewBudget(0))
	if _, err := fr.ReadFrame(); err != nil {
		t.Fatalf("small frame with an empty budget: %v", err)
	}
}

// blockingReader returns data, then blocks until release is closed, then
// reports io.EOF.
type blockingReader struct {
	data    []byte
	release chan struct{}
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	<-r.release
	return 0, io.EOF
}

// TestBudgetCountsWhatArrived: a peer that announces a MaxPacket-sized
// frame and sends 100 bytes of it holds about what it sent, not what it
// announced; a share bounds a group of readers within the budget, and the
// reader over it is refused while the budget itself has room.
func TestBudgetCountsWhatArrived(t *testing.T) {
	large := EncodeData(nil, 7, make([]byte, 512<<10))
	b := NewBudget(64 << 20)
	share := b.NewShare(2 * (largeFirst + 64)) // two frames: 64 bytes buffered, then largeFirst more
	var readers []*blockingReader
	errs := make(chan error, 3)
	for range 3 {
		r := &blockingReader{data: bytes.Clone(large[:100]), release: make(chan struct{})}
		readers = append(readers, r)
		fr := NewFrameReader(r, nil, 64, 1<<20)
		fr.SetBudgetShare(share)
		go func() {
			_, err := fr.ReadFrame()
			errs <- err
		}()
	}
	// Two hold 100 + largeFirst bytes each at most; the third is over the
	// share and refused.
	if err := <-errs; !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("third reader: %v, want ErrBudgetExceeded", err)
	}
	if u := share.Used(); u > 2*(100+largeFirst) || u != b.Used() {
		t.Fatalf("share holds %d bytes, budget %d: want at most %d, and the same", u, b.Used(), 2*(100+largeFirst))
	}
	for _, r := range readers {
		close(r.release)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("holder: %v, want io.ErrUnexpectedEOF", err)
		}
	}
	if b.Used() != 0 || share.Used() != 0 {
		t.Fatalf("after the frames failed: budget %d, share %d, want 0", b.Used(), share.Used())
	}
}

// TestBudgetChargesOnlyWaiting: a large frame whose body keeps arriving
// (TryRead finds it) costs the budget nothing, even an exhausted one; one
// whose body stops arriving is charged before the reader waits, and
// refused when the budget has no room.
func TestBudgetChargesOnlyWaiting(t *testing.T) {
	large := EncodeData(nil, 7, bytes.Repeat([]byte{7}, 300<<10))
	full := NewBudget(0) // every charge fails
	src := &tryLazySource{lazySource: lazySource{data: bytes.Clone(large), chunk: 8 << 10}}
	fr := NewFrameReader(src, nil, 2<<10, 1<<20)
	fr.SetBudget(full)
	f, err := fr.ReadFrame()
	if err != nil || !bytes.Equal(f, large) {
		t.Fatalf("a frame that arrived without a wait: %d bytes, %v", len(f), err)
	}
	// The body stops arriving: the reader would wait, so it is charged.
	src = &tryLazySource{lazySource: lazySource{data: bytes.Clone(large[:100<<10]), chunk: 8 << 10}}
	fr = NewFrameReader(src, nil, 2<<10, 1<<20)
	fr.SetBudget(full)
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("a frame whose body stopped: %v, want ErrBudgetExceeded", err)
	}
	if full.Used() != 0 {
		t.Fatalf("budget used %d after refusal", full.Used())
	}
}
