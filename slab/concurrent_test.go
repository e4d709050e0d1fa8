package slab

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// concurrentCase is one pool for the concurrent tests.
type concurrentCase struct {
	name string
	kind string
	c    config
}

// concurrentCases runs every kind with pages that suffice (small) and with
// pages that keep running out (tiny).
func concurrentCases() []concurrentCase {
	var cases []concurrentCase
	for _, kind := range kinds {
		cases = append(cases,
			concurrentCase{kind + "/small", kind, small},
			concurrentCase{kind + "/tiny", kind, tiny})
	}
	return cases
}

// TestConcurrent has goroutines allocate, fill, check and free buffers of
// random sizes, holding several at a time. Each buffer gets its own byte
// value, so two live buffers sharing memory show up as a changed pattern,
// and as a data race under -race. Nothing but the pool connects the
// goroutines, so the race detector sees only the pool's synchronization.
func TestConcurrent(t *testing.T) {
	const goroutines, maxLive = 8, 8
	iters := 3000
	if testing.Short() {
		iters = 300
	}
	for _, tc := range concurrentCases() {
		kind, c := tc.kind, tc.c
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(t, kind, c)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					type buf struct {
						b []byte
						v byte
					}
					rng := rand.New(rand.NewPCG(uint64(g), 1))
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
						size := rng.IntN(c.max + 100)
						b := p.Alloc(size)
						if len(b) != size {
							t.Errorf("goroutine %d: Alloc(%d) has len %d", g, size, len(b))
							return
						}
						v := byte(g<<5 | it&31)
						fill(b, v)
						live = append(live, buf{b, v})
					}
					for _, x := range live {
						p.Free(x.b)
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestConcurrentDisjoint records every live allocation in a shared set and
// checks each new one against it, so an overlap is caught by address even
// where the pattern check of TestConcurrent could miss it.
func TestConcurrentDisjoint(t *testing.T) {
	const goroutines, maxLive = 4, 16
	iters := 2000
	if testing.Short() {
		iters = 200
	}
	for _, tc := range concurrentCases() {
		kind, c := tc.kind, tc.c
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(t, kind, c)
			var (
				mu   sync.Mutex
				live = make(map[*byte][]byte)
			)
			add := func(b []byte) bool {
				mu.Lock()
				defer mu.Unlock()
				for _, x := range live {
					if overlap(b, x) {
						return false
					}
				}
				if cap(b) > 0 {
					live[&b[:1][0]] = b
				}
				return true
			}
			remove := func(b []byte) {
				mu.Lock()
				defer mu.Unlock()
				if cap(b) > 0 {
					delete(live, &b[:1][0])
				}
			}
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 2))
					var mine [][]byte
					for range iters {
						if len(mine) == maxLive || len(mine) > 0 && rng.IntN(2) == 0 {
							k := rng.IntN(len(mine))
							remove(mine[k])
							p.Free(mine[k])
							mine = append(mine[:k], mine[k+1:]...)
							continue
						}
						b := p.Alloc(rng.IntN(c.max + 1))
						if !add(b) {
							t.Errorf("goroutine %d: Alloc(%d) overlaps a live allocation", g, len(b))
							return
						}
						mine = append(mine, b)
					}
					for _, b := range mine {
						remove(b)
						p.Free(b)
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestConcurrentDoubleFree frees the same chunk from two goroutines at
// once: the pools that detect double Free must keep it once.
func TestConcurrentDoubleFree(t *testing.T) {
	for _, kind := range []string{kindAtom, kindChan} {
		p := newPool(t, kind, tiny)
		for range 200 {
			a := p.Alloc(48)
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() { p.Free(a) })
			}
			wg.Wait()
			b, c := p.Alloc(48), p.Alloc(48)
			if overlap(b, c) {
				t.Fatalf("%s: a chunk freed twice at once is handed out twice", kind)
			}
			p.Free(b)
			p.Free(c)
		}
	}
}
