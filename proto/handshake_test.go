package proto

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// Handshake test vector: challenge 01..08 and key "fastway-secret". The
// digest was computed once outside Go:
//
//	printf '\x01\x02\x03\x04\x05\x06\x07\x08fastway-secret' | md5sum
var (
	vecChallenge = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	vecKey       = "fastway-secret"
	vecDigest    = "e039de95fd2e12a36d031969bc7fa6d6"
)

func TestDigest(t *testing.T) {
	tests := []struct {
		challenge []byte
		key       string
		want      string
	}{
		{vecChallenge, vecKey, vecDigest},
		{nil, "", "d41d8cd98f00b204e9800998ecf8427e"},           // RFC 1321: MD5("")
		{[]byte("ab"), "c", "900150983cd24fb0d6963f7d28e17f72"}, // RFC 1321: MD5("abc")
	}
	for _, tt := range tests {
		d := Digest(tt.challenge, tt.key)
		if got := hex.EncodeToString(d[:]); got != tt.want {
			t.Errorf("Digest(%x, %q) = %s, want %s", tt.challenge, tt.key, got, tt.want)
		}
		// And the same as crypto/md5 over the concatenation.
		if want := md5.Sum(append(append([]byte(nil), tt.challenge...), tt.key...)); d != want {
			t.Errorf("Digest(%x, %q) = %x, md5.Sum = %x", tt.challenge, tt.key, d, want)
		}
	}
}

func TestEncodeAuthReply(t *testing.T) {
	r := EncodeAuthReply(vecChallenge, vecKey, 0x01020304)
	want := unhex(t, vecDigest+"04030201")
	if len(r) != 20 || AuthReplySize != 20 || ChallengeSize != 8 || DigestSize != 16 {
		t.Fatalf("sizes: reply %d AuthReplySize %d ChallengeSize %d DigestSize %d", len(r), AuthReplySize, ChallengeSize, DigestSize)
	}
	if !bytes.Equal(r[:], want) {
		t.Fatalf("EncodeAuthReply = %x, want %x (digest then ServerID LE)", r, want)
	}
}

func TestVerifyAuthReply(t *testing.T) {
	good := EncodeAuthReply(vecChallenge, vecKey, 42)
	flipped := good
	flipped[0] ^= 1
	lastBit := good
	lastBit[DigestSize-1] ^= 0x80
	zeroID := EncodeAuthReply(vecChallenge, vecKey, 0)
	maxID := EncodeAuthReply(vecChallenge, vecKey, 0xFFFFFFFF)
	otherChallenge := EncodeAuthReply([]byte{8, 7, 6, 5, 4, 3, 2, 1}, vecKey, 42)
	tests := []struct {
		name   string
		key    string
		reply  []byte
		wantID uint32
		want   error
	}{
		{"right key", vecKey, good[:], 42, nil},
		{"max ID", vecKey, maxID[:], 0xFFFFFFFF, nil},
		{"wrong key", "fastway-secreT", good[:], 0, ErrAuthFailed},
		{"empty key", "", good[:], 0, ErrAuthFailed},
		{"first bit flipped", vecKey, flipped[:], 0, ErrAuthFailed},
		{"last digest bit flipped", vecKey, lastBit[:], 0, ErrAuthFailed},
		{"other challenge", vecKey, otherChallenge[:], 0, ErrAuthFailed},
		{"ID 0", vecKey, zeroID[:], 0, nil},
		{"short reply", vecKey, good[:AuthReplySize-1], 0, ErrAuthFailed},
		{"digest only", vecKey, good[:DigestSize], 0, ErrAuthFailed},
		{"empty reply", vecKey, nil, 0, ErrAuthFailed},
		{"long reply", vecKey, append(good[:], 0), 0, ErrAuthFailed},
	}
	for _, tt := range tests {
		id, err := VerifyAuthReply(vecChallenge, tt.key, tt.reply)
		if tt.want == nil {
			if err != nil || id != tt.wantID {
				t.Errorf("%s: VerifyAuthReply = %d, %v; want %d", tt.name, id, err, tt.wantID)
			}
			continue
		}
		if !errors.Is(err, tt.want) || id != 0 {
			t.Errorf("%s: VerifyAuthReply = %d, %v; want 0, %v", tt.name, id, err, tt.want)
		}
	}
}

