package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/snet"
)

// TestTLSConfig loads the TLS flags in process: TLS 1.2 at least, client
// certificates required exactly when -ServerTLSClientCA is set.
func TestTLSConfig(t *testing.T) {
	pki := newPKI(t)
	o, err := parseFlags([]string{"-ServerAddr=127.0.0.1:0",
		"-ClientTLSCert=" + pki.certFile, "-ClientTLSKey=" + pki.keyFile,
		"-ServerTLSCert=" + pki.certFile, "-ServerTLSKey=" + pki.keyFile, "-ServerTLSClientCA=" + pki.caFile})
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	client, server := o.ports()
	if client.tls == nil || client.tls.MinVersion != tls.VersionTLS12 || client.tls.ClientAuth != tls.NoClientCert || len(client.tls.Certificates) != 1 {
		t.Errorf("client port TLS %+v, want TLS 1.2+, one certificate, no client certificates", client.tls)
	}
	if server.tls == nil || server.tls.MinVersion != tls.VersionTLS12 || server.tls.ClientAuth != tls.RequireAndVerifyClientCert || server.tls.ClientCAs == nil {
		t.Errorf("server port TLS %+v, want TLS 1.2+ with client certificates required", server.tls)
	}
	if client.tlsMode() != "on" || server.tlsMode() != "mutual" || client.snetMode() != "off" {
		t.Errorf("modes %s %s %s, want on mutual off", client.tlsMode(), server.tlsMode(), client.snetMode())
	}

	o, err = parseFlags([]string{"-ServerAddr=127.0.0.1:0"})
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	if client, server := o.ports(); client.tls != nil || server.tls != nil || client.snet != nil || server.snet != nil {
		t.Errorf("defaults: ports %+v %+v, want plain TCP", client, server)
	}
}

// TestSnetConfig checks that the snet flags reach snet.Config.
func TestSnetConfig(t *testing.T) {
	o, err := parseFlags([]string{"-ServerAddr=127.0.0.1:0", "-ClientSnetEnable", "-ClientSnetEncrypt", "-ClientSnetBuffer=64K",
		"-ClientSnetInitTimeout=2s", "-ClientSnetWaitTimeout=3s", "-ServerSnetEnable"})
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	type params struct {
		crypt      bool
		init, wait time.Duration
		buffer     int
	}
	get := func(c *snet.Config) params {
		if c == nil {
			return params{}
		}
		return params{c.EnableCrypt, c.HandshakeTimeout, c.ReconnWaitTimeout, c.RewriterBufferSize}
	}
	client, server := o.ports()
	if got, want := get(client.snet), (params{true, 2 * time.Second, 3 * time.Second, 64 << 10}); got != want || client.snetMode() != "encrypted" {
		t.Errorf("client snet %+v (%s), want %+v", got, client.snetMode(), want)
	}
	if got, want := get(server.snet), (params{false, defaultSnetInitTimeout, defaultSnetWaitTimeout, defaultServerSnetBuffer}); got != want || server.snetMode() != "on" {
		t.Errorf("server snet %+v (%s), want %+v", got, server.snetMode(), want)
	}
}

