package gateway

import (
	"runtime"
	"testing"

	"github.com/fastway-go/fastway/proto"
)

// TestIdleReaderStack: an idle client's reader, which has answered a Ping
// and closed a virtual connection (the deepest paths every reader takes),
// keeps the smallest goroutine stack (2 KiB): code every reader runs must
// stay small (docs/benchmarks.md, "An idle client's 2 KiB"; fan-out's
// queueing is kept out of enqueue for this).
func TestIdleReaderStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation grows stacks")
	}
	const n = 200
	g := startGW(t, Config{})
	raiseNoFile(t, 2*n+100)
	s := g.dialServer(t, 1)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.StackInuse
	for range n {
		c := g.dialClient(t)
		id, _ := open(t, c, s, 1)
		c.send(proto.Command{Type: proto.CmdClose, ConnID: id})
		c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
		s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
		c.ping()
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	per := float64(ms.StackInuse-before) / n
	t.Logf("%.0f bytes of goroutine stack per idle client (its reader)", per)
	if per > 3<<10 {
		t.Errorf("%.0f bytes of stack per idle client: a reader's stack grew past 2 KiB", per)
	}
}
