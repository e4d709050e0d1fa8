package slab

import (
	"errors"
	"math"
	"runtime"
	"slices"
	"testing"
	"unsafe"
)

// config is one set of constructor arguments.
type config struct{ min, max, factor, page int }

var (
	// small has an off-series last class and small pages, so tests can
	// exhaust pages quickly: classes 16, 48, 144, 432, 1000.
	small = config{16, 1000, 3, 4096}
	// defaults is what the gateway runs with: classes 64 B to 64 KiB.
	defaults = config{DefaultMinChunk, DefaultMaxChunk, DefaultFactor, DefaultPageSize}

	// tiny has pages of one to a few dozen chunks, so that concurrent
	// tests keep adding pages (and growing ChanPool's channels).
	tiny = config{16, 1000, 3, 1000}
	// onePage has a largest class of one chunk per page.
	onePage = config{64, 4096, 4, 4096}

	kinds = []string{kindSync, kindAtom, kindChan, kindNone}
)

func newPool(t testing.TB, kind string, c config) Pool {
	t.Helper()
	p, err := New(kind, c.min, c.max, c.factor, c.page)
	if err != nil {
		t.Fatalf("New(%q, %+v): %v", kind, c, err)
	}
	return p
}

// owns reports whether the kind tells its own chunks from foreign slices.
func owns(kind string) bool { return kind == kindAtom || kind == kindChan }

// wantCap is the capacity Alloc(size) should have.
func wantCap(kind string, c config, size int) int {
	if kind == kindNone {
		return size
	}
	if i := newClasses(c.min, c.max, c.factor).index(size); i >= 0 {
		return newClasses(c.min, c.max, c.factor)[i]
	}
	return size
}

// span returns the address range of b's whole capacity.
func span(b []byte) (lo, hi uintptr) {
	if cap(b) == 0 {
		return 0, 0
	}
	lo = uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return lo, lo + uintptr(cap(b))
}

// overlap reports whether the capacities of a and b share memory.
func overlap(a, b []byte) bool {
	alo, ahi := span(a)
	blo, bhi := span(b)
	return alo < bhi && blo < ahi
}

// fill writes v to the whole capacity of b; check reports whether it is
// still there.
func fill(b []byte, v byte) {
	b = b[:cap(b)]
	for i := range b {
		b[i] = v
	}
}

func check(b []byte, v byte) bool {
	for _, x := range b[:cap(b)] {
		if x != v {
			return false
		}
	}
	return true
}

// boundaries returns 0, 1, class-1, class and class+1 for every class, and
// maxChunk+1.
func boundaries(c config) []int {
	sizes := []int{0, 1}
	for _, s := range newClasses(c.min, c.max, c.factor) {
		sizes = append(sizes, s-1, s, s+1)
	}
	slices.Sort(sizes)
	return slices.Compact(sizes)
}

func TestClasses(t *testing.T) {
	tests := []struct {
		min, max, factor int
		want             classes
	}{
		{64, 64 << 10, 2, classes{64, 128, 256, 512, 1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10}},
		{16, 1000, 3, classes{16, 48, 144, 432, 1000}},
		{16, 432, 3, classes{16, 48, 144, 432}},
		{64, 64, 2, classes{64}},
		{64, 65, 2, classes{64, 65}},
		{1 << 40, math.MaxInt, 1 << 20, classes{1 << 40, 1 << 60, math.MaxInt}},
	}
	for _, tt := range tests {
		got := newClasses(tt.min, tt.max, tt.factor)
		if !slices.Equal(got, tt.want) {
			t.Errorf("newClasses(%d, %d, %d) = %v, want %v", tt.min, tt.max, tt.factor, got, tt.want)
		}
	}
	c := newClasses(16, 1000, 3)
	for size, want := range map[int]int{0: 0, 16: 0, 17: 1, 48: 1, 999: 4, 1000: 4, 1001: -1} {
		if got := c.index(size); got != want {
			t.Errorf("index(%d) = %d, want %d", size, got, want)
		}
	}
	for size, want := range map[int]int{0: -1, 16: 0, 17: -1, 432: 3, 1000: 4, 1001: -1} {
		if got := c.exact(size); got != want {
			t.Errorf("exact(%d) = %d, want %d", size, got, want)
		}
	}
}

