package gateway

import (
	"testing"

	"github.com/fastway-go/fastway/proto"
)

// TestProtocolErrorsCloseOnlyTheSender sends each kind of malformed input
// from its own client and checks that only that client is closed, with
// reason "protocol error", while an honest client's traffic goes on.
func TestProtocolErrorsCloseOnlyTheSender(t *testing.T) {
	const maxPacket = 1024
	cases := []struct {
		name, hex string
	}{
		{"unknown type 6", "05000000" + "00000000" + "06"},
		{"unknown type 255", "05000000" + "00000000" + "ff"},
		{"Accept sent to the gateway", "0d000000" + "00000000" + "01" + "01000000" + "01000000"},
		{"Connect sent to the gateway", "0d000000" + "00000000" + "02" + "01000000" + "01000000"},
		{"Refuse sent to the gateway", "09000000" + "00000000" + "03" + "01000000"},
		{"Length 0", "00000000"},
		{"Length 3", "03000000" + "000000"},
		{"Length 4, command without type", "04000000" + "00000000"},
		{"Dial missing an argument byte", "08000000" + "00000000" + "00" + "010000"},
		{"Dial with an extra byte", "0a000000" + "00000000" + "00" + "01000000" + "00"},
		{"Close missing an argument byte", "08000000" + "00000000" + "04" + "010000"},
		{"Ping with an extra byte", "06000000" + "00000000" + "05" + "00"},
		{"Length above MaxPacket", "01040000"}, // 1025, header only: no body is needed to reject it
	}
	g := startGW(t, Config{MaxPacket: maxPacket})
	s := g.dialServer(t, 1)
	honest := g.dialClient(t)
	id, _ := open(t, honest, s, 1)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := g.dialClient(t)
			bad.write(mustHex(t, tc.hex))
			bad.expectEOF()
			eventually(t, "protocol error counted", func() bool {
				return g.Stats().Disconnected(ReasonProtocolError) == uint64(i+1)
			})
			honest.sendData(id, tc.name)
			s.expectData(id, tc.name)
			s.sendData(id, "ok")
			honest.expectData(id, "ok")
		})
	}
	// A server breaking the protocol is closed the same way; its clients
	// get Close for their virtual connections.
	t.Run("server sends Accept", func(t *testing.T) {
		s.send(proto.Command{Type: proto.CmdAccept, ConnID: 1, RemoteID: 1})
		honest.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
		s.drainToEOF()
		honest.ping()
	})
}

// TestMaxPacketFrameAccepted checks the bound is inclusive.
func TestMaxPacketFrameAccepted(t *testing.T) {
	const maxPacket = 1024
	g := startGW(t, Config{MaxPacket: maxPacket})
	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	id, _ := open(t, c, s, 1)
	msg := string(make([]byte, maxPacket-proto.SizeOfConnID))
	c.sendData(id, msg)
	s.expectData(id, msg)
}
