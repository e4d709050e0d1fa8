package ws

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 5 * time.Second

// pair returns a server-side Conn, upgraded by a Listener on loopback, and
// the Client connected to it; both close when the test ends.
func pair(t testing.TB, cfg Config) (*Conn, *Client, *Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, cfg)
	t.Cleanup(func() { l.Close() })
	type res struct {
		c   net.Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		acc <- res{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cl, err := Dial(ctx, "ws://"+ln.Addr().String()+"/", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	r := <-acc
	if r.err != nil {
		t.Fatal(r.err)
	}
	c := r.c.(*Conn)
	t.Cleanup(func() { c.Close() })
	return c, cl, l
}

// TestReadAfterDeadline: a read deadline that passes ends that read only:
// with a later deadline the Conn reads on (the gateway's drain wakes its
// reader with a deadline of now and reads on). Read and ReadLazy both kept
// the deadline's error for good, so every later read failed at once.
func TestReadAfterDeadline(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		c, cl, _ := pair(t, Config{})
		buf := make([]byte, 64)
		read := func() (int, error) {
			if lazy {
				return c.ReadLazy(func() []byte { return buf }, func() {})
			}
			return c.Read(buf)
		}
		c.SetReadDeadline(time.Now())
		if _, err := read(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("lazy %v: got %v, want the deadline's error", lazy, err)
		}
		c.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := cl.Write([]byte("after")); err != nil {
			t.Fatal(err)
		}
		n, err := read()
		if err != nil || string(buf[:n]) != "after" {
			t.Fatalf("lazy %v: after a new deadline got %q, %v; want \"after\"", lazy, buf[:n], err)
		}
	}
}
