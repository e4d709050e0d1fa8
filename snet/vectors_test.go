package snet

import (
	"bytes"
	"encoding/hex"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// Fixed keys for the vectors. Every hex value below was computed
// independently with Python (pow(5, priv, P), a ten-line RC4 and hashlib.md5).
const (
	vecPrivClient = 1234567
	vecPrivServer = 7654321
	vecPubClient  = 0xdc44724fb355bb28
	vecPubServer  = 0x97bf0d3f9dc7dd14
	vecSecret     = 0x3957a72a94710d7b
	vecConnID     = 0x0102030405060708
	vecChallenge  = 0x1122334455667788
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vecKey() [sizeOfKey]byte { return sessionKey(vecSecret) }

func TestDH64Vectors(t *testing.T) {
	if got := DH64PublicKey(vecPrivClient); got != vecPubClient {
		t.Errorf("client public %#x, want %#x", got, uint64(vecPubClient))
	}
	if got := DH64PublicKey(vecPrivServer); got != vecPubServer {
		t.Errorf("server public %#x, want %#x", got, uint64(vecPubServer))
	}
	if got := DH64Secret(vecPrivClient, vecPubServer); got != vecSecret {
		t.Errorf("client secret %#x, want %#x", got, uint64(vecSecret))
	}
	if got := DH64Secret(vecPrivServer, vecPubClient); got != vecSecret {
		t.Errorf("server secret %#x, want %#x", got, uint64(vecSecret))
	}
	// Edge exponents and bases (Python: pow(5, 2**64-1, P), pow(P-1-2, ...)).
	if got := DH64PublicKey(^uint64(0)); got != 0x77b351f6baa62e4e {
		t.Errorf("5^(2^64-1) = %#x", got)
	}
	if got := DH64Secret(0xfffffffffffffffe, 0xfffffffffffffffe); got != 0x90358cacd8544756 {
		t.Errorf("(2^64-2)^(2^64-2) = %#x", got)
	}
	if k := DH64PrivateKey(); k == 0 {
		t.Error("zero private key")
	}
}

// TestDH64MatchesBig cross-checks the 128-bit arithmetic with math/big.
func TestDH64MatchesBig(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	p := new(big.Int).SetUint64(DH64P)
	for range 300 {
		base, exp := r.Uint64(), r.Uint64()
		want := new(big.Int).Exp(new(big.Int).SetUint64(base), new(big.Int).SetUint64(exp), p)
		if got := DH64Secret(exp, base); got != want.Uint64() {
			t.Fatalf("%#x^%#x mod P = %#x, want %#x", base, exp, got, want.Uint64())
		}
	}
}

func TestRC4Keystream(t *testing.T) {
	key := vecKey()
	if want := unhex(t, "7b0d71942aa75739"); !bytes.Equal(key[:], want) {
		t.Fatalf("session key %x, want %x", key, want)
	}
	ks := make([]byte, 16)
	newCipher(key).XORKeyStream(ks, ks)
	if want := unhex(t, "4f841c43ce5854c95ce5a51e6b334722"); !bytes.Equal(ks, want) {
		t.Fatalf("keystream %x, want %x", ks, want)
	}
}

func TestWireVectors(t *testing.T) {
	key := vecKey()
	hello := encodeNewRequest(vecPubClient)
	if want := unhex(t, "0028bb55b34f7244dc"); !bytes.Equal(hello[:], want) {
		t.Errorf("hello %x, want %x", hello, want)
	}
	w := newCipher(key)
	reply := encodeNewReply(vecPubServer, vecConnID, vecChallenge, w)
	if want := unhex(t, "14ddc79d3f0dbf9747831a46ca5b56c88877665544332211"); !bytes.Equal(reply[:], want) {
		t.Errorf("reply %x, want %x", reply, want)
	}
	pub, encID, ch := decodeNewReply(reply)
	if id := decryptID(encID, newCipher(key)); pub != vecPubServer || id != vecConnID || ch != vecChallenge {
		t.Errorf("decoded %#x %#x %#x", pub, id, ch)
	}
	d := challengeDigest(vecChallenge, key)
	if want := unhex(t, "66b4a7cc2bf9e7366615a80e66553c4c"); !bytes.Equal(d[:], want) {
		t.Errorf("challenge digest %x, want %x", d, want)
	}

	req := encodeReconnRequest(vecConnID, 1000, 2000, key)
	want := unhex(t, "ff0807060504030201e803000000000000d0070000000000005c67387f78881fdaa2414f52b9736587")
	if !bytes.Equal(req[:], want) {
		t.Errorf("reconnect request %x, want %x", req, want)
	}
	r := decodeReconnRequest([reconnRequestSize - sizeOfType]byte(req[1:]))
	if r.id != vecConnID || r.writeCount != 1000 || r.readCount != 2000 || !r.verify(key) {
		t.Errorf("decoded request %+v", r)
	}
	if bad := sessionKey(vecSecret + 1); r.verify(bad) {
		t.Error("request verifies with the wrong key")
	}

	rep := encodeReconnReply(3000, 4000, 0x99aabbccddeeff00)
	if want := unhex(t, "b80b000000000000a00f00000000000000ffeeddccbbaa99"); !bytes.Equal(rep[:], want) {
		t.Errorf("reconnect reply %x, want %x", rep, want)
	}
	if sw, sr, ch, ok := decodeReconnReply(rep); sw != 3000 || sr != 4000 || ch != 0x99aabbccddeeff00 || !ok {
		t.Errorf("decoded reply %d %d %#x %v", sw, sr, ch, ok)
	}
	if _, _, _, ok := decodeReconnReply([reconnReplySize]byte{}); ok {
		t.Error("all-zero reply not a refusal")
	}
	d = challengeDigest(0x99aabbccddeeff00, key)
	if want := unhex(t, "f45c616334d37845f5be3e3699141f45"); !bytes.Equal(d[:], want) {
		t.Errorf("reconnect challenge digest %x, want %x", d, want)
	}
}

// rawExpect reads len(want) bytes from c and compares them.
func rawExpect(t *testing.T, c net.Conn, what, want string) {
	t.Helper()
	w := unhex(t, want)
	got := make([]byte, len(w))
	c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, w) {
		t.Fatalf("%s: got %x, want %x", what, got, w)
	}
}

func rawSend(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write(unhex(t, s)); err != nil {
		t.Fatal(err)
	}
}

// TestServerBytes drives a Listener with a scripted client and checks every
// byte the server sends, through a new connection, data both ways (keystream
// offsets 8 and 0), a reconnect, and data after it.
func TestServerBytes(t *testing.T) {
	cfg := Config{EnableCrypt: true, rand: fixedRand(vecPrivServer, vecChallenge, 0x0807060504030201)}
	l := newListener(t, cfg)
	accepted := acceptAsync(l)
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rawSend(t, raw, "0028bb55b34f7244dc")
	// The first ID is 1: XORed with keystream 4f841c43ce5854c9.
	rawExpect(t, raw, "new reply", "14ddc79d3f0dbf97"+"4e841c43ce5854c9"+"8877665544332211")
	rawSend(t, raw, "66b4a7cc2bf9e7366615a80e66553c4c")
	c, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	srv := c.(*Conn)
	defer srv.Close()
	if srv.ID() != 1 {
		t.Fatalf("ID %d, want 1", srv.ID())
	}
	srv.Write([]byte("hello"))
	rawExpect(t, raw, "server data", "3480c97204") // keystream from offset 8
	rawSend(t, raw, "27e1702fa1")                  // keystream from offset 0
	buf := make([]byte, 16)
	if n, err := srv.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}

	// Reconnect on a new TCP connection; the old one is still open, so the
	// server learns of the break from the request itself.
	raw2, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	rawSend(t, raw2, "ff010000000000000005000000000000000500000000000000a5b77d0033593d054164f703d024f6a2")
	rawExpect(t, raw2, "reconnect reply", "050000000000000005000000000000000102030405060708")
	rawSend(t, raw2, "4d55b9d73e934380322bcef0c24a0498")
	// The server closes the old connection only once the answer checks.
	eventually(t, "the resume", func() bool { return l.Stats().Resumes == 1 })
	srv.Write([]byte("again"))
	rawExpect(t, raw2, "data after reconnect", "5220434d20")
	rawSend(t, raw2, "2f3bbb3081")
	if n, err := srv.Read(buf); err != nil || string(buf[:n]) != "world" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
	// The old TCP connection was dropped.
	raw.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := raw.Read(buf); err == nil {
		t.Fatal("old connection still open")
	}
}

