package proto

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
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
	other := &budgetHold{share: b.NewShare(b.limit)}
	if err := other.reserve(1); err != nil {
		t.Fatalf("reserve(1) on an empty budget: %v", err)
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
	other.release()

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

// chanReader returns the bytes of the chunks sent on ch, then io.EOF once
// ch is closed.
type chanReader struct {
	ch   chan []byte
	rest []byte
}

func (r *chanReader) Read(p []byte) (int, error) {
	if len(r.rest) == 0 {
		c, ok := <-r.ch
		if !ok {
			return 0, io.EOF
		}
		r.rest = c
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// budgetHolder is a reader holding a large frame's first 100 bytes in a
// budget until released or evicted.
type budgetHolder struct {
	r       *blockingReader
	evicted chan struct{}
	err     chan error
}

func startHolder(share *BudgetShare, evictable bool) *budgetHolder {
	large := EncodeData(nil, 7, make([]byte, 200<<10))
	h := &budgetHolder{
		r:       &blockingReader{data: large[:100], release: make(chan struct{})},
		evicted: make(chan struct{}),
		err:     make(chan error, 1),
	}
	fr := NewFrameReader(h.r, nil, 64, 1<<20)
	fr.SetBudgetShare(share)
	if evictable {
		fr.OnBudgetEvict(func() { close(h.evicted); close(h.r.release) })
	}
	go func() {
		_, err := fr.ReadFrame()
		h.err <- err
	}()
	return h
}

// holdSize is what a holder holds: the 64 bytes its first read buffered
// and largeFirst more for its body.
const holdSize = 64 + largeFirst

// TestBudgetEvictsOverFairShare: when the budget is full, a reader whose
// group stays within its fair share takes the room from the group furthest
// over it (that group's largest frame is evicted and its reader told to
// close) and is not refused.
func TestBudgetEvictsOverFairShare(t *testing.T) {
	b := NewBudget(6 * holdSize)
	attack := b.NewShare(6 * holdSize)
	var holders []*budgetHolder
	for range 6 {
		holders = append(holders, startHolder(attack, true))
	}
	waitFor(t, "the attackers to fill the budget", func() bool { return b.Used() == 6*holdSize })

	// An honest reader of its own group whose 10 KiB frame must wait:
	// within its fair share (half the budget), so one attacker's frame is
	// evicted, and the honest frame arrives whole.
	small := EncodeData(nil, 8, bytes.Repeat([]byte{9}, 10<<10))
	honest := &chanReader{ch: make(chan []byte, 2)}
	honest.ch <- small[:100]
	fr := NewFrameReader(honest, nil, 64, 1<<20)
	fr.SetBudget(b)
	done := make(chan error, 1)
	var got []byte
	go func() {
		f, err := fr.ReadFrame()
		got = f
		done <- err
	}()
	waitFor(t, "an eviction", func() bool { return b.Evictions() == 1 })
	evicted := 0
	for _, h := range holders {
		select {
		case <-h.evicted:
			evicted++
			if err := <-h.err; !errors.Is(err, ErrBudgetExceeded) || !strings.Contains(err.Error(), "evicted") {
				t.Fatalf("evicted attacker: %v, want ErrBudgetExceeded (evicted)", err)
			}
		default:
		}
	}
	if evicted != 1 {
		t.Fatalf("%d attackers evicted, want 1", evicted)
	}
	honest.ch <- small[100:]
	if err := <-done; err != nil || !bytes.Equal(got, small) {
		t.Fatalf("honest frame: %d bytes, %v", len(got), err)
	}
	for _, h := range holders {
		select {
		case <-h.evicted:
			continue
		default:
		}
		close(h.r.release)
		if err := <-h.err; !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("attacker: %v, want io.ErrUnexpectedEOF", err)
		}
	}
	if b.Used() != 0 || attack.Used() != 0 || b.Evictions() != 1 {
		t.Fatalf("after every frame ended: budget %d, share %d, evictions %d; want 0, 0, 1", b.Used(), attack.Used(), b.Evictions())
	}
}

// TestBudgetRefusesOverFairShare: a reader whose group would pass its fair
// share of a full budget is refused, and nobody is evicted for it; nor is
// anyone evicted whose reader has no evict function.
func TestBudgetRefusesOverFairShare(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ask       int // bytes of the newcomer's frame buffered at once
		evictable bool
	}{
		{"over its fair share", 20 << 10, true},
		{"holders not evictable", 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBudget(4 * holdSize)
			var holders []*budgetHolder
			for range 2 {
				g := b.NewShare(4 * holdSize)
				holders = append(holders, startHolder(g, tc.evictable), startHolder(g, tc.evictable))
			}
			waitFor(t, "the holders to fill the budget", func() bool { return b.Used() == 4*holdSize })
			// Three groups: a fair share is 4/3 of a holder's bytes. The
			// first newcomer asks 20 KiB + largeFirst at once, past it; the
			// second asks one holder's worth, within it, but nothing can be
			// evicted.
			large := EncodeData(nil, 7, make([]byte, 100<<10))
			fr := NewFrameReader(bytes.NewReader(large[:tc.ask+100]), nil, tc.ask, 1<<20)
			fr.SetBudget(b)
			fr.OnBudgetEvict(func() {})
			if _, err := fr.ReadFrame(); !errors.Is(err, ErrBudgetExceeded) || !strings.Contains(err.Error(), "fair share") {
				t.Fatalf("newcomer: %v, want ErrBudgetExceeded (fair share)", err)
			}
			for _, h := range holders {
				close(h.r.release)
				if err := <-h.err; !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("holder: %v, want io.ErrUnexpectedEOF", err)
				}
			}
			if b.Used() != 0 || b.Evictions() != 0 {
				t.Fatalf("budget %d, evictions %d, want 0 and 0", b.Used(), b.Evictions())
			}
		})
	}
}
