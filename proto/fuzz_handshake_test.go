package proto

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzHandshake drives both sides of the server handshake over net.Pipe with
// arbitrary peer bytes, delivered in two writes split at split.
//
// Gateway side: AuthenticateServer reads the fuzzed bytes as the server's
// reply; it must never panic and must accept only a reply whose digest
// matches the challenge it sent (the fuzzer cannot guess a random
// challenge's digest, so acceptance is checked against the real one).
//
// Server side: AuthenticateToGateway reads the fuzzed bytes as the
// challenge; when at least 8 arrive it must answer with exactly the digest
// of those 8 bytes and its ID.
func FuzzHandshake(f *testing.F) {
	good := EncodeAuthReply(vecChallenge, vecKey, 1)
	f.Add(vecChallenge, good[:], uint8(3))
	f.Add([]byte{}, []byte{}, uint8(0))
	f.Add(bytes.Repeat([]byte{0xff}, 40), bytes.Repeat([]byte{0}, 40), uint8(20))
	f.Fuzz(func(t *testing.T, challenge, reply []byte, split uint8) {
		const timeout = time.Second
		write := func(c net.Conn, b []byte) {
			k := min(int(split), len(b))
			c.Write(b[:k])
			c.Write(b[k:])
		}

		// Gateway side.
		gw, srv := net.Pipe()
		sent := make(chan []byte, 1)
		go func() {
			defer srv.Close()
			var ch [ChallengeSize]byte
			if _, err := io.ReadFull(srv, ch[:]); err != nil {
				sent <- nil
				return
			}
			sent <- ch[:]
			write(srv, reply)
		}()
		id, err := AuthenticateServer(gw, vecKey, timeout)
		gw.Close()
		ch := <-sent
		if err == nil {
			if ch == nil || len(reply) < AuthReplySize {
				t.Fatalf("accepted without a full reply: %x", reply)
			}
			if want, verr := VerifyAuthReply(ch, vecKey, reply[:AuthReplySize]); verr != nil || id != want {
				t.Fatalf("accepted a wrong reply %x for challenge %x (id %d)", reply, ch, id)
			}
		} else if !errors.Is(err, ErrAuthFailed) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			t.Fatalf("unexpected error %v", err)
		}

		// Server side.
		gw, srv = net.Pipe()
		got := make(chan []byte, 1)
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			write(gw, challenge) // a tail the server never reads fails once srv closes
			if len(challenge) < ChallengeSize {
				gw.Close() // end of input: the server sees EOF, not a timeout
			}
		}()
		go func() {
			b, _ := io.ReadAll(gw)
			got <- b
		}()
		err = AuthenticateToGateway(srv, vecKey, 7, timeout)
		srv.Close()
		answer := <-got
		<-wrote
		gw.Close()
		if len(challenge) >= ChallengeSize {
			want := EncodeAuthReply(challenge[:ChallengeSize], vecKey, 7)
			if err != nil || !bytes.Equal(answer, want[:]) {
				t.Fatalf("challenge %x: answer %x, %v; want %x", challenge[:ChallengeSize], answer, err, want)
			}
		} else if err == nil {
			t.Fatalf("short challenge %x accepted", challenge)
		}
	})
}
