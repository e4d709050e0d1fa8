// Package poll is for tests that wait for a state that announces itself by
// no event (a counter, an HTTP status, a log line): Until checks it over
// and over, and fails the test if it does not come within a deadline.
package poll

import (
	"errors"
	"testing"
	"time"
)

// Every is how often Until and UntilNil check.
const Every = 2 * time.Millisecond

// Until calls cond every Every until it returns true, and fails tb with
// "timed out after within waiting for what" if it has not after within.
func Until(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	UntilNil(tb, within, what, func() error {
		if cond() {
			return nil
		}
		return errPending
	})
}

// errPending is the state Until waits on not holding yet: it adds nothing
// to the failure.
var errPending = errors.New("pending")

// UntilNil calls check every Every until it returns nil, and fails tb with
// "timed out after within waiting for what: " and check's last error if it
// has not after within. The error says what the state was instead.
func UntilNil(tb testing.TB, within time.Duration, what string, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if err == errPending {
				tb.Fatalf("timed out after %v waiting for %s", within, what)
			}
			tb.Fatalf("timed out after %v waiting for %s: %v", within, what, err)
		}
		time.Sleep(Every)
	}
}
