package snet

import (
	"crypto/md5"
	"crypto/rc4"
	"crypto/subtle"
	"encoding/binary"
	"io"
)

// Handshake layout (§3.2, §3.4). Every integer is a little-endian u64.
const (
	// typeNew starts a new session.
	typeNew byte = 0x00
	// typeReconn resumes a session.
	typeReconn byte = 0xff

	sizeOfType   = 1
	sizeOfU64    = 8
	sizeOfKey    = sizeOfU64
	sizeOfDigest = md5.Size

	// newRequestSize: type · client public key.
	newRequestSize = sizeOfType + sizeOfU64
	// newReplySize: server public key · encrypted ID · challenge.
	newReplySize = 3 * sizeOfU64
	// reconnBodySize: ID · write count · read count (the digested part).
	reconnBodySize = 3 * sizeOfU64
	// reconnRequestSize: type · body · digest.
	reconnRequestSize = sizeOfType + reconnBodySize + sizeOfDigest
	// reconnReplySize: write count · read count · challenge.
	reconnReplySize = 3 * sizeOfU64
)

// sessionKey is the shared secret as 8 little-endian bytes.
func sessionKey(secret uint64) [sizeOfKey]byte {
	var k [sizeOfKey]byte
	binary.LittleEndian.PutUint64(k[:], secret)
	return k
}

// newCipher returns an RC4 stream keyed with the session key.
func newCipher(key [sizeOfKey]byte) *rc4.Cipher {
	c, err := rc4.NewCipher(key[:])
	if err != nil {
		panic(err) // an 8-byte key is always valid
	}
	return c
}

// encodeNewRequest returns the client's new-connection hello.
func encodeNewRequest(pub uint64) [newRequestSize]byte {
	var b [newRequestSize]byte
	b[0] = typeNew
	binary.LittleEndian.PutUint64(b[sizeOfType:], pub)
	return b
}

// encodeNewReply returns the server's reply; it advances w by 8 bytes.
func encodeNewReply(pub, id, challenge uint64, w *rc4.Cipher) [newReplySize]byte {
	var b [newReplySize]byte
	binary.LittleEndian.PutUint64(b[0:], pub)
	binary.LittleEndian.PutUint64(b[8:], id)
	w.XORKeyStream(b[8:16], b[8:16])
	binary.LittleEndian.PutUint64(b[16:], challenge)
	return b
}

// decodeNewReply splits the server's reply. The ID is still encrypted: see
// decryptID.
func decodeNewReply(b [newReplySize]byte) (pub uint64, encID [sizeOfU64]byte, challenge uint64) {
	copy(encID[:], b[8:16])
	return binary.LittleEndian.Uint64(b[0:]), encID, binary.LittleEndian.Uint64(b[16:])
}

// decryptID recovers the connection ID; it advances r by 8 bytes.
func decryptID(encID [sizeOfU64]byte, r *rc4.Cipher) uint64 {
	r.XORKeyStream(encID[:], encID[:])
	return binary.LittleEndian.Uint64(encID[:])
}

// challengeDigest is MD5(challenge || key), the answer to a challenge.
func challengeDigest(challenge uint64, key [sizeOfKey]byte) [sizeOfDigest]byte {
	var b [sizeOfU64 + sizeOfKey]byte
	binary.LittleEndian.PutUint64(b[:], challenge)
	copy(b[sizeOfU64:], key[:])
	return md5.Sum(b[:])
}

// reconnDigest is MD5(body || key) over the 24-byte reconnect body.
func reconnDigest(body []byte, key [sizeOfKey]byte) [sizeOfDigest]byte {
	var b [reconnBodySize + sizeOfKey]byte
	copy(b[:], body[:reconnBodySize])
	copy(b[reconnBodySize:], key[:])
	return md5.Sum(b[:])
}

// encodeReconnRequest returns the client's 41-byte reconnect request.
func encodeReconnRequest(id, writeCount, readCount uint64, key [sizeOfKey]byte) [reconnRequestSize]byte {
	var b [reconnRequestSize]byte
	b[0] = typeReconn
	body := b[sizeOfType : sizeOfType+reconnBodySize]
	binary.LittleEndian.PutUint64(body[0:], id)
	binary.LittleEndian.PutUint64(body[8:], writeCount)
	binary.LittleEndian.PutUint64(body[16:], readCount)
	d := reconnDigest(body, key)
	copy(b[sizeOfType+reconnBodySize:], d[:])
	return b
}

// reconnRequest is a decoded reconnect request (after its type byte).
type reconnRequest struct {
	id, writeCount, readCount uint64
	body                      [reconnBodySize]byte
	digest                    [sizeOfDigest]byte
}

// decodeReconnRequest splits the 40 bytes that follow the type byte.
func decodeReconnRequest(b [reconnRequestSize - sizeOfType]byte) reconnRequest {
	var r reconnRequest
	copy(r.body[:], b[:reconnBodySize])
	copy(r.digest[:], b[reconnBodySize:])
	r.id = binary.LittleEndian.Uint64(b[0:])
	r.writeCount = binary.LittleEndian.Uint64(b[8:])
	r.readCount = binary.LittleEndian.Uint64(b[16:])
	return r
}

// verify reports, in constant time, whether the request was made with key.
func (r *reconnRequest) verify(key [sizeOfKey]byte) bool {
	d := reconnDigest(r.body[:], key)
	return digestEqual(d, r.digest)
}

// encodeReconnReply returns the server's reply; all zero means refused.
func encodeReconnReply(writeCount, readCount, challenge uint64) [reconnReplySize]byte {
	var b [reconnReplySize]byte
	binary.LittleEndian.PutUint64(b[0:], writeCount)
	binary.LittleEndian.PutUint64(b[8:], readCount)
	binary.LittleEndian.PutUint64(b[16:], challenge)
	return b
}

// decodeReconnReply splits the server's reply; ok is false if it refused.
func decodeReconnReply(b [reconnReplySize]byte) (writeCount, readCount, challenge uint64, ok bool) {
	return binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:]),
		binary.LittleEndian.Uint64(b[16:]), b != [reconnReplySize]byte{}
}

// digestEqual compares two digests in constant time.
func digestEqual(a, b [sizeOfDigest]byte) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// randomChallenge reads 8 bytes from r until they are not all zero.
func randomChallenge(r io.Reader) (uint64, error) {
	return privateKey(r) // same rule: random, non-zero
}