func TestAllocSizes(t *testing.T) {
	for _, c := range []config{small, defaults, onePage} {
		for _, kind := range kinds {
			p := newPool(t, kind, c)
			for _, size := range boundaries(c) {
				a, b := p.Alloc(size), p.Alloc(size)
				for _, x := range [][]byte{a, b} {
					if x == nil || len(x) != size || cap(x) != wantCap(kind, c, size) {
						t.Fatalf("%s %+v: Alloc(%d): nil=%v len=%d cap=%d, want len %d cap %d",
							kind, c, size, x == nil, len(x), cap(x), size, wantCap(kind, c, size))
					}
				}
				if overlap(a, b) {
					t.Fatalf("%s %+v: two live Alloc(%d) share memory", kind, c, size)
				}
				fill(a, 0xaa)
				fill(b, 0x55)
				if !check(a, 0xaa) || !check(b, 0x55) {
					t.Fatalf("%s %+v: writes to two Alloc(%d) interfere", kind, c, size)
				}
				p.Free(a)
				p.Free(b)
			}
		}
	}
}

func TestAllocNegative(t *testing.T) {
	for _, kind := range kinds {
		if b := newPool(t, kind, small).Alloc(-1); b != nil {
			t.Errorf("%s: Alloc(-1) = %v, want nil", kind, b)
		}
	}
}

func TestFreeReuses(t *testing.T) {
	for _, kind := range []string{kindSync, kindAtom, kindChan} {
		p := newPool(t, kind, small)
		for _, size := range boundaries(small) {
			if size > small.max {
				continue
			}
			if !reused(p, kind, size) {
				t.Errorf("%s: a freed chunk of Alloc(%d) is not handed out again", kind, size)
			}
		}
	}
}

// reused frees one chunk of the given size and reports whether later Allocs
// hand it out again. sync.Pool drops some Puts on purpose under the race
// detector, so SyncPool gets many tries.
func reused(p Pool, kind string, size int) bool {
	a := p.Alloc(size)
	lo, _ := span(a)
	if kind == kindSync {
		for range 100 {
			p.Free(a)
			a = p.Alloc(size)
			if l, _ := span(a); l == lo {
				return true
			}
			lo, _ = span(a)
		}
		return false
	}
	// The chan pool hands chunks out in FIFO order: go through a page.
	p.Free(a)
	var live [][]byte
	defer func() {
		for _, b := range live {
			p.Free(b)
		}
	}()
	for range small.page/wantCap(kind, small, size) + 1 {
		b := p.Alloc(size)
		live = append(live, b)
		if l, _ := span(b); l == lo {
			return true
		}
	}
	return false
}

func TestFreeForeign(t *testing.T) {
	for _, kind := range kinds {
		p := newPool(t, kind, small)
		live := p.Alloc(144)
		fill(live, 0x77)

		// Slices whose capacity is no class size: every pool ignores them.
		foreign := [][]byte{nil, {}, make([]byte, 100), live[16:], live[:10:20], make([]byte, small.max+1)}
		if owns(kind) {
			// Class-sized slices that the pool did not hand out, a
			// class-sized tail of a live chunk, and a chunk of another
			// pool: SyncPool would adopt these (see its doc).
			other := newPool(t, kind, small)
			foreign = append(foreign, make([]byte, 16), make([]byte, 48)[:0], live[96:], other.Alloc(48))
		}
		for _, f := range foreign {
			p.Free(f)
		}

		var got [][]byte
		for _, size := range newClasses(small.min, small.max, small.factor) {
			for range 2*small.page/size + 2 {
				b := p.Alloc(size)
				fill(b, 0x11)
				got = append(got, b)
			}
		}
		for _, b := range got {
			for _, f := range append(foreign, live) {
				if overlap(b, f) {
					t.Fatalf("%s: Alloc(%d) handed out memory of a foreign slice (cap %d)", kind, len(b), cap(f))
				}
			}
		}
		if !check(live, 0x77) {
			t.Fatalf("%s: a live allocation was overwritten after foreign Frees", kind)
		}
		for _, b := range got {
			p.Free(b)
		}
		p.Free(live)
	}
}

func TestDoubleFree(t *testing.T) {
	for _, kind := range []string{kindAtom, kindChan} {
		p := newPool(t, kind, small)
		a := p.Alloc(16)
		p.Free(a)
		p.Free(a)
		p.Free(a[:0])
		seen := make(map[uintptr]bool)
		for range 3 * small.page / 16 {
			b := p.Alloc(16)
			lo, _ := span(b)
			if seen[lo] {
				t.Fatalf("%s: a chunk freed twice is handed out twice", kind)
			}
			seen[lo] = true
		}
	}
}

// tables returns the page tables of each class of an atom or chan pool.
func tables(p Pool) []*pageTable {
	var ts []*pageTable
	switch p := p.(type) {
	case *AtomPool:
		for i := range p.classes {
			ts = append(ts, p.classes[i].table.Load())
		}
	case *ChanPool:
		for i := range p.classes {
			ts = append(ts, p.classes[i].table.Load())
		}
	}
	return ts
}

