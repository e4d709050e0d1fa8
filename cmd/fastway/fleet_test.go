package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/fleet"
	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdBinary returns the etcd server to test with: $FASTWAY_ETCD, else etcd
// on the PATH (scripts/install-etcd.sh installs it). Without one the test
// is skipped, unless $FASTWAY_REQUIRE_ETCD is set (scripts/test.sh).
func etcdBinary(t *testing.T) string {
	if p := os.Getenv("FASTWAY_ETCD"); p != "" {
		return p
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("FASTWAY_REQUIRE_ETCD") != "" {
			t.Fatal("no etcd server: run scripts/install-etcd.sh")
		}
		t.Skip("no etcd server on the PATH (scripts/install-etcd.sh installs one)")
	}
	return p
}

// freePort returns a loopback port free a moment ago.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// etcdProc is an etcd server on loopback ports with its own data dir.
type etcdProc struct {
	t          *testing.T
	bin, dir   string
	cport      int
	pport      int
	cmd        *exec.Cmd
	exited     chan struct{}
	log        bytes.Buffer
	clientURL  string
	clientConf clientv3.Config
}

func startEtcd(t *testing.T) *etcdProc {
	e := &etcdProc{t: t, bin: etcdBinary(t), dir: t.TempDir(), cport: freePort(t), pport: freePort(t)}
	e.clientURL = fmt.Sprintf("http://127.0.0.1:%d", e.cport)
	e.clientConf = clientv3.Config{Endpoints: []string{e.clientURL}}
	e.start()
	t.Cleanup(func() {
		e.kill()
		if t.Failed() {
			t.Logf("etcd log:\n%s", e.log.String())
		}
	})
	return e
}

func (e *etcdProc) start() {
	peer := fmt.Sprintf("http://127.0.0.1:%d", e.pport)
	e.cmd = exec.Command(e.bin, "--name", "t", "--data-dir", e.dir+"/data",
		"--listen-client-urls", e.clientURL, "--advertise-client-urls", e.clientURL,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "t="+peer)
	e.cmd.Stdout, e.cmd.Stderr = &e.log, &e.log
	e.cmd.WaitDelay = timeout
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(e.cmd, e.exited)
	poll.UntilNil(e.t, timeout, "etcd to serve", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := fleet.List(ctx, e.clientConf, "/probe")
		return err
	})
}

func (e *etcdProc) kill() {
	select {
	case <-e.exited:
		return
	default:
	}
	e.cmd.Process.Kill()
	select {
	case <-e.exited:
	case <-time.After(timeout):
		e.t.Errorf("etcd did not exit after SIGKILL")
	}
}

// echoServer accepts on f and echoes every message until f closes.
func echoServer(f *proto.Fleet) {
	for {
		c, err := f.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				m, err := c.Receive()
				if err != nil {
					return
				}
				if c.Send(m) != nil {
					return
				}
			}
		}()
	}
}

// player is a client on one gateway with a virtual connection to a server.
type player struct {
	ep   *proto.EndPoint
	conn *proto.Conn
	sent int
}

