package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// sharedVectors is the part of testdata/vectors.json this package checks:
// the framing vectors of PROTOCOL.md §1, which the C# SDK's tests
// (sdk/csharp/tests) read from the same file.
type sharedVectors struct {
	Framing []struct {
		Name     string `json:"name"`
		Kind     string `json:"kind"`
		ConnID   uint32 `json:"connID"`
		RemoteID uint32 `json:"remoteID"`
		Message  string `json:"message"`
		Hex      string `json:"hex"`
	} `json:"framing"`
	FramingErrors []struct {
		Name      string `json:"name"`
		Hex       string `json:"hex"`
		MaxPacket int    `json:"maxPacket"`
		Error     string `json:"error"`
	} `json:"framingErrors"`
}

func loadSharedVectors(t *testing.T) sharedVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v sharedVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("testdata/vectors.json: %v", err)
	}
	if len(v.Framing) == 0 || len(v.FramingErrors) == 0 {
		t.Fatal("testdata/vectors.json has no framing vectors")
	}
	return v
}

// TestSharedFramingVectors encodes and decodes every framing vector of
// testdata/vectors.json, and checks that every error vector is rejected
// with the error it names.
func TestSharedFramingVectors(t *testing.T) {
	v := loadSharedVectors(t)
	cmds := map[string]Cmd{"Dial": CmdDial, "Accept": CmdAccept, "Connect": CmdConnect, "Refuse": CmdRefuse, "Close": CmdClose, "Ping": CmdPing}
	for _, tt := range v.Framing {
		want := unhex(t, tt.Hex)
		if tt.Kind == "data" {
			if got := EncodeData(nil, tt.ConnID, unhex(t, tt.Message)); !bytes.Equal(got, want) {
				t.Errorf("%s: EncodeData = %x, want %x", tt.Name, got, want)
			}
			if h := Header(want); h.ConnID() != tt.ConnID || int(h.Length()) != len(want)-SizeOfLength {
				t.Errorf("%s: header Length %d ConnID %d", tt.Name, h.Length(), h.ConnID())
			}
			continue
		}
		typ, ok := cmds[tt.Kind]
		if !ok {
			t.Fatalf("%s: unknown kind %q", tt.Name, tt.Kind)
		}
		c := Command{Type: typ, ConnID: tt.ConnID, RemoteID: tt.RemoteID}
		if got := c.Encode(nil); !bytes.Equal(got, want) {
			t.Errorf("%s: Encode = %x, want %x", tt.Name, got, want)
		}
		if got, err := DecodeCommand(want); err != nil || got != c {
			t.Errorf("%s: DecodeCommand = %+v, %v; want %+v", tt.Name, got, err, c)
		}
	}
	kinds := map[string]error{"short": ErrShortFrame, "tooLarge": ErrFrameTooLarge, "badCommand": ErrBadCommand, "unknownCmd": ErrUnknownCmd}
	for _, tt := range v.FramingErrors {
		frame := unhex(t, tt.Hex)
		want, ok := kinds[tt.Error]
		if !ok {
			t.Fatalf("%s: unknown error %q", tt.Name, tt.Error)
		}
		err := CheckLength(Header(frame).Length(), tt.MaxPacket)
		if err == nil {
			_, err = DecodeCommand(frame)
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %x gave %v, want %v", tt.Name, frame, err, want)
		}
	}
}
