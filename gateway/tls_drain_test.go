package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

// TestShutdownTLSClientMidHandshake: a TLS client caught in its handshake
// by Shutdown (it sent part of a ClientHello, or its Finished is still on
// the way) holds nothing back: Shutdown returns well within its deadline.
// Before, stopReading's deadline failed the handshake, tls.Conn returned
// that error again at every read, and drainInput took it for a poll and
// read on in a busy loop until the idle timeout or the shutdown deadline
// (TestTLSCertFilesReadAtStart waited out fastway's 10 s that way, 3 runs
// of 40 under load).
func TestShutdownTLSClientMidHandshake(t *testing.T) {
	srvCfg, _ := selfSigned(t)
	g, errc := startGWManual(t, Config{ClientIdleTimeout: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- g.ServeClients(tls.NewListener(ln, srvCfg)) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The first bytes of a TLS record holding a ClientHello, and no more.
	if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the client accepted", func() bool { return g.Stats().ClientConns == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a client in its TLS handshake held it)", err)
	}
	for _, ch := range []<-chan error{served, errc, errc} {
		if err := <-ch; !errors.Is(err, ErrGatewayClosed) {
			t.Errorf("Serve returned %v, want ErrGatewayClosed", err)
		}
	}
}
