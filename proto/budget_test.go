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
