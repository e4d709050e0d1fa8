package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/snet"
)

// selfSigned returns a TLS config serving a fresh self-signed certificate
// for 127.0.0.1, and a client config that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fastway test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// TestShutdownFlushesOverTransports: a graceful Shutdown with frames queued
// toward a client, over TLS (CloseWrite sends close_notify) and over snet
// (which cannot half-close: its links close once flushed, as before). Over
// TLS the client gets every frame, then EOF, and Shutdown returns nil once
// it closes; over snet Shutdown returns nil once the frames are written.
func TestShutdownFlushesOverTransports(t *testing.T) {
	const n = 500
	msg := make([]byte, 4<<10)
	tlsListen := func(t *testing.T, cfg *tls.Config) net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return tls.NewListener(ln, cfg)
	}
	snetCfg := snet.Config{RewriterBufferSize: 8 << 20}
	for _, tc := range []struct {
		name string
		// setup returns the client and server listeners and a dialer.
		setup func(t *testing.T) (cl, sl net.Listener, dial func(addr string) (net.Conn, error))
		eof   bool // the client reads EOF after the last frame
	}{
		{"tls", func(t *testing.T) (net.Listener, net.Listener, func(string) (net.Conn, error)) {
			srvCfg, cliCfg := selfSigned(t)
			return tlsListen(t, srvCfg), tlsListen(t, srvCfg), func(addr string) (net.Conn, error) {
				return tls.Dial("tcp", addr, cliCfg)
			}
		}, true},
		{"snet", func(t *testing.T) (net.Listener, net.Listener, func(string) (net.Conn, error)) {
			return snetListen(t, snetCfg), snetListen(t, snetCfg), func(addr string) (net.Conn, error) {
				return snet.Dial(snetCfg, snetDialer(addr))
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, sl, dialer := tc.setup(t)
			dial := func(addr string) net.Conn {
				c, err := dialer(addr)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			g := New(Config{ServerAuthPassword: testKey, Logger: discard(), ClientSendChanSize: 2 * n, ClientSendQueueBytes: 64 << 20})
			errc := make(chan error, 2)
			go func() { errc <- g.ServeClients(cl) }()
			go func() { errc <- g.ServeServers(sl) }()
			t.Cleanup(g.Stop)

			sconn := dial(sl.Addr().String())
			t.Cleanup(func() { sconn.Close() })
			if err := proto.AuthenticateToGateway(sconn, testKey, 1, waitFor); err != nil {
				t.Fatal(err)
			}
			s := newPeer(t, sconn)
			s.ping()
			c := newPeer(t, dial(cl.Addr().String()))
			id, _ := open(t, c, s, 1)
			var b []byte
			for range n {
				b = proto.EncodeData(b, id, msg)
			}
			s.write(append(b, proto.Command{Type: proto.CmdPing}.Encode(nil)...))
			s.expectCmd(proto.Command{Type: proto.CmdPing}) // every frame read and queued

			ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
			defer cancel()
			shutdown := make(chan error, 1)
			go func() { shutdown <- g.Shutdown(ctx) }()
			for i := range n {
				if f := c.read(); proto.Header(f).ConnID() != id || len(f) != proto.HeaderSize+len(msg) {
					t.Fatalf("frame %d: %d bytes on ConnID %d", i, len(f), proto.Header(f).ConnID())
				}
			}
			if tc.eof {
				c.drainToEOF() // the Close of the virtual connection, then EOF
				s.drainToEOF()
			}
			c.conn.Close()
			s.conn.Close()
			if err := <-shutdown; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			for range 2 {
				if err := <-errc; !errors.Is(err, ErrGatewayClosed) {
					t.Fatalf("Serve returned %v", err)
				}
			}
			if st := g.Stats(); st.UndeliveredAt(ReasonShutdown).Frames != 0 {
				t.Fatalf("undelivered at shutdown: %+v", st.UndeliveredAt(ReasonShutdown))
			}
		})
	}
}
