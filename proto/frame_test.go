package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
)

// unhex decodes a hex literal written as on the wire in PROTOCOL.md (spaces
// between fields are ignored).
func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatalf("bad hex literal %q: %v", s, err)
	}
	return b
}

// The three examples of PROTOCOL.md §1, byte for byte.
const (
	goldenDial   = "09000000 00000000 00 01000000"          // client dials server 1
	goldenAccept = "0d000000 00000000 01 37250000 01000000" // ConnID 9527, remote 1
	goldenData   = "09000000 37250000 48656c6c6f"           // "Hello" on 9527
)

func TestGoldenVectors(t *testing.T) {
	t.Run("Dial", func(t *testing.T) {
		want := unhex(t, goldenDial)
		c := Command{Type: CmdDial, RemoteID: 1}
		if got := c.Encode(nil); !bytes.Equal(got, want) {
			t.Fatalf("Encode = %x, want %x", got, want)
		}
		got, err := DecodeCommand(want)
		if err != nil || got != c {
			t.Fatalf("DecodeCommand = %+v, %v; want %+v", got, err, c)
		}
	})
	t.Run("Accept", func(t *testing.T) {
		want := unhex(t, goldenAccept)
		c := Command{Type: CmdAccept, ConnID: 9527, RemoteID: 1}
		if got := c.Encode(nil); !bytes.Equal(got, want) {
			t.Fatalf("Encode = %x, want %x", got, want)
		}
		got, err := DecodeCommand(want)
		if err != nil || got != c {
			t.Fatalf("DecodeCommand = %+v, %v; want %+v", got, err, c)
		}
	})
	t.Run("Data", func(t *testing.T) {
		want := unhex(t, goldenData)
		if got := EncodeData(nil, 9527, []byte("Hello")); !bytes.Equal(got, want) {
			t.Fatalf("EncodeData = %x, want %x", got, want)
		}
		h := Header(want)
		if h.Length() != 9 || h.ConnID() != 9527 {
			t.Fatalf("Header: Length %d ConnID %d, want 9 9527", h.Length(), h.ConnID())
		}
		if msg := want[HeaderSize:]; string(msg) != "Hello" {
			t.Fatalf("message = %q, want Hello", msg)
		}
		if err := CheckLength(h.Length(), 0); err != nil {
			t.Fatalf("CheckLength: %v", err)
		}
	})
}