// TestCapsConfig checks how the cap flags map to gateway.Config: 0 means
// unlimited (or no throttle), which the gateway spells negative.
func TestCapsConfig(t *testing.T) {
	for _, tc := range []struct {
		args                        []string
		maxConns, handshakes, burst int
		interval                    time.Duration
		perSource, serverConns      int
	}{
		{nil, 0, 1024, 5, time.Second, 8, 64},
		{[]string{"-ClientMaxConns=0", "-ServerMaxHandshakes=0", "-ServerAuthFailBurst=0", "-ServerMaxHandshakesPerSource=0"}, 0, -1, -1, time.Second, -1, 64},
		{[]string{"-ClientMaxConns=7", "-ServerMaxHandshakes=8", "-ServerAuthFailBurst=9", "-ServerAuthFailInterval=10s", "-ServerMaxHandshakesPerSource=3", "-ClientMaxServerConns=5"}, 7, 8, 9, 10 * time.Second, 3, 5},
	} {
		o, err := parseFlags(append([]string{"-ServerAuthPassword=x"}, tc.args...))
		if err == nil {
			err = o.validate()
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		cfg, err := o.gatewayConfig()
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if cfg.ClientMaxConns != tc.maxConns || cfg.ServerMaxHandshakes != tc.handshakes || cfg.ServerAuthFailBurst != tc.burst || cfg.ServerAuthFailInterval != tc.interval {
			t.Errorf("%q: ClientMaxConns %d, ServerMaxHandshakes %d, ServerAuthFailBurst %d, ServerAuthFailInterval %v; want %d %d %d %v", tc.args,
				cfg.ClientMaxConns, cfg.ServerMaxHandshakes, cfg.ServerAuthFailBurst, cfg.ServerAuthFailInterval, tc.maxConns, tc.handshakes, tc.burst, tc.interval)
		}
		if cfg.ServerMaxHandshakesPerSource != tc.perSource || cfg.ClientMaxServerConns != tc.serverConns {
			t.Errorf("%q: ServerMaxHandshakesPerSource %d, ClientMaxServerConns %d; want %d %d", tc.args,
				cfg.ServerMaxHandshakesPerSource, cfg.ClientMaxServerConns, tc.perSource, tc.serverConns)
		}
		// The derived ClientMaxConns keeps 1024 descriptors more per snet
		// port (its handshakes) out of the clients' reach.
		if want := gateway.DefaultFDReserve(cfg); cfg.FDReserve != want {
			t.Errorf("%q: FDReserve %d, want %d", tc.args, cfg.FDReserve, want)
		}
	}
}

// TestSnetFDReserve: each snet port holds up to snet.DefaultMaxHandshakes
// connections in their handshake before the gateway sees them, so the
// derived -ClientMaxConns keeps that many descriptors more for them.
func TestSnetFDReserve(t *testing.T) {
	o, err := parseFlags([]string{"-ServerAuthPassword=x", "-ClientSnetEnable", "-ServerSnetEnable"})
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.gatewayConfig()
	if err != nil {
		t.Fatal(err)
	}
	if want := gateway.DefaultFDReserve(cfg) + 2*snet.DefaultMaxHandshakes; cfg.FDReserve != want {
		t.Errorf("FDReserve %d with snet on both ports, want %d", cfg.FDReserve, want)
	}
}

// TestSnetSocketBuffers checks that an snet port's connections get socket
// buffers of a sixteenth of the rewrite buffer (doubled by Linux, with a
// floor of 4608 bytes for a send buffer), and that a
// bulk upload into them does not stall: on loopback the MSS (64 KiB) is far
// above such a buffer, which stalls for seconds when the buffer is shrunk
// after Accept instead of on the listening socket.
func TestSnetSocketBuffers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the doubling checked here is Linux's")
	}
	const rewriteBuffer = defaultClientSnetBuffer
	cfg := snet.Config{RewriterBufferSize: rewriteBuffer}
	if cfg.SocketBuffer() != rewriteBuffer/16 {
		t.Fatalf("SocketBuffer %d, want a sixteenth of %d", cfg.SocketBuffer(), rewriteBuffer)
	}
	ln, err := listen("127.0.0.1:0", false, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, err := s.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []struct {
		name string
		opt  int
	}{{"SO_RCVBUF", syscall.SO_RCVBUF}, {"SO_SNDBUF", syscall.SO_SNDBUF}} {
		var got int
		var serr error
		raw.Control(func(fd uintptr) { got, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, opt.opt) })
		if serr != nil {
			t.Fatal(serr)
		}
		if want := 2 * cfg.SocketBuffer(); got != want && !(opt.opt == syscall.SO_SNDBUF && got == 4608) {
			t.Errorf("accepted socket: %s = %d, want %d", opt.name, got, want)
		}
	}

	const upload = 1 << 20
	start := time.Now()
	go func() {
		c.SetWriteDeadline(time.Now().Add(timeout))
		c.Write(make([]byte, upload))
	}()
	s.SetReadDeadline(time.Now().Add(timeout))
	n, err := io.ReadFull(s, make([]byte, upload))
	if err != nil {
		t.Fatalf("read %d of %d bytes: %v", n, upload, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("1 MiB upload into %d-byte socket buffers took %v: stalled", cfg.SocketBuffer(), d)
	}
}

