package gateway

import (
	"testing"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// TestWSProtocolErrors: each RFC 6455 violation closes its sender with a
// Close frame (1002; 1003 for text) as a protocol error, after the whole
// frames before it were forwarded, and touches nobody else.
func TestWSProtocolErrors(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	other, _ := dialWS(t, url, ws.DialOptions{})
	oid, _ := open(t, other, s, 1)
	masked := func(b0 byte, p []byte) []byte {
		f := ws.EncodeClientFrame(nil, gws.OpBinary, true, p, gws.NewMask())
		f[0] = b0
		return f
	}
	long := make([]byte, 126)
	cases := []struct {
		name string
		b    []byte
		code gws.StatusCode
	}{
		{"text", wsFrame(gws.OpText, true, []byte("hi")), gws.StatusUnsupportedData},
		{"text continued", append(wsFrame(gws.OpText, false, []byte("h")), wsFrame(gws.OpContinuation, true, []byte("i"))...), gws.StatusUnsupportedData},
		{"unmasked", []byte{0x82, 0x02, 'h', 'i'}, gws.StatusProtocolError},
		{"rsv1", masked(0xc2, []byte("hi")), gws.StatusProtocolError},
		{"rsv2", masked(0xa2, []byte("hi")), gws.StatusProtocolError},
		{"rsv3", masked(0x92, []byte("hi")), gws.StatusProtocolError},
		{"data opcode 3", masked(0x83, []byte("hi")), gws.StatusProtocolError},
		{"data opcode 7", masked(0x87, []byte("hi")), gws.StatusProtocolError},
		{"control opcode 0xb", masked(0x8b, nil), gws.StatusProtocolError},
		{"control opcode 0xf", masked(0x8f, nil), gws.StatusProtocolError},
		{"fragmented ping", masked(0x09, []byte("p")), gws.StatusProtocolError},
		{"fragmented close", masked(0x08, nil), gws.StatusProtocolError},
		{"long ping", wsFrame(gws.OpPing, true, long), gws.StatusProtocolError},
		{"long pong", wsFrame(gws.OpPong, true, long), gws.StatusProtocolError},
		{"continuation outside a message", wsFrame(gws.OpContinuation, true, []byte("x")), gws.StatusProtocolError},
		{"new message inside a fragmented one", append(wsFrame(gws.OpBinary, false, nil), wsFrame(gws.OpBinary, true, nil)...), gws.StatusProtocolError},
		{"close with a 1-byte body", wsFrame(gws.OpClose, true, []byte{3}), gws.StatusProtocolError},
		{"64-bit length with the top bit", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, gws.StatusProtocolError},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, wc := dialWS(t, url, ws.DialOptions{})
			id, _ := open(t, c, s, 1)
			// A whole frame in the same write, before the violation,
			// is forwarded; the violation closes the client.
			b := append(wsFrame(gws.OpBinary, true, proto.EncodeData(nil, id, []byte("before"))), tc.b...)
			wc.NetConn().Write(b)
			s.expectData(id, "before")
			expectWSClose(t, wc, tc.code, false)
			s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
			eventually(t, "the protocol error counted", func() bool {
				return g.Stats().WS.Disconnects[ReasonProtocolError] == uint64(i+1)
			})
			other.sendData(oid, tc.name)
			s.expectData(oid, tc.name)
		})
	}
	if st := g.Stats(); st.WS.Conns != 1 || st.Disconnected(ReasonProtocolError) != uint64(len(cases)) {
		t.Fatalf("ws conns %d, protocol errors %d; want 1, %d", st.WS.Conns, st.Disconnected(ReasonProtocolError), len(cases))
	}
}
