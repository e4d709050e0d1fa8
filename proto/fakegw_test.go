package proto

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// epWait bounds every wait in these tests; nothing correct takes that long.
const epWait = 5 * time.Second

// epHex decodes a hex literal written as on the wire (spaces ignored).
func epHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// epTransports are the connections every endpoint scenario runs over: a
// real loopback TCP socket (writev) and net.Pipe (no writev, no buffering).
var epTransports = []struct {
	name string
	pair func(t *testing.T) (ep, gw net.Conn)
}{
	{"tcp", epTCPPair},
	{"pipe", func(t *testing.T) (net.Conn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}},
	{"tls", epTLSPair},
}

// epTLSConfigs returns a server config with a fresh self-signed certificate
// for 127.0.0.1 and a client config that trusts only it.
var epTLSConfigs = sync.OnceValues(func() (*tls.Config, *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fastway test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	server := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	return server, client
})

// epTLSPair is a TLS connection over loopback TCP: no writev on the
// endpoint's side.
func epTLSPair(t *testing.T) (net.Conn, net.Conn) {
	c, g := epTCPPair(t)
	server, client := epTLSConfigs()
	tc, tg := tls.Client(c, client), tls.Server(g, server)
	t.Cleanup(func() { tc.Close(); tg.Close() })
	return tc, tg
}

func epTCPPair(t *testing.T) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case g := <-accepted:
		if g == nil {
			t.Fatal("accept failed")
		}
		t.Cleanup(func() { g.Close() })
		return c, g
	case <-time.After(epWait):
		t.Fatal("accept timed out")
		return nil, nil
	}
}

// fakeGW is the gateway's end of an endpoint's connection, driven by the
// test goroutine frame by frame.
type fakeGW struct {
	t    *testing.T
	conn net.Conn
	fr   *FrameReader
}

func newFakeGW(t *testing.T, conn net.Conn) *fakeGW {
	return &fakeGW{t: t, conn: conn, fr: NewFrameReader(conn, nil, 0, 0)}
}

// read returns the next frame the endpoint sent.
func (g *fakeGW) read() []byte {
	g.t.Helper()
	g.conn.SetReadDeadline(time.Now().Add(epWait))
	f, err := g.fr.ReadFrame()
	if err != nil {
		g.t.Fatalf("fake gateway: read: %v", err)
	}
	return f
}

// expect reads the next frame and checks its bytes.
func (g *fakeGW) expect(want []byte) {
	g.t.Helper()
	if got := g.read(); !bytes.Equal(got, want) {
		g.t.Fatalf("fake gateway got % x, want % x", got, want)
	}
}

func (g *fakeGW) expectCmd(c Command) { g.t.Helper(); g.expect(c.Encode(nil)) }

// write sends raw bytes to the endpoint.
func (g *fakeGW) write(b []byte) {
	g.t.Helper()
	g.conn.SetWriteDeadline(time.Now().Add(epWait))
	if _, err := g.conn.Write(b); err != nil {
		g.t.Fatalf("fake gateway: write: %v", err)
	}
}

func (g *fakeGW) cmd(c Command)              { g.t.Helper(); g.write(c.Encode(nil)) }
func (g *fakeGW) data(id uint32, msg string) { g.t.Helper(); g.write(EncodeData(nil, id, []byte(msg))) }
func (g *fakeGW) accept(connID, remote uint32) {
	g.t.Helper()
	g.cmd(Command{CmdAccept, connID, remote})
}
func (g *fakeGW) connect(connID, remote uint32) {
	g.t.Helper()
	g.cmd(Command{CmdConnect, connID, remote})
}

// drain reads and discards frames in the background until the connection
// ends; the returned function waits for that.
func (g *fakeGW) drain(seen func(f []byte)) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fr := NewFrameReader(g.conn, nil, 0, 0)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if seen != nil {
				seen(f)
			}
		}
	}()
	return func() {
		select {
		case <-done:
		case <-time.After(epWait):
			g.t.Error("fake gateway drain did not stop")
		}
	}
}

// newClientPair returns a client endpoint and the fake gateway it talks to;
// both are closed when the test ends.
func newClientPair(t *testing.T, pair func(*testing.T) (net.Conn, net.Conn), cfg EndPointCfg) (*EndPoint, *fakeGW) {
	t.Helper()
	c, g := pair(t)
	ep, err := NewClient(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close(); g.Close() })
	return ep, newFakeGW(t, g)
}

type epDialed struct {
	conn *Conn
	err  error
}

// goDial dials in the background.
func goDial(ep *EndPoint, remote uint32) <-chan epDialed {
	ch := make(chan epDialed, 1)
	go func() {
		c, err := ep.Dial(remote)
		ch <- epDialed{c, err}
	}()
	return ch
}

// recvWithin waits for a value on ch.
func recvWithin[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(epWait):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// receive calls c.Receive with a bound on the wait.
func receive(t *testing.T, c *Conn) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), epWait)
	defer cancel()
	m, err := c.ReceiveContext(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive on conn %d timed out", c.ConnID())
	}
	return m, err
}

func receiveString(t *testing.T, c *Conn) string {
	t.Helper()
	m, err := receive(t, c)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return string(m.([]byte))
}

// dialed opens a virtual connection through the fake gateway.
func dialed(t *testing.T, ep *EndPoint, g *fakeGW, connID, remote uint32) *Conn {
	t.Helper()
	ch := goDial(ep, remote)
	g.expectCmd(Command{Type: CmdDial, RemoteID: remote})
	g.accept(connID, remote)
	r := recvWithin(t, ch, "Dial")
	if r.err != nil {
		t.Fatalf("Dial(%d): %v", remote, r.err)
	}
	return r.conn
}

// accepted has the fake gateway open a virtual connection to ep.
func accepted(t *testing.T, ep *EndPoint, g *fakeGW, connID, remote uint32) *Conn {
	t.Helper()
	g.connect(connID, remote)
	ctx, cancel := context.WithTimeout(context.Background(), epWait)
	defer cancel()
	c, err := ep.AcceptContext(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if c.ConnID() != connID || c.RemoteID() != remote {
		t.Fatalf("Accept gave conn %d remote %d, want %d %d", c.ConnID(), c.RemoteID(), connID, remote)
	}
	return c
}

func waitClosed(t *testing.T, ep *EndPoint) error {
	t.Helper()
	recvWithin(t, ep.Done(), "endpoint to close")
	return ep.Err()
}
