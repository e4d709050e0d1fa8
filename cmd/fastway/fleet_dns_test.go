package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a tiny authoritative DNS server on loopback UDP for the
// fleet's DNS discovery: A and SRV records the test sets, NXDOMAIN for
// other names, SERVFAIL for everything while failing is set.
type dnsServer struct {
	pc      net.PacketConn
	queries atomic.Int64
	failing atomic.Bool

	mu  sync.Mutex
	a   map[string][]netip.Addr // by FQDN, lower case
	srv map[string][]dnsmessage.SRVResource
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{pc: pc, a: map[string][]netip.Addr{}, srv: map[string][]dnsmessage.SRVResource{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serve()
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return d
}

// setA sets name's A records.
func (d *dnsServer) setA(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var l []netip.Addr
	for _, ip := range ips {
		l = append(l, netip.MustParseAddr(ip))
	}
	d.a[strings.ToLower(name)] = l
}

// setSRV sets name's SRV records: target:port each.
func (d *dnsServer) setSRV(name string, targets ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var l []dnsmessage.SRVResource
	for _, tp := range targets {
		host, port, _ := net.SplitHostPort(tp)
		var p uint16
		fmt.Sscan(port, &p)
		l = append(l, dnsmessage.SRVResource{Priority: 10, Weight: 10, Port: p, Target: dnsmessage.MustNewName(host)})
	}
	d.srv[strings.ToLower(name)] = l
}

// resolver returns a Go resolver that asks d only.
func (d *dnsServer) resolver() *net.Resolver {
	addr := d.pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", addr)
	}}
}

func (d *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := d.answer(buf[:n]); ok {
			d.pc.WriteTo(resp, from)
		}
	}
}

// answer builds the reply to one query; a query that does not parse gets
// none.
func (d *dnsServer) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	d.queries.Add(1)
	name := strings.ToLower(q.Name.String())
	d.mu.Lock()
	as, hasA := d.a[name]
	srvs, hasSRV := d.srv[name]
	d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	switch {
	case d.failing.Load():
		rh.RCode = dnsmessage.RCodeServerFailure
	case !hasA && !hasSRV:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
	if rh.RCode == dnsmessage.RCodeSuccess {
		switch q.Type {
		case dnsmessage.TypeA:
			for _, ip := range as {
				b.AResource(hdr, dnsmessage.AResource{A: ip.As4()})
			}
		case dnsmessage.TypeSRV:
			for _, s := range srvs {
				b.SRVResource(hdr, s)
			}
		}
	}
	resp, err := b.Finish()
	return resp, err == nil
}

// TestFleetDNS runs the fleet endpoint over DNS discovery against a DNS
// server of the test's: A records (three gateways on 127.0.0.1-3, one
// server port), re-resolved every 100 ms. A gateway added to the name is
// attached within 2 s; a DNS failure keeps the set; a gateway SIGKILLed
// loses its players, the others lose no message of a fleet-wide stream
// (counted), and once its record goes it is dropped.
func TestFleetDNS(t *testing.T) {
	dns := startDNS(t)
	const name = "gw.fleet.test"
	port := freePort(t)
	gws := map[string]*proc{}
	clientAddr := map[string]string{}
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		p := startProc(t, t.TempDir(), "-ClientAddr=127.0.0.1:0", fmt.Sprintf("-ServerAddr=%s:%d", ip, port), "-ServerAuthPassword="+password, "-PidFile=")
		clientAddr[ip], _ = p.ready()
		gws[ip] = p
	}
	id := func(ip string) string { return fmt.Sprintf("%s:%d", ip, port) }
	dns.setA(name+".", "127.0.0.1", "127.0.0.2")
	s := newStreamServer(t, 1, proto.DNS{Name: name, Port: port, Network: "ip4", Interval: 100 * time.Millisecond, Resolver: dns.resolver()})
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		poll.Until(t, timeout, "attached to "+ip, func() bool { return attached(s.f, id(ip)) })
	}
	if known(s.f, id("127.0.0.3")) {
		t.Fatal("127.0.0.3 known before its record")
	}
	p1 := newStreamPlayer(t, "127.0.0.1", clientAddr["127.0.0.1"], 1)
	p2 := newStreamPlayer(t, "127.0.0.2", clientAddr["127.0.0.2"], 1)
	poll.Until(t, timeout, "room of 2", func() bool { return s.room.Len() == 2 })
	s.stream()
	progress(t, "stream started", 20, p1, p2)

	// A gateway added to the name is attached within 2 s.
	dns.setA(name+".", "127.0.0.1", "127.0.0.2", "127.0.0.3")
	added := time.Now()
	poll.Until(t, 2*time.Second, "127.0.0.3 attached", func() bool { return attached(s.f, id("127.0.0.3")) })
	t.Logf("A record added: attached %v later (Interval 100ms)", time.Since(added).Round(time.Millisecond))
	p3 := newLateStreamPlayer(t, "127.0.0.3", clientAddr["127.0.0.3"], 1)
	poll.Until(t, timeout, "room of 3", func() bool { return s.room.Len() == 3 })
	progress(t, "three gateways", 20, p1, p2, p3)

	// The DNS server fails: the fleet keeps its gateways.
	before := s.f.Stats()
	dns.failing.Store(true)
	poll.Until(t, timeout, "DNS errors counted", func() bool { return s.f.Stats().DiscoveryErrors >= before.DiscoveryErrors+3 })
	progress(t, "DNS failing", 20, p1, p2, p3)
	dns.failing.Store(false)
	if st := s.f.Stats(); st.Drops != before.Drops || st.LinksLost != before.LinksLost {
		t.Fatalf("DNS failure changed the links: %+v -> %+v", before, st)
	}

	// SIGKILL: the gateway's players close; reported still, it is dialled
	// again in vain; its record removed, it is dropped.
	gws["127.0.0.2"].cmd.Process.Kill()
	select {
	case <-p2.ep.Done():
	case <-time.After(timeout):
		t.Fatal("127.0.0.2's player still open after SIGKILL")
	}
	poll.Until(t, timeout, "127.0.0.2 unreachable", func() bool { return s.f.Stats().DialFailures > before.DialFailures && s.room.Len() == 2 })
	dns.setA(name+".", "127.0.0.1", "127.0.0.3")
	poll.Until(t, timeout, "127.0.0.2 dropped", func() bool { return !known(s.f, id("127.0.0.2")) && s.f.Stats().Drops == before.Drops+1 })
	progress(t, "127.0.0.2 dropped", 50, p1, p3)
	checkAllReceived(t, "DNS A, through a DNS outage and a gateway's SIGKILL", s.halt(), p1, p3)
	t.Logf("DNS A: fleet %+v after %d queries; the killed gateway's player got %d", s.f.Stats(), dns.queries.Load(), p2.got())
}

