package proto

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ as well (one file per
// command and per golden vector), so a plain `go test` replays them.

// seedFrames returns one frame of every command, the golden vectors and a
// few frames the parsers must reject.
func seedFrames(tb testing.TB) [][]byte {
	seeds := [][]byte{
		unhex(tb, goldenDial),
		unhex(tb, goldenAccept),
		unhex(tb, goldenData),
		Command{Type: CmdDial, RemoteID: 1}.Encode(nil),
		Command{Type: CmdAccept, ConnID: 9527, RemoteID: 1}.Encode(nil),
		Command{Type: CmdConnect, ConnID: 9527, RemoteID: 0xFFFFFFFF}.Encode(nil),
		Command{Type: CmdRefuse, RemoteID: 0}.Encode(nil),
		Command{Type: CmdClose, ConnID: 9527}.Encode(nil),
		Command{Type: CmdPing}.Encode(nil),
		unhex(tb, "04000000 00000000"),                // Length 4, no type byte
		unhex(tb, "08000000 00000000 00 010000"),      // Dial missing a byte
		unhex(tb, "0a000000 00000000 00 01000000 00"), // Dial with an extra byte
		unhex(tb, "05000000 00000000 06"),             // unknown type
		unhex(tb, "05000000 00000000 ff"),             // unknown type
		unhex(tb, "03000000"),                         // Length < 4
		unhex(tb, "01000800 00000000"),                // Length MaxPacket+1
		unhex(tb, "00000800 01000000"),                // Length MaxPacket, cut short
	}
	return seeds
}

// refParse is an independent reference for the framing rules: the frames a
// conforming reader returns for data and the error that ends the stream.
func refParse(data []byte, maxPacket int) ([][]byte, error) {
	var frames [][]byte
	for {
		if len(data) == 0 {
			return frames, io.EOF
		}
		if len(data) < SizeOfLength {
			return frames, io.ErrUnexpectedEOF
		}
		length := uint64(binary.LittleEndian.Uint32(data))
		switch {
		case length < 4:
			return frames, ErrShortFrame
		case length > uint64(maxPacket):
			return frames, ErrFrameTooLarge
		case uint64(len(data)) < SizeOfLength+length:
			return frames, io.ErrUnexpectedEOF
		}
		n := SizeOfLength + int(length)
		frames = append(frames, data[:n])
		data = data[n:]
	}
}

// errKind maps an error that ends a frame stream to its sentinel.
func errKind(err error) error {
	for _, k := range []error{io.ErrUnexpectedEOF, io.EOF, ErrShortFrame, ErrFrameTooLarge} {
		if errors.Is(err, k) {
			return k
		}
	}
	return err
}

// checkReencode fails unless re-encoding the decoded frame gives its bytes.
func checkReencode(t *testing.T, f []byte) {
	t.Helper()
	h := Header(f)
	if id := h.ConnID(); id != 0 {
		if got := EncodeData(nil, id, f[HeaderSize:]); !bytes.Equal(got, f) {
			t.Fatalf("data frame %x re-encodes as %x", f, got)
		}
		return
	}
	c, err := DecodeCommand(f)
	if err != nil {
		if !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrUnknownCmd) {
			t.Fatalf("DecodeCommand(%x) of a whole frame: %v", f, err)
		}
		return
	}
	if got := c.Encode(nil); !bytes.Equal(got, f) {
		t.Fatalf("command %x decodes as %+v, re-encodes as %x", f, c, got)
	}
}

func FuzzFrameReader(f *testing.F) {
	seeds := seedFrames(f)
	for i, s := range seeds {
		f.Add(s, uint16(len(s)/2))
		f.Add(s, uint16(i))
	}
	f.Add(bytes.Join(seeds[:9], nil), uint16(13))
	f.Add(bytes.Join(seeds, nil), uint16(100))

	configs := []struct{ bufSize, maxPacket int }{
		{HeaderSize, 64},      // every frame past 8 bytes takes the large path
		{32, 1024},            // a mix of both paths
		{0, DefaultMaxPacket}, // the defaults
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		cut := int(split) % (len(data) + 1)
		for _, cfg := range configs {
			want, wantErr := refParse(data, cfg.maxPacket)
			readers := []struct {
				name string
				r    func() io.Reader
			}{
				{"whole", func() io.Reader { return bytes.NewReader(data) }},
				{"split", func() io.Reader { return io.MultiReader(bytes.NewReader(data[:cut]), bytes.NewReader(data[cut:])) }},
				{"one-byte", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) }},
			}
			// Every mode holds its frames to the end (readHolding), so a
			// later read that overwrote one would show. minShare 0 reads
			// every frame into a buffer of its own (as ReadFrame); 9 hands
			// out in place every frame it may; 24 with borrow also borrows
			// the frames below 24 bytes, copied at once (the pool poisons
			// what is freed, so a borrowed frame whose buffer went back too
			// early would show).
			for _, mode := range []struct {
				minShare int
				borrow   bool
			}{{0, false}, {9, false}, {24, true}} {
				for _, rd := range readers {
					fuzzRead(t, rd.name, rd.r(), cfg.bufSize, cfg.maxPacket, mode.minShare, mode.borrow, want, wantErr)
				}
			}
		}
	})
}

