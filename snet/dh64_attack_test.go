package snet

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// dh64Order is the factorization of P−1, the order of G = 5 (a generator):
// 2²·11·137·547·5594472617641. Its largest prime is about 2^42.3, so
// Pohlig–Hellman takes a discrete logarithm in about 2^21 steps.
var dh64Order = []struct{ q, e uint64 }{{2, 2}, {11, 1}, {137, 1}, {547, 1}, {5594472617641, 1}}

// mulMod returns a·b mod m for any a, b < m.
func mulMod(a, b, m uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	_, r := bits.Div64(hi, lo, m)
	return r
}

// powMod returns x^k mod m.
func powMod(x, k, m uint64) uint64 {
	r := uint64(1) % m
	for x %= m; k > 0; k >>= 1 {
		if k&1 == 1 {
			r = mulMod(r, x, m)
		}
		x = mulMod(x, x, m)
	}
	return r
}

// invMod returns a⁻¹ mod a prime m (Fermat).
func invMod(a, m uint64) uint64 { return powMod(a, m-2, m) }

// dlogSubgroup returns k < q with g^k = h mod P, for g of prime order q:
// by trying every k when q is small, by Pollard's rho otherwise.
func dlogSubgroup(g, h, q uint64, rnd *rand.Rand) uint64 {
	if q < 1<<16 {
		x := uint64(1)
		for k := range q {
			if x == h {
				return k
			}
			x = mulModP(x, g)
		}
		panic("no logarithm")
	}
	for {
		// y = g^a · h^b; the walk's step depends on y mod 3.
		step := func(y, a, b uint64) (uint64, uint64, uint64) {
			switch y % 3 {
			case 0:
				return mulModP(y, y), (2 * a) % q, (2 * b) % q
			case 1:
				return mulModP(y, g), (a + 1) % q, b
			}
			return mulModP(y, h), a, (b + 1) % q
		}
		a0, b0 := rnd.Uint64N(q), rnd.Uint64N(q)
		y0 := mulModP(powModP(g, a0), powModP(h, b0))
		y1, a1, b1 := y0, a0, b0
		y2, a2, b2 := y0, a0, b0
		for {
			y1, a1, b1 = step(y1, a1, b1)
			y2, a2, b2 = step(step(y2, a2, b2))
			if y1 == y2 {
				break
			}
		}
		// g^a1 h^b1 = g^a2 h^b2, so k (b1 − b2) = a2 − a1 mod q.
		db := (b1 + q - b2) % q
		if db == 0 {
			continue // a useless collision: walk again from elsewhere
		}
		return mulMod((a2+q-a1)%q, invMod(db, q), q)
	}
}

// dh64Log returns x with G^x = pub mod P: Pohlig–Hellman over the factors
// of P−1, each prime power solved digit by digit, then the Chinese
// remainder theorem.
func dh64Log(pub uint64, rnd *rand.Rand) uint64 {
	n := DH64P - 1
	var x, mod uint64 = 0, 1
	for _, f := range dh64Order {
		qe := uint64(1)
		for range f.e {
			qe *= f.q
		}
		// x mod q^e, one base-q digit at a time.
		g := powModP(DH64G, n/f.q) // of order q
		var xi, qk uint64 = 0, 1
		for range f.e {
			h := powModP(mulModP(pub, invModP(powModP(DH64G, xi))), n/(qk*f.q))
			xi += dlogSubgroup(g, h, f.q, rnd) * qk
			qk *= f.q
		}
		// CRT: x ≡ x (mod mod), x ≡ xi (mod qe).
		t := mulMod((xi+qe-x%qe)%qe, invCRT(mod%qe, qe), qe)
		x += mulMod(mod, t, n) // mod·t < n: the moduli multiply up to n
		mod *= qe
	}
	return x
}

// invModP returns a⁻¹ mod P.
func invModP(a uint64) uint64 { return powModP(a, DH64P-2) }

// invCRT returns a⁻¹ mod m for a coprime to m (m a prime or 4).
func invCRT(a, m uint64) uint64 {
	if m == 4 {
		return a % 4 // 1 and 3 are their own inverses
	}
	return invMod(a, m)
}

// tapConn records what a connection reads and writes.
type tapConn struct {
	net.Conn
	mu      sync.Mutex
	in, out bytes.Buffer
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestDH64Broken backs docs/security.md (issue 14, finding 7): a passive
// observer of one encrypted snet session, seeing only the bytes on the
// wire, takes the discrete logarithm of the client's public key
// (Pohlig–Hellman; P−1 has no prime factor above 2^43), computes the
// session key and reads the data, and could answer any challenge of that
// session. snet's encryption protects against nothing.
func TestDH64Broken(t *testing.T) {
	cfg := Config{EnableCrypt: true}
	l := newListener(t, cfg)
	var tap *tapConn
	cli, srv := pairVia(t, l, cfg, func() (net.Conn, error) {
		c, err := net.DialTimeout("tcp", l.Addr().String(), waitFor)
		if err != nil {
			return nil, err
		}
		tap = &tapConn{Conn: c}
		return tap, nil
	})
	secret := []byte("the player's session token: 7f3a9c")
	srv.Write(secret)
	cli.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(cli, make([]byte, len(secret))); err != nil {
		t.Fatal(err)
	}

	tap.mu.Lock()
	out, in := bytes.Clone(tap.out.Bytes()), bytes.Clone(tap.in.Bytes())
	tap.mu.Unlock()
	clientPub := binary.LittleEndian.Uint64(out[1:9])
	serverPub := binary.LittleEndian.Uint64(in[0:8])
	start := time.Now()
	x := dh64Log(clientPub, rand.New(rand.NewPCG(1, 2)))
	took := time.Since(start)
	if DH64PublicKey(x) != clientPub {
		t.Fatalf("recovered %#x, whose public key is not the client's", x)
	}
	key := sessionKey(DH64Secret(x, serverPub))
	if key != cli.key {
		t.Fatal("the key computed from the wire is not the session's")
	}
	// The data after the 24-byte reply, with the server's write keystream
	// from offset 8 (the ID took the first 8 bytes).
	rc := newCipher(key)
	rc.XORKeyStream(make([]byte, 8), make([]byte, 8))
	plain := make([]byte, len(secret))
	rc.XORKeyStream(plain, in[newReplySize:newReplySize+len(secret)])
	if !bytes.Equal(plain, secret) {
		t.Fatalf("decrypted %q, want %q", plain, secret)
	}
	t.Logf("session key recovered from the wire in %v (Pohlig–Hellman); the data read: %q", took.Round(time.Millisecond), plain)
}
