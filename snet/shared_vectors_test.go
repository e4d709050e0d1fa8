package snet

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sharedFile holds the golden vectors of PROTOCOL.md §3 that the C# SDK's
// tests (sdk/csharp/tests) read too.
const sharedFile = "../proto/testdata/vectors.json"

// u64 is a u64 written as 16 hex digits in the shared file.
type u64 uint64

func (v *u64) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(s, 16, 64)
	*v = u64(n)
	return err
}

type sharedSnet struct {
	Snet struct {
		P          u64 `json:"p"`
		G          uint64
		PublicKeys []struct{ Priv, Pub u64 } `json:"publicKeys"`
		Secrets    []struct {
			Priv    u64 `json:"priv"`
			PeerPub u64 `json:"peerPub"`
			Secret  u64 `json:"secret"`
		} `json:"secrets"`
		SessionKey struct {
			Secret u64
			Hex    string
		} `json:"sessionKey"`
		RC4Keystream struct {
			Key u64 // the key's 8 bytes, as written
			Hex string
		} `json:"rc4Keystream"`
		NewRequest struct {
			Pub u64
			Hex string
		} `json:"newRequest"`
		NewReply struct {
			Key, Pub, ConnID, Challenge u64
			Hex                         string
		} `json:"newReply"`
		ChallengeDigests []struct {
			Key, Challenge u64
			Hex            string
		} `json:"challengeDigests"`
		ReconnRequest struct {
			Key, ConnID           u64
			WriteCount, ReadCount uint64
			Hex                   string
		} `json:"reconnRequest"`
		ReconnReply struct {
			WriteCount, ReadCount uint64
			Challenge             u64
			Hex                   string
		} `json:"reconnReply"`
		ReconnRefused struct{ Hex string } `json:"reconnRefused"`
		ClientSession struct {
			Crypt  bool
			Priv   u64
			ConnID u64 `json:"connID"`
			Steps  []struct {
				Op, What, Text, Hex string
			}
		} `json:"clientSession"`
	} `json:"snet"`
}

func loadShared(t *testing.T) sharedSnet {
	t.Helper()
	b, err := os.ReadFile(sharedFile)
	if err != nil {
		t.Fatal(err)
	}
	var v sharedSnet
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", sharedFile, err)
	}
	return v
}

// hexOf decodes a hex string of the shared file (spaces between fields).
func hexOf(t *testing.T, s string) []byte {
	t.Helper()
	return unhex(t, strings.ReplaceAll(s, " ", ""))
}

// keyOf is a key written as its 8 bytes in order.
func keyOf(v u64) [sizeOfKey]byte {
	var k [sizeOfKey]byte
	binary.BigEndian.PutUint64(k[:], uint64(v))
	return k
}