// TestVerifyAuthReplyKeys: the key is chosen by the ServerID in the reply,
// so a digest made with one ID's key does not register another ID.
func TestVerifyAuthReplyKeys(t *testing.T) {
	keys := map[uint32]string{1: "key-one", 2: "key-two"}
	keyFor := func(id uint32) (string, bool) { k, ok := keys[id]; return k, ok }
	for _, tc := range []struct {
		name string
		key  string
		id   uint32
		ok   bool
	}{
		{"own key", "key-one", 1, true},
		{"other ID's key", "key-one", 2, false},
		{"unlisted ID", "key-one", 3, false},
		{"unlisted ID, empty key", "", 3, false},
	} {
		reply := EncodeAuthReply(vecChallenge, tc.key, tc.id)
		id, err := VerifyAuthReplyKeys(vecChallenge, keyFor, reply[:])
		if tc.ok != (err == nil) || (err == nil && id != tc.id) || (err != nil && !errors.Is(err, ErrAuthFailed)) {
			t.Errorf("%s: %d, %v", tc.name, id, err)
		}
	}
}

// connPair returns the gateway's and the server's ends of one connection.
type connPair func(t *testing.T) (gw, srv net.Conn)

// connTypes are the transports every handshake scenario runs over.
var connTypes = []struct {
	name string
	pair connPair
}{
	{"pipe", pipePair},
	{"tcp", tcpPair},
}

func pipePair(t *testing.T) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- result{c, err}
	}()
	srv, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	r := <-accepted
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c, srv
}

// goErr runs f in a goroutine and returns a channel that gets its error.
func goErr(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// waitErr returns the error from ch, failing the test if none comes soon.
func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("goroutine did not finish")
		return nil
	}
}

