package slab

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// releasers are the pool kinds that implement Releaser.
var releasers = []string{kindAtom, kindChan}

// livePages returns the pages class ci of p holds.
func livePages(p Pool, ci int) int { return tables(p)[ci].live() }

// t0 is the fake clock's start; the pools see no other time.
var t0 = time.Unix(1_000_000, 0)

const idle = 10 * time.Second

// allocPages allocates n pages' worth of chunks of class ci of config c.
func allocPages(p Pool, c config, ci, n int) [][]byte {
	size := newClasses(c.min, c.max, c.factor)[ci]
	var bufs [][]byte
	for range n * (c.page / size) {
		bufs = append(bufs, p.Alloc(size))
	}
	return bufs
}

// TestReleaseIdle: a class whose chunks are all free and untouched for idle
// gives every page back but one, at the first call at least idle after the
// one that saw it last used, and not before; the class serves Allocs again
// after.
func TestReleaseIdle(t *testing.T) {
	const ci, pages = 2, 3 // the 144-byte class of small: 28 chunks a page
	for _, kind := range releasers {
		p := newPool(t, kind, small)
		r := p.(Releaser)
		for _, b := range allocPages(p, small, ci, pages) {
			p.Free(b)
		}
		if n := livePages(p, ci); n != pages {
			t.Fatalf("%s: %d pages, want %d", kind, n, pages)
		}
		if n := r.ReleaseIdle(t0, idle); n != 0 {
			t.Fatalf("%s: the first call released %d B of pages just used", kind, n)
		}
		if n := r.ReleaseIdle(t0.Add(idle-time.Nanosecond), idle); n != 0 {
			t.Fatalf("%s: released %d B before the pages were idle for %v", kind, n, idle)
		}
		want := int64((pages - 1) * (small.page / 144) * 144)
		if n := r.ReleaseIdle(t0.Add(idle), idle); n != want {
			t.Fatalf("%s: released %d B after %v idle, want %d", kind, n, idle, want)
		}
		if n := livePages(p, ci); n != 1 {
			t.Fatalf("%s: %d pages left, want 1", kind, n)
		}
		// The class grows again, reusing the page numbers.
		bufs := allocPages(p, small, ci, pages)
		if n, nos := livePages(p, ci), len(tables(p)[ci].byNo); n != pages || nos != pages {
			t.Fatalf("%s: after new Allocs %d pages, numbers up to %d, want %d", kind, n, nos, pages)
		}
		checkDisjoint(t, kind, bufs)
	}
}

// checkDisjoint fills each buffer with its own value and checks none
// overwrote another: no chunk is handed out twice.
func checkDisjoint(t *testing.T, kind string, bufs [][]byte) {
	t.Helper()
	for i, b := range bufs {
		fill(b, byte(i))
	}
	for i, b := range bufs {
		if !check(b, byte(i)) {
			t.Fatalf("%s: buffer %d of %d shares memory with another", kind, i, len(bufs))
		}
	}
}

// TestReleaseKeepsLiveChunks: pages holding a chunk still in use stay,
// with its contents; only the pages whose chunks are all free go, and the
// chunks of the pages that stay are handed out again, each once.
func TestReleaseKeepsLiveChunks(t *testing.T) {
	const ci, pages = 2, 6
	perPage := small.page / 144
	for _, kind := range releasers {
		p := newPool(t, kind, small)
		r := p.(Releaser)
		bufs := allocPages(p, small, ci, pages)
		// Keep one chunk alive in every other page: its last one.
		var live [][]byte
		for i, b := range bufs {
			if page := i / perPage; page%2 == 0 && i%perPage == perPage-1 {
				fill(b, byte(0xa0+page))
				live = append(live, b)
				continue
			}
			p.Free(b)
		}
		r.ReleaseIdle(t0, idle)
		got := r.ReleaseIdle(t0.Add(idle), idle)
		if want := int64(pages / 2 * perPage * 144); got != want {
			t.Fatalf("%s: released %d B, want %d (the %d pages without a live chunk)", kind, got, want, pages/2)
		}
		if n := livePages(p, ci); n != pages/2 {
			t.Fatalf("%s: %d pages left, want %d", kind, n, pages/2)
		}
		for i, b := range live {
			if !check(b, byte(0xa0+2*i)) {
				t.Fatalf("%s: live chunk %d was overwritten", kind, i)
			}
		}
		// The kept pages' free chunks come back, none twice, none live.
		var again [][]byte
		for range pages / 2 * (perPage - 1) {
			again = append(again, p.Alloc(144))
		}
		if n := livePages(p, ci); n != pages/2 {
			t.Fatalf("%s: the class grew to %d pages while %d free chunks were left", kind, n, pages/2*(perPage-1))
		}
		for _, a := range again {
			for _, b := range live {
				if overlap(a, b) {
					t.Fatalf("%s: a live chunk was handed out", kind)
				}
			}
		}
		checkDisjoint(t, kind, again)
		for i, b := range live {
			if !check(b, byte(0xa0+2*i)) {
				t.Fatalf("%s: live chunk %d was overwritten", kind, i)
			}
		}
	}
}

