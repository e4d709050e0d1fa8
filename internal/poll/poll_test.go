package poll

import (
	"fmt"
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
	r.failed = fmt.Sprintf(format, args...)
	panic(r) // Fatalf must not return
}

// fails runs f, which must fail r, and returns the failure.
func (r *recorder) fails(t *testing.T, f func()) string {
	t.Helper()
	r.failed = ""
	func() {
		defer func() {
			if v := recover(); v != r {
				panic(v)
			}
		}()
		f()
	}()
	if r.failed == "" {
		t.Fatal("returned without failing for a state that never comes")
	}
	return r.failed
}

func TestUntil(t *testing.T) {
	n := 0
	Until(t, time.Second, "three calls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}

	r := &recorder{TB: t}
	msg := r.fails(t, func() { Until(r, 10*time.Millisecond, "never", func() bool { return false }) })
	if msg != "timed out after 10ms waiting for never" {
		t.Fatalf("Until failed with %q", msg)
	}
}

// TestUntilNil: UntilNil waits for a nil error, and its failure carries the
// last error check returned.
func TestUntilNil(t *testing.T) {
	n := 0
	UntilNil(t, time.Second, "three calls", func() error {
		if n++; n < 3 {
			return fmt.Errorf("call %d", n)
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("check called %d times, want 3", n)
	}
	r := &recorder{TB: t}
	n = 0
	msg := r.fails(t, func() {
		UntilNil(r, 10*time.Millisecond, "never", func() error { n++; return fmt.Errorf("call %d", n) })
	})
	if want := fmt.Sprintf("timed out after 10ms waiting for never: call %d", n); msg != want {
		t.Fatalf("UntilNil failed with %q, want %q", msg, want)
	}
}