func TestHandshake(t *testing.T) {
	for _, ct := range connTypes {
		t.Run(ct.name, func(t *testing.T) {
			t.Run("success", func(t *testing.T) {
				gw, srv := ct.pair(t)
				done := goErr(func() error { return AuthenticateToGateway(srv, vecKey, 9527, time.Second) })
				id, err := AuthenticateServer(gw, vecKey, time.Second)
				if err != nil || id != 9527 {
					t.Fatalf("AuthenticateServer = %d, %v; want 9527", id, err)
				}
				if err := waitErr(t, done); err != nil {
					t.Fatalf("AuthenticateToGateway: %v", err)
				}
				// Both sides switch to framing: a Ping goes through.
				ping := Command{Type: CmdPing}.Encode(nil)
				sent := goErr(func() error { _, err := srv.Write(ping); return err })
				fr := NewFrameReader(gw, nil, 0, 0)
				f, err := fr.ReadFrame()
				if err != nil || !bytes.Equal(f, ping) {
					t.Fatalf("frame after handshake = %x, %v", f, err)
				}
				if err := waitErr(t, sent); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("wrong key", func(t *testing.T) {
				gw, srv := ct.pair(t)
				done := goErr(func() error { return AuthenticateToGateway(srv, "not the key", 1, time.Second) })
				id, err := AuthenticateServer(gw, vecKey, time.Second)
				if !errors.Is(err, ErrAuthFailed) || id != 0 {
					t.Fatalf("AuthenticateServer = %d, %v; want ErrAuthFailed", id, err)
				}
				// No acknowledgement on the wire: the server side cannot tell.
				if err := waitErr(t, done); err != nil {
					t.Fatalf("AuthenticateToGateway: %v", err)
				}
			})

			t.Run("server ID 0", func(t *testing.T) {
				// 0 is a valid server ID (docs/protocol.md §1.4).
				gw, srv := ct.pair(t)
				done := goErr(func() error { return AuthenticateToGateway(srv, vecKey, 0, time.Second) })
				if id, err := AuthenticateServer(gw, vecKey, time.Second); err != nil || id != 0 {
					t.Fatalf("AuthenticateServer = %d, %v; want ID 0", id, err)
				}
				if err := waitErr(t, done); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("reply one byte at a time", func(t *testing.T) {
				gw, srv := ct.pair(t)
				done := goErr(func() error {
					var ch [ChallengeSize]byte
					if _, err := io.ReadFull(srv, ch[:]); err != nil {
						return err
					}
					r := EncodeAuthReply(ch[:], vecKey, 77)
					for i := range r {
						if _, err := srv.Write(r[i : i+1]); err != nil {
							return err
						}
					}
					return nil
				})
				id, err := AuthenticateServer(gw, vecKey, 5*time.Second)
				if err != nil || id != 77 {
					t.Fatalf("AuthenticateServer = %d, %v; want 77", id, err)
				}
				if err := waitErr(t, done); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("silent server times out", func(t *testing.T) {
				gw, srv := ct.pair(t)
				// Reads the challenge, then sends nothing until the gateway
				// gives up and closes.
				done := goErr(func() error {
					var ch [ChallengeSize]byte
					if _, err := io.ReadFull(srv, ch[:]); err != nil {
						return err
					}
					_, err := srv.Read(ch[:])
					if err == nil {
						return errors.New("gateway sent more than the challenge")
					}
					return nil
				})
				const timeout = 100 * time.Millisecond
				start := time.Now()
				id, err := AuthenticateServer(gw, vecKey, timeout)
				elapsed := time.Since(start)
				gw.Close()
				if err == nil || id != 0 {
					t.Fatalf("AuthenticateServer = %d, %v; want a timeout", id, err)
				}
				var ne net.Error
				if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("AuthenticateServer: %v, want a timeout net.Error", err)
				}
				if elapsed < timeout-10*time.Millisecond || elapsed > 3*time.Second {
					t.Fatalf("AuthenticateServer returned after %v, want about %v", elapsed, timeout)
				}
				if err := waitErr(t, done); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("silent gateway times out", func(t *testing.T) {
				_, srv := ct.pair(t)
				const timeout = 100 * time.Millisecond
				start := time.Now()
				err := AuthenticateToGateway(srv, vecKey, 1, timeout)
				if elapsed := time.Since(start); elapsed > 3*time.Second {
					t.Fatalf("AuthenticateToGateway returned after %v", elapsed)
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("AuthenticateToGateway: %v, want a timeout", err)
				}
			})

			t.Run("server hangs up", func(t *testing.T) {
				gw, srv := ct.pair(t)
				done := goErr(func() error {
					var ch [ChallengeSize]byte
					_, err := io.ReadFull(srv, ch[:])
					srv.Write(make([]byte, AuthReplySize-1))
					srv.Close()
					return err
				})
				if _, err := AuthenticateServer(gw, vecKey, time.Second); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("AuthenticateServer: %v, want io.ErrUnexpectedEOF", err)
				}
				if err := waitErr(t, done); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestChallengeIsRandom checks that the gateway does not reuse a challenge
// (a replayed reply must not pass).
func TestChallengeIsRandom(t *testing.T) {
	seen := map[[ChallengeSize]byte]bool{}
	for range 8 {
		gw, srv := pipePair(t)
		got := make(chan [ChallengeSize]byte, 1)
		done := goErr(func() error {
			var ch [ChallengeSize]byte
			if _, err := io.ReadFull(srv, ch[:]); err != nil {
				return err
			}
			got <- ch
			r := EncodeAuthReply(ch[:], vecKey, 1)
			_, err := srv.Write(r[:])
			return err
		})
		if _, err := AuthenticateServer(gw, vecKey, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := waitErr(t, done); err != nil {
			t.Fatal(err)
		}
		ch := <-got
		if seen[ch] {
			t.Fatalf("challenge %x sent twice", ch)
		}
		seen[ch] = true
	}
}

// TestReplayedReplyFails: a reply recorded from one handshake does not
// authenticate another.
func TestReplayedReplyFails(t *testing.T) {
	recorded := EncodeAuthReply(vecChallenge, vecKey, 5)
	gw, srv := pipePair(t)
	done := goErr(func() error {
		var ch [ChallengeSize]byte
		if _, err := io.ReadFull(srv, ch[:]); err != nil {
			return err
		}
		_, err := srv.Write(recorded[:])
		return err
	})
	_, err := AuthenticateServer(gw, vecKey, time.Second)
	if werr := waitErr(t, done); werr != nil {
		t.Fatal(werr)
	}
	// The only way this passes is the gateway drawing exactly vecChallenge.
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("replayed reply: %v, want ErrAuthFailed", err)
	}
}
