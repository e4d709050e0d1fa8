package slab

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultReclaimMin is the least a Reclaimer's forced release must be
// worth: bytes a pool let go of, or heap retained above what is live.
const DefaultReclaimMin = 64 << 20

// Reclaimer gives the memory a burst left behind back to the operating
// system, whatever the pool, when its owner calls Tick periodically (the
// gateway does, every Config.MemReleaseInterval):
//
//  1. it lets the pool release what was idle for Idle (Releaser: AtomPool
//     and ChanPool pages that gave out no chunk and are all free);
//  2. the Go runtime returns freed memory to the OS only after a garbage
//     collection has found it free, and then only gradually (its
//     background scavenger) or when the heap is under pressure. After a
//     burst the heap is quiet: no collection runs for minutes (the runtime
//     forces one every 2 minutes) and a SyncPool's chunks, which its
//     sync.Pools keep until two collections have passed, stay. So Tick
//     calls debug.FreeOSMemory (a collection, then every free page back to
//     the OS at once) when the pool has just released at least Min bytes,
//     or when no collection ran since the last Tick and the heap retains
//     at least Min bytes more than the lowest it has retained since its
//     last such release (or than nothing, before the first); and again at
//     the next Tick,
//     as long as a release gave back Min or more, and at least twice in a
//     row (the second empties the sync.Pools' victim caches).
//
// Tick is rate-limited by its caller's period: at most one forced release
// per Tick. A heap that keeps what it holds (live data) gets two forced
// collections, then none until it has grown by Min again. Not safe for
// concurrent use: one owner calls Tick.
type Reclaimer struct {
	Pool Pool          // the pool to release from (nil: none)
	Idle time.Duration // how long a page must be idle to go (0: none needs to be)
	Min  int64         // least worth a forced release, in bytes (0: DefaultReclaimMin)

	// readHeap and freeOSMemory are the runtime's, replaced by tests.
	readHeap     func() HeapStats
	freeOSMemory func()

	ticked bool
	gcs    uint64 // GC cycles at the last Tick, after its own release
	floor  int64  // retained bytes past which a quiet heap is released
	streak int    // forced releases in a row
	again  bool   // the last forced release was worth it: do another
}

// HeapStats is what a Reclaimer reads from the runtime.
type HeapStats struct {
	GCs      uint64 // collections so far
	Live     int64  // heap found live by the last collection, in bytes
	Retained int64  // heap memory the process holds (objects, fragmentation, free pages not yet returned)
}

// ReclaimResult says what one Tick did.
type ReclaimResult struct {
	PoolReleased  int64     // bytes the pool let go of
	Forced        bool      // debug.FreeOSMemory ran
	Before, After HeapStats // the heap before and after (After only when Forced)
}

// Tick runs one round (see Reclaimer) with now as the pool's clock.
func (r *Reclaimer) Tick(now time.Time) ReclaimResult {
	read, free := r.readHeap, r.freeOSMemory
	if read == nil {
		read = ReadHeap
	}
	if free == nil {
		free = debug.FreeOSMemory
	}
	least := r.Min
	if least <= 0 {
		least = DefaultReclaimMin
	}
	var res ReclaimResult
	if rel, ok := r.Pool.(Releaser); ok {
		res.PoolReleased = rel.ReleaseIdle(now, r.Idle)
	}
	h := read()
	res.Before = h
	if !r.ticked {
		// The first reading: whether a collection runs is known from the
		// next. The floor starts at Min above nothing, not above the heap
		// now, which may be a burst's.
		r.ticked, r.floor = true, least
		r.gcs = h.GCs + 1 // not quiet
	}
	quiet := h.GCs == r.gcs
	r.floor = min(r.floor, h.Retained+least)
	if res.PoolReleased < least && !r.again && r.streak != 1 && !(quiet && h.Retained >= r.floor) {
		r.streak, r.gcs = 0, h.GCs
		return res
	}
	free()
	after := read()
	res.Forced, res.After = true, after
	r.streak++
	r.again = h.Retained-after.Retained >= least
	r.gcs = after.GCs
	r.floor = after.Retained + least
	return res
}

// heapMetrics are the runtime/metrics samples ReadHeap reads.
var heapMetrics = []string{
	"/gc/cycles/total:gc-cycles",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
}

// ReadHeap reads the heap's state from runtime/metrics.
func ReadHeap() HeapStats {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return HeapStats{
		GCs:      v(0),
		Live:     int64(v(1)),
		Retained: int64(v(2) + v(3) + v(4)),
	}
}
