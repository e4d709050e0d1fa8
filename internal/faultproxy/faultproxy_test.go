package faultproxy

import (
	"context"
	"errors"
	"github.com/fastway-go/fastway/internal/sockbuf"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// held writes to a connection to ln's first accepted connection, which
// reads nothing, until writes stop going through, and returns how many
// bytes went: what the sockets (and any proxy) between them hold.
func held(t *testing.T, ln net.Listener, addr string) int {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	d := net.Dialer{Timeout: 5 * time.Second, Control: sockbuf.Control(TimedSockBuf)}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var s net.Conn
	select {
	case s = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
	}
	if s == nil {
		t.Fatal("accept failed")
	}
	defer s.Close()
	// Write until the writes stop making progress for a while: then every
	// buffer on the way is full. (A slow machine can only make the figure
	// smaller, never larger, than what the buffers hold.)
	total := 0
	chunk := make([]byte, 1024)
	for {
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Write(chunk)
		total += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return total
		}
		if err != nil {
			t.Fatal(err)
		}
		if total > 16<<20 {
			t.Fatal("16 MiB went through without a reader")
		}
	}
}

// TestTimedHolds measures what a NewTimed proxy holds of one direction
// whose reader has stopped: the bytes that get through with the proxy
// between two sockets sized like it, less those that get through without.
func TestTimedHolds(t *testing.T) {
	lc := net.ListenConfig{Control: sockbuf.Control(TimedSockBuf)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	direct := held(t, ln, ln.Addr().String())
	p := NewTimed(t, ln.Addr().String(), time.Hour, 1)
	via := held(t, ln, p.Addr())
	t.Logf("sockets alone hold %d bytes, with the proxy %d: the proxy holds %d", direct, via, via-direct)
	// Its two sockets (8 KiB each way, as Linux doubles TimedSockBuf) and
	// its 2 KiB copy buffer: 14,336 bytes in a quiet run, up to 18,432 in
	// runs on a loaded box (the kernel's accounting of the queued segments
	// varies by a write or two). 20 KiB keeps it a short hop under snet's
	// 32 KiB rewrite buffer with the two ends' sockets.
	if via-direct > 20<<10 {
		t.Errorf("the proxy holds %d bytes, want at most 20 KiB", via-direct)
	}
}
