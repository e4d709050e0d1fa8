// Package poll is for tests that wait for a state that announces itself by
// no event (a counter, an HTTP status, a log line): Until checks it over
// and over, and fails the test if it does not come within a deadline.
package poll

import (
	"testing"
	"time"
)

// Every is how often Until checks.
const Every = 2 * time.Millisecond

// Until calls cond every Every until it returns true, and fails tb with
// "timed out waiting for what" if it has not after within.
func Until(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(Every)
	}
}