// TestClientBytes drives Dial with a scripted server and checks every byte
// the client sends, through a new connection, data, a reconnect (after the
// server drops the TCP connection) and data after it.
func TestClientBytes(t *testing.T) {
	ln, err := tcpListen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	dialed := make(chan result, 1)
	go func() {
		c, err := Dial(Config{EnableCrypt: true, rand: fixedRand(vecPrivClient)}, tcpDialer(ln.Addr().String()))
		dialed <- result{c, err}
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	rawExpect(t, raw, "hello", "0028bb55b34f7244dc")
	rawSend(t, raw, "14ddc79d3f0dbf9747831a46ca5b56c88877665544332211")
	rawExpect(t, raw, "challenge digest", "66b4a7cc2bf9e7366615a80e66553c4c")
	res := <-dialed
	if res.err != nil {
		t.Fatal(res.err)
	}
	cli := res.c.(*Conn)
	defer cli.Close()
	if cli.ID() != vecConnID {
		t.Fatalf("ID %#x, want %#x", cli.ID(), uint64(vecConnID))
	}
	cli.Write([]byte("hello"))
	rawExpect(t, raw, "client data", "27e1702fa1")
	rawSend(t, raw, "3480c97204")
	buf := make([]byte, 16)
	if n, err := cli.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}

	read := make(chan string, 1)
	go func() {
		n, err := cli.Read(buf)
		if err != nil {
			read <- err.Error()
			return
		}
		read <- string(buf[:n])
	}()
	raw.Close() // the client's Read breaks and it reconnects
	raw2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	rawExpect(t, raw2, "reconnect request", "ff0807060504030201050000000000000005000000000000007436c711e2d89d5c032b4bd0bd91c04f")
	rawSend(t, raw2, "0500000000000000050000000000000000ffeeddccbbaa99")
	rawExpect(t, raw2, "reconnect digest", "f45c616334d37845f5be3e3699141f45")
	rawSend(t, raw2, "5220434d20") // "again" from keystream offset 13
	if got := <-read; got != "again" {
		t.Fatalf("client read %q after reconnect", got)
	}
	cli.Write([]byte("world"))
	rawExpect(t, raw2, "client data after reconnect", "2f3bbb3081")
}
