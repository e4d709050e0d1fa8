package slab

import (
	"fmt"
	"sync"
	"testing"
)

// sink keeps the make baseline's allocations alive, so the compiler cannot
// drop them.
var (
	sinkMu sync.Mutex
	sink   []byte
)

// BenchmarkAlloc measures one Alloc and one Free (a one-byte write between
// them) for each pool kind, against make([]byte, n), serially and from
// parallel goroutines.
func BenchmarkAlloc(b *testing.B) {
	sizes := []struct {
		name string
		n    int
	}{{"64B", 64}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}}
	for _, kind := range append([]string{"make"}, kinds...) {
		for _, size := range sizes {
			n := size.n
			b.Run(fmt.Sprintf("%s/%s/serial", kind, size.name), func(b *testing.B) {
				if kind == "make" {
					b.ReportAllocs()
					for b.Loop() {
						sink = make([]byte, n)
						sink[0] = 1
					}
					return
				}
				p := newPool(b, kind, defaults)
				p.Free(p.Alloc(n)) // warm up: the first page
				b.ReportAllocs()
				for b.Loop() {
					buf := p.Alloc(n)
					buf[0] = 1
					p.Free(buf)
				}
			})
			b.Run(fmt.Sprintf("%s/%s/parallel", kind, size.name), func(b *testing.B) {
				if kind == "make" {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						var local []byte
						for pb.Next() {
							local = make([]byte, n)
							local[0] = 1
						}
						sinkMu.Lock()
						sink = local
						sinkMu.Unlock()
					})
					return
				}
				p := newPool(b, kind, defaults)
				p.Free(p.Alloc(n))
				b.ReportAllocs()
				b.ResetTimer() // b.Loop does this for the serial runs
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						buf := p.Alloc(n)
						buf[0] = 1
						p.Free(buf)
					}
				})
			})
		}
	}
}