func TestPagesOnDemand(t *testing.T) {
	for _, kind := range []string{kindAtom, kindChan} {
		p := newPool(t, kind, defaults)
		for i, tb := range tables(p) {
			if len(tb.byNo) != 0 {
				t.Fatalf("%s: idle class %d has %d pages", kind, i, len(tb.byNo))
			}
		}
		p.Free(p.Alloc(100))
		for i, tb := range tables(p) {
			want := 0
			if i == 1 { // the 128-byte class
				want = 1
			}
			if len(tb.byNo) != want {
				t.Fatalf("%s: after Alloc(100), class %d has %d pages, want %d", kind, i, len(tb.byNo), want)
			}
		}
	}
}

func TestPagesGrow(t *testing.T) {
	tests := []struct {
		c     config
		class int
	}{{small, 3}, {onePage, 3}, {defaults, 0}}
	for _, tt := range tests {
		size := newClasses(tt.c.min, tt.c.max, tt.c.factor)[tt.class]
		perPage := tt.c.page / size
		for _, kind := range []string{kindAtom, kindChan} {
			p := newPool(t, kind, tt.c)
			for round := range 2 {
				live := make(map[uintptr]bool)
				var bufs [][]byte
				for range 3*perPage + 1 {
					b := p.Alloc(size)
					lo, _ := span(b)
					if live[lo] {
						t.Fatalf("%s %+v round %d: a live chunk is handed out again", kind, tt.c, round)
					}
					live[lo] = true
					bufs = append(bufs, b)
				}
				if n := len(tables(p)[tt.class].byNo); n != 4 {
					t.Fatalf("%s %+v round %d: %d pages for %d chunks, want 4", kind, tt.c, round, n, len(bufs))
				}
				for _, b := range bufs {
					p.Free(b)
				}
			}
		}
	}
}

func TestNew(t *testing.T) {
	want := map[string]string{kindSync: "SyncPool", kindAtom: "AtomPool", kindChan: "ChanPool", kindNone: "NoPool"}
	for kind, w := range want {
		if got := typeName(newPool(t, kind, defaults)); got != w {
			t.Errorf("New(%q) is a %s, want %s", kind, got, w)
		}
	}
}

func typeName(p Pool) string {
	switch p.(type) {
	case *SyncPool:
		return "SyncPool"
	case *AtomPool:
		return "AtomPool"
	case *ChanPool:
		return "ChanPool"
	case NoPool:
		return "NoPool"
	}
	return "?"
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		kind                   string
		min, max, factor, page int
		want                   error
	}{
		{"", 64, 1024, 2, 4096, ErrUnknownKind},
		{"Atom", 64, 1024, 2, 4096, ErrUnknownKind},
		{"mutex", 64, 1024, 2, 4096, ErrUnknownKind},
		{kindSync, 0, 1024, 2, 4096, ErrInvalidConfig},
		{kindNone, -64, 1024, 2, 4096, ErrInvalidConfig},
		{kindAtom, 64, 32, 2, 4096, ErrInvalidConfig},
		{kindChan, 64, 1024, 1, 4096, ErrInvalidConfig},
		{kindSync, 64, 1024, 0, 4096, ErrInvalidConfig},
		{kindAtom, 64, 1024, 2, 1000, ErrInvalidConfig},
		{kindChan, 64, 1024, 2, 0, ErrInvalidConfig},
		{kindAtom, 1, 1024, 2, maxPerPage + 1, ErrInvalidConfig},
	}
	for _, tt := range tests {
		p, err := New(tt.kind, tt.min, tt.max, tt.factor, tt.page)
		if !errors.Is(err, tt.want) || p != nil {
			t.Errorf("New(%q, %d, %d, %d, %d) = %v, %v; want %v", tt.kind, tt.min, tt.max, tt.factor, tt.page, p, err, tt.want)
			continue
		}
		if msg := err.Error(); len(msg) < 14 || msg[:14] != "fastway: slab:" {
			t.Errorf("error %q lacks the fastway: slab: prefix", msg)
		}
	}
	// The page size does not matter to the unpaged kinds.
	for _, kind := range []string{kindSync, kindNone} {
		if _, err := New(kind, 64, 1024, 2, 0); err != nil {
			t.Errorf("New(%q) with pageSize 0: %v", kind, err)
		}
	}
}

func TestConstructorsPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"NewSyncPool": func() { NewSyncPool(64, 32, 2) },
		"NewAtomPool": func() { NewAtomPool(64, 1024, 2, 512) },
		"NewChanPool": func() { NewChanPool(64, 1024, 1, 4096) },
	} {
		func() {
			defer func() {
				if err, _ := recover().(error); !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("%s with bad arguments: recovered %v, want ErrInvalidConfig", name, err)
				}
			}()
			f()
		}()
	}
}