// TestFleetDNSSRV runs DNS discovery over SRV records: two gateways on
// ports of their own, named by targets that resolve through the same DNS
// server. A target added is attached; a target removed is left once its
// player's virtual connection closes (not before); a fleet-wide Publish
// reaches both meanwhile.
func TestFleetDNSSRV(t *testing.T) {
	dns := startDNS(t)
	const srvName = "_fastway-server._tcp.fleet.test."
	var servers, clients []string
	for range 2 {
		p := startProc(t, t.TempDir(), "-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-ServerAuthPassword="+password, "-PidFile=")
		c, sa := p.ready()
		clients, servers = append(clients, c), append(servers, sa)
	}
	dns.setA("gwa.fleet.test.", "127.0.0.1")
	dns.setA("gwb.fleet.test.", "127.0.0.1")
	portOf := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	// A gateway's ID is its SRV target (a fully qualified name) and port.
	idA, idB := "gwa.fleet.test.:"+portOf(servers[0]), "gwb.fleet.test.:"+portOf(servers[1])
	dns.setSRV(srvName, idA)
	r := dns.resolver()
	dialer := &net.Dialer{Resolver: r}
	f, err := proto.NewFleet(proto.FleetConfig{
		EndPoint:  proto.EndPointCfg{ServerID: 1, AuthKey: password},
		Discovery: proto.DNS{Name: "fleet.test", Service: "fastway-server", Interval: 100 * time.Millisecond, Resolver: r},
		// The targets are names only this DNS server knows.
		Dial:       func(ctx context.Context, addr string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", addr) },
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	poll.Until(t, timeout, "attached to "+idA, func() bool { return attached(f, idA) })
	dns.setSRV(srvName, idA, idB)
	poll.Until(t, 2*time.Second, "attached to "+idB, func() bool { return attached(f, idB) })

	room := f.NewGroup()
	pa, pb := newPlayer(t, clients[0], 1), newPlayer(t, clients[1], 1)
	var ca *proto.FleetConn
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		c, err := f.AcceptContext(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if c.Gateway() == idA {
			ca = c
		}
		if err := room.Join(c); err != nil {
			t.Fatal(err)
		}
	}
	if ca == nil {
		t.Fatalf("no virtual connection through %s", idA)
	}
	expect := func(p *player, want string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		got, err := p.conn.ReceiveContext(ctx)
		if err != nil || string(got.([]byte)) != want {
			t.Fatalf("player got %q, %v; want %q", got, err, want)
		}
	}
	if err := room.Publish([]byte("to both"), nil); err != nil {
		t.Fatal(err)
	}
	expect(pa, "to both")
	expect(pb, "to both")

	// gwa's record goes: left, but its player is served until it leaves.
	dns.setSRV(srvName, idB)
	poll.Until(t, timeout, idA+" leaving", func() bool { return known(f, idA) && !attached(f, idA) })
	if err := room.Publish([]byte("still"), nil); err != nil {
		t.Fatal(err)
	}
	expect(pa, "still")
	expect(pb, "still")
	pa.conn.Close()
	poll.Until(t, timeout, idA+" dropped", func() bool { return !known(f, idA) && room.Len() == 1 })
	select {
	case <-pa.ep.Done():
		t.Fatal("the player's connection to gwa closed: the fleet must only close its own link")
	default:
	}
	if err := room.Publish([]byte("b only"), nil); err != nil {
		t.Fatal(err)
	}
	expect(pb, "b only")
	t.Logf("DNS SRV: fleet %+v", f.Stats())
}
