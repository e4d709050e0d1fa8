package snet

import (
	"net"
	"syscall"
	"time"

	"github.com/fastway-go/fastway/internal/sockbuf"
)

// sockBufDivisor: SocketBuffer is this fraction of RewriterBufferSize.
const sockBufDivisor = 16

// minSocketBuffer is the least SocketBuffer: Linux makes a receive buffer
// set below it smaller than 4 KiB (2304 bytes at the least), and on
// loopback, where a segment may be 64 KiB, a window that small stalls a
// stream of small writes on TCP's persist timer (TestSocketBuffers, 4K).
// A rewrite buffer below 8 × minSocketBuffer is raised to cover what the
// sockets then hold (see RewriterBufferSize).
const minSocketBuffer = 2 << 10

// SocketBuffer is what snet sets the send and receive buffers (SO_SNDBUF
// and SO_RCVBUF) of its TCP sockets to: a sixteenth of RewriterBufferSize,
// 2 KiB at the least (so 2 KiB at the default 32 KiB). The kernel doubles
// it, and raises a send buffer to a floor of its own (Linux: 4096 bytes to
// receive and 4608 to send at the default), so the bytes a cut can lose in
// the kernel in one direction, the sender's send buffer plus the
// receiver's receive buffer, take about a quarter of the rewrite buffer; a
// sixteenth covers the piece a Write has buffered but not yet handed to the
// kernel, and the rest, about two thirds, what the path in between holds
// (see the package doc, "Limits"). Set explicitly, the buffers are also out of reach
// of TCP autotuning, which would otherwise grow them to megabytes.
func (c Config) SocketBuffer() int {
	return max(c.withDefaults().RewriterBufferSize/sockBufDivisor, minSocketBuffer)
}

// Control sets SocketBuffer on a socket before it connects or listens, as a
// net.Dialer or net.ListenConfig Control function. On a listening socket the
// sizes pass to every connection it accepts, and the window each one
// advertises is sized for them from its first segment: shrinking a receive
// buffer after the connection is established instead can leave the peer's
// bulk writes stalled on TCP's persist timer for minutes. It does nothing
// where socket options are not reachable through syscall (not unix).
func (c Config) Control(network, address string, rc syscall.RawConn) error {
	return sockbuf.Control(c.SocketBuffer())(network, address, rc)
}

// TCPDialer returns a dialer for Dial that connects to addr over TCP within
// timeout, its socket buffers set by cfg.Control before it connects.
func TCPDialer(cfg Config, addr string, timeout time.Duration) func() (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, Control: cfg.Control}
	return func() (net.Conn, error) { return d.Dial("tcp", addr) }
}

// sizeListener sets cfg's socket buffers on inner's socket if it is a TCP
// listener, so that the connections it accepts from now on get them.
func sizeListener(cfg Config, inner net.Listener) error {
	tl, ok := inner.(*net.TCPListener)
	if !ok {
		return nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	return cfg.Control("tcp", tl.Addr().String(), rc)
}

// socketHolds returns what the kernel may hold of one direction of a
// session on conn, estimated from conn's own buffers: its send buffer plus
// a receive buffer as large as its own (the peer's is not known), as the
// kernel reports them (after any doubling, or a floor or ceiling of its
// own). 0 if conn is not a TCP connection.
func socketHolds(conn net.Conn) int {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return 0
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	var snd, rcv int
	rc.Control(func(fd uintptr) { snd, rcv = sockbuf.Get(fd) })
	return snd + rcv
}
