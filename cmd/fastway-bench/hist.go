package main

import (
	"math"
	"math/bits"
)

// A histogram counts latencies in log-linear buckets, as HdrHistogram does:
// every power of two is split into histSub equal buckets, so a value is
// known to within 1/histSub (1.6 %) of itself, at any magnitude, in a fixed
// 18 KiB. Values below histSub are counted exactly. Recording is a few
// instructions and never allocates; each connection owns one histogram and
// they are merged at the end, so no lock is taken per message.
type histogram struct {
	counts   [histBuckets]uint64
	total    uint64
	min, max uint64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits // buckets per power of two
	// histMaxBits bounds the values kept apart: 2^40 ns is 18 minutes;
	// larger values count in the last bucket (max stays exact).
	histMaxBits = 40
	histBuckets = (histMaxBits - histSubBits + 1) * histSub
)

// histBucket returns the bucket counting v.
func histBucket(v uint64) int {
	if v < histSub {
		return int(v)
	}
	if v >= 1<<histMaxBits {
		v = 1<<histMaxBits - 1
	}
	shift := bits.Len64(v) - 1 - histSubBits // v>>shift is in [histSub, 2*histSub)
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// histRange returns the smallest and largest value counted in bucket i.
func histRange(i int) (lo, hi uint64) {
	if i < 2*histSub {
		return uint64(i), uint64(i)
	}
	shift := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return m << shift, (m+1)<<shift - 1
}

// record counts one value.
func (h *histogram) record(v uint64) {
	h.counts[histBucket(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
}

// percentile returns the value below or at which q (0..1) of the recorded
// values lie: the largest value of the bucket holding the ceil(q*total)-th
// smallest value, capped by the exact maximum (HdrHistogram's "highest
// equivalent value"). It is 0 for an empty histogram.
func (h *histogram) percentile(q float64) uint64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := histRange(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}
