package main

import (
	"math"
	"testing"
)

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	prevHi := uint64(0)
	for i := range histBuckets {
		lo, hi := histRange(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if hi < lo {
			t.Fatalf("bucket %d: [%d, %d]", i, lo, hi)
		}
		if histBucket(lo) != i || histBucket(hi) != i {
			t.Fatalf("bucket %d = [%d, %d], but histBucket gives %d and %d", i, lo, hi, histBucket(lo), histBucket(hi))
		}
		if lo >= histSub && float64(hi-lo+1)/float64(lo) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/%d of its values", i, lo, hi, histSub)
		}
		prevHi = hi
	}
	if prevHi != 1<<histMaxBits-1 {
		t.Fatalf("last bucket ends at %d, want 2^%d-1", prevHi, histMaxBits)
	}
	if got := histBucket(math.MaxUint64); got != histBuckets-1 {
		t.Fatalf("histBucket(max) = %d, want the last bucket %d", got, histBuckets-1)
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	if got := h.percentile(0.5); got != 0 {
		t.Fatalf("empty p50 = %d, want 0", got)
	}
	// 1..100000 µs, in ns, in two halves merged: the exact answers are
	// known.
	var a, b histogram
	for v := uint64(1); v <= 100000; v++ {
		if v%2 == 0 {
			a.record(v * 1000)
		} else {
			b.record(v * 1000)
		}
	}
	h.merge(&a)
	h.merge(&b)
	if h.total != 100000 || h.min != 1000 || h.max != 100000*1000 {
		t.Fatalf("total %d min %d max %d", h.total, h.min, h.max)
	}
	for _, tc := range []struct {
		q    float64
		want float64 // ns
	}{
		{0.5, 50000e3}, {0.9, 90000e3}, {0.99, 99000e3}, {0.999, 99900e3}, {1, 100000e3}, {0, 1000},
	} {
		got := float64(h.percentile(tc.q))
		if got < tc.want || got > tc.want*(1+1.0/histSub) {
			t.Errorf("p%v = %.0f, want %.0f to %.0f", tc.q*100, got, tc.want, tc.want*(1+1.0/histSub))
		}
	}
	// Small values are exact.
	var s histogram
	for _, v := range []uint64{5, 5, 7, 100} {
		s.record(v)
	}
	if got := s.percentile(0.5); got != 5 {
		t.Errorf("p50 of 5,5,7,100 = %d, want 5", got)
	}
	if got := s.percentile(0.75); got != 7 {
		t.Errorf("p75 of 5,5,7,100 = %d, want 7", got)
	}
	if got := s.percentile(0.999); got != 100 {
		t.Errorf("p99.9 of 5,5,7,100 = %d, want 100", got)
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	h := new(histogram)
	v := uint64(1)
	if n := testing.AllocsPerRun(1000, func() { h.record(v); v = v*3 + 1 }); n != 0 {
		t.Fatalf("record allocates %v times", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := new(histogram)
	b.ReportAllocs()
	v := uint64(12345)
	for b.Loop() {
		h.record(v)
		v = v*2862933555777941757 + 3037000493
		v >>= 30
	}
}
