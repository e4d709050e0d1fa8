package snet

import (
	"bytes"
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