// TestSharedVectors checks the §3 vectors of the shared file against
// DH64, RC4, MD5 and the handshake encoders.
func TestSharedVectors(t *testing.T) {
	v := loadShared(t).Snet
	if uint64(v.P) != DH64P || v.G != DH64G {
		t.Fatalf("P %#x G %d, want %#x %d", uint64(v.P), v.G, DH64P, DH64G)
	}
	if len(v.PublicKeys) == 0 || len(v.Secrets) == 0 || len(v.ChallengeDigests) == 0 {
		t.Fatal("shared file lacks snet vectors")
	}
	for _, k := range v.PublicKeys {
		if got := DH64PublicKey(uint64(k.Priv)); got != uint64(k.Pub) {
			t.Errorf("public(%#x) = %#x, want %#x", uint64(k.Priv), got, uint64(k.Pub))
		}
	}
	for _, s := range v.Secrets {
		if got := DH64Secret(uint64(s.Priv), uint64(s.PeerPub)); got != uint64(s.Secret) {
			t.Errorf("secret(%#x, %#x) = %#x, want %#x", uint64(s.Priv), uint64(s.PeerPub), got, uint64(s.Secret))
		}
	}
	key := sessionKey(uint64(v.SessionKey.Secret))
	if want := hexOf(t, v.SessionKey.Hex); !bytes.Equal(key[:], want) {
		t.Errorf("session key %x, want %x", key, want)
	}
	ks := make([]byte, len(hexOf(t, v.RC4Keystream.Hex)))
	newCipher(keyOf(v.RC4Keystream.Key)).XORKeyStream(ks, ks)
	if want := hexOf(t, v.RC4Keystream.Hex); !bytes.Equal(ks, want) {
		t.Errorf("keystream %x, want %x", ks, want)
	}
	if got, want := encodeNewRequest(uint64(v.NewRequest.Pub)), hexOf(t, v.NewRequest.Hex); !bytes.Equal(got[:], want) {
		t.Errorf("new request %x, want %x", got, want)
	}
	nr := v.NewReply
	if got, want := encodeNewReply(uint64(nr.Pub), uint64(nr.ConnID), uint64(nr.Challenge), newCipher(keyOf(nr.Key))), hexOf(t, nr.Hex); !bytes.Equal(got[:], want) {
		t.Errorf("new reply %x, want %x", got, want)
	}
	for _, d := range v.ChallengeDigests {
		if got, want := challengeDigest(uint64(d.Challenge), keyOf(d.Key)), hexOf(t, d.Hex); !bytes.Equal(got[:], want) {
			t.Errorf("digest of %#x: %x, want %x", uint64(d.Challenge), got, want)
		}
	}
	rq := v.ReconnRequest
	if got, want := encodeReconnRequest(uint64(rq.ConnID), rq.WriteCount, rq.ReadCount, keyOf(rq.Key)), hexOf(t, rq.Hex); !bytes.Equal(got[:], want) {
		t.Errorf("reconnect request %x, want %x", got, want)
	}
	rp := v.ReconnReply
	if got, want := encodeReconnReply(rp.WriteCount, rp.ReadCount, uint64(rp.Challenge)), hexOf(t, rp.Hex); !bytes.Equal(got[:], want) {
		t.Errorf("reconnect reply %x, want %x", got, want)
	}
	if _, _, _, ok := decodeReconnReply([reconnReplySize]byte(hexOf(t, v.ReconnRefused.Hex))); ok {
		t.Error("the refusal vector is not a refusal")
	}
}

// TestSharedClientSession runs the shared file's scripted session against
// Dial: every byte the client sends, and every byte it reads, as the C#
// client's test does with the same script.
func TestSharedClientSession(t *testing.T) {
	s := loadShared(t).Snet.ClientSession
	ln, err := tcpListen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   *Conn
		err error
	}
	dialed := make(chan result, 1)
	go func() {
		c, err := Dial(Config{EnableCrypt: s.Crypt, rand: fixedRand(uint64(s.Priv))}, tcpDialer(ln.Addr().String()))
		if err != nil {
			dialed <- result{nil, err}
			return
		}
		dialed <- result{c.(*Conn), nil}
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { raw.Close() }()
	var cli *Conn
	client := func() *Conn {
		if cli == nil {
			r := <-dialed
			if r.err != nil {
				t.Fatal(r.err)
			}
			cli = r.c
			t.Cleanup(func() { cli.Close() })
			if cli.ID() != uint64(s.ConnID) {
				t.Fatalf("ID %#x, want %#x", cli.ID(), uint64(s.ConnID))
			}
		}
		return cli
	}
	var pending chan string
	read := func(n int) string {
		buf := make([]byte, n)
		c := client()
		c.SetReadDeadline(time.Now().Add(waitFor))
		got := 0
		for got < n {
			m, err := c.Read(buf[got:])
			if err != nil {
				return err.Error()
			}
			got += m
		}
		return string(buf)
	}
	for i, st := range s.Steps {
		switch st.Op {
		case "expect":
			rawExpect(t, raw, st.What, strings.ReplaceAll(st.Hex, " ", ""))
		case "send":
			rawSend(t, raw, strings.ReplaceAll(st.Hex, " ", ""))
		case "write":
			if _, err := client().Write([]byte(st.Text)); err != nil {
				t.Fatalf("step %d: write: %v", i, err)
			}
		case "read":
			if got := read(len(st.Text)); got != st.Text {
				t.Fatalf("step %d: read %q, want %q", i, got, st.Text)
			}
		case "startRead":
			pending = make(chan string, 1)
			n, want := len(st.Text), st.Text
			done := pending
			go func() {
				got := read(n)
				if got != want {
					got = "read " + strconv.Quote(got) + ", want " + strconv.Quote(want)
				} else {
					got = ""
				}
				done <- got
			}()
		case "finishRead":
			if msg := <-pending; msg != "" {
				t.Fatalf("step %d: %s", i, msg)
			}
		case "cut":
			raw.Close()
			if raw, err = ln.Accept(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("step %d: unknown op %q", i, st.Op)
		}
	}
}
