//go:build linux

package ws

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/gobwas/ws"
)

// TestAttackNoPongAfterCloseReply: a Ping flood, then Close, then more
// Pings, in one write, while a message is unfinished: once the message is
// finished the peer gets it whole, at most Pongs, the Close reply, and
// nothing after it.
func TestAttackNoPongAfterCloseReply(t *testing.T) {
	c, cl, _ := pair(t, Config{})
	msg := bytes.Repeat([]byte("m"), 1000)
	owe(t, c, msg, 10)
	var b []byte
	for range 200 {
		b = EncodeClientFrame(b, ws.OpPing, true, []byte("p"), ws.NewMask())
	}
	b = EncodeClientFrame(b, ws.OpClose, true, []byte{0x03, 0xe8}, ws.NewMask())
	for range 200 {
		b = EncodeClientFrame(b, ws.OpPing, true, []byte("late"), ws.NewMask())
	}
	cl.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := cl.NetConn().Write(b); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(waitFor))
		var buf [4096]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				read <- err
				return
			}
		}
	}()
	poll.Until(t, waitFor, "the reader decoding the Close frame", func() bool { return c.closeDue.Load() != 0 })
	if n, err := c.FinishMessage([][]byte{msg[10:]}); err != nil || n != int64(len(msg)-10) {
		t.Fatalf("FinishMessage: %d, %v", n, err)
	}
	if err := <-read; !errors.Is(err, io.EOF) {
		t.Fatalf("Read: %v, want EOF", err)
	}
	c.Close()
	cl.SetReadDeadline(time.Now().Add(waitFor))
	r := readerOf(cl.ReadRaw)
	sawMsg, pongs := false, 0
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			t.Fatalf("before the Close reply: %v (message %v, %d pongs)", err, sawMsg, pongs)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatal(err)
		}
		switch h.OpCode {
		case ws.OpBinary:
			if sawMsg || !bytes.Equal(p, msg) {
				t.Fatalf("a binary message of %d bytes, want the one message", len(p))
			}
			sawMsg = true
		case ws.OpPong:
			if !sawMsg || string(p) != "p" {
				t.Fatalf("Pong %q (message out: %v), want only Pongs of the early Pings after the message", p, sawMsg)
			}
			pongs++
		case ws.OpClose:
			if !sawMsg {
				t.Fatal("the Close reply before the unfinished message's end")
			}
			if rest, _ := io.ReadAll(r); len(rest) > 0 {
				t.Fatalf("%d bytes after the Close reply (%x...)", len(rest), rest[:min(len(rest), 16)])
			}
			t.Logf("message, %d pongs, Close", pongs)
			return
		default:
			t.Fatalf("opcode %d", h.OpCode)
		}
	}
}
