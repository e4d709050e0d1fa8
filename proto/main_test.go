package proto

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// endpoints start readers, writers and timers that Close must stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