// TestFreeMisaligned frees a class-sized slice that starts inside a chunk of
// the pool (built with unsafe; Go code cannot make one otherwise): the pools
// that check ownership must ignore it.
func TestFreeMisaligned(t *testing.T) {
	for _, kind := range []string{kindAtom, kindChan} {
		p := newPool(t, kind, small)
		a, b := p.Alloc(16), p.Alloc(16)
		if alo, ahi := span(a); ahi != alo+16 || uintptr(unsafe.Pointer(&b[:1][0])) != ahi {
			t.Fatalf("%s: the first two chunks of a fresh class are not adjacent", kind)
		}
		p.Free(unsafe.Slice(&a[:16][8], 16))
		for range 2 * small.page / 16 {
			c := p.Alloc(16)
			if overlap(c, a) || overlap(c, b) {
				t.Fatalf("%s: a misaligned Free handed out live memory", kind)
			}
		}
	}
}

// TestAtomStacksShareChunks checks that the per-processor free stacks of an
// AtomPool act as one pool: chunks freed onto any stack are handed out
// again before the class grows, and none twice.
func TestAtomStacksShareChunks(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	p := NewAtomPool(small.min, small.max, small.factor, small.page)
	c := &p.classes[0]
	if len(c.stacks) != 4 {
		t.Fatalf("%d stacks with GOMAXPROCS=4, want 4", len(c.stacks))
	}
	perPage := small.page / small.min
	held := make([][]byte, perPage)
	for i := range held {
		held[i] = p.Alloc(small.min)
	}
	if n := len(c.table.Load().byNo); n != 1 {
		t.Fatalf("%d pages after one page of Allocs, want 1", n)
	}
	// Spread the chunks over every stack, as Frees on four cores would.
	for i, b := range held {
		pg, j, ok := c.table.Load().find(b, c.chunk)
		if !ok {
			t.Fatal("an allocated chunk is not found in its class")
		}
		pg.slots[j].Store(0)
		c.push(&c.stacks[i%len(c.stacks)], c.index(pg, j), &pg.slots[j])
	}
	seen := make(map[uintptr]bool)
	for range perPage {
		lo, _ := span(p.Alloc(small.min))
		if seen[lo] {
			t.Fatal("a chunk was handed out twice")
		}
		seen[lo] = true
	}
	if n := len(c.table.Load().byNo); n != 1 {
		t.Fatalf("the class grew to %d pages while other stacks held free chunks", n)
	}
}

// TestAtomStealOntoBusyStack checks a steal whose own stack is not empty:
// the stolen chain is linked below that stack's chunks, and every chunk
// stays reachable exactly once.
func TestAtomStealOntoBusyStack(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	p := NewAtomPool(small.min, small.max, small.factor, small.page)
	c := &p.classes[0]
	held := make([][]byte, 10)
	for i := range held {
		held[i] = p.Alloc(small.min)
	}
	free := func(st *atomStack, b []byte) {
		pg, j, ok := c.table.Load().find(b, c.chunk)
		if !ok || !pg.slots[j].CompareAndSwap(slotUsed, 0) {
			t.Fatal("an allocated chunk is not found, or not marked used")
		}
		c.push(st, c.index(pg, j), &pg.slots[j])
	}
	home, other := &c.stacks[0], &c.stacks[1]
	// drain pops st empty (never more than a page's chunks) and returns
	// the indexes of the chunks it took.
	drain := func(st *atomStack) []uint32 {
		var got []uint32
		for range c.perPage + 1 {
			pg, j, ok := c.pop(st)
			if !ok {
				return got
			}
			got = append(got, c.index(pg, j))
		}
		t.Fatal("a stack holds more chunks than the class has")
		return nil
	}
	// Empty both stacks of the page's other chunks first.
	drain(home)
	drain(other)
	want := map[uint32]bool{}
	for _, b := range held {
		pg, j, _ := c.table.Load().find(b, c.chunk)
		want[c.index(pg, j)] = true
	}
	free(home, held[0])
	for _, b := range held[1:] {
		free(other, b)
	}
	pg, j, ok := c.steal(home)
	if !ok {
		t.Fatal("steal found nothing")
	}
	if other.head.Load()&0xffffffff != 0 {
		t.Fatal("the victim's stack is not empty after a steal")
	}
	got := append(drain(home), c.index(pg, j))
	n := len(got) - 1 // chunks on the stack after the steal
	if n != len(held)-1 {
		t.Fatalf("%d chunks on the stack after the steal, want %d", n, len(held)-1)
	}
	// The stolen chunk and the stack's are the freed ones, each once.
	for _, idx := range got {
		if !want[idx] {
			t.Fatalf("chunk %d came back twice, or was never freed", idx)
		}
		delete(want, idx)
	}
}
