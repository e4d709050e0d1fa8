package ws

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Differential tests of the in-place decoder: random client frame
// sequences, sent over a real loopback socket in random chunks, read by
// the production Conn (Read with random buffer sizes, or ReadLazy with a
// pool's get/put that scribbles over every buffer it takes back), compared
// with a plain reference decoder (gobwas/ws's header reader and an unmask
// over a bytes.Reader).

// source is a rand.Source that takes the fuzzer's bytes first, then goes
// on with a PCG seeded from them, so every input is a whole run and the
// fuzzer steers the first decisions.
type source struct {
	b   []byte
	pcg *rand.PCG
}

func newSource(b []byte) *source {
	h := fnv.New64a()
	h.Write(b)
	return &source{b: b, pcg: rand.NewPCG(h.Sum64(), uint64(len(b)))}
}

func (s *source) Uint64() uint64 {
	if len(s.b) == 0 {
		return s.pcg.Uint64()
	}
	var v [8]byte
	n := copy(v[:], s.b)
	s.b = s.b[n:]
	return binary.LittleEndian.Uint64(v[:]) ^ s.pcg.Uint64()>>32
}

// size picks a payload size biased toward the length encodings' edges.
func size(r *rand.Rand, max int) int {
	var n int
	switch r.IntN(9) {
	case 0:
		n = 0
	case 1:
		n = 124 + r.IntN(4) // 124..127
	case 2:
		n = 65534 + r.IntN(4) // 65534..65537
	case 3:
		n = 1 + r.IntN(8)
	case 4:
		n = r.IntN(70000)
	default:
		n = r.IntN(1500)
	}
	return min(n, max)
}

func randBytes(r *rand.Rand, n int) []byte {
	p := make([]byte, n+7)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], r.Uint64())
	}
	return p[:n]
}

// violations a sequence may end with, and the Close status each gets.
var violations = []struct {
	name string
	make func(r *rand.Rand) []byte
	code ws.StatusCode
}{
	{"text", func(r *rand.Rand) []byte { return EncodeClientFrame(nil, ws.OpText, true, []byte("t"), mask(r)) }, ws.StatusUnsupportedData},
	{"unmasked", func(r *rand.Rand) []byte { return []byte{0x82, 0x01, 'x'} }, ws.StatusProtocolError},
	{"rsv", func(r *rand.Rand) []byte {
		f := EncodeClientFrame(nil, ws.OpBinary, true, []byte("x"), mask(r))
		f[0] |= 0x10 << r.IntN(3)
		return f
	}, ws.StatusProtocolError},
	{"opcode", func(r *rand.Rand) []byte {
		f := EncodeClientFrame(nil, ws.OpBinary, true, nil, mask(r))
		f[0] = 0x80 | []byte{3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf}[r.IntN(10)]
		return f
	}, ws.StatusProtocolError},
	{"fragmented control", func(r *rand.Rand) []byte {
		return EncodeClientFrame(nil, []ws.OpCode{ws.OpPing, ws.OpPong, ws.OpClose}[r.IntN(3)], false, nil, mask(r))
	}, ws.StatusProtocolError},
	{"long control", func(r *rand.Rand) []byte {
		return EncodeClientFrame(nil, ws.OpPing, true, randBytes(r, 126+r.IntN(200)), mask(r))
	}, ws.StatusProtocolError},
	{"64-bit length top bit", func(r *rand.Rand) []byte {
		return []byte{0x82, 0xff, 0x80 | byte(r.Uint32()), 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	}, ws.StatusProtocolError},
}

func mask(r *rand.Rand) (m [4]byte) {
	binary.LittleEndian.PutUint32(m[:], r.Uint32())
	return m
}

// sequence is a random client frame sequence: binary messages of random
// payloads in random fragments (empty ones too), Pings and Pongs between
// any two frames (inside fragmented messages too), random masks; it may
// end with a continuation outside a message, a new message inside a
// fragmented one, or another violation. It returns the encoding.
func sequence(r *rand.Rand) []byte {
	var enc []byte
	control := func() {
		for r.IntN(5) == 0 {
			op := ws.OpPing
			if r.IntN(3) == 0 {
				op = ws.OpPong
			}
			enc = EncodeClientFrame(enc, op, true, randBytes(r, []int{0, 1, 4, 125, r.IntN(126)}[r.IntN(5)]), mask(r))
		}
	}
	budget := 100000 // payload bytes at most
	inMsg := false
	for n := r.IntN(12); n > 0 && budget > 0; n-- {
		frags := 1 + r.IntN(4)
		for i := range frags {
			control()
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpBinary
			}
			p := randBytes(r, size(r, budget))
			budget -= len(p)
			fin := i == frags-1
			enc = EncodeClientFrame(enc, op, fin, p, mask(r))
			inMsg = !fin
		}
	}
	control()
	if r.IntN(4) == 0 {
		// Leave a message open, then break the rules: a new message
		// inside it, or (none open) a continuation.
		if r.IntN(2) == 0 {
			enc = EncodeClientFrame(enc, ws.OpBinary, false, randBytes(r, size(r, 200)), mask(r))
			inMsg = true
		}
		if inMsg {
			enc = EncodeClientFrame(enc, ws.OpBinary, true, nil, mask(r))
		} else {
			enc = EncodeClientFrame(enc, ws.OpContinuation, true, nil, mask(r))
		}
	} else if r.IntN(4) == 0 {
		enc = append(enc, violations[r.IntN(len(violations))].make(r)...)
	}
	return enc
}

