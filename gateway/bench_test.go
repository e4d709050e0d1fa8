package gateway

import (
	"io"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// BenchmarkForward measures one-way forwarding through a real gateway on
// loopback: a raw client writes batches of data frames on one virtual
// connection and a raw server reads them. It reports frames/s through the
// gateway; allocs/op counts the whole process (gateway and both peers).
func BenchmarkForward(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"64B", 64}, {"4KiB", 4096}} {
		size := bc.size
		b.Run(bc.name, func(b *testing.B) {
			g := startGW(b, Config{})
			s := g.dialServer(b, 1)
			c := g.dialClient(b)
			id, _ := open(b, c, s, 1)
			const batch = 64
			var frames []byte
			for range batch {
				frames = proto.EncodeData(frames, id, make([]byte, size))
			}
			frameLen := len(frames) / batch
			done := make(chan error, 1)
			total := 0
			b.ReportAllocs()
			b.SetBytes(int64(frameLen))
			b.ResetTimer()
			go func() {
				// The server side drains raw bytes: count, do not parse.
				buf := make([]byte, 256<<10)
				want := b.N * frameLen
				s.conn.SetReadDeadline(time.Now().Add(time.Minute))
				for total < want {
					n, err := s.conn.Read(buf)
					if err != nil {
						done <- err
						return
					}
					total += n
				}
				done <- nil
			}()
			for sent := 0; sent < b.N; sent += batch {
				chunk := frames
				if b.N-sent < batch {
					chunk = frames[:(b.N-sent)*frameLen]
				}
				c.conn.SetWriteDeadline(time.Now().Add(time.Minute))
				if _, err := c.conn.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil && err != io.EOF {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
