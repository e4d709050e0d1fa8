//go:build linux

package ws

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/gobwas/ws"
)

// fillSocket writes raw bytes to c's socket, behind the Conn's back (it
// knows of no message under way), until the socket takes no more: the
// peer does not read.
func fillSocket(t *testing.T, c *Conn) int {
	t.Helper()
	junk := make([]byte, 1<<20)
	total := 0
	for size := len(junk); size > 0; {
		var w int
		var werr error
		if err := c.RawConn().Write(func(fd uintptr) bool {
			w, werr = syscall.Write(int(fd), junk[:size])
			return true
		}); err != nil {
			t.Fatal(err)
		}
		switch {
		case werr == syscall.EAGAIN:
			size /= 2 // smaller writes may still fit
		case werr != nil:
			t.Fatal(werr)
		default:
			total += w
		}
	}
	return total
}

// TestAttackEndMessageBlocksOnCloseReply: EndMessage (and BeginMessage)
// are the non-blocking half of a write the gateway makes from another
// link's reader (a server's reader writing inline to a client). When the
// client's Close frame arrived while that write held the connection, the
// reply became due, and EndMessage's kick writes it itself, with the
// blocking 5 s control timeout: toward a client whose socket is full (it
// stopped reading), the server's reader, and every client of that server,
// is held for controlTimeout.
func TestAttackEndMessageBlocksOnCloseReply(t *testing.T) {
	c, cl, _ := pair(t, Config{})
	// Fixed buffers (no autotuning), filled until they take no more.
	cl.NetConn().(*net.TCPConn).SetReadBuffer(16 << 10)
	c.NetConn().(*net.TCPConn).SetWriteBuffer(16 << 10)
	n := fillSocket(t, c)
	for k := 0; k < 3; {
		time.Sleep(10 * time.Millisecond) // let ACKs in flight land
		if m := fillSocket(t, c); m > 0 {
			n, k = n+m, 0
		} else {
			k++
		}
	}
	t.Logf("socket full after %d bytes", n)
	// The inline write begins, the socket takes nothing of it.
	if _, ok := c.BeginMessage(100); !ok {
		t.Fatal("BeginMessage: busy")
	}
	if err := cl.WriteFrame(ws.OpClose, true, []byte{0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(3 * waitFor))
		var b [64]byte
		_, err := c.Read(b[:])
		read <- err
	}()
	// The reader decoded the Close frame and waits for the writer.
	poll.Until(t, waitFor, "the reader decoding the Close frame", func() bool { return c.closeDue.Load() != 0 })
	start := time.Now()
	c.EndMessage(100, 0, nil) // EAGAIN: nothing went out
	took := time.Since(start)
	// The reply cannot go out (the client reads nothing): closing ends
	// the wait for it at once, not after the 5 s control timeout.
	c.Close()
	<-read
	if took > 500*time.Millisecond {
		t.Fatalf("EndMessage, the non-blocking write's end, took %v: it wrote the due Close reply into the full socket with the blocking control timeout", took)
	}
}

// TestAttackCloseReplyAfterCloseWaits: Close was called while a message
// was unfinished (so no Close frame went out: the socket is closed), and
// the reader then decodes the peer's Close frame, already read (here:
// bytes that came behind the upgrade request). answerClose waits for a
// reply that nobody can write any more: the reader is held for the full
// 5 s on a connection already closed. (kick returns on the unfinished
// message before dueCloseLocked, which would have seen the failure; and
// Close woke nobody, as nobody waited yet.)
func TestAttackCloseReplyAfterCloseWaits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, Config{})
	defer l.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	b := append([]byte(req), EncodeClientFrame(nil, ws.OpClose, true, []byte{0x03, 0xe8}, ws.NewMask())...)
	if _, err := raw.Write(b); err != nil {
		t.Fatal(err)
	}
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*Conn)
	raw.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := bufio.NewReader(raw).ReadString('\n')
	if err != nil || !strings.Contains(resp, "101") {
		t.Fatalf("upgrade: %q, %v", resp, err)
	}
	if len(c.early) == 0 {
		t.Skip("the Close frame did not come with the request")
	}
	owe(t, c, []byte("0123456789"), 3)
	c.Close()
	start := time.Now()
	var buf [64]byte
	_, rerr := c.Read(buf[:])
	took := time.Since(start)
	if !errors.Is(rerr, io.EOF) && !errors.Is(rerr, net.ErrClosed) {
		t.Logf("Read: %v", rerr)
	}
	if took > 500*time.Millisecond {
		t.Fatalf("Read of the peer's Close on a closed connection took %v: answerClose waited for a reply that cannot go out", took)
	}
}
