package gateway

import (
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// The in-place WebSocket decoder on the gateway's production read path:
// the link's reader (proto.FrameReader → link.ReadLazy → ws.Conn.ReadLazy
// with the gateway's pooled read buffers, or ws.Conn.Read over TLS)
// forwards what a client sends to a server, and the server must get
// exactly what the reference decoder (wsReference) reads from the same
// bytes: the §1 frames whole, in order, byte for byte.

// fuzzSource is a rand.Source that takes the fuzzer's bytes first, then
// goes on with a PCG seeded from them.
type fuzzSource struct {
	b   []byte
	pcg *rand.PCG
}

func newFuzzSource(b []byte) *fuzzSource {
	h := fnv.New64a()
	h.Write(b)
	return &fuzzSource{b: b, pcg: rand.NewPCG(h.Sum64(), uint64(len(b)))}
}

func (s *fuzzSource) Uint64() uint64 {
	if len(s.b) == 0 {
		return s.pcg.Uint64()
	}
	var v [8]byte
	n := copy(v[:], s.b)
	s.b = s.b[n:]
	return binary.LittleEndian.Uint64(v[:]) ^ s.pcg.Uint64()>>32
}

// wsViolation returns a violation a sequence may end with and the Close
// status it gets, or nil.
func wsViolation(r *rand.Rand) ([]byte, gws.StatusCode) {
	switch r.IntN(8) {
	case 0:
		return wsFrame(gws.OpText, true, []byte("t")), gws.StatusUnsupportedData
	case 1:
		return []byte{0x82, 0x01, 'x'}, gws.StatusProtocolError // unmasked
	case 2:
		f := wsFrame(gws.OpBinary, true, []byte("x"))
		f[0] |= 0x10 << r.IntN(3) // a reserved bit
		return f, gws.StatusProtocolError
	case 3:
		return wsFrame(gws.OpContinuation, true, nil), gws.StatusProtocolError
	case 4:
		return wsFrame(gws.OpPing, false, nil), gws.StatusProtocolError
	case 5:
		return []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, gws.StatusProtocolError
	}
	return nil, 0
}

// wsGatewayRun sends one random sequence from a new WebSocket client and
// checks what the server gets against the reference, and the Close
// status of a violation. The sequence ends on a message boundary, so a
// violation follows whole frames only.
func wsGatewayRun(t *testing.T, g *testGW, url string, s *peer, r *rand.Rand, o ws.DialOptions) {
	t.Helper()
	c, wc := dialWS(t, url, o)
	id, _ := open(t, c, s, 1)
	stream, _ := dataStream(r, id, r.IntN(12))
	enc, _ := wsChop(r, stream)
	bad, status := wsViolation(r)
	ref, _, rerr := wsReference(append(enc[:len(enc):len(enc)], bad...))
	if (rerr != nil) != (status != 0) {
		t.Fatalf("reference: %v, want a violation: %v", rerr, status != 0)
	}
	frames, _ := wholeFramesOf(t, ref)
	if !bytes.Equal(ref, stream) {
		t.Fatal("the reference decoder disagrees with the encoder")
	}
	werr := make(chan error, 1)
	go func() {
		// The violation goes in one write of its own, so the gateway
		// has it whole when it closes (bytes arriving after the close
		// would reset the connection, which may cost the client the
		// Close frame it has not read yet).
		err := writeChunks(r, wc.NetConn(), enc)
		if err == nil && len(bad) > 0 {
			_, err = wc.NetConn().Write(bad)
		}
		werr <- err
	}()
	for i, f := range frames {
		if got := s.read(); !bytes.Equal(got, f) {
			t.Fatalf("frame %d of %d: got %d bytes, want %d (first difference at %d)", i, len(frames), len(got), len(f), diffAt(got, f))
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("client write: %v", err)
	}
	if status != 0 {
		expectWSClose(t, wc, status, true)
	} else {
		c.ping() // Pongs before it are skipped by the client's reader
		wc.Close()
	}
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	// The shared server sends nothing else: without its Ping the gateway
	// closed it as idle after 30 s of a fuzzing run, and every later run's
	// Dial was refused.
	s.ping()
}

func wholeFramesOf(t *testing.T, stream []byte) ([][]byte, error) {
	t.Helper()
	if len(stream) == 0 {
		return nil, nil
	}
	f, err := wholeFrames(stream)
	if err != nil {
		t.Fatalf("the generated stream: %v", err)
	}
	return f, nil
}

func diffAt(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// FuzzWSGatewayRead: the input steers the frames, their split into
// messages and fragments, the Pings and Pongs among them, the chunks they
// are written in, and an ending violation. The seeds run in every go
// test; scripts/fuzz.sh runs it for longer.
func FuzzWSGatewayRead(f *testing.F) {
	for _, s := range []string{"", "\x00", "\x07\x07\x07", "125 126 65535 65536", "\xff\xff\xff\xff\xff\xff\xff\xff\x00",
		"pings among fragments", "a text message", "unmasked", "continuation", "top bit"} {
		f.Add([]byte(s))
	}
	g := startGW(f, Config{ClientBufferSize: 2 << 10})
	url := startWS(f, g, ws.Config{})
	s := g.dialServer(f, 1)
	f.Fuzz(func(t *testing.T, in []byte) {
		s.t = t
		wsGatewayRun(t, g, url, s, rand.New(newFuzzSource(in)), ws.DialOptions{})
	})
}

// TestWSGatewayReadRandom: random sequences through the plain (ReadLazy)
// and the TLS (Read) read paths, with small and large read buffers; the
// seed is in the failure message.
func TestWSGatewayReadRandom(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	for _, tc := range []struct {
		name string
		buf  int
		tls  bool
	}{{"lazy 2KiB", 2 << 10, false}, {"lazy 64KiB", 64 << 10, false}, {"tls 2KiB", 2 << 10, true}} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGW(t, Config{ClientBufferSize: tc.buf})
			cfg, o := ws.Config{}, ws.DialOptions{}
			if tc.tls {
				cfg.TLS, o.TLS = srvTLS, cliTLS
			}
			url := startWS(t, g, cfg)
			s := g.dialServer(t, 1)
			seed := uint64(time.Now().UnixNano())
			rounds := scaled(30, 12, 5)
			for i := range rounds {
				r := rand.New(rand.NewPCG(seed, uint64(i)))
				ok := t.Run("", func(t *testing.T) {
					s.t = t
					wsGatewayRun(t, g, url, s, r, o)
				})
				s.t = t
				if !ok {
					t.Fatalf("seed %d round %d failed", seed, i)
				}
			}
			st := g.Stats()
			if st.WS.Disconnects[ReasonReadError] != 0 || st.WS.Disconnects[ReasonWriteError] != 0 {
				t.Fatalf("disconnects %v", st.WS.Disconnects)
			}
		})
	}
}
