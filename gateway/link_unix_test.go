//go:build unix

package gateway

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// TestLinkTryRead: a link's TryRead returns at once with nothing when
// nothing has arrived, with the bytes that have, and io.EOF after the peer
// closed, over a real loopback socket.
func TestLinkTryRead(t *testing.T) {
	conn, peer := tcpPair(t)
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

// TestQueueKeptBetweenTurns: after a writer turn, a server link keeps its
// emptied queue slice (up to maxSpare slots) for the next turn, so a busy
// server's queue does not grow from nothing every time; a client link keeps
// at most idleSpare slots while idle.
func TestQueueKeptBetweenTurns(t *testing.T) {
	for _, tc := range []struct {
		side side
		kept bool
	}{{sideServer, true}, {sideClient, false}} {
		conn, peer := tcpPair(t)
		g := New(Config{})
		l := newLink(g, conn, tc.side, 1)
		const n = 20 // more than idleSpare, less than maxSpare (with room to grow)
		l.mu.Lock()
		l.writing = true // hold the turn so all n queue up first
		l.mu.Unlock()
		for range n {
			l.pushFrame(nil, outFrame{b: []byte{4, 0, 0, 0, 1, 0, 0, 0}}, pushForce)
		}
		l.startWriter(nil, 0)
		buf := make([]byte, 8*n)
		peer.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := io.ReadFull(peer, buf); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the writer turn to end", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return !l.writing
		})
		g.wg.Wait() // the writer goroutine has exited: its turn ended above
		l.mu.Lock()
		c := cap(l.spare)
		l.mu.Unlock()
		if kept := c >= n; kept != tc.kept {
			t.Errorf("%v link: spare queue of %d slots after a turn of %d frames; want kept: %v", tc.side, c, n, tc.kept)
		}
	}
}

// tcpPair returns the two ends of a loopback TCP connection, closed when
// the test ends.
func tcpPair(t *testing.T) (conn, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	if conn, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, peer
}

// TestFinishedLinkDropsScratch: once a link is finished its route cache and
// reuse scratch are dropped, so a closed link that another link's route
// cache still reaches keeps nothing else alive.
func TestFinishedLinkDropsScratch(t *testing.T) {
	g := startGW(t, Config{})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	id, cid := open(t, c, s, 1)
	c.sendData(id, "fills the route cache")
	s.expectData(id, "fills the route cache")
	l, ok := g.clients.get(cid)
	if !ok {
		t.Fatal("the client's link is not registered")
	}
	sl := g.servers.newest(1) // a server link's writer keeps vecSpare too
	if sl == nil {
		t.Fatal("the server's link is not registered")
	}
	c.conn.Close()
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	s.conn.Close()
	for _, l := range []*link{l, sl} {
		eventually(t, l.side.String()+" link to finish", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.gone && l.routes == nil && l.wstate == nil && l.spare == nil && l.vecSpare == nil
		})
	}
}
