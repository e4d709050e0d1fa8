package snet

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: Conns
// run reconnect and replay goroutines, Listeners accept loops and handshakes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
