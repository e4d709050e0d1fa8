package snet

import (
	"github.com/fastway-go/fastway/internal/sockbuf"
	"net"
	"runtime"
	"testing"
)

// sockBufs returns c's SO_SNDBUF and SO_RCVBUF as the kernel reports them.
func sockBufs(t *testing.T, c net.Conn) (snd, rcv int) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { snd, rcv = sockbuf.Get(fd) })
	return snd, rcv
}

// TestSocketBuffers: TCPDialer and Listen give both ends' sockets a
// sixteenth of the rewrite buffer (doubled by Linux, whose floor for a send
// buffer is a little higher), set before they connect, and a session's
// rewrite buffer is at least twice what its socket holds, also when the
// kernel's floor lifts small buffers above what was asked.
func TestSocketBuffers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the doubling checked here is Linux's")
	}
	for _, tc := range []struct {
		name   string
		buffer int
		ring   int // the session's rewrite buffer capacity
	}{
		{"default", 0, DefaultRewriterBufferSize},
		{"256K", 256 << 10, 256 << 10},
		{"4K", 4 << 10, 0}, // the 2 KiB floor: the sockets hold more than a quarter of 4K, so the ring is raised
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{RewriterBufferSize: tc.buffer}
			l := newListener(t, cfg)
			cli, srv := pairVia(t, l, cfg, TCPDialer(cfg, l.Addr().String(), waitFor))
			want := 2 * cfg.SocketBuffer()
			for _, c := range []*Conn{cli, srv} {
				c.mu.Lock()
				base, ring := c.base, c.ring.size()
				c.mu.Unlock()
				snd, rcv := sockBufs(t, base)
				if tc.ring != 0 && (rcv != want || snd < want || snd > max(want, linuxMinSndBuf)) {
					t.Errorf("SO_SNDBUF %d, SO_RCVBUF %d; want %d (a send buffer at least %d)", snd, rcv, want, linuxMinSndBuf)
				}
				if ring < 2*(snd+rcv) || ring < max(tc.ring, cfg.withDefaults().RewriterBufferSize) {
					t.Errorf("rewrite buffer of %d bytes for sockets of %d + %d", ring, snd, rcv)
				}
				if tc.ring != 0 && ring != tc.ring {
					t.Errorf("rewrite buffer of %d bytes, want %d", ring, tc.ring)
				}
			}
			exchange(t, cli, srv, 1<<20, 1) // no stall in small buffers
		})
	}
}

// linuxMinSndBuf is the least send buffer Linux gives (SOCK_MIN_SNDBUF on
// 64-bit builds).
const linuxMinSndBuf = 4608