// dialTLS connects to addr over TLS, trusting the test CA and presenting
// certs.
func (pki *testPKI) dialTLS(addr string, certs ...tls.Certificate) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, &tls.Config{RootCAs: pki.pool, Certificates: certs})
}

// relay has cli dial server id and srv accept, and sends msg both ways on
// the new virtual connection, whose two ends it returns.
func relay(t *testing.T, cli, srv *proto.EndPoint, id uint32, msg string) (c, s *proto.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := cli.DialContext(ctx, id)
	if err != nil {
		t.Fatalf("Dial(%d): %v", id, err)
	}
	if s, err = srv.AcceptContext(ctx); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	roundTrip(t, c, s, msg)
	return c, s
}

// roundTrip sends msg from c to s, then its reverse from s to c.
func roundTrip(t *testing.T, c, s *proto.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	back := []byte(msg)
	slices.Reverse(back)
	for _, step := range []struct {
		from, to *proto.Conn
		msg      string
	}{{c, s, msg}, {s, c, string(back)}} {
		if err := step.from.SendContext(ctx, []byte(step.msg)); err != nil {
			t.Fatalf("send %q: %v", step.msg, err)
		}
		got, err := step.to.ReceiveContext(ctx)
		if err != nil {
			t.Fatalf("receive %q: %v", step.msg, err)
		}
		if string(got.([]byte)) != step.msg {
			t.Fatalf("received %q, want %q", got, step.msg)
		}
	}
}

// closeOnCleanup closes ep when the test ends.
func closeOnCleanup(t *testing.T, ep *proto.EndPoint) {
	t.Cleanup(func() { ep.Close() })
}

// stop sends SIGTERM and checks that p exits 0.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		p.t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// TestTLS runs fastway with TLS on both ports and client certificates
// required on the server port: a server with a certificate from the CA and
// a TLS client exchange messages; a server without a certificate and a
// plain-TCP client get nowhere.
func TestTLS(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	p := startProc(t, t.TempDir(), append(slices.Clone(loopbackArgs),
		"-ClientTLSCert="+pki.certFile, "-ClientTLSKey="+pki.keyFile,
		"-ServerTLSCert="+pki.certFile, "-ServerTLSKey="+pki.keyFile, "-ServerTLSClientCA="+pki.caFile)...)
	clientAddr, serverAddr := p.ready()
	p.waitFrom(0, "listening", "side", "client", "tls", "on", "snet", "off")
	p.waitFrom(0, "listening", "side", "server", "tls", "mutual", "snet", "off")
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)

	sconn, err := pki.dialTLS(serverAddr, pki.client)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proto.DialServer(sconn, proto.EndPointCfg{ServerID: 1, AuthKey: password})
	if err != nil {
		sconn.Close()
		t.Fatalf("server handshake over mutual TLS: %v", err)
	}
	closeOnCleanup(t, srv)
	p.waitFrom(0, "server registered", "id", "1")

	cconn, err := pki.dialTLS(clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	if v := cconn.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x, want 1.2 or later", v)
	}
	cli, err := proto.NewClient(cconn, proto.EndPointCfg{})
	if err != nil {
		cconn.Close()
		t.Fatal(err)
	}
	closeOnCleanup(t, cli)
	c, s := relay(t, cli, srv, 1, "hello over TLS")
	roundTrip(t, c, s, strings.Repeat("x", 100<<10)) // several TLS records

	// A server without a client certificate: the TLS handshake fails (at
	// once with TLS 1.2, at the first read with TLS 1.3).
	if raw, err := pki.dialTLS(serverAddr); err == nil {
		ep, err := proto.DialServer(raw, proto.EndPointCfg{ServerID: 2, AuthKey: password})
		if err == nil {
			ep.Close()
			t.Error("a server without a client certificate registered")
		}
		raw.Close()
	}
	if l := p.waitFrom(0, "server auth failed"); !strings.Contains(l.kv["error"], "certificate") {
		t.Errorf("the gateway logged %q, want a TLS certificate error", l.raw)
	}

	// A plain-TCP client on the TLS port: no answer, the connection closes.
	plain := dialPeer(t, clientAddr)
	plain.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
	plain.conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(plain.conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("plain TCP on the TLS client port: still open after %v", timeout)
	}
	if len(b) >= proto.PingSize {
		t.Errorf("plain TCP on the TLS client port got % x", b)
	}

	// The first virtual connection still works.
	roundTrip(t, c, s, "still there")
	p.stop()
}

