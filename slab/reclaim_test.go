package slab

import (
	"testing"
	"time"
)

// fakeHeap is a heap for a Reclaimer under test: Tick reads it, and a
// forced release runs a collection and frees what is garbage.
type fakeHeap struct {
	gcs            uint64
	live, retained int64
	garbage        int64 // freed by the next collection
	victim         int64 // a SyncPool's victim cache: garbage after the next collection
	forced         int
}

func (h *fakeHeap) read() HeapStats { return HeapStats{GCs: h.gcs, Live: h.live, Retained: h.retained} }

func (h *fakeHeap) free() {
	h.forced++
	h.gcs++
	h.retained -= h.garbage
	h.garbage, h.victim = h.victim, 0
	h.live = h.retained - h.garbage
}

// fakeReleaser is a pool that releases what the test says.
type fakeReleaser struct {
	NoPool
	next int64
}

func (p *fakeReleaser) ReleaseIdle(time.Time, time.Duration) int64 { n := p.next; p.next = 0; return n }

const mib = 1 << 20

func newTestReclaimer(h *fakeHeap, p Pool) *Reclaimer {
	return &Reclaimer{Pool: p, Idle: idle, Min: 64 * mib, readHeap: h.read, freeOSMemory: h.free}
}

// tickN ticks r n times, one period apart, and returns how many forced a
// release.
func tickN(r *Reclaimer, n int, now *time.Time) int {
	forced := 0
	for range n {
		if r.Tick(*now).Forced {
			forced++
		}
		*now = now.Add(idle)
	}
	return forced
}

// TestReclaimQuietSyncPool: after a burst, a quiet heap holding a SyncPool's
// chunks (freed only by the second collection, as sync.Pool's victim cache
// does) is released within three Ticks, then left alone.
func TestReclaimQuietSyncPool(t *testing.T) {
	h := &fakeHeap{live: 10 * mib, retained: 10 * mib}
	r := newTestReclaimer(h, NewSyncPool(64, 1<<16, 2))
	now := t0
	if tickN(r, 3, &now) != 0 {
		t.Fatal("a steady small heap was released")
	}
	// The burst: collections run, the heap grows to 1 GiB, of which the
	// pools hold 900 MiB when it ends.
	h.gcs += 5
	h.retained, h.live = 1024*mib, 1000*mib
	h.garbage, h.victim = 100*mib, 900*mib
	if tickN(r, 1, &now) != 0 {
		t.Fatal("released during the burst (collections were running)")
	}
	forced := tickN(r, 3, &now)
	if h.retained != 24*mib || forced != 3 {
		t.Fatalf("after the burst: %d forced releases, %d MiB retained; want 3 (the last finding nothing) and 24 MiB", forced, h.retained/mib)
	}
	if n := tickN(r, 10, &now); n != 0 {
		t.Fatalf("%d forced releases of a heap with nothing to give back", n)
	}
}

// TestReclaimBusyHeap: a heap that collections run on by themselves is not
// forced, however large.
func TestReclaimBusyHeap(t *testing.T) {
	h := &fakeHeap{live: 10 * mib, retained: 10 * mib}
	r := newTestReclaimer(h, NoPool{})
	now := t0
	r.Tick(now)
	for range 10 {
		now = now.Add(idle)
		h.gcs++
		h.retained, h.live = 2048*mib, 1024*mib
		if r.Tick(now).Forced {
			t.Fatal("forced a release while collections were running")
		}
	}
}

// TestReclaimLiveHeap: a quiet heap that keeps what it holds gets two
// forced collections, then none until it has grown by Min.
func TestReclaimLiveHeap(t *testing.T) {
	h := &fakeHeap{live: 10 * mib, retained: 10 * mib}
	r := newTestReclaimer(h, NoPool{})
	now := t0
	r.Tick(now)
	h.gcs++
	h.retained, h.live = 500*mib, 500*mib // all live
	now = now.Add(idle)
	r.Tick(now) // a collection ran: not quiet
	if n := tickN(r, 10, &now); n != 2 {
		t.Fatalf("%d forced releases of a live heap, want 2", n)
	}
	h.retained += 63 * mib
	h.live = h.retained
	if n := tickN(r, 5, &now); n != 0 {
		t.Fatalf("%d forced releases after 63 MiB of growth, want 0", n)
	}
	h.retained += 1 * mib
	h.live = h.retained
	if n := tickN(r, 5, &now); n != 2 {
		t.Fatalf("%d forced releases after 64 MiB of growth, want 2", n)
	}
}

// TestReclaimPoolRelease: a pool that lets go of Min bytes or more gets a
// forced release at once, collections running or not; less, no.
func TestReclaimPoolRelease(t *testing.T) {
	h := &fakeHeap{live: 10 * mib, retained: 10 * mib}
	p := &fakeReleaser{}
	r := newTestReclaimer(h, p)
	now := t0
	r.Tick(now)
	now = now.Add(idle)
	p.next = 63 * mib
	h.gcs++
	if r.Tick(now).Forced {
		t.Fatal("forced for 63 MiB released")
	}
	now = now.Add(idle)
	h.gcs++
	p.next = 700 * mib
	h.retained += 700 * mib
	h.garbage = 700 * mib
	res := r.Tick(now)
	if !res.Forced || res.PoolReleased != 700*mib || h.retained != 10*mib {
		t.Fatalf("pool released %d MiB: forced %v, %d MiB retained after", res.PoolReleased/mib, res.Forced, h.retained/mib)
	}
}

// TestReclaimBurstBeforeFirstTick: a burst that is over by the first Tick
// (a gateway that starts into one) is released as any other.
func TestReclaimBurstBeforeFirstTick(t *testing.T) {
	h := &fakeHeap{live: 1000 * mib, retained: 1024 * mib, garbage: 100 * mib, victim: 900 * mib}
	r := newTestReclaimer(h, NewSyncPool(64, 1<<16, 2))
	now := t0
	if tickN(r, 1, &now) != 0 {
		t.Fatal("forced at the first Tick, before knowing whether collections run")
	}
	if n := tickN(r, 5, &now); n != 3 || h.retained != 24*mib {
		t.Fatalf("%d forced releases, %d MiB retained; want 3 and 24 MiB", n, h.retained/mib)
	}
}
