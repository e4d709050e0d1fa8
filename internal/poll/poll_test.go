package poll

import (
	"testing"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of ending the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	panic(r) // Fatalf must not return
}

func TestUntil(t *testing.T) {
	n := 0
	Until(t, time.Second, "three calls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}

	r := &recorder{TB: t}
	func() {
		defer func() {
			if v := recover(); v != r {
				panic(v)
			}
		}()
		Until(r, 10*time.Millisecond, "never", func() bool { return false })
	}()
	if r.failed == "" {
		t.Fatal("Until returned without failing for a condition that never holds")
	}
}
