package gateway

import (
	"bytes"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"unsafe"
)

// TestReadPathTrickleTrigger replays, through a real gateway, the read
// sequence an outside review found corrupting a stream (proto's
// trickleTrigger): on the link that reads it, a 45 KiB frame, then a
// second one whose tail arrives as 10 reads of 40 bytes, then one burst of
// 45,136 bytes with the rest and more frames. Each chunk is written only once
// the gateway has read everything before it (its socket has nothing unread
// and the writer's nothing unacknowledged), so every chunk is one read of its
// own. The receiving end must get every frame byte-exact. It runs on a
// client link (2 KiB buffer, the default) and on a server link configured
// with a 2 KiB buffer, each way.
func TestReadPathTrickleTrigger(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		up   bool // the client writes
	}{
		{"client link", Config{}, true},
		{"server link with a 2 KiB buffer", Config{ServerBufferSize: 2 << 10}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGW(t, tc.cfg)
			s := g.dialServer(t, 1)
			c := g.dialClient(t)
			id, cid := open(t, c, s, 1)
			from, to, gwEnd := s, c, g.servers.newest(1)
			if tc.up {
				var ok bool
				if gwEnd, ok = g.clients.get(cid); !ok {
					t.Fatal("the client's link is not registered")
				}
				from, to = c, s
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var frames [][]byte
			for _, n := range trickleFrames {
				frames = append(frames, gwFrame(rng, id, n))
			}
			data := bytes.Join(frames, nil)
			for _, n := range trickleChunks {
				from.write(data[:n])
				data = data[n:]
				if gwEnd.isClosed() {
					continue // what the other end got tells why
				}
				eventually(t, "the gateway to read what was sent", func() bool {
					return gwEnd.isClosed() ||
						sockQueue(t, from.conn, syscall.TIOCOUTQ) == 0 && sockQueue(t, gwEnd.conn, syscall.TIOCINQ) == 0
				})
			}
			from.write(data)
			if err := expectFrames(to.conn, to.fr, tc.name, frames); err != nil {
				if gwEnd.isClosed() {
					reason, cause := gwEnd.closeReason()
					t.Fatalf("%v (the gateway closed the writer's link: %v, %v)", err, reason, cause)
				}
				t.Fatal(err)
			}
			from.ping()
			to.ping()
		})
	}
}

// sockQueue returns the bytes in c's receive queue not read yet
// (TIOCINQ) or in its send queue not acknowledged yet (TIOCOUTQ); 0 once c
// is closed.
func sockQueue(t *testing.T, c net.Conn, req uintptr) int {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(&n)))
	}); err != nil {
		return 0 // closed: nothing left to read
	}
	if errno != 0 {
		t.Fatalf("ioctl %#x: %v", req, errno)
	}
	return int(n)
}
