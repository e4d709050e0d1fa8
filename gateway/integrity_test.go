package gateway

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// readData reads frames from p until n data frames arrived, skipping
// commands, and returns them.
func readData(t *testing.T, p *peer, n int) [][]byte {
	t.Helper()
	var got [][]byte
	for len(got) < n {
		f := p.read()
		if proto.Header(f).ConnID() == 0 {
			continue
		}
		got = append(got, f)
	}
	return got
}

// checkFrames fails the test unless got is want, frame for frame.
func checkFrames(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			at := 0
			for at < min(len(got[i]), len(want[i])) && got[i][at] == want[i][at] {
				at++
			}
			t.Fatalf("frame %d: got %d bytes, want %d; first difference at byte %d", i, len(got[i]), len(want[i]), at)
		}
	}
}

// TestIntegrityTrickleThenBurst is the exact trigger of the read-path bug
// the adversarial review found (docs/reliability.md, "Corrupted frame"): a
// client sends a 45 KiB frame whose tail trickles in as 10 reads of 40
// bytes, so the lazy reader shrinks its adaptive buffer, then one burst of
// 45,136 bytes carrying the rest and further frames. The buffered bytes
// were moved into a buffer of the shrunk size and cut short: the server got
// a corrupted frame, then the client was closed as a protocol error. Every
// frame must arrive byte for byte, and the client must stay connected.
func TestIntegrityTrickleThenBurst(t *testing.T) {
	// rest: the bytes of the 45 KiB frame that come in the burst; next:
	// the size of the frames behind it.
	for _, tc := range []struct{ rest, next int }{
		{600, 12000}, {600, 17393}, {2000, 9000}, {25000, 17393}, {45000, 6 << 10},
	} {
		t.Run(fmt.Sprintf("rest=%d,next=%d", tc.rest, tc.next), func(t *testing.T) {
			g := startGW(t, Config{})
			s := g.dialServer(t, 1)
			c := g.dialClient(t)
			id, _ := open(t, c, s, 1)
			rng := rand.New(rand.NewPCG(uint64(tc.rest), uint64(tc.next)))
			frame := func(n int) []byte {
				b := make([]byte, n)
				fillRandom(rng, b)
				return proto.EncodeData(nil, id, b)
			}

			// A first large frame makes the reader grow its buffer.
			warm := frame(45 << 10)
			c.write(warm)
			checkFrames(t, readData(t, s, 1), [][]byte{warm})

			big := frame(45 << 10)
			const trickle, piece = 10, 40
			head := len(big) - trickle*piece - tc.rest
			c.write(big[:head])
			at := head
			for range trickle {
				// A pause between pieces, so each arrives in a read of
				// its own (the pause shapes the reads; what is checked
				// does not depend on it).
				time.Sleep(2 * time.Millisecond)
				c.write(big[at : at+piece])
				at += piece
			}
			time.Sleep(2 * time.Millisecond)
			want := [][]byte{big}
			burst := append([]byte(nil), big[at:]...)
			for len(burst) < 45136 {
				f := frame(tc.next)
				want = append(want, f)
				burst = append(burst, f...)
			}
			c.write(burst)
			checkFrames(t, readData(t, s, len(want)), want)
			c.ping() // still connected
			if n := g.Stats().Disconnected(ReasonProtocolError); n != 0 {
				t.Fatalf("%d protocol-error disconnects", n)
			}
		})
	}
}

// TestIntegrityReadPathRandom sends random frame streams, in random chunks
// with random pauses, both ways through the gateway: every frame arrives
// byte for byte and in order.
func TestIntegrityReadPathRandom(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			g := startGW(t, Config{})
			s := g.dialServer(t, 1)
			c := g.dialClient(t)
			id, _ := open(t, c, s, 1)
			rng := rand.New(rand.NewPCG(seed, 2))
			var stream []byte
			var want [][]byte
			for len(stream) < 1<<20 {
				var n int
				switch rng.IntN(4) {
				case 0:
					n = rng.IntN(64)
				case 1:
					n = rng.IntN(4 << 10)
				case 2:
					n = rng.IntN(64 << 10)
				default:
					n = rng.IntN(200 << 10)
				}
				b := make([]byte, n)
				fillRandom(rng, b)
				f := proto.EncodeData(nil, id, b)
				want = append(want, f)
				stream = append(stream, f...)
			}
			for _, dir := range []struct {
				name     string
				from, to *peer
			}{{"client to server", c, s}, {"server to client", s, c}} {
				errc := make(chan error, 1)
				go func() { errc <- writeShaped(rng.Uint64(), dir.from.conn, stream) }()
				got := readData(t, dir.to, len(want))
				if err := <-errc; err != nil {
					t.Fatalf("%s: write: %v", dir.name, err)
				}
				checkFrames(t, got, want)
			}
		})
	}
}

// writeShaped writes b to c in random chunks: runs of tiny pieces with
// short pauses (a trickle), and bursts.
func writeShaped(seed uint64, c net.Conn, b []byte) error {
	rng := rand.New(rand.NewPCG(seed, 3))
	c.SetWriteDeadline(time.Now().Add(waitFor))
	for len(b) > 0 {
		var n int
		switch rng.IntN(3) {
		case 0:
			n = 1 + rng.IntN(64)
			time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
		case 1:
			n = 1 + rng.IntN(8<<10)
		default:
			n = 1 + rng.IntN(128<<10)
		}
		n = min(n, len(b))
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// TestIntegrityBurstToReadingClient is the review's second trigger: a
// server writes 1,001 data frames of 16 bytes to one client in one write,
// more than ClientSendChanSize (1,000), while the client reads. They were
// all queued by the server's reader before it wrote any, and the client
// was dropped as a slow consumer. A reading client is never one: every
// frame arrives. Two servers writing 999 frames each at once to one
// client must not trip it either.
func TestIntegrityBurstToReadingClient(t *testing.T) {
	for _, tc := range []struct{ servers, frames int }{{1, 1001}, {2, 999}, {4, 999}} {
		t.Run(fmt.Sprintf("servers=%d", tc.servers), func(t *testing.T) {
			g := startGW(t, Config{})
			c := g.dialClient(t)
			want := make(map[uint32][][]byte)
			type burst struct {
				s *peer
				b []byte
			}
			var bursts []burst
			for i := range tc.servers {
				s := g.dialServer(t, uint32(i+1))
				id, _ := open(t, c, s, uint32(i+1))
				var b []byte
				for j := range tc.frames {
					f := proto.EncodeData(nil, id, fmt.Appendf(nil, "%02d frame %07d", i, j))
					b = append(b, f...)
					want[id] = append(want[id], f)
				}
				bursts = append(bursts, burst{s, b})
			}
			errc := make(chan error, len(bursts))
			for _, b := range bursts {
				go func() {
					b.s.conn.SetWriteDeadline(time.Now().Add(waitFor))
					_, err := b.s.conn.Write(b.b)
					errc <- err
				}()
			}
			got := make(map[uint32][][]byte)
			for _, f := range readData(t, c, tc.servers*tc.frames) {
				id := proto.Header(f).ConnID()
				got[id] = append(got[id], f)
			}
			for range bursts {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			for id := range want {
				checkFrames(t, got[id], want[id])
			}
			if n := g.Stats().Disconnected(ReasonSlowConsumer); n != 0 {
				t.Fatalf("%d slow-consumer disconnects of a reading client", n)
			}
		})
	}
}
