package main

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/fastway-go/fastway/proto"
)

// TestFrameReaderSplitInput feeds frames of every size byte by byte and all
// at once, through a buffer smaller than the largest frame.
func TestFrameReaderSplitInput(t *testing.T) {
	var stream []byte
	var want [][]byte
	for _, n := range []int{0, 1, 7, 100, 3000, 9} {
		f := proto.EncodeData(nil, uint32(n+1), bytes.Repeat([]byte{byte(n)}, n))
		want = append(want, f)
		stream = append(stream, f...)
	}
	stream = proto.Command{Type: proto.CmdPing}.Encode(stream)
	want = append(want, proto.Command{Type: proto.CmdPing}.Encode(nil))

	for name, r := range map[string]func() io.Reader{
		"whole":   func() io.Reader { return bytes.NewReader(stream) },
		"onebyte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
	} {
		t.Run(name, func(t *testing.T) {
			fr := newFrameReader(r(), 16, 1024, proto.DefaultMaxPacket)
			var got [][]byte
			for {
				f, err := fr.next()
				if err != nil {
					t.Fatal(err)
				}
				if f != nil {
					got = append(got, bytes.Clone(f))
					continue
				}
				if err := fr.fill(); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d frames, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("frame %d differs", i)
				}
			}
			if fr.wpos != fr.rpos {
				t.Fatalf("%d bytes left over", fr.wpos-fr.rpos)
			}
		})
	}
}

func TestFrameReaderRejectsBadLength(t *testing.T) {
	for _, length := range []uint32{0, 3, 1025} {
		b := []byte{byte(length), byte(length >> 8), 0, 0, 0, 0, 0, 0}
		fr := newFrameReader(bytes.NewReader(b), 16, 16, 1024)
		if err := fr.fill(); err != nil {
			t.Fatal(err)
		}
		if _, err := fr.next(); err == nil {
			t.Errorf("Length %d accepted", length)
		}
	}
}
