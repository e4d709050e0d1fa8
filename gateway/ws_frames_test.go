package gateway

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// wsMessages reads the gateway's messages to a WebSocket client raw, each
// on its own: every one must be an unfragmented binary message holding
// one or more whole §1 frames (docs/protocol.md §8), which it returns one
// by one, with the count of messages.
type wsMessages struct {
	t        testing.TB
	wc       *ws.Client
	r        *bufio.Reader
	pending  [][]byte
	messages int
	multi    int // messages that held more than one frame
}

func newWSMessages(t testing.TB, wc *ws.Client) *wsMessages {
	return &wsMessages{t: t, wc: wc, r: bufio.NewReaderSize(wc.NetConn(), 64<<10)}
}

func (m *wsMessages) next() []byte {
	m.t.Helper()
	for len(m.pending) == 0 {
		m.wc.NetConn().SetReadDeadline(time.Now().Add(waitFor))
		h, err := gws.ReadHeader(m.r)
		if err != nil {
			m.t.Fatalf("message %d: %v", m.messages, err)
		}
		if h.OpCode != gws.OpBinary || !h.Fin || h.Masked || h.Rsv != 0 {
			m.t.Fatalf("message %d: header %+v, want an unmasked binary message in one frame", m.messages, h)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(m.r, p); err != nil {
			m.t.Fatal(err)
		}
		frames, err := wholeFrames(p)
		if err != nil {
			m.t.Fatalf("message %d of %d bytes: %v", m.messages, len(p), err)
		}
		m.messages++
		if len(frames) > 1 {
			m.multi++
		}
		m.pending = frames
	}
	f := m.pending[0]
	m.pending = m.pending[1:]
	return f
}

// TestWSWholeFramesPerMessage: under bursts of data frames of mixed sizes
// (small ones coalesced, large ones past the 64 KiB copy buffer and the
// 1 KiB sharing threshold) interleaved with Publish and Multicast
// deliveries (a header and a shared payload: two buffers per frame),
// every message the gateway sends to a WebSocket client parses on its own
// into whole frames, and the frames are the ones due, in order.
func TestWSWholeFramesPerMessage(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	const members = 3
	type member struct {
		p   *peer
		wc  *ws.Client
		ids []uint32
		m   *wsMessages
	}
	ms := make([]*member, members)
	for i := range ms {
		p, wc := dialWS(t, url, ws.DialOptions{})
		mb := &member{p: p, wc: wc}
		for range 3 {
			id, _ := open(t, p, s, 1)
			mb.ids = append(mb.ids, id)
			s.write(proto.Fanout{Type: proto.CmdJoin, GroupID: 9, ConnID: id}.Append(nil))
		}
		ms[i] = mb
	}
	s.ping()
	// From here each member's messages are read raw.
	for _, mb := range ms {
		mb.m = newWSMessages(t, mb.wc)
	}
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 1))
	payload := func() []byte {
		var n int
		switch r.IntN(6) {
		case 0:
			n = 70000 + r.IntN(130000) // past the copy buffer
		case 1:
			n = 1000 + r.IntN(20000) // shared, not copied
		default:
			n = r.IntN(200)
		}
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		return p
	}
	rounds := scaled(40, 15, 5)
	var delivered int
	for round := range rounds {
		// One burst: up to 100 frames in one write, under the queue bounds
		// (1000 frames, 1 MiB per client).
		var burst []byte
		// Each member's frames due, per virtual connection: frames on one
		// come in order; across a client's virtual connections there is
		// no order (docs/protocol.md §7).
		want := make([]map[uint32][][]byte, members)
		due := make([]int, members)
		for i := range want {
			want[i] = make(map[uint32][][]byte)
		}
		add := func(i int, id uint32, p []byte) {
			want[i][id] = append(want[i][id], proto.EncodeData(nil, id, p))
			due[i]++
		}
		budget := 700 << 10
		for n := 0; n < 100 && budget > 0; n++ {
			p := payload()
			budget -= len(p) * 3
			switch r.IntN(4) {
			case 0:
				burst = proto.Fanout{Type: proto.CmdPublish, GroupID: 9, Payload: p}.Append(burst)
				for i, mb := range ms {
					for _, id := range mb.ids {
						add(i, id, p)
					}
				}
			case 1:
				i := r.IntN(members)
				id := ms[i].ids[r.IntN(3)]
				other := ms[(i+1)%members].ids[0]
				burst = proto.AppendMulticast(burst, p, id, other)
				add(i, id, p)
				add((i+1)%members, other, p)
			default:
				i := r.IntN(members)
				id := ms[i].ids[r.IntN(3)]
				burst = proto.EncodeData(burst, id, p)
				add(i, id, p)
			}
		}
		s.write(burst)
		for i, mb := range ms {
			for k := range due[i] {
				got := mb.m.next()
				id := proto.Header(got).ConnID()
				q := want[i][id]
				if len(q) == 0 || !bytes.Equal(got, q[0]) {
					t.Fatalf("seed %d round %d member %d frame %d: got %d bytes (%x...) on ConnID %d, not the next due there", seed, round, i, k, len(got), got[:min(12, len(got))], id)
				}
				want[i][id] = q[1:]
				delivered++
			}
		}
	}
	var messages, multi int
	for _, mb := range ms {
		if len(mb.m.pending) != 0 {
			t.Fatalf("%d frames more than due", len(mb.m.pending))
		}
		messages += mb.m.messages
		multi += mb.m.multi
	}
	t.Logf("%d frames in %d messages (%d of them holding several frames)", delivered, messages, multi)
	if multi == 0 {
		t.Fatal("no message held more than one frame: the bursts were not coalesced")
	}
	if d := g.Stats().Fanout.Deliveries; d == 0 {
		t.Fatal("no fan-out deliveries")
	}
}