// reference decodes a client's frames the plain way: the payload stream
// of its binary messages, the Ping payloads, and the Close status the
// gateway owes for the first violation (0: none, the sequence is clean).
func reference(enc []byte) (stream []byte, pings [][]byte, status ws.StatusCode) {
	r := bytes.NewReader(enc)
	inMsg := false
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthMSB) {
				return stream, pings, ws.StatusProtocolError
			}
			panic(fmt.Sprintf("reference: %v", err)) // only whole frames are generated
		}
		switch {
		case h.Rsv != 0, !h.Masked:
			return stream, pings, ws.StatusProtocolError
		case h.OpCode == ws.OpText:
			return stream, pings, ws.StatusUnsupportedData
		case h.OpCode.IsControl() && (!h.Fin || h.Length > 125):
			return stream, pings, ws.StatusProtocolError
		case h.OpCode.IsReserved():
			return stream, pings, ws.StatusProtocolError
		case h.OpCode == ws.OpBinary && inMsg, h.OpCode == ws.OpContinuation && !inMsg:
			return stream, pings, ws.StatusProtocolError
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			panic("reference: short payload")
		}
		ws.Cipher(p, h.Mask, 0)
		switch h.OpCode {
		case ws.OpPing:
			pings = append(pings, p)
		case ws.OpPong:
		case ws.OpBinary, ws.OpContinuation:
			inMsg = !h.Fin
			stream = append(stream, p...)
		}
	}
	return stream, pings, 0
}

// pool hands out buffers of random sizes and scribbles over each one it
// gets back, so a decoder that kept state in a buffer it gave back fails.
type pool struct {
	r    *rand.Rand
	max  int
	buf  []byte
	gets int
}

func (p *pool) get() []byte {
	if p.buf != nil {
		panic("get with a buffer out")
	}
	p.gets++
	p.buf = make([]byte, 1+p.r.IntN(p.max))
	return p.buf
}

func (p *pool) put() {
	for i := range p.buf {
		p.buf[i] = 0xa5
	}
	p.buf = nil
}

