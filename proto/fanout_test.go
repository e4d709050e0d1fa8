package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// The byte examples of ../shared/PROTOCOL.md §5 (docs/protocol.md §7).
const (
	goldenMulticast = "11000000 00000000 06 0200 07000000 09000000 6869"
	goldenJoin      = "0d000000 00000000 07 2a000000 07000000"
	goldenPublish   = "0f000000 00000000 09 2a000000 00000000 6869"
	goldenDelivery  = "06000000 07000000 6869"
)

func TestFanoutGoldenVectors(t *testing.T) {
	if got, want := AppendMulticast(nil, []byte("hi"), 7, 9), unhex(t, goldenMulticast); !bytes.Equal(got, want) {
		t.Errorf("Multicast \"hi\" to 7 and 9 = %x, want %x", got, want)
	}
	if got, want := (Fanout{Type: CmdJoin, GroupID: 42, ConnID: 7}).Append(nil), unhex(t, goldenJoin); !bytes.Equal(got, want) {
		t.Errorf("Join(42, 7) = %x, want %x", got, want)
	}
	if got, want := (Fanout{Type: CmdPublish, GroupID: 42, Payload: []byte("hi")}).Append(nil), unhex(t, goldenPublish); !bytes.Equal(got, want) {
		t.Errorf("Publish(42, \"hi\") = %x, want %x", got, want)
	}
	if got, want := EncodeData(nil, 7, []byte("hi")), unhex(t, goldenDelivery); !bytes.Equal(got, want) {
		t.Errorf("delivery = %x, want %x", got, want)
	}
	f, err := DecodeFanout(unhex(t, goldenMulticast))
	if err != nil || f.Type != CmdMulticast || f.Count() != 2 || f.ID(0) != 7 || f.ID(1) != 9 || string(f.Payload) != "hi" {
		t.Errorf("DecodeFanout(Multicast example) = %+v, %v", f, err)
	}
	f, err = DecodeFanout(unhex(t, goldenJoin))
	if err != nil || f.Type != CmdJoin || f.GroupID != 42 || f.ConnID != 7 {
		t.Errorf("DecodeFanout(Join example) = %+v, %v", f, err)
	}
	f, err = DecodeFanout(unhex(t, goldenPublish))
	if err != nil || f.Type != CmdPublish || f.GroupID != 42 || f.ConnID != 0 || string(f.Payload) != "hi" {
		t.Errorf("DecodeFanout(Publish example) = %+v, %v", f, err)
	}
}

func TestFanoutCmdValues(t *testing.T) {
	for _, tt := range []struct {
		c    Cmd
		v    byte
		name string
	}{{CmdMulticast, 6, "Multicast"}, {CmdJoin, 7, "Join"}, {CmdLeave, 8, "Leave"}, {CmdPublish, 9, "Publish"}} {
		if byte(tt.c) != tt.v || tt.c.String() != tt.name || !IsFanout(tt.c) || CmdSize(tt.c) != 0 {
			t.Errorf("%s: value %d, String %q, IsFanout %v, CmdSize %d", tt.name, byte(tt.c), tt.c.String(), IsFanout(tt.c), CmdSize(tt.c))
		}
	}
	for _, c := range []Cmd{CmdDial, CmdPing, 10, 255} {
		if IsFanout(c) {
			t.Errorf("IsFanout(%d) = true", byte(c))
		}
	}
	// DecodeCommand leaves them to DecodeFanout.
	if _, err := DecodeCommand(unhex(t, goldenJoin)); !errors.Is(err, ErrUnknownCmd) {
		t.Errorf("DecodeCommand(Join) = %v, want ErrUnknownCmd", err)
	}
	if MulticastSize(2, 2) != 21 || PublishSize(2) != 19 || GroupCmdSize != 17 || DeliverySize(2) != 10 {
		t.Errorf("sizes: Multicast %d, Publish %d, Join %d, delivery %d", MulticastSize(2, 2), PublishSize(2), GroupCmdSize, DeliverySize(2))
	}
}