func TestCmdValues(t *testing.T) {
	// PROTOCOL.md §1 table; Close is 4 (the upstream README's 5 is a typo).
	tests := []struct {
		cmd    Cmd
		value  byte
		name   string
		length uint32 // the Length field of its frame
	}{
		{CmdDial, 0, "Dial", 9},
		{CmdAccept, 1, "Accept", 13},
		{CmdConnect, 2, "Connect", 13},
		{CmdRefuse, 3, "Refuse", 9},
		{CmdClose, 4, "Close", 9},
		{CmdPing, 5, "Ping", 5},
	}
	for _, tt := range tests {
		if byte(tt.cmd) != tt.value {
			t.Errorf("%s = %d, want %d", tt.name, byte(tt.cmd), tt.value)
		}
		if s := tt.cmd.String(); s != tt.name {
			t.Errorf("Cmd(%d).String() = %q, want %q", tt.value, s, tt.name)
		}
		if n := CmdSize(tt.cmd); n != int(tt.length)+SizeOfLength {
			t.Errorf("CmdSize(%s) = %d, want %d", tt.name, n, tt.length+SizeOfLength)
		}
		frame := Command{Type: tt.cmd}.Encode(nil)
		if got := Header(frame).Length(); got != tt.length {
			t.Errorf("%s frame Length = %d, want %d", tt.name, got, tt.length)
		}
	}
	for _, c := range []Cmd{6, 7, 255} {
		if n := CmdSize(c); n != 0 {
			t.Errorf("CmdSize(%d) = %d, want 0", byte(c), n)
		}
	}
	if s := Cmd(10).String(); s != "Cmd(10)" {
		t.Errorf("Cmd(10).String() = %q", s)
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		name      string
		got, want int
	}{
		{"HeaderSize", HeaderSize, 8},
		{"CmdHeaderSize", CmdHeaderSize, 9},
		{"DialSize", DialSize, 13},
		{"AcceptSize", AcceptSize, 17},
		{"ConnectSize", ConnectSize, 17},
		{"RefuseSize", RefuseSize, 13},
		{"CloseSize", CloseSize, 13},
		{"PingSize", PingSize, 9},
		{"MaxCmdSize", MaxCmdSize, 17},
		{"MinLength", MinLength, 4},
		{"DefaultMaxPacket", DefaultMaxPacket, 512 * 1024},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

// edgeIDs are the IDs every command is round-tripped with.
var edgeIDs = []uint32{0, 1, 9527, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF}

// wireCommand builds a command frame by hand, independently of Put: the
// command's arguments in the order PROTOCOL.md lists them.
func wireCommand(c Command) []byte {
	le := func(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	var args []byte
	switch c.Type {
	case CmdDial, CmdRefuse:
		args = le(c.RemoteID)
	case CmdAccept, CmdConnect:
		args = append(le(c.ConnID), le(c.RemoteID)...)
	case CmdClose:
		args = le(c.ConnID)
	}
	frame := le(uint32(SizeOfConnID + SizeOfCmd + len(args)))
	frame = append(frame, 0, 0, 0, 0, byte(c.Type))
	return append(frame, args...)
}

// allCommands returns every command type with every combination of edge IDs
// in the fields it carries (fields it does not carry stay zero).
func allCommands() []Command {
	var cs []Command
	for _, id := range edgeIDs {
		cs = append(cs,
			Command{Type: CmdDial, RemoteID: id},
			Command{Type: CmdRefuse, RemoteID: id},
			Command{Type: CmdClose, ConnID: id},
		)
		for _, id2 := range edgeIDs {
			cs = append(cs,
				Command{Type: CmdAccept, ConnID: id, RemoteID: id2},
				Command{Type: CmdConnect, ConnID: id, RemoteID: id2},
			)
		}
	}
	return append(cs, Command{Type: CmdPing})
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range allCommands() {
		want := wireCommand(c)
		got := c.Encode(nil)
		if !bytes.Equal(got, want) {
			t.Errorf("%+v: Encode = %x, want %x", c, got, want)
			continue
		}
		if len(got) != CmdSize(c.Type) {
			t.Errorf("%+v: Encode gave %d bytes, want %d", c, len(got), CmdSize(c.Type))
		}
		put := make([]byte, CmdSize(c.Type))
		c.Put(put)
		if !bytes.Equal(put, want) {
			t.Errorf("%+v: Put = %x, want %x", c, put, want)
		}
		dec, err := DecodeCommand(got)
		if err != nil {
			t.Errorf("%+v: DecodeCommand: %v", c, err)
			continue
		}
		if dec != c {
			t.Errorf("DecodeCommand(%x) = %+v, want %+v", got, dec, c)
		}
	}
}

func TestCommandEncodeAppends(t *testing.T) {
	prefix := []byte("prefix")
	dst := append([]byte(nil), prefix...)
	dst = Command{Type: CmdDial, RemoteID: 1}.Encode(dst)
	dst = Command{Type: CmdAccept, ConnID: 9527, RemoteID: 1}.Encode(dst)
	want := append(append(append([]byte(nil), prefix...), unhex(t, goldenDial)...), unhex(t, goldenAccept)...)
	if !bytes.Equal(dst, want) {
		t.Fatalf("Encode appended %x, want %x", dst, want)
	}
}

func TestCommandEncodeUnknownPanics(t *testing.T) {
	for _, c := range []Cmd{6, 255} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Encode of Cmd(%d) did not panic", byte(c))
				}
			}()
			Command{Type: c}.Encode(nil)
		}()
	}
}

func TestEncodeData(t *testing.T) {
	tests := []struct {
		connID uint32
		msg    []byte
		want   string
	}{
		{9527, []byte("Hello"), goldenData},
		{1, nil, "04000000 01000000"},
		{0xFFFFFFFF, []byte{0xAB}, "05000000 ffffffff ab"},
		{0x01020304, bytes.Repeat([]byte{0}, 300), "30010000 04030201" + strings.Repeat("00", 300)},
	}
	for _, tt := range tests {
		want := unhex(t, tt.want)
		if got := EncodeData(nil, tt.connID, tt.msg); !bytes.Equal(got, want) {
			t.Errorf("EncodeData(%d, %d bytes) = %x, want %x", tt.connID, len(tt.msg), got, want)
		}
		// Appends after what dst holds.
		got := EncodeData([]byte{0xEE}, tt.connID, tt.msg)
		if got[0] != 0xEE || !bytes.Equal(got[1:], want) {
			t.Errorf("EncodeData did not append: %x", got)
		}
	}
}

func TestPutHeader(t *testing.T) {
	frame := make([]byte, HeaderSize+3)
	PutHeader(frame, 0xA1B2C3D4)
	want := unhex(t, "07000000 d4c3b2a1 000000")
	if !bytes.Equal(frame, want) {
		t.Fatalf("PutHeader = %x, want %x", frame, want)
	}
	h := Header(frame)
	if h.Length() != 7 || h.ConnID() != 0xA1B2C3D4 {
		t.Fatalf("Header: Length %d ConnID %#x", h.Length(), h.ConnID())
	}
}

