package proto

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// Server handshake sizes (docs/protocol.md §2).
const (
	ChallengeSize      = 8                     // gateway -> server
	DigestSize         = md5.Size              // MD5(challenge || key)
	AuthReplySize      = DigestSize + SizeOfID // server -> gateway: digest + ServerID
	DefaultAuthTimeout = 3 * time.Second       // ServerAuthTimeout default
)

// Digest returns MD5(challenge || key).
func Digest(challenge []byte, key string) [DigestSize]byte {
	h := md5.New()
	h.Write(challenge)
	io.WriteString(h, key)
	var d [DigestSize]byte
	h.Sum(d[:0])
	return d
}

// EncodeAuthReply returns the server's answer to challenge: the digest of
// challenge and key followed by serverID.
func EncodeAuthReply(challenge []byte, key string, serverID uint32) [AuthReplySize]byte {
	var r [AuthReplySize]byte
	d := Digest(challenge, key)
	copy(r[:], d[:])
	binary.LittleEndian.PutUint32(r[DigestSize:], serverID)
	return r
}

// KeyFunc returns the key a server announcing ServerID id must prove, and
// false if no key admits that ID (the gateway's per-server keys).
type KeyFunc func(id uint32) (key string, ok bool)

// VerifyAuthReply checks a server's reply to challenge in constant time and
// returns the ServerID it announced, any u32 (0 included: docs/protocol.md
// §1.4). A wrong digest is ErrAuthFailed.
func VerifyAuthReply(challenge []byte, key string, reply []byte) (uint32, error) {
	return VerifyAuthReplyKeys(challenge, func(uint32) (string, bool) { return key, true }, reply)
}

// VerifyAuthReplyKeys is VerifyAuthReply with the key chosen by the
// ServerID the reply announces (the ID travels beside the digest, so a
// server needs no change to be given a key of its own). An ID keyFor does
// not admit, or a digest made with another key, is ErrAuthFailed, wrapped
// with the ID; the digest is computed either way, so both take the same
// time.
func VerifyAuthReplyKeys(challenge []byte, keyFor KeyFunc, reply []byte) (uint32, error) {
	if len(reply) != AuthReplySize {
		return 0, fmt.Errorf("%w: reply of %d bytes", ErrAuthFailed, len(reply))
	}
	id := binary.LittleEndian.Uint32(reply[DigestSize:])
	key, ok := keyFor(id)
	want := Digest(challenge, key)
	if subtle.ConstantTimeCompare(want[:], reply[:DigestSize]) != 1 || !ok {
		if !ok {
			return 0, fmt.Errorf("%w: no key admits server ID %d", ErrAuthFailed, id)
		}
		return 0, fmt.Errorf("%w: wrong digest for server ID %d", ErrAuthFailed, id)
	}
	return id, nil
}

// AuthenticateServer runs the gateway's side of the server handshake on a
// freshly accepted connection: it sends a random challenge and checks the
// reply. The whole exchange must finish within timeout (0:
// DefaultAuthTimeout); the deadline is cleared on success.
func AuthenticateServer(conn net.Conn, key string, timeout time.Duration) (uint32, error) {
	return AuthenticateServerKeys(conn, func(uint32) (string, bool) { return key, true }, timeout)
}

// AuthenticateServerKeys is AuthenticateServer with the key chosen by the
// ServerID the server announces (see VerifyAuthReplyKeys).
func AuthenticateServerKeys(conn net.Conn, keyFor KeyFunc, timeout time.Duration) (uint32, error) {
	if timeout <= 0 {
		timeout = DefaultAuthTimeout
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	var challenge [ChallengeSize]byte
	if _, err := rand.Read(challenge[:]); err != nil {
		return 0, err
	}
	if _, err := conn.Write(challenge[:]); err != nil {
		return 0, fmt.Errorf("fastway: sending challenge: %w", err)
	}
	var reply [AuthReplySize]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return 0, fmt.Errorf("fastway: reading auth reply: %w", err)
	}
	id, err := VerifyAuthReplyKeys(challenge[:], keyFor, reply[:])
	if err != nil {
		return 0, err
	}
	return id, conn.SetDeadline(time.Time{})
}

// AuthenticateToGateway runs the server's side of the handshake: it reads the
// gateway's challenge and answers with the digest and serverID (any u32, 0
// included), within timeout (0: DefaultAuthTimeout). The gateway sends no
// acknowledgement.
func AuthenticateToGateway(conn net.Conn, key string, serverID uint32, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultAuthTimeout
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	var challenge [ChallengeSize]byte
	if _, err := io.ReadFull(conn, challenge[:]); err != nil {
		return fmt.Errorf("fastway: reading challenge: %w", err)
	}
	reply := EncodeAuthReply(challenge[:], key, serverID)
	if _, err := conn.Write(reply[:]); err != nil {
		return fmt.Errorf("fastway: sending auth reply: %w", err)
	}
	return conn.SetDeadline(time.Time{})
}