func newPlayer(t *testing.T, clientAddr string, serverID uint32) *player {
	t.Helper()
	ep, err := proto.DialClientAddr("tcp", clientAddr, proto.EndPointCfg{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	var c *proto.Conn
	// The server may not be attached to this gateway yet.
	poll.UntilNil(t, timeout, "a dial to the server", func() error {
		c, err = ep.Dial(serverID)
		return err
	})
	return &player{ep: ep, conn: c}
}

// roundTrip sends one message and waits for its echo.
func (p *player) roundTrip(t *testing.T) {
	t.Helper()
	p.sent++
	msg := fmt.Appendf(nil, "m%d", p.sent)
	if err := p.conn.Send(msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got, err := p.conn.ReceiveContext(ctx)
	if err != nil || !bytes.Equal(got.([]byte), msg) {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// attached reports whether f has a live link to gateway id.
func attached(f *proto.Fleet, id string) bool {
	for _, g := range f.Gateways() {
		if g.ID == id && g.Attached && !g.Leaving {
			return true
		}
	}
	return false
}

func known(f *proto.Fleet, id string) bool {
	for _, g := range f.Gateways() {
		if g.ID == id {
			return true
		}
	}
	return false
}

func newTestFleet(t *testing.T, id uint32, d proto.Discovery) *proto.Fleet {
	t.Helper()
	f, err := proto.NewFleet(proto.FleetConfig{
		EndPoint:   proto.EndPointCfg{ServerID: id, AuthKey: password},
		Discovery:  d,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	go echoServer(f)
	t.Cleanup(func() { f.Close() })
	return f
}

// TestFleetEtcd runs three gateways registered in a real etcd and two
// servers over the fleet endpoint (docs/scaling.md), each streaming to a
// fleet-wide room with a player on every gateway, while etcd goes down and
// comes back, a gateway is SIGKILLed and another drains. Every player of a
// gateway that stays up receives every message, counted.
func TestFleetEtcd(t *testing.T) {
	e := startEtcd(t)
	gw := func(id string, extra ...string) *proc {
		args := append([]string{"-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-ServerAuthPassword=" + password,
			"-PidFile=", "-Etcd=" + e.clientURL, "-EtcdPrefix=/test", "-EtcdLeaseTTL=2s", "-EtcdDrainWait=1s", "-GatewayID=" + id,
			"-AdvertiseClientWSAddr=ws://127.0.0.1:9/" + id}, extra...)
		p := startProc(t, t.TempDir(), args...)
		p.ready()
		return p
	}
	disc := func() proto.Discovery {
		return &fleet.Discovery{Etcd: e.clientConf, Prefix: "/test", Resync: 2 * time.Second}
	}
	g1, g2 := gw("gw1", "-AdminAddr=127.0.0.1:0"), gw("gw2")
	sa, sb := newStreamServer(t, 1, disc()), newStreamServer(t, 2, disc())
	fa, fb := sa.f, sb.f
	for _, f := range []*proto.Fleet{fa, fb} {
		for _, id := range []string{"gw1", "gw2"} {
			poll.Until(t, timeout, "attached to "+id, func() bool { return attached(f, id) })
		}
	}

	// A gateway added is attached by both servers within 2 s of its
	// registration.
	g3 := gw("gw3")
	regAt := time.Now()
	g3.waitFrom(0, "registered in etcd")
	poll.Until(t, 2*time.Second, "both servers attached to gw3", func() bool { return attached(fa, "gw3") && attached(fb, "gw3") })
	t.Logf("gw3 attached by both servers %v after its registration was logged", time.Since(regAt).Round(time.Millisecond))

	// The lobby's view: every gateway's client addresses, WebSocket
	// included, from the fleet and from etcd directly.
	c1, _ := g1.ready()
	c2, _ := g2.ready()
	c3, _ := g3.ready()
	clientAddr := map[string]string{"gw1": c1, "gw2": c2, "gw3": c3}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	listed, err := fleet.List(ctx, e.clientConf, "/test")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if l := fa.ClientAddrs(); len(l) != 3 || len(listed) != 3 {
		t.Fatalf("ClientAddrs %+v, fleet.List %+v: want 3 gateways", l, listed)
	}
	for _, l := range fa.ClientAddrs() {
		if l.ClientAddr != clientAddr[l.ID] || l.WSAddr != "ws://127.0.0.1:9/"+l.ID {
			t.Errorf("ClientAddrs: %+v, want client %s and ws://127.0.0.1:9/%s", l, clientAddr[l.ID], l.ID)
		}
	}
	for _, g := range listed {
		if g.ClientAddr != clientAddr[g.ID] || g.WSAddr != "ws://127.0.0.1:9/"+g.ID {
			t.Errorf("fleet.List: %+v", g)
		}
	}

	// A player of each server on each gateway, in its server's room.
	var pa, pb []*streamPlayer
	for _, id := range []string{"gw1", "gw2", "gw3"} {
		pa = append(pa, newStreamPlayer(t, id+"/server1", clientAddr[id], 1))
		pb = append(pb, newStreamPlayer(t, id+"/server2", clientAddr[id], 2))
	}
	poll.Until(t, timeout, "both rooms full", func() bool { return sa.room.Len() == 3 && sb.room.Len() == 3 })

	// A fleet-wide Publish reaches players on every gateway.
	for _, s := range []*streamServer{sa, sb} {
		if err := s.room.Publish([]byte("hello"), nil); err != nil {
			t.Fatal(err)
		}
	}
	all := append(slices.Clone(pa), pb...)
	poll.Until(t, timeout, "hello on every gateway", func() bool {
		for _, p := range all {
			if !p.hasOther("hello") {
				return false
			}
		}
		return true
	})
	sa.stream()
	sb.stream()
	progress(t, "stream started", 20, all...)

	// etcd stopped and restarted mid-run: the stream goes on, links stay,
	// registration recovers.
	before := []proto.FleetStats{fa.Stats(), fb.Stats()}
	marks := []int{g1.mark(), g2.mark(), g3.mark()}
	e.kill()
	for i, g := range []*proc{g1, g2, g3} {
		g.waitFrom(marks[i], "etcd registration failed; serving on, retrying")
	}
	progress(t, "etcd down", 100, all...)
	// Long enough for the servers' discovery to fail too (its resync
	// reads every 2 s): they keep the gateways they know.
	poll.Until(t, timeout, "discovery errors counted", func() bool {
		return fa.Stats().DiscoveryErrors > before[0].DiscoveryErrors && fb.Stats().DiscoveryErrors > before[1].DiscoveryErrors
	})
	progress(t, "etcd down, discovery failing", 20, all...)
	e.start()
	for i, g := range []*proc{g1, g2, g3} {
		g.waitFrom(marks[i], "etcd registration recovered")
	}
	progress(t, "etcd back", 20, all...)
	for i, f := range []*proto.Fleet{fa, fb} {
		if after := f.Stats(); after.LinksLost != before[i].LinksLost || after.Drops != before[i].Drops {
			t.Fatalf("etcd outage: links lost %d -> %d, drops %d -> %d", before[i].LinksLost, after.LinksLost, before[i].Drops, after.Drops)
		}
	}
	t.Logf("etcd outage: fleet A counted %d discovery errors, kept every link", fa.Stats().DiscoveryErrors-before[0].DiscoveryErrors)
	checkEtcdCounters(t, g1)

	// A SIGKILLed gateway is dropped when its lease expires and its
	// players' connections close; players on gw1 and gw3 lose nothing.
	killed := time.Now()
	g2.cmd.Process.Kill()
	for _, p := range []*streamPlayer{pa[1], pb[1]} {
		select {
		case <-p.ep.Done():
		case <-time.After(timeout):
			t.Fatalf("%s still open after SIGKILL", p.name)
		}
	}
	poll.Until(t, 3*time.Second+timeout, "gw2 dropped", func() bool { return !known(fa, "gw2") && !known(fb, "gw2") })
	t.Logf("gw2 dropped by both servers %v after SIGKILL (lease TTL 2s); fleet A: %+v", time.Since(killed).Round(time.Millisecond), fa.Stats())
	poll.Until(t, timeout, "gw2's players out of the rooms", func() bool { return sa.room.Len() == 2 && sb.room.Len() == 2 })
	progress(t, "gw2 dropped", 50, pa[0], pb[0], pa[2], pb[2])
	for _, s := range []*streamServer{sa, sb} {
		if st := s.f.Stats(); st.DialFailures == 0 || st.LinksLost == 0 {
			t.Errorf("fleet after SIGKILL: %+v, want dial failures and a link lost counted", st)
		}
	}
	// Paused, so that what was sent is known: every player on gw1 and
	// gw3 got all of it.
	checkAllReceived(t, "server 1, gw1 and gw3 through etcd outage and gw2's SIGKILL", sa.halt(), pa[0], pa[2])
	checkAllReceived(t, "server 2, gw1 and gw3 through etcd outage and gw2's SIGKILL", sb.halt(), pb[0], pb[2])
	sa.stream()
	sb.stream()

	// A drained gateway is left before its connections close, and its
	// players are served meanwhile.
	g3.signal(syscall.SIGTERM)
	poll.Until(t, timeout, "gw3 leaving", func() bool { return !attached(fa, "gw3") && !attached(fb, "gw3") })
	select {
	case <-pa[2].ep.Done():
		t.Fatal("gw3's player was cut before the servers left gw3")
	default:
	}
	progress(t, "gw3 left, draining", 20, pa[2], pb[2])
	if code := g3.wait(); code != 0 {
		t.Fatalf("gw3 exit code %d", code)
	}
	poll.Until(t, timeout, "gw3 dropped", func() bool { return !known(fa, "gw3") && !known(fb, "gw3") })
	progress(t, "gw3 dropped", 20, pa[0], pb[0])

	checkAllReceived(t, "server 1, gw1 through all of it, gw3's drain included", sa.halt(), pa[0])
	checkAllReceived(t, "server 2, gw1 through all of it, gw3's drain included", sb.halt(), pb[0])
	for _, p := range []*streamPlayer{pa[1], pb[1], pa[2], pb[2]} {
		t.Logf("%s (gateway gone) got %d stream messages before its connection closed", p.name, p.got())
	}
}

// checkEtcdCounters checks that the registration's counters on /metrics
// and in the stats command show the outage and the recovery.
func checkEtcdCounters(t *testing.T, p *proc) {
	t.Helper()
	base := p.adminURL()
	var got map[string]float64
	poll.Until(t, timeout, "fastway_etcd_* after the outage", func() bool {
		got = scrape(t, base)
		return got["fastway_etcd_up"] == 1 && got["fastway_etcd_registered"] == 1 && got["fastway_etcd_failures_total"] >= 1 &&
			got["fastway_etcd_registrations_total"] >= 1 && got["fastway_etcd_refreshes_total"] >= 1
	})
	res := p.run("stats", false).kv["result"]
	kv := map[string]string{}
	for _, f := range strings.Fields(res) {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	for _, k := range []string{"etcd.registered", "etcd.up", "etcd.registrations", "etcd.reregistrations", "etcd.refreshes", "etcd.failures", "etcd.leases_lost"} {
		if _, ok := kv[k]; !ok {
			t.Errorf("stats lacks %s: %q", k, res)
		}
	}
	if kv["etcd.registered"] != "1" || kv["etcd.failures"] == "0" {
		t.Errorf("stats after the outage: %q", res)
	}
	t.Logf("gw1 after the etcd outage: registrations %v, reregistrations %v, refreshes %v, failures %v, leases lost %v",
		got["fastway_etcd_registrations_total"], got["fastway_etcd_reregistrations_total"], got["fastway_etcd_refreshes_total"],
		got["fastway_etcd_failures_total"], got["fastway_etcd_leases_lost_total"])
}

// TestFleetStatic runs the fleet endpoint over a static list (no etcd),
// streaming to a room with players on both gateways: a gateway killed
// takes its players out, the other's lose nothing (counted); restarted on
// its address it is attached again and a new player there joins the
// stream.
func TestFleetStatic(t *testing.T) {
	start := func(serverAddr string) *proc {
		p := startProc(t, t.TempDir(), "-ClientAddr=127.0.0.1:0", "-ServerAddr="+serverAddr, "-ServerAuthPassword="+password, "-PidFile=")
		p.ready()
		return p
	}
	g1, g2 := start("127.0.0.1:0"), start("127.0.0.1:0")
	c1, s1 := g1.ready()
	c2, s2 := g2.ready()
	sa := newStreamServer(t, 1, proto.Static(s1, s2))
	fb := newTestFleet(t, 2, proto.Static(s1, s2))
	for _, f := range []*proto.Fleet{sa.f, fb} {
		for _, id := range []string{s1, s2} {
			poll.Until(t, 2*time.Second, "attached to "+id, func() bool { return attached(f, id) })
		}
	}
	echo := newPlayer(t, c1, 2)
	echo.roundTrip(t)
	p1, p2 := newStreamPlayer(t, "g1", c1, 1), newStreamPlayer(t, "g2", c2, 1)
	poll.Until(t, timeout, "room full", func() bool { return sa.room.Len() == 2 })
	if err := sa.room.Publish([]byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, timeout, "hello on both gateways", func() bool { return p1.hasOther("hello") && p2.hasOther("hello") })
	sa.stream()
	progress(t, "stream started", 20, p1, p2)

	g2.cmd.Process.Kill()
	<-p2.ep.Done()
	poll.Until(t, timeout, "link to g2 lost", func() bool { return sa.f.Stats().LinksLost > 0 && sa.room.Len() == 1 })
	progress(t, "g2 killed", 50, p1)
	c2b, _ := start(s2).ready()
	poll.Until(t, timeout, "g2 attached again", func() bool { return sa.f.Stats().Reconnects > 0 && attached(sa.f, s2) })
	p3 := newLateStreamPlayer(t, "g2-again", c2b, 1)
	poll.Until(t, timeout, "the new player in the room", func() bool { return sa.room.Len() == 2 })
	progress(t, "g2 back", 20, p3)
	echo.roundTrip(t)
	checkAllReceived(t, "static, g1 through g2's SIGKILL and restart", sa.halt(), p1)
	t.Logf("static: fleet %+v; g2's first player got %d, the one after the restart %d", sa.f.Stats(), p2.got(), p3.got())
}

// TestReadyzDuringEtcdDrain: with -Etcd, a stop signal first revokes the
// key and waits -EtcdDrainWait before the gateway's own drain; /readyz
// must answer 503 from the signal on, through that wait (a load balancer
// sends no new player to a gateway leaving the fleet), while /healthz
// stays 200 and the ports still serve; then fastway exits 0.
func TestReadyzDuringEtcdDrain(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	const drainWait = 3 * time.Second
	p := startProc(t, t.TempDir(), append(slices.Clone(adminArgs), "-Etcd="+e.clientURL, "-EtcdPrefix=/readyz",
		"-EtcdDrainWait="+drainWait.String(), "-GatewayID=gw1")...)
	clientAddr, serverAddr := p.ready()
	base := p.adminURL()
	p.waitFrom(0, "registered in etcd")
	waitStatus(t, base+"/readyz", http.StatusOK)

	p.signal(syscall.SIGTERM)
	p.waitFrom(0, "waiting for the fleet to see the key go before draining")
	signalled := time.Now()
	if status, body := httpGet(t, base+"/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz during the etcd drain wait: %d %q, want 503", status, body)
	}
	if status, _ := httpGet(t, base+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz during the etcd drain wait: %d, want 200", status)
	}
	// Still serving: the wait is for the fleet to see the key go, and the
	// gateway's own drain has not begun.
	exchange(t, loopback(t, clientAddr), loopback(t, serverAddr), 1)
	if time.Since(signalled) >= drainWait {
		t.Fatalf("the checks took %v, longer than -EtcdDrainWait: they did not run during the wait", time.Since(signalled))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	listed, err := fleet.List(ctx, e.clientConf, "/readyz")
	cancel()
	if err != nil || len(listed) != 0 {
		t.Errorf("fleet.List during the drain wait: %+v, %v: want the key gone", listed, err)
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