// fuzzRead reads r to its end with a FrameReader (readHolding) and checks
// the frames and the error against the reference parse, and the pool's
// balance.
func fuzzRead(t *testing.T, name string, r io.Reader, bufSize, maxPacket, minShare int, borrow bool, want [][]byte, wantErr error) {
	t.Helper()
	pool := newCountingPool()
	fr := NewFrameReader(r, pool, bufSize, maxPacket)
	cfg := fmt.Sprintf("buf %d, max %d, share %d, borrow %v", bufSize, maxPacket, minShare, borrow)
	got, err := readHolding(t, fr, minShare, borrow, func(fb []byte) {
		if len(fb) < HeaderSize || int(Header(fb).Length()) != len(fb)-SizeOfLength {
			t.Fatalf("%s %s: frame %x has a bad Length", name, cfg, fb)
		}
		if err := CheckLength(Header(fb).Length(), maxPacket); err != nil {
			t.Fatalf("%s %s: frame %x returned: %v", name, cfg, fb, err)
		}
		checkReencode(t, fb)
	})
	if errKind(err) != wantErr {
		t.Fatalf("%s %s: stream ended with %v, want %v", name, cfg, err, wantErr)
	}
	if len(got) != len(want) {
		t.Fatalf("%s %s: %d frames, want %d", name, cfg, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].frame, want[i]) {
			t.Fatalf("%s %s: frame %d = %x, want %x", name, cfg, i, got[i].frame, want[i])
		}
	}
	// Nothing is allocated beyond the read buffer and what a legal Length
	// announces.
	if bufSize == 0 {
		bufSize = DefaultBufferSize
	}
	for _, n := range pool.allocs() {
		if n > bufSize && n > SizeOfLength+maxPacket {
			t.Fatalf("%s %s: Alloc(%d) beyond the read buffer and MaxPacket", name, cfg, n)
		}
	}
	fr.Release()
	releaseHeld(pool, got)
	pool.checkBalanced(t)
}

// refDecode is an independent reference for DecodeCommand's acceptance.
func refDecode(frame []byte) (Command, bool) {
	if len(frame) < 9 {
		return Command{}, false
	}
	le := binary.LittleEndian
	if int(le.Uint32(frame)) != len(frame)-4 || le.Uint32(frame[4:]) != 0 {
		return Command{}, false
	}
	c := Command{Type: Cmd(frame[8])}
	args := frame[9:]
	switch {
	case (c.Type == CmdDial || c.Type == CmdRefuse) && len(args) == 4:
		c.RemoteID = le.Uint32(args)
	case c.Type == CmdClose && len(args) == 4:
		c.ConnID = le.Uint32(args)
	case (c.Type == CmdAccept || c.Type == CmdConnect) && len(args) == 8:
		c.ConnID, c.RemoteID = le.Uint32(args), le.Uint32(args[4:])
	case c.Type == CmdPing && len(args) == 0:
	default:
		return Command{}, false
	}
	return c, true
}

func FuzzDecodeCommand(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		ref, ok := refDecode(data)
		if (err == nil) != ok {
			t.Fatalf("DecodeCommand(%x) = %+v, %v; reference accepts: %v", data, c, err, ok)
		}
		if err != nil {
			if c != (Command{}) {
				t.Fatalf("DecodeCommand(%x) returned %+v with error %v", data, c, err)
			}
			if !errors.Is(err, ErrBadLength) && !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrUnknownCmd) {
				t.Fatalf("DecodeCommand(%x): unexpected error %v", data, err)
			}
			return
		}
		if c != ref {
			t.Fatalf("DecodeCommand(%x) = %+v, reference %+v", data, c, ref)
		}
		frame := make([]byte, CmdSize(c.Type))
		c.Put(frame)
		if !bytes.Equal(frame, data) {
			t.Fatalf("DecodeCommand(%x) = %+v, Put gives %x", data, c, frame)
		}
		if enc := c.Encode(nil); !bytes.Equal(enc, data) {
			t.Fatalf("DecodeCommand(%x) = %+v, Encode gives %x", data, c, enc)
		}
	})
}

func FuzzVerifyAuthReply(f *testing.F) {
	good := EncodeAuthReply(vecChallenge, vecKey, 9527)
	zero := EncodeAuthReply(vecChallenge, vecKey, 0)
	f.Add(vecChallenge, vecKey, good[:])
	f.Add(vecChallenge, vecKey, zero[:])
	f.Add(vecChallenge, "other key", good[:])
	f.Add(vecChallenge, vecKey, good[:19])
	f.Add([]byte{}, "", []byte{})
	f.Fuzz(func(t *testing.T, challenge []byte, key string, reply []byte) {
		id, err := VerifyAuthReply(challenge, key, reply)
		want := md5.Sum(append(append([]byte(nil), challenge...), key...))
		correct := len(reply) == AuthReplySize && bytes.Equal(reply[:DigestSize], want[:])
		switch {
		case !correct:
			if !errors.Is(err, ErrAuthFailed) || id != 0 {
				t.Fatalf("wrong reply %x for %x/%q accepted: %d, %v", reply, challenge, key, id, err)
			}
		default:
			if err != nil || id != binary.LittleEndian.Uint32(reply[DigestSize:]) {
				t.Fatalf("correct reply %x for %x/%q: %d, %v", reply, challenge, key, id, err)
			}
		}
		// The correct reply for this challenge and key always passes.
		wantID := uint32(len(reply))
		r := EncodeAuthReply(challenge, key, wantID)
		if id, err := VerifyAuthReply(challenge, key, r[:]); err != nil || id != wantID {
			t.Fatalf("EncodeAuthReply(%x, %q) rejected: %d, %v", challenge, key, id, err)
		}
	})
}
