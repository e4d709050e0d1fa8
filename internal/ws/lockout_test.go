package ws

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
)

// holdIdle opens n TCP connections from local (an address of 127/8) to
// addr that send nothing, closed when the test ends.
func holdIdle(t *testing.T, addr, local string, n int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// serveAndDrop accepts upgraded connections and closes them.
func serveAndDrop(l *Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// TestHandshakeSlotsLockout (found by the adversarial pass): sockets that
// send nothing and hold every handshake slot no longer keep an honest
// client out until HandshakeTimeout: the oldest handshake makes room, and
// is counted overflow.
func TestHandshakeSlotsLockout(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, Config{MaxHandshakes: 16, MaxHandshakesPerSource: -1, HandshakeTimeout: 3 * time.Second})
	t.Cleanup(func() { l.Close() })
	go serveAndDrop(l)
	holdIdle(t, inner.Addr().String(), "127.0.0.1", 16)
	poll.Until(t, 5*time.Second, "16 handshakes in progress", func() bool { return l.Stats().InProgress == 16 })
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := Dial(ctx, "ws://"+inner.Addr().String()+"/", DialOptions{})
		cancel()
		if err != nil {
			t.Fatalf("honest upgrade %d while idle sockets hold the slots: %v (overflow %d)", i, err, l.Stats().Failed[FailOverflow])
		}
		c.Close()
	}
	// The first upgrade took the oldest idle socket's slot; the others
	// found the slot it left when it was done.
	poll.Until(t, 5*time.Second, "one idle handshake closed for the upgrades", func() bool {
		st := l.Stats()
		return st.Failed[FailOverflow] == 1 && st.Upgrades == 5 && st.InProgress == 15
	})
}

// TestHandshakesPerSource: one source cannot take more than
// MaxHandshakesPerSource of the slots; the rest of its connections are
// closed at once (counted source), and another source upgrades.
func TestHandshakesPerSource(t *testing.T) {
	inner, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(inner.Addr().String())
	l := NewListener(inner, Config{MaxHandshakes: 64, MaxHandshakesPerSource: 8, HandshakeTimeout: 3 * time.Second})
	t.Cleanup(func() { l.Close() })
	go serveAndDrop(l)
	holdIdle(t, "127.0.0.1:"+port, "127.0.0.2", 20)
	poll.Until(t, 5*time.Second, "8 in progress and 12 refused", func() bool {
		st := l.Stats()
		return st.InProgress == 8 && st.Failed[FailSource] == 12
	})
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := Dial(ctx, "ws://127.0.0.1:"+port+"/", DialOptions{NetDial: d.DialContext})
	if err != nil {
		t.Fatalf("another source's upgrade: %v", err)
	}
	c.Close()
	if st := l.Stats(); st.Failed[FailOverflow] != 0 {
		t.Fatalf("overflow %d: no slot should have been short", st.Failed[FailOverflow])
	}
}
