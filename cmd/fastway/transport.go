package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/fastway-go/fastway/snet"
	"github.com/libp2p/go-reuseport"
)

// port is how one side's listener is built, from the socket up: TCP
// (SO_REUSEPORT with -ReusePort; snet's socket buffers with snet), TLS
// (when configured), snet (when enabled), then the gateway's framing.
type port struct {
	side      string // "client" or "server", for the log
	addr      string
	reusePort bool
	tls       *tls.Config  // nil: no TLS
	snet      *snet.Config // nil: no snet
}

// ports returns the client and server ports of validated options.
func (o *options) ports() (client, server port) {
	snetCfg := func(on, crypt bool, buf size, init, wait time.Duration) *snet.Config {
		if !on {
			return nil
		}
		return &snet.Config{EnableCrypt: crypt, HandshakeTimeout: init, RewriterBufferSize: int(buf), ReconnWaitTimeout: wait}
	}
	client = port{side: "client", addr: o.ClientAddr, reusePort: o.ReusePort, tls: o.clientTLS,
		snet: snetCfg(o.ClientSnetEnable, o.ClientSnetEncrypt, o.ClientSnetBuffer, o.ClientSnetInitTimeout, o.ClientSnetWaitTimeout)}
	server = port{side: "server", addr: o.ServerAddr, reusePort: o.ReusePort, tls: o.serverTLS,
		snet: snetCfg(o.ServerSnetEnable, o.ServerSnetEncrypt, o.ServerSnetBuffer, o.ServerSnetInitTimeout, o.ServerSnetWaitTimeout)}
	return client, server
}

// listen opens p's listener stack.
func (p port) listen() (net.Listener, error) {
	ln, err := listen(p.addr, p.reusePort, p.snet)
	if err != nil {
		return nil, err
	}
	if p.tls != nil {
		ln = tls.NewListener(ln, p.tls)
	}
	if p.snet == nil {
		return ln, nil
	}
	sl, err := snet.Listen(*p.snet, func() (net.Listener, error) { return ln, nil })
	if err != nil {
		ln.Close()
		return nil, err
	}
	return sl, nil
}

// snetMode names p's snet setting for the log: off, on or encrypted.
func (p port) snetMode() string {
	switch {
	case p.snet == nil:
		return "off"
	case p.snet.EnableCrypt:
		return "encrypted"
	}
	return "on"
}

// tlsMode names p's TLS setting for the log: off, on, or mutual (client
// certificates required).
func (p port) tlsMode() string {
	switch {
	case p.tls == nil:
		return "off"
	case p.tls.ClientAuth == tls.RequireAndVerifyClientCert:
		return "mutual"
	}
	return "on"
}

// listen opens a TCP listener on addr, with SO_REUSEPORT if reusePort.
// With snet (snetCfg not nil) the listening socket gets snet's socket
// buffers (snet.Config.SocketBuffer, a sixteenth of the rewrite buffer),
// which the connections it accepts inherit, so that what a cut can lose in
// the kernel stays within the rewrite buffer (docs/reliability.md, "snet").
//
// They are set on the listening socket, before any handshake, rather than
// on each connection after Accept: the window a connection advertises is
// then sized for them from its first segment. Shrunk after Accept, a small
// receive buffer stalls a peer's bulk upload on the persist timer for
// seconds to minutes (TestSnetSocketBuffers).
func listen(addr string, reusePort bool, snetCfg *snet.Config) (net.Listener, error) {
	var lc net.ListenConfig
	lc.Control = func(network, address string, c syscall.RawConn) error {
		if reusePort {
			if err := reuseport.Control(network, address, c); err != nil {
				return err
			}
		}
		if snetCfg != nil {
			return snetCfg.Control(network, address, c)
		}
		return nil
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

// loadTLS reads a side's PEM files and returns its port's TLS
// configuration (TLS 1.2 at least), or nil when neither certFile nor
// keyFile is given. A non-empty clientCA (server side) requires every peer
// to present a certificate signed by one of its CAs. Errors are one line
// that names the flag.
func loadTLS(side, certFile, keyFile, clientCA string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		if clientCA != "" {
			return nil, fmt.Errorf("-%sTLSClientCA needs -%sTLSCert and -%sTLSKey: client certificates are checked on a TLS port", side, side, side)
		}
		return nil, nil
	case certFile == "":
		return nil, fmt.Errorf("-%sTLSKey is set without -%sTLSCert: give both", side, side)
	case keyFile == "":
		return nil, fmt.Errorf("-%sTLSCert is set without -%sTLSKey: give both", side, side)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-%sTLSCert=%s -%sTLSKey=%s: %v", side, certFile, side, keyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCA == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(clientCA)
	if err != nil {
		return nil, fmt.Errorf("-%sTLSClientCA: %v", side, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-%sTLSClientCA=%s: no PEM certificate in the file", side, clientCA)
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = pool
	return cfg, nil
}
