package snet

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestRing(t *testing.T) {
	r := newRing(8)
	if b, ok := r.since(0); !ok || len(b) != 0 {
		t.Fatalf("empty ring: %v %v", b, ok)
	}
	r.write([]byte("abcde"), nil)
	r.write([]byte("fghij"), nil) // wraps: holds "cdefghij"
	if r.total != 10 || r.kept() != 8 {
		t.Fatalf("total %d kept %d", r.total, r.kept())
	}
	for from, want := range map[uint64]string{2: "cdefghij", 5: "fghij", 9: "j", 10: ""} {
		b, ok := r.since(from)
		if !ok || string(bytes.Join(b, nil)) != want {
			t.Errorf("since(%d) = %q %v, want %q", from, bytes.Join(b, nil), ok, want)
		}
	}
	for _, from := range []uint64{0, 1, 11} {
		if _, ok := r.since(from); ok {
			t.Errorf("since(%d) should not be held", from)
		}
	}
	// Encrypted writes go through the cipher.
	e := newRing(4)
	e.write([]byte{0, 0, 0, 0, 0, 0}, newCipher(vecKey())) // keystream 4f841c43ce58
	b, _ := e.since(2)
	if got := bytes.Join(b, nil); !bytes.Equal(got, []byte{0x1c, 0x43, 0xce, 0x58}) {
		t.Fatalf("encrypted ring %x", got)
	}
}

// TestRingGrows: a ring allocates nothing until written, then grows with what
// it keeps, up to its capacity.
func TestRingGrows(t *testing.T) {
	r := newRing(32 << 10)
	if r.allocated() != 0 {
		t.Fatalf("new ring allocated %d bytes", r.allocated())
	}
	r.write(make([]byte, 100), nil)
	if r.allocated() != minRingAlloc {
		t.Fatalf("after 100 bytes: %d allocated, want %d", r.allocated(), minRingAlloc)
	}
	r.write(make([]byte, 5000), nil)
	if r.allocated() != 8<<10 {
		t.Fatalf("after 5100 bytes: %d allocated, want 8K", r.allocated())
	}
	r.write(make([]byte, 100<<10), nil)
	if r.allocated() != 32<<10 || r.kept() != 32<<10 {
		t.Fatalf("after 105 KiB: %d allocated, %d kept; want 32K both", r.allocated(), r.kept())
	}
	r.raise(48 << 10) // not a power of two: the buffer stops at the capacity
	r.write(make([]byte, 1), nil)
	if r.allocated() != 48<<10 || r.kept() != 32<<10+1 {
		t.Fatalf("after raise: %d allocated, %d kept", r.allocated(), r.kept())
	}
}

// TestRingMatchesReference writes random pieces into rings of random
// capacities, raised at random points, and checks since against a plain
// copy of everything written: the same bytes for every offset still held,
// not held exactly when the reference says the capacity was exceeded.
func TestRingMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		capacity := 1 + rng.IntN(5000)
		r := newRing(capacity)
		var ref []byte
		held := 0 // bytes the ring must still hold: the most recent capacity, as it was when each was written
		for range 50 {
			if rng.IntN(10) == 0 {
				capacity += rng.IntN(3000)
				r.raise(capacity)
			}
			p := make([]byte, rng.IntN(max(capacity/2, 1))+1)
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			r.write(p, nil)
			ref = append(ref, p...)
			held = min(held+len(p), capacity)
			if r.allocated() > capacity || uint64(held) > r.kept() {
				t.Fatalf("capacity %d: %d allocated, %d kept, %d must be", capacity, r.allocated(), r.kept(), held)
			}
			for range 5 {
				from := uint64(rng.IntN(len(ref) + 2))
				b, ok := r.since(from)
				want := from <= uint64(len(ref)) && uint64(len(ref))-from <= r.kept()
				if ok != want {
					t.Fatalf("since(%d) of %d written, %d kept: ok %v", from, len(ref), r.kept(), ok)
				}
				if ok && !bytes.Equal(bytes.Join(b, nil), ref[from:]) {
					t.Fatalf("since(%d) of %d written: wrong bytes", from, len(ref))
				}
			}
		}
	}
}

func TestConfig(t *testing.T) {
	c := Config{}.withDefaults()
	if c.HandshakeTimeout != DefaultHandshakeTimeout || c.RewriterBufferSize != DefaultRewriterBufferSize ||
		c.ReconnWaitTimeout != DefaultReconnWaitTimeout {
		t.Fatalf("defaults %+v", c)
	}
	for _, bad := range []Config{{HandshakeTimeout: -1}, {ReconnWaitTimeout: -1}, {RewriterBufferSize: -1}, {RewriterBufferSize: 2 << 30}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	if _, err := Dial(Config{RewriterBufferSize: -1}, nil); err == nil {
		t.Error("Dial accepted a bad config")
	}
	if _, err := Listen(Config{HandshakeTimeout: -1}, nil); err == nil {
		t.Error("Listen accepted a bad config")
	}
}
