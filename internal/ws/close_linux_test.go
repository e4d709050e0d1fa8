//go:build linux

package ws

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// owe leaves a binary message of len(msg) bytes unfinished on c, as a
// non-blocking write that the socket took only part of: its header and the
// first k payload bytes are out.
func owe(t *testing.T, c *Conn, msg []byte, k int) {
	t.Helper()
	h, ok := c.BeginMessage(len(msg))
	if !ok {
		t.Fatal("BeginMessage: the connection is busy")
	}
	out := append(append([]byte(nil), h...), msg[:k]...)
	var w int
	var werr error
	if err := c.RawConn().Write(func(fd uintptr) bool {
		w, werr = syscall.Write(int(fd), out)
		return true
	}); err != nil || werr != nil || w != len(out) {
		t.Fatalf("raw write: %d of %d bytes, %v, %v", w, len(out), err, werr)
	}
	if n := c.EndMessage(len(msg), int64(w), nil); n != int64(k) {
		t.Fatalf("EndMessage: %d payload bytes, want %d", n, k)
	}
}

// TestCloseReplyAfterUnfinishedMessage: the peer's Close frame arrives
// while a message is unfinished. The reply waits for the message to be
// finished (it went out inside it: the peer read the Close frame's bytes
// as payload), and nothing follows the reply: writes fail with
// ErrCloseSent, non-blocking ones do not begin.
func TestCloseReplyAfterUnfinishedMessage(t *testing.T) {
	c, cl, _ := pair(t, Config{})
	msg := []byte("0123456789abcdef")
	owe(t, c, msg, 3)
	if err := cl.WriteFrame(ws.OpClose, true, []byte{0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(waitFor))
		var b [64]byte
		_, err := c.Read(b[:])
		read <- err
	}()
	// The message's rest, as the gateway's writer sends it.
	if n, err := c.FinishMessage([][]byte{msg[3:8], msg[8:], []byte("next")}); err != nil || n != int64(len(msg)-3) {
		t.Fatalf("FinishMessage: %d, %v; want %d bytes", n, err, len(msg)-3)
	}
	if err := <-read; !errors.Is(err, io.EOF) {
		t.Fatalf("Read after the peer's Close: %v, want EOF", err)
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, ErrCloseSent) {
		t.Fatalf("Write after the Close reply: %v, want ErrCloseSent", err)
	}
	if _, ok := c.BeginMessage(4); ok {
		t.Fatal("BeginMessage began a message after the Close reply")
	}
	cl.SetReadDeadline(time.Now().Add(waitFor))
	op, m, err := cl.ReadMessage()
	if err != nil || op != ws.OpBinary || !bytes.Equal(m, msg) {
		t.Fatalf("got %d %q %v, want the whole message %q", op, m, err, msg)
	}
	_, _, err = cl.ReadMessage()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != ws.StatusNormalClosure {
		t.Fatalf("got %v, want the Close reply 1000", err)
	}
	c.Close()
	if n, err := cl.ReadRaw(make([]byte, 64)); n != 0 || err == nil {
		t.Fatalf("after the Close reply: %d bytes, %v; want the connection closed", n, err)
	}
}

// TestCloseInsideUnfinishedMessage: closing a connection whose message is
// unfinished sends no Close frame (its bytes would be read as the
// message's payload): the peer gets the part that went out, then the end
// of the connection.
func TestCloseInsideUnfinishedMessage(t *testing.T) {
	c, cl, _ := pair(t, Config{})
	owe(t, c, []byte("0123456789"), 3)
	c.Close()
	cl.SetReadDeadline(time.Now().Add(waitFor))
	got, err := io.ReadAll(readerOf(cl.ReadRaw))
	if want := []byte{0x82, 10, '0', '1', '2'}; !bytes.Equal(got, want) {
		t.Fatalf("the peer got %x (%v), want %x and the end", got, err, want)
	}
}

type readerOf func([]byte) (int, error)

func (f readerOf) Read(p []byte) (int, error) { return f(p) }