// runDecode sends enc from a client over loopback to a server-side Conn
// and checks what the Conn reads against the reference, as a test of t.
// lazy picks ReadLazy (with a pool) over Read.
func runDecode(t *testing.T, l *Listener, r *rand.Rand, enc []byte, lazy bool) {
	t.Helper()
	want, pings, status := reference(enc)
	c, cl := accept(t, l)
	defer c.Close()
	defer cl.Close()

	// The client: writes enc in random chunks while it reads what the
	// server sends (Pongs, a Close) until the server closes.
	chunks := chunk(r, len(enc))
	var pongs [][]byte
	var closeCode ws.StatusCode
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() {
		cl.c.SetWriteDeadline(time.Now().Add(waitFor))
		rest := enc
		for _, n := range chunks {
			if _, err := cl.c.Write(rest[:n]); err != nil {
				if status == 0 {
					werr = err
				}
				return
			}
			rest = rest[n:]
		}
	})
	rdone := make(chan error, 1)
	go func() {
		cl.c.SetReadDeadline(time.Now().Add(waitFor))
		for {
			h, err := ws.ReadHeader(cl.r)
			if err != nil {
				rdone <- err
				return
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(cl.r, p); err != nil {
				rdone <- err
				return
			}
			switch h.OpCode {
			case ws.OpPong:
				pongs = append(pongs, p)
			case ws.OpClose:
				if len(p) >= 2 {
					closeCode = ws.StatusCode(binary.BigEndian.Uint16(p))
				}
			default:
				rdone <- fmt.Errorf("server sent opcode %d", h.OpCode)
				return
			}
		}
	}()

	// The server: reads until it has every byte the reference has, then
	// (a violation) until its error.
	var got []byte
	pl := &pool{r: r, max: []int{1, 7, 64, 2048, 65536 + 64}[r.IntN(5)]}
	if pl.max < 64 && len(enc) > 20000 {
		pl.max = 2048 // byte-sized reads of a long sequence: a syscall a byte
	}
	c.SetReadDeadline(time.Now().Add(waitFor))
	var err error
	for len(got) < len(want) || status != 0 && err == nil {
		var n int
		if lazy {
			n, err = c.ReadLazy(pl.get, pl.put)
			if n > 0 {
				got = append(got, pl.buf[:n]...)
			}
			if pl.buf != nil {
				pl.put()
			}
		} else {
			p := make([]byte, 1+r.IntN(pl.max))
			n, err = c.Read(p)
			got = append(got, p[:n]...)
		}
		if err != nil {
			break
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, the reference %d; first difference at %d", len(got), len(want), diffAt(got, want))
	}
	switch {
	case status == 0 && err != nil:
		t.Fatalf("a clean sequence: %v", err)
	case status != 0 && !errors.Is(err, ErrProtocol):
		t.Fatalf("a violation (status %d): read error %v, want ErrProtocol", status, err)
	case status == ws.StatusUnsupportedData && !errors.Is(err, ErrText):
		t.Fatalf("a text message: %v, want ErrText", err)
	}
	wg.Wait()
	if werr != nil {
		t.Fatalf("client write: %v", werr)
	}
	c.Close()
	end := <-rdone
	if !errors.Is(end, io.EOF) && !errors.Is(end, io.ErrUnexpectedEOF) && !isReset(end) {
		t.Fatalf("client read: %v", end)
	}
	// Every Pong answers a Ping, in order (only the latest of several
	// pending is answered); the Close carries the violation's status.
	next := 0
	for _, p := range pongs {
		for next < len(pings) && !bytes.Equal(pings[next], p) {
			next++
		}
		if next == len(pings) {
			t.Fatalf("a Pong (%x) that answers no Ping sent before it", p)
		}
		next++
	}
	wantCode := status
	if wantCode == 0 {
		wantCode = ws.StatusNormalClosure
	}
	// (After a violation the server may close with the rest of the bad
	// frame unread: its reset may then reach the client before the
	// Close frame is read.)
	if closeCode != wantCode && !(status != 0 && closeCode == 0 && isReset(end)) {
		t.Fatalf("Close status %d, want %d (client read ended with %v)", closeCode, wantCode, end)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe)
}

func diffAt(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// chunk cuts n bytes into random write sizes: single bytes, a few, many.
func chunk(r *rand.Rand, n int) []int {
	var out []int
	tiny := 200 // tiny writes at most: each is a syscall both ends
	for n > 0 {
		k := []int{1 + r.IntN(3000), 1 + r.IntN(100000), n}[r.IntN(3)]
		if tiny > 0 && r.IntN(4) == 0 {
			// A run of tiny writes: headers and payloads cut anywhere.
			tiny--
			k = []int{1, 1 + r.IntN(4), 1 + r.IntN(16)}[r.IntN(3)]
		}
		k = min(k, n)
		out = append(out, k)
		n -= k
	}
	return out
}

// rawClient is the client end as raw bytes: enc is written as is.
type rawClient struct {
	c net.Conn
	r io.Reader
}

func (c *rawClient) Close() error { return c.c.Close() }

// accept dials l, upgrades and returns both ends.
func accept(t testing.TB, l *Listener) (*Conn, *rawClient) {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		acc <- res{c, err}
	}()
	cl, err := Dial(t.Context(), "ws://"+l.Addr().String()+"/", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := <-acc
	if a.err != nil {
		cl.Close()
		t.Fatal(a.err)
	}
	return a.c.(*Conn), &rawClient{c: cl.c, r: cl.r}
}

func listen(t testing.TB) *Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, Config{})
	t.Cleanup(func() { l.Close() })
	return l
}

// FuzzDecode: the input steers a random frame sequence, its chunking, the
// read path (Read or ReadLazy) and the buffer sizes; what Conn reads must
// be what the reference decoder reads, the Pongs must answer the Pings,
// and a violation must end the stream with its Close status. The seeds run
// in every go test; scripts/fuzz.sh runs it for longer.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"", "\x00", "\x01\x02\x03", "boundaries 125 126 65535 65536", "\xff\xff\xff\xff\xff\xff\xff\xff",
		"ping pong ping", "fragment fragment fragment", "violation at the end", "lazy\x01", "read\x00"} {
		f.Add([]byte(s))
	}
	for i := range 30 {
		f.Add([]byte{byte(i), byte(i * 37), byte(i * 101), 0x55})
	}
	l := listen(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := rand.New(newSource(in))
		lazy := r.IntN(2) == 0
		runDecode(t, l, r, sequence(r), lazy)
	})
}

// TestDecodeRandom: many random sequences through both read paths, the
// seed in the failure message.
func TestDecodeRandom(t *testing.T) {
	l := listen(t)
	rounds := 200
	if testing.Short() {
		rounds = 40
	}
	seed := uint64(time.Now().UnixNano())
	for i := range rounds {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		lazy := i%2 == 0
		enc := sequence(r)
		t.Run(fmt.Sprintf("seed_%d_%d_lazy_%v", seed, i, lazy), func(t *testing.T) {
			runDecode(t, l, r, enc, lazy)
		})
	}
}
