package gateway

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

// Helpers shared by the hardening tests (hostile_test.go, slowloris_test.go,
// consumer_test.go, churn_test.go, drain_test.go). Their figures are
// collected in docs/reliability.md; run them with
//
//	go test -run 'Hardening' -v ./gateway/
//
// to see what each one measured (t.Logf).

// scaled returns full, or reduced when the tests run under the race
// detector or -short, so the package's test time stays bounded. The
// documented figures are for full, measured without -race.
func scaled(full, race, short int) int {
	switch {
	case testing.Short():
		return short
	case raceEnabled:
		return race
	}
	return full
}

// raiseNoFile lifts the soft limit on open files to the hard limit, for tests
// that hold thousands of sockets (each loopback connection costs two
// descriptors in this process: ours and the gateway's). It skips nothing:
// if the hard limit is below need, the test fails and says so.
func raiseNoFile(t testing.TB, need uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatalf("setrlimit: %v", err)
		}
	}
	if rl.Cur < need {
		t.Fatalf("RLIMIT_NOFILE is %d (hard %d); this test needs %d descriptors", rl.Cur, rl.Max, need)
	}
}

// goroutineBaseline waits until g serves both ports (so the goroutines a
// gateway keeps for its lifetime, such as its clock, are running) and
// returns the process's goroutine count.
func goroutineBaseline(t testing.TB, g *testGW) int {
	t.Helper()
	eventually(t, "gateway ready", g.Ready)
	return runtime.NumGoroutine()
}

// settleGoroutines waits (bounded) until the process has at most base
// goroutines, and fails the test if it never does, listing the count.
func settleGoroutines(t testing.TB, base int) time.Duration {
	t.Helper()
	start := time.Now()
	poll.UntilNil(t, 2*waitFor, "the goroutines to settle", func() error {
		if n := runtime.NumGoroutine(); n > base {
			return goroutineExcess{n, base}
		}
		return nil
	})
	return time.Since(start)
}

// goroutineExcess is more goroutines than a baseline; its message lists
// every goroutine's stack, taken when it is printed.
type goroutineExcess struct{ n, base int }

func (e goroutineExcess) Error() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return fmt.Sprintf("%d goroutines after the test, baseline %d; stacks:\n%s", e.n, e.base, buf)
}

// heapInuse returns HeapInuse after two garbage collections.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// rawConn is a loopback connection read through a bufio.Reader with fixed
// frame reads that allocate nothing, for load tests whose peers must not
// weigh on the heap they measure.
type rawConn struct {
	net.Conn
	r   *bufio.Reader
	buf [proto.MaxCmdSize]byte
}

func newRawConn(c net.Conn) *rawConn {
	return &rawConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// readCmd reads one command frame into the connection's scratch buffer.
func (c *rawConn) readCmd() (proto.Command, error) {
	if _, err := io.ReadFull(c.r, c.buf[:proto.SizeOfLength]); err != nil {
		return proto.Command{}, err
	}
	n := binary.LittleEndian.Uint32(c.buf[:])
	if n < proto.MinLength || int(n) > len(c.buf)-proto.SizeOfLength {
		return proto.Command{}, fmt.Errorf("frame of Length %d where a command was expected", n)
	}
	f := c.buf[:proto.SizeOfLength+int(n)]
	if _, err := io.ReadFull(c.r, f[proto.SizeOfLength:]); err != nil {
		return proto.Command{}, err
	}
	return proto.DecodeCommand(f)
}

// collector gathers the first error of many goroutines.
type collector struct {
	mu  sync.Mutex
	err error
}

func (c *collector) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

func (c *collector) get() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *collector) check(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		t.Fatal(c.err)
	}
}
