//go:build unix

package gateway

import (
	"io"
	"net"
	"testing"
)

// TestLinkTryRead: a link's TryRead returns at once with nothing when
// nothing has arrived, with the bytes that have, and io.EOF after the peer
// closed, over a real loopback socket.
func TestLinkTryRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	l := newLink(New(Config{}), conn, sideClient, 1)
	buf := make([]byte, 16)
	if n, err := l.TryRead(buf); n != 0 || err != nil {
		t.Fatalf("TryRead with nothing sent = %d, %v; want 0, nil", n, err)
	}
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	// A read into no room is not the end of the stream.
	if n, err := l.TryRead(nil); n != 0 || err != nil {
		t.Fatalf("TryRead(nil) = %d, %v; want 0, nil", n, err)
	}
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	var got []byte
	eventually(t, "the bytes sent", func() bool {
		n, err := l.TryRead(buf)
		if err != nil {
			t.Fatalf("TryRead: %v", err)
		}
		got = append(got, buf[:n]...)
		return len(got) == 6
	})
	if string(got) != "xhello" {
		t.Fatalf("TryRead read %q, want %q", got, "xhello")
	}
	peer.Close()
	eventually(t, "EOF", func() bool {
		n, err := l.TryRead(buf)
		if n != 0 || (err != nil && err != io.EOF) {
			t.Fatalf("TryRead after close = %d, %v", n, err)
		}
		return err == io.EOF
	})
}
