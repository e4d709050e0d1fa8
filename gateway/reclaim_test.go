package gateway

import (
	"log/slog"
	"testing"
	"time"

	"github.com/fastway-go/fastway/slab"
)

// TestMemReleased: a running gateway lets go of its pool's idle pages every
// MemReleaseInterval, counts them in Stats, and logs it; its reclaimer
// goroutine ends with Shutdown (goleak, TestMain).
func TestMemReleased(t *testing.T) {
	pool := slab.NewAtomPool(slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor, 1<<16)
	rec := &logRecorder{}
	g := startGW(t, Config{MemPool: pool, MemReleaseInterval: 20 * time.Millisecond, Logger: slog.New(rec)})
	// A burst: 4 MiB of 16 KiB chunks, all free again.
	var bufs [][]byte
	for range 256 {
		bufs = append(bufs, pool.Alloc(16<<10))
	}
	for _, b := range bufs {
		pool.Free(b)
	}
	const burst = 256*16<<10 - 64<<10 // all but the page the class keeps
	eventually(t, "the burst's pages released", func() bool { return g.Stats().MemReleased >= burst })
	// The pages may go in more than one round, and other lines may come
	// between: a quiet heap of 64 MiB or more (this package's other tests)
	// is released too.
	var logged int64
	lines := rec.find("memory released")
	for _, l := range lines {
		logged += l["pool_released_bytes"].Int64()
	}
	if logged < burst {
		t.Fatalf("logged %v: %d bytes released, want %d or more", lines, logged, burst)
	}
	t.Logf("released %d B; logged %v", g.Stats().MemReleased, lines)
}
