package snet

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	"math/bits"
)

// DH64 parameters (§3.1). Kept for compatibility only: a 64-bit group offers
// no real security.
const (
	// DH64P is the prime modulus.
	DH64P uint64 = 0xffffffffffffffc5
	// DH64G is the generator.
	DH64G uint64 = 5
)

// DH64PrivateKey returns a random private key (non-zero) from crypto/rand.
func DH64PrivateKey() uint64 {
	k, err := privateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return k
}

// DH64PublicKey returns G^priv mod P.
func DH64PublicKey(priv uint64) uint64 {
	return powModP(DH64G, priv)
}

// DH64Secret returns peerPub^priv mod P, the shared secret.
func DH64Secret(priv, peerPub uint64) uint64 {
	return powModP(peerPub%DH64P, priv)
}

// validPublic reports whether a peer's public key may be used: 0 modulo P is
// refused.
func validPublic(pub uint64) bool { return pub%DH64P != 0 }

// privateKey reads 8 bytes from r until they are not all zero.
func privateKey(r io.Reader) (uint64, error) {
	var b [8]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, err
		}
		if k := binary.LittleEndian.Uint64(b[:]); k != 0 {
			return k, nil
		}
	}
}

// mulModP returns a*b mod P for a, b < P using a 128-bit product.
func mulModP(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	_, rem := bits.Div64(hi, lo, DH64P) // hi < P since a, b < P
	return rem
}

// powModP returns base^exp mod P for base < P (square and multiply).
func powModP(base, exp uint64) uint64 {
	result := uint64(1)
	for exp != 0 {
		if exp&1 == 1 {
			result = mulModP(result, base)
		}
		base = mulModP(base, base)
		exp >>= 1
	}
	return result
}