func TestDecodeFanoutRejects(t *testing.T) {
	for _, tt := range []struct {
		name, hex string
		err       error
	}{
		{"Multicast Count 0", "07000000 00000000 06 0000", ErrBadCommand},
		{"Multicast Count 0 with payload", "09000000 00000000 06 0000 6869", ErrBadCommand},
		{"Multicast without Count", "05000000 00000000 06", ErrBadCommand},
		{"Multicast one byte of Count", "06000000 00000000 06 01", ErrBadCommand},
		{"Multicast too short for Count 2", "0e000000 00000000 06 0200 07000000 090000", ErrBadCommand},
		{"Multicast Count 1, no ID", "07000000 00000000 06 0100", ErrBadCommand},
		{"Join too short", "0c000000 00000000 07 2a000000 070000", ErrBadCommand},
		{"Join too long", "0e000000 00000000 07 2a000000 07000000 00", ErrBadCommand},
		{"Leave too short", "05000000 00000000 08", ErrBadCommand},
		{"Leave too long", "0e000000 00000000 08 2a000000 07000000 00", ErrBadCommand},
		{"Publish too short", "0c000000 00000000 09 2a000000 000000", ErrBadCommand},
		{"Publish no args", "05000000 00000000 09", ErrBadCommand},
		{"Length mismatch", "0f000000 00000000 09 2a000000 00000000 68", ErrBadLength},
		{"not fan-out", "05000000 00000000 05", ErrBadCommand},
		{"data frame", "06000000 07000000 6869", ErrBadCommand},
	} {
		if f, err := DecodeFanout(unhex(t, tt.hex)); !errors.Is(err, tt.err) {
			t.Errorf("%s: DecodeFanout = %+v, %v, want %v", tt.name, f, err, tt.err)
		}
	}
	// Empty payloads are legal.
	for _, h := range []string{"0b000000 00000000 06 0100 07000000", "0d000000 00000000 09 2a000000 07000000"} {
		f, err := DecodeFanout(unhex(t, h))
		if err != nil || len(f.Payload) != 0 {
			t.Errorf("DecodeFanout(%s) = %+v, %v, want an empty payload", h, f, err)
		}
	}
}

// refDecodeFanout is an independent reading of §5's sizes, for the fuzzer.
func refDecodeFanout(b []byte) (Fanout, bool) {
	le := binary.LittleEndian
	if len(b) < 9 || int(le.Uint32(b)) != len(b)-4 || le.Uint32(b[4:]) != 0 {
		return Fanout{}, false
	}
	c, args := Cmd(b[8]), b[9:]
	switch c {
	case 6:
		if len(args) < 2 {
			return Fanout{}, false
		}
		n := int(le.Uint16(args))
		if n == 0 || len(b) < 11+4*n { // Length >= 7 + 4·Count
			return Fanout{}, false
		}
		return Fanout{Type: c, IDs: args[2 : 2+4*n], Payload: args[2+4*n:]}, true
	case 7, 8:
		if len(b) != 17 {
			return Fanout{}, false
		}
		return Fanout{Type: c, GroupID: le.Uint32(args), ConnID: le.Uint32(args[4:])}, true
	case 9:
		if len(b) < 17 {
			return Fanout{}, false
		}
		return Fanout{Type: c, GroupID: le.Uint32(args), ConnID: le.Uint32(args[4:]), Payload: args[8:]}, true
	}
	return Fanout{}, false
}

func FuzzDecodeFanout(f *testing.F) {
	for _, h := range []string{goldenMulticast, goldenJoin, goldenPublish, goldenDelivery,
		"07000000 00000000 06 0000", "0d000000 00000000 08 2a000000 00000000", "0d000000 00000000 09 00000000 00000000"} {
		f.Add(unhex(f, h))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeFanout(data)
		ref, ok := refDecodeFanout(data)
		if (err == nil) != ok {
			t.Fatalf("DecodeFanout(%x) = %+v, %v; reference accepts: %v", data, got, err, ok)
		}
		if err != nil {
			if !errors.Is(err, ErrBadLength) && !errors.Is(err, ErrBadCommand) {
				t.Fatalf("DecodeFanout(%x): unexpected error %v", data, err)
			}
			return
		}
		if got.Type != ref.Type || got.GroupID != ref.GroupID || got.ConnID != ref.ConnID || !bytes.Equal(got.IDs, ref.IDs) || !bytes.Equal(got.Payload, ref.Payload) {
			t.Fatalf("DecodeFanout(%x) = %+v, reference %+v", data, got, ref)
		}
		if enc := got.Append(nil); !bytes.Equal(enc, data) {
			t.Fatalf("DecodeFanout(%x) = %+v, Append gives %x", data, got, enc)
		}
	})
}
