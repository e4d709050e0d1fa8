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

// VerifyAuthReply checks a server's reply to challenge in constant time and
// returns the ServerID it announced, any u32 (0 included: docs/protocol.md
// §1.4). A wrong digest is ErrAuthFailed.
func VerifyAuthReply(challenge []byte, key string, reply []byte) (uint32, error) {
	if len(reply) != AuthReplySize {
		return 0, fmt.Errorf("%w: reply of %d bytes", ErrAuthFailed, len(reply))
	}
	want := Digest(challenge, key)
	if subtle.ConstantTimeCompare(want[:], reply[:DigestSize]) != 1 {
		return 0, ErrAuthFailed
	}
	return binary.LittleEndian.Uint32(reply[DigestSize:]), nil
}

// AuthenticateServer runs the gateway's side of the server handshake on a
// freshly accepted connection: it sends a random challenge and checks the
// reply. The whole exchange must finish within timeout (0:
// DefaultAuthTimeout); the deadline is cleared on success.
func AuthenticateServer(conn net.Conn, key string, timeout time.Duration) (uint32, error) {
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
	id, err := VerifyAuthReply(challenge[:], key, reply[:])
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
