package proto

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/fastway-go/fastway/slab"
)

var (
	sinkCmd   Command
	sinkBytes []byte
)

func BenchmarkCommandPut(b *testing.B) {
	frame := make([]byte, AcceptSize)
	c := Command{Type: CmdAccept, ConnID: 9527, RemoteID: 1}
	b.ReportAllocs()
	for b.Loop() {
		c.Put(frame)
	}
	sinkBytes = frame
}

func BenchmarkCommandEncode(b *testing.B) {
	buf := make([]byte, 0, MaxCmdSize)
	c := Command{Type: CmdAccept, ConnID: 9527, RemoteID: 1}
	b.ReportAllocs()
	for b.Loop() {
		buf = c.Encode(buf[:0])
	}
	sinkBytes = buf
}

func BenchmarkDecodeCommand(b *testing.B) {
	frame := Command{Type: CmdAccept, ConnID: 9527, RemoteID: 1}.Encode(nil)
	b.ReportAllocs()
	for b.Loop() {
		c, err := DecodeCommand(frame)
		if err != nil {
			b.Fatal(err)
		}
		sinkCmd = c
	}
}

func BenchmarkEncodeData(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			msg := bytes.Repeat([]byte("m"), size)
			buf := make([]byte, 0, HeaderSize+size)
			b.SetBytes(int64(HeaderSize + size))
			b.ReportAllocs()
			for b.Loop() {
				buf = EncodeData(buf[:0], 9527, msg)
			}
			sinkBytes = buf
		})
	}
}

// loopReader serves data over and over, as much as fits in each Read.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], l.data[l.off:])
		n += m
		l.off = (l.off + m) % len(l.data)
	}
	return n, nil
}

// BenchmarkReadFrame reads 64-byte frames (Length 60) from an endless
// in-memory stream, freeing each to the pool as the gateway does.
func BenchmarkReadFrame(b *testing.B) {
	frame := EncodeData(nil, 9527, bytes.Repeat([]byte("f"), 64-HeaderSize))
	data := bytes.Repeat(frame, 64)
	for _, kind := range []string{"none", "sync", "atom", "chan"} {
		b.Run(kind, func(b *testing.B) {
			pool, err := slab.New(kind, slab.DefaultMinChunk, slab.DefaultMaxChunk, slab.DefaultFactor, slab.DefaultPageSize)
			if err != nil {
				b.Fatal(err)
			}
			fr := NewFrameReader(&loopReader{data: data}, pool, 0, 0)
			defer fr.Release()
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				f, err := fr.ReadFrame()
				if err != nil {
					b.Fatal(err)
				}
				pool.Free(f)
			}
		})
	}
}
