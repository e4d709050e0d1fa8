package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/fastway-go/fastway/cmd"
	"github.com/fastway-go/fastway/fleet"
	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/proto"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// defaultEtcdDrainWait is -EtcdDrainWait's default: a watch delivers the
// key's deletion to servers in milliseconds; a lobby polling etcd may need
// longer.
const defaultEtcdDrainWait = time.Second

// maxEtcdLeaseTTL bounds -EtcdLeaseTTL: a lost gateway stays registered
// that long.
const maxEtcdLeaseTTL = 10 * time.Minute

// maxEtcdDrainWait bounds -EtcdDrainWait.
const maxEtcdDrainWait = 5 * time.Minute

// revokeTimeout bounds the revocation of the key on drain: when etcd does
// not answer, the key expires with its lease.
const revokeTimeout = time.Second

// version is the build registered in etcd; set with
// -ldflags "-X main.version=...", else the module version.
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// validateFleet checks the -Etcd* flags and reads their files.
func (o *options) validateFleet() error {
	if o.Etcd == "" {
		for _, f := range []struct{ name, v string }{
			{"EtcdUser", o.EtcdUser}, {"EtcdPasswordFile", o.EtcdPasswordFile}, {"EtcdTLSCA", o.EtcdTLSCA},
			{"EtcdTLSCert", o.EtcdTLSCert}, {"EtcdTLSKey", o.EtcdTLSKey},
		} {
			if f.v != "" {
				return fmt.Errorf("-%s needs -Etcd: it configures the etcd client", f.name)
			}
		}
	}
	for _, e := range o.etcdEndpoints() {
		if e == "" || strings.ContainsAny(e, " \t") {
			return fmt.Errorf("-Etcd=%q: want endpoints separated by commas, such as http://10.0.0.1:2379,http://10.0.0.2:2379", o.Etcd)
		}
	}
	if o.EtcdPrefix == "" || !strings.HasPrefix(o.EtcdPrefix, "/") {
		return fmt.Errorf("-EtcdPrefix=%q: want a key prefix starting with /", o.EtcdPrefix)
	}
	if o.EtcdLeaseTTL < fleet.MinTTL || o.EtcdLeaseTTL > maxEtcdLeaseTTL || o.EtcdLeaseTTL%time.Second != 0 {
		return fmt.Errorf("-EtcdLeaseTTL=%v: want whole seconds from %v to %v", o.EtcdLeaseTTL, fleet.MinTTL, maxEtcdLeaseTTL)
	}
	if o.EtcdDrainWait < 0 || o.EtcdDrainWait > maxEtcdDrainWait {
		return fmt.Errorf("-EtcdDrainWait=%v: want 0 to %v", o.EtcdDrainWait, maxEtcdDrainWait)
	}
	if strings.Contains(o.GatewayID, "/") || strings.ContainsAny(o.GatewayID, " \t\n") {
		return fmt.Errorf("-GatewayID=%q: no '/' or white space", o.GatewayID)
	}
	for _, f := range []struct{ name, v string }{{"AdvertiseServerAddr", o.AdvertiseServerAddr}, {"AdvertiseClientAddr", o.AdvertiseClientAddr}} {
		if f.v == "" {
			continue
		}
		if _, err := checkAddr(f.name, f.v); err != nil {
			return err
		}
		if h, _, _ := net.SplitHostPort(f.v); isWildcard(h) {
			return fmt.Errorf("-%s=%s: a wildcard host is no address to dial: give this host's name or IP", f.name, f.v)
		}
	}
	if err := checkWSURL("AdvertiseClientWSAddr", o.AdvertiseClientWSAddr); err != nil {
		return err
	}
	if (o.EtcdUser == "") != (o.EtcdPasswordFile == "") {
		return errors.New("-EtcdUser and -EtcdPasswordFile go together: give both or neither")
	}
	if o.EtcdPasswordFile != "" {
		var err error
		if o.etcdPassword, err = readLineSecret("EtcdPasswordFile", o.EtcdPasswordFile); err != nil {
			return err
		}
	}
	if (o.EtcdTLSCert == "") != (o.EtcdTLSKey == "") {
		return errors.New("-EtcdTLSCert and -EtcdTLSKey go together: give both or neither")
	}
	if o.EtcdTLSCA != "" || o.EtcdTLSCert != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.EtcdTLSCert != "" {
			cert, err := tls.LoadX509KeyPair(o.EtcdTLSCert, o.EtcdTLSKey)
			if err != nil {
				return fmt.Errorf("-EtcdTLSCert=%s -EtcdTLSKey=%s: %v", o.EtcdTLSCert, o.EtcdTLSKey, err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		if o.EtcdTLSCA != "" {
			pem, err := os.ReadFile(o.EtcdTLSCA)
			if err != nil {
				return fmt.Errorf("-EtcdTLSCA: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("-EtcdTLSCA=%s: no PEM certificate in the file", o.EtcdTLSCA)
			}
			cfg.RootCAs = pool
		}
		o.etcdTLS = cfg
	}
	return nil
}

// checkWSURL checks a WebSocket URL to hand to players: empty, or ws:// or
// wss:// with a host that is not a wildcard.
func checkWSURL(name, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("-%s=%q: want a WebSocket URL such as wss://gw1.example.com/ws or ws://10.0.0.5:4002/", name, v)
	}
	if isWildcard(u.Hostname()) {
		return fmt.Errorf("-%s=%s: a wildcard host is no address to dial: give this host's name or IP", name, v)
	}
	return nil
}

// etcdEndpoints splits -Etcd; nil when it is empty.
func (o *options) etcdEndpoints() []string {
	if o.Etcd == "" {
		return nil
	}
	eps := strings.Split(o.Etcd, ",")
	for i := range eps {
		eps[i] = strings.TrimSpace(eps[i])
	}
	return eps
}

// advertised returns the address to register for a listener bound to
// bound, unless flag gives one.
func advertised(flag string, bound net.Addr) string {
	if flag != "" {
		return flag
	}
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return bound.String()
	}
	if isWildcard(host) {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

// startRegistration starts registering g in etcd, or returns nil when -Etcd
// is off. A registration failure never stops the gateway.
func startRegistration(o *options, g *gateway.Gateway, clientLn, serverLn, wsLn net.Listener, log *slog.Logger) (*fleet.Registrar, error) {
	if o.Etcd == "" {
		return nil, nil
	}
	serverAddr := advertised(o.AdvertiseServerAddr, serverLn.Addr())
	clientAddr := advertised(o.AdvertiseClientAddr, clientLn.Addr())
	wsAddr := o.AdvertiseClientWSAddr
	if wsAddr == "" && wsLn != nil {
		// The WebSocket port's own URL, as players would dial it.
		scheme := "ws"
		if o.wsTLS != nil {
			scheme = "wss"
		}
		wsAddr = scheme + "://" + advertised("", wsLn.Addr()) + o.ClientWSPath
	}
	id := o.GatewayID
	if id == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(serverLn.Addr().String())
		id = strings.ReplaceAll(host, "/", "_") + "-" + port
	}
	ver := buildVersion()
	tlsCfg := o.etcdTLS
	if tlsCfg == nil && strings.Contains(o.Etcd, "https://") {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12} // the system's roots
	}
	r, err := fleet.NewRegistrar(fleet.RegistrarConfig{
		Etcd: clientv3.Config{
			Endpoints: o.etcdEndpoints(),
			TLS:       tlsCfg,
			Username:  o.EtcdUser,
			Password:  o.etcdPassword,
		},
		Prefix: o.EtcdPrefix,
		TTL:    o.EtcdLeaseTTL,
		Info: func() proto.GatewayInfo {
			st := g.Stats()
			return proto.GatewayInfo{ID: id, ServerAddr: serverAddr, ClientAddr: clientAddr, WSAddr: wsAddr, Version: ver,
				Clients: st.ClientConns, VirtualConns: st.VirtualConns}
		},
		Ready:  g.Ready,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("etcd registration", "key", r.Key(), "endpoints", o.Etcd, "server_addr", serverAddr, "client_addr", clientAddr, "ws_addr", wsAddr, "ttl", o.EtcdLeaseTTL)
	return r, nil
}

// deregister revokes the key first thing on drain, then waits
// -EtcdDrainWait for watchers to see it go. It returns early, with true,
// when a second stop signal comes.
func deregister(r *fleet.Registrar, o *options, stop <-chan os.Signal, log *slog.Logger) bool {
	if r == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	r.Deregister(ctx)
	cancel()
	if o.EtcdDrainWait <= 0 {
		return false
	}
	log.Info("waiting for the fleet to see the key go before draining", "wait", o.EtcdDrainWait)
	t := time.NewTimer(o.EtcdDrainWait)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case sig := <-stop:
		log.Warn("second signal: closing the connections now", "signal", sig.String())
		return true
	}
}

// etcdCommand reports the registration's counters (the "etcd" command).
func etcdCommand(r *fleet.Registrar) cmd.Handler {
	return func(args []string) (string, error) {
		if len(args) != 0 {
			return "", fmt.Errorf("%w: etcd takes no arguments", cmd.ErrBadArgs)
		}
		return formatEtcd(r), nil
	}
}

// formatEtcd prints the registration's counters on one line.
func formatEtcd(r *fleet.Registrar) string {
	if r == nil {
		return "off"
	}
	st := r.Stats()
	return fmt.Sprintf("key=%s registered=%t up=%t registrations=%d reregistrations=%d refreshes=%d failures=%d leases_lost=%d",
		r.Key(), st.Registered, st.Up, st.Registrations, st.Reregistrations, st.Refreshes, st.Failures, st.LeasesLost)
}