func TestCheckLength(t *testing.T) {
	tests := []struct {
		length    uint32
		maxPacket int
		want      error // nil: accepted
	}{
		{0, 0, ErrShortFrame},
		{1, 0, ErrShortFrame},
		{2, 0, ErrShortFrame},
		{3, 0, ErrShortFrame},
		{4, 0, nil}, // ConnID only: legal framing (an empty data frame)
		{5, 0, nil},
		{DefaultMaxPacket - 1, 0, nil},
		{DefaultMaxPacket, 0, nil}, // Length == MaxPacket is accepted
		{DefaultMaxPacket + 1, 0, ErrFrameTooLarge},
		{0xFFFFFFFF, 0, ErrFrameTooLarge},
		{DefaultMaxPacket + 1, -1, ErrFrameTooLarge}, // negative means default too
		{100, 100, nil},
		{101, 100, ErrFrameTooLarge},
		{3, 100, ErrShortFrame},
		{4, 4, nil},
		{5, 4, ErrFrameTooLarge},
		{0xFFFFFFFF, math.MaxInt, nil}, // a max beyond u32 bounds nothing
	}
	for _, tt := range tests {
		err := CheckLength(tt.length, tt.maxPacket)
		if tt.want == nil {
			if err != nil {
				t.Errorf("CheckLength(%d, %d) = %v, want nil", tt.length, tt.maxPacket, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("CheckLength(%d, %d) = %v, want %v", tt.length, tt.maxPacket, err, tt.want)
		}
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  error
	}{
		{"empty", "", ErrBadLength},
		{"length only", "05000000", ErrBadLength},
		{"short header", "04000000 000000", ErrBadLength},
		{"Length larger than buffer", "0a000000 00000000 00 01000000", ErrBadLength},
		{"Length smaller than buffer", "08000000 00000000 00 01000000", ErrBadLength},
		{"data frame", "09000000 37250000 48656c6c6f", ErrBadCommand},
		{"Length 4 no type byte", "04000000 00000000", ErrBadCommand},
		{"Dial missing arg byte", "08000000 00000000 00 010000", ErrBadCommand},
		{"Dial extra arg byte", "0a000000 00000000 00 01000000 00", ErrBadCommand},
		{"Dial without args", "05000000 00000000 00", ErrBadCommand},
		{"Accept with one ID", "09000000 00000000 01 37250000", ErrBadCommand},
		{"Accept extra byte", "0e000000 00000000 01 37250000 01000000 ff", ErrBadCommand},
		{"Connect missing byte", "0c000000 00000000 02 37250000 010000", ErrBadCommand},
		{"Refuse missing byte", "08000000 00000000 03 010000", ErrBadCommand},
		{"Close extra byte", "0a000000 00000000 04 37250000 00", ErrBadCommand},
		{"Close with two IDs", "0d000000 00000000 04 37250000 01000000", ErrBadCommand},
		{"Ping with arg", "09000000 00000000 05 01000000", ErrBadCommand},
		{"Ping extra byte", "06000000 00000000 05 00", ErrBadCommand},
		{"type 6", "05000000 00000000 06", ErrUnknownCmd},
		{"type 6 with arg", "09000000 00000000 06 01000000", ErrUnknownCmd},
		{"type 255", "05000000 00000000 ff", ErrUnknownCmd},
		{"type 255 with args", "0d000000 00000000 ff 37250000 01000000", ErrUnknownCmd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeCommand(unhex(t, tt.frame))
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeCommand(%s) = %+v, %v; want %v", tt.frame, c, err, tt.want)
			}
			if c != (Command{}) {
				t.Fatalf("DecodeCommand returned %+v with an error, want zero Command", c)
			}
			if !strings.HasPrefix(err.Error(), "fastway: ") {
				t.Fatalf("error %q lacks the fastway: prefix", err)
			}
		})
	}
}

// TestDecodeCommandWrongSize checks every command one byte short and one
// byte long (Length adjusted to match, so only the size is wrong).
func TestDecodeCommandWrongSize(t *testing.T) {
	for c := CmdDial; c <= CmdPing; c++ {
		good := Command{Type: c, ConnID: 7, RemoteID: 8}.Encode(nil)
		for _, n := range []int{len(good) - 1, len(good) + 1} {
			frame := make([]byte, n)
			copy(frame, good)
			PutHeader(frame, 0)
			_, err := DecodeCommand(frame)
			if !errors.Is(err, ErrBadCommand) {
				t.Errorf("%s frame of %d bytes (want %d): err = %v, want ErrBadCommand", c, n, len(good), err)
			}
		}
	}
}

func TestCommandZeroAlloc(t *testing.T) {
	frame := make([]byte, MaxCmdSize)
	buf := make([]byte, 0, MaxCmdSize)
	c := Command{Type: CmdAccept, ConnID: 9527, RemoteID: 1}
	var sink Command
	allocs := testing.AllocsPerRun(100, func() {
		c.Put(frame[:AcceptSize])
		buf = c.Encode(buf[:0])
		sink, _ = DecodeCommand(frame[:AcceptSize])
	})
	if allocs != 0 {
		t.Fatalf("Put+Encode+DecodeCommand: %v allocs/op, want 0", allocs)
	}
	if sink != c {
		t.Fatalf("decoded %+v, want %+v", sink, c)
	}
}