// TestReleaseSparesBusyPages: an AtomPool page that gives out chunks
// between calls stays; a ChanPool class keeps the chunks it needed at its
// busiest since the last call.
func TestReleaseSparesBusyPages(t *testing.T) {
	const ci = 2
	perPage := small.page / 144
	t.Run("atom", func(t *testing.T) {
		p := newPool(t, kindAtom, small)
		r := p.(Releaser)
		for _, b := range allocPages(p, small, ci, 4) {
			p.Free(b)
		}
		now := t0
		r.ReleaseIdle(now, idle)
		for range 5 {
			// One Alloc and Free between calls: LIFO, the same chunk,
			// so one page stays in use.
			p.Free(p.Alloc(144))
			now = now.Add(idle)
			r.ReleaseIdle(now, idle)
		}
		if n := livePages(p, ci); n != 1 {
			t.Fatalf("%d pages left, want 1 (the busy one)", n)
		}
	})
	t.Run("chan", func(t *testing.T) {
		p := newPool(t, kindChan, small)
		r := p.(Releaser)
		for _, b := range allocPages(p, small, ci, 4) {
			p.Free(b)
		}
		r.ReleaseIdle(t0, idle)
		// At its busiest, the class had 2 pages and a half of chunks out.
		held := allocPages(p, small, ci, 2)
		for range perPage / 2 {
			held = append(held, p.Alloc(144))
		}
		for _, b := range held {
			p.Free(b)
		}
		r.ReleaseIdle(t0.Add(idle), idle)
		if n := livePages(p, ci); n != 3 {
			t.Fatalf("%d pages left, want 3 (what the class needed at its busiest)", n)
		}
		// A quiet interval: the rest goes, but for the one page a class
		// keeps.
		r.ReleaseIdle(t0.Add(2*idle), idle)
		if n := livePages(p, ci); n != 1 {
			t.Fatalf("%d pages left after a quiet interval, want 1", n)
		}
	})
}

// TestReleaseBurstsReuseNumbers: bursts and releases over and over keep the
// page numbers (and so chunk indices) within the largest burst's.
func TestReleaseBurstsReuseNumbers(t *testing.T) {
	const ci = 2
	for _, kind := range releasers {
		p := newPool(t, kind, small)
		r := p.(Releaser)
		now := t0
		for round := range 20 {
			for _, b := range allocPages(p, small, ci, 1+round%5) {
				p.Free(b)
			}
			for range 3 {
				r.ReleaseIdle(now, idle)
				now = now.Add(idle)
			}
			if n := livePages(p, ci); n != 1 {
				t.Fatalf("%s round %d: %d pages left, want 1", kind, round, n)
			}
		}
		if n := len(tables(p)[ci].byNo); n > 5 {
			t.Fatalf("%s: page numbers up to %d after bursts of at most 5 pages", kind, n)
		}
	}
}

// TestReleaseConcurrent runs ReleaseIdle in a loop (idle 0: every page
// not used since the previous call is a candidate) while goroutines
// allocate, fill, check and free, as in TestConcurrent: no live chunk is
// released or handed out twice, under the race detector too.
func TestReleaseConcurrent(t *testing.T) {
	const goroutines, maxLive = 4, 8
	iters := 3000
	if testing.Short() {
		iters = 300
	}
	for _, tc := range concurrentCases() {
		if tc.kind != kindAtom && tc.kind != kindChan {
			continue
		}
		kind, c := tc.kind, tc.c
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(t, kind, c)
			r := p.(Releaser)
			stop := make(chan struct{})
			var releaser sync.WaitGroup
			var released int64
			now := t0
			releaser.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					released += r.ReleaseIdle(now, 0)
					now = now.Add(time.Second)
				}
			})
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					type buf struct {
						b []byte
						v byte
					}
					rng := rand.New(rand.NewPCG(uint64(g), 3))
					var live []buf
					for it := range iters {
						if len(live) == maxLive || len(live) > 0 && rng.IntN(2) == 0 {
							k := rng.IntN(len(live))
							if !check(live[k].b, live[k].v) {
								t.Errorf("goroutine %d: a live buffer of len %d was overwritten", g, len(live[k].b))
								return
							}
							p.Free(live[k].b)
							live = append(live[:k], live[k+1:]...)
							continue
						}
						size := rng.IntN(c.max + 1)
						b := p.Alloc(size)
						v := byte(g<<5 | it&31)
						fill(b, v)
						live = append(live, buf{b, v})
					}
					for _, x := range live {
						if !check(x.b, x.v) {
							t.Errorf("goroutine %d: a live buffer was overwritten", g)
						}
						p.Free(x.b)
					}
				})
			}
			wg.Wait()
			close(stop)
			releaser.Wait()
			t.Logf("released %d B during the run", released)
			// Everything is free now: two calls release every page but
			// one per class.
			r.ReleaseIdle(now, 0)
			r.ReleaseIdle(now.Add(time.Second), 0)
			for ci := range tables(p) {
				if n := livePages(p, ci); n > 1 {
					t.Errorf("class %d keeps %d pages with every chunk free", ci, n)
				}
			}
		})
	}
}