// TestSnet runs fastway with snet on the client port (encrypted, or over
// TLS) and checks that a virtual connection survives the client's TCP
// connection being dropped: the snet client reconnects and resumes.
func TestSnet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		args       []string
		clientSnet snet.Config
		serverSnet bool
		tls        bool
		log        []string // the client port's listening line
	}{
		{"encrypted", []string{"-ClientSnetEnable", "-ClientSnetEncrypt", "-ServerSnetEnable"}, snet.Config{EnableCrypt: true}, true, false,
			[]string{"tls", "off", "snet", "encrypted"}},
		{"over TLS", []string{"-ClientSnetEnable", "-ClientSnetBuffer=64K"}, snet.Config{RewriterBufferSize: 64 << 10}, false, true,
			[]string{"tls", "on", "snet", "on"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append(slices.Clone(loopbackArgs), tc.args...)
			var pki *testPKI
			if tc.tls {
				pki = newPKI(t)
				args = append(args, "-ClientTLSCert="+pki.certFile, "-ClientTLSKey="+pki.keyFile)
			}
			p := startProc(t, t.TempDir(), args...)
			clientAddr, serverAddr := p.ready()
			p.waitFrom(0, "listening", append([]string{"side", "client"}, tc.log...)...)
			clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)

			var sconn net.Conn
			var err error
			if tc.serverSnet {
				sconn, err = snet.Dial(snet.Config{}, func() (net.Conn, error) { return net.DialTimeout("tcp", serverAddr, timeout) })
			} else {
				sconn, err = net.DialTimeout("tcp", serverAddr, timeout)
			}
			if err != nil {
				t.Fatal(err)
			}
			srv, err := proto.DialServer(sconn, proto.EndPointCfg{ServerID: 1, AuthKey: password})
			if err != nil {
				sconn.Close()
				t.Fatalf("server handshake: %v", err)
			}
			closeOnCleanup(t, srv)
			p.waitFrom(0, "server registered", "id", "1")

			var dials atomic.Int32
			cconn, err := snet.Dial(tc.clientSnet, func() (net.Conn, error) {
				dials.Add(1)
				if tc.tls {
					return pki.dialTLS(clientAddr)
				}
				return net.DialTimeout("tcp", clientAddr, timeout)
			})
			if err != nil {
				t.Fatal(err)
			}
			cli, err := proto.NewClient(cconn, proto.EndPointCfg{})
			if err != nil {
				cconn.Close()
				t.Fatal(err)
			}
			closeOnCleanup(t, cli)
			c, s := relay(t, cli, srv, 1, "hello over snet")

			before := cconn.LocalAddr().String()
			cconn.(*snet.Conn).TryReconn()
			roundTrip(t, c, s, "after the reconnect")
			roundTrip(t, c, s, strings.Repeat("y", 200<<10)) // a bulk upload into the port's small socket buffers
			if n := dials.Load(); n < 2 {
				t.Errorf("the client dialed %d times, want a reconnect", n)
			}
			if after := cconn.LocalAddr().String(); after == before {
				t.Errorf("the snet client still uses its first TCP connection (%s)", after)
			}
			// One client connection all along: the same session resumed.
			res := p.run("stats", false).kv["result"]
			for _, want := range []string{"accepted.client=1", "conns.client=1", "conns.virtual=1", "dials.accepted=1"} {
				if !strings.Contains(res, want) {
					t.Errorf("stats %q lacks %q", res, want)
				}
			}
			p.stop()
		})
	}
}

// TestTLSCertFilesReadAtStart checks that the files are read when the
// flags are validated: removing them after the start changes nothing.
func TestTLSCertFilesReadAtStart(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	p := startProc(t, t.TempDir(), append(slices.Clone(loopbackArgs), "-ClientTLSCert="+pki.certFile, "-ClientTLSKey="+pki.keyFile)...)
	clientAddr, _ := p.ready()
	for _, f := range []string{pki.certFile, pki.keyFile} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pki.dialTLS(loopback(t, clientAddr))
	if err != nil {
		t.Fatalf("TLS handshake after the key files were removed: %v", err)
	}
	conn.Close()
	p.stop()
}
