package snet

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/faultproxy"
)

// shrink bounds the kernel socket buffers in these tests, so the bytes in
// flight stay well below the rewrite buffer (see the package doc).
var shrink = faultproxy.Shrink

// smallBufDialer dials addr with small socket buffers.
func smallBufDialer(addr string) func() (net.Conn, error) {
	dial := tcpDialer(addr)
	return func() (net.Conn, error) {
		c, err := dial()
		if err == nil {
			shrink(c)
		}
		return c, err
	}
}

// smallBufListener gives accepted connections small socket buffers.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		shrink(c)
	}
	return c, err
}

func newSmallBufListener(t *testing.T, cfg Config) *Listener {
	t.Helper()
	ln, err := Listen(cfg, func() (net.Listener, error) {
		ln, err := tcpListen()
		return smallBufListener{ln}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*Listener)
}

// TestFaultProxy sends 10 MiB each way through a proxy that keeps cutting
// the TCP connection; every byte must arrive once, in order.
func TestFaultProxy(t *testing.T) {
	for i, crypt := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "crypt"}[crypt]
		t.Run(name, func(t *testing.T) {
			cfg := Config{
				EnableCrypt:        crypt,
				RewriterBufferSize: 1 << 20,
				HandshakeTimeout:   2 * time.Second,
				ReconnWaitTimeout:  15 * time.Second, // one clean-clone run on a loaded box timed out at 5 s, 3,403 bytes before the end
			}
			l := newSmallBufListener(t, cfg)
			p := faultproxy.New(t, l.Addr().String(), uint64(i+1))
			cli, srv := pairVia(t, l, cfg, smallBufDialer(p.Addr()))
			p.Arm()
			start := time.Now()
			// RC4 under -race on a shared machine is slow: allow for it.
			exchangeWithin(t, cli, srv, 10<<20, uint64(100+i), time.Minute)
			cuts := p.Cuts()
			t.Logf("%s: 2×10 MiB with %d cuts in %v", name, cuts, time.Since(start).Round(time.Millisecond))
			if cuts < 20 {
				t.Fatalf("only %d cuts", cuts)
			}
			if cli.ID() != srv.ID() {
				t.Fatal(fmt.Sprint("IDs differ: ", cli.ID(), srv.ID()))
			}
		})
	}
}
