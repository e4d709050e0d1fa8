package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
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
// servers over the fleet endpoint (docs/scaling.md).
func TestFleetEtcd(t *testing.T) {
	e := startEtcd(t)
	gw := func(id string) *proc {
		p := startProc(t, t.TempDir(), "-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0", "-ServerAuthPassword="+password,
			"-PidFile=", "-Etcd="+e.clientURL, "-EtcdPrefix=/test", "-EtcdLeaseTTL=2s", "-EtcdDrainWait=1s", "-GatewayID="+id)
		p.ready()
		return p
	}
	disc := func() proto.Discovery {
		return &fleet.Discovery{Etcd: e.clientConf, Prefix: "/test", Resync: 2 * time.Second}
	}
	g1, g2 := gw("gw1"), gw("gw2")
	fa, fb := newTestFleet(t, 1, disc()), newTestFleet(t, 2, disc())
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
	if l := fa.ClientAddrs(); len(l) != 3 {
		t.Fatalf("ClientAddrs: %+v, want 3 gateways", l)
	}

	c1, _ := g1.ready()
	c2, _ := g2.ready()
	c3, _ := g3.ready()
	p1, p2, p3 := newPlayer(t, c1, 1), newPlayer(t, c2, 1), newPlayer(t, c3, 2)
	for _, p := range []*player{p1, p2, p3} {
		p.roundTrip(t)
	}

	// etcd stopped and restarted mid-run: traffic goes on, links stay,
	// registration recovers.
	before := fa.Stats()
	marks := []int{g1.mark(), g2.mark(), g3.mark()}
	e.kill()
	for i, g := range []*proc{g1, g2, g3} {
		g.waitFrom(marks[i], "etcd registration failed; serving on, retrying")
	}
	for range 20 {
		for _, p := range []*player{p1, p2, p3} {
			p.roundTrip(t)
		}
	}
	e.start()
	for i, g := range []*proc{g1, g2, g3} {
		g.waitFrom(marks[i], "etcd registration recovered")
	}
	for _, p := range []*player{p1, p2, p3} {
		p.roundTrip(t)
	}
	if after := fa.Stats(); after.LinksLost != before.LinksLost || after.Drops != before.Drops {
		t.Fatalf("etcd outage: links lost %d -> %d, drops %d -> %d", before.LinksLost, after.LinksLost, before.Drops, after.Drops)
	}
	t.Logf("etcd outage: fleet A counted %d discovery errors, kept every link", fa.Stats().DiscoveryErrors-before.DiscoveryErrors)

	// A drained gateway is left before its connections close.
	g3.signal(syscall.SIGTERM)
	poll.Until(t, timeout, "gw3 leaving", func() bool { return !attached(fb, "gw3") })
	select {
	case <-p3.ep.Done():
		t.Fatal("gw3's player was cut before the servers left gw3")
	default:
	}
	p3.roundTrip(t) // still served during -EtcdDrainWait
	if code := g3.wait(); code != 0 {
		t.Fatalf("gw3 exit code %d", code)
	}
	poll.Until(t, timeout, "gw3 dropped", func() bool { return !known(fa, "gw3") && !known(fb, "gw3") })

	// A SIGKILLed gateway is dropped when its lease expires; players on
	// the others lose nothing.
	killed := time.Now()
	g2.cmd.Process.Kill()
	select {
	case <-p2.ep.Done():
	case <-time.After(timeout):
		t.Fatal("gw2's player still open after SIGKILL")
	}
	poll.Until(t, 3*time.Second+timeout, "gw2 dropped", func() bool { return !known(fa, "gw2") && !known(fb, "gw2") })
	t.Logf("gw2 dropped by both servers %v after SIGKILL (lease TTL 2s); fleet A: %+v", time.Since(killed).Round(time.Millisecond), fa.Stats())
	for range 20 {
		p1.roundTrip(t)
	}
	if st := fa.Stats(); st.DialFailures == 0 || st.LinksLost == 0 {
		t.Errorf("fleet A after SIGKILL: %+v, want dial failures and a link lost counted", st)
	}
}

// TestFleetStatic runs the fleet endpoint over a static list (no etcd): a
// gateway restarted on its address is attached again.
func TestFleetStatic(t *testing.T) {
	start := func(serverAddr string) *proc {
		p := startProc(t, t.TempDir(), "-ClientAddr=127.0.0.1:0", "-ServerAddr="+serverAddr, "-ServerAuthPassword="+password, "-PidFile=")
		p.ready()
		return p
	}
	g1, g2 := start("127.0.0.1:0"), start("127.0.0.1:0")
	c1, s1 := g1.ready()
	_, s2 := g2.ready()
	fa := newTestFleet(t, 1, proto.Static(s1, s2))
	fb := newTestFleet(t, 2, proto.Static(s1, s2))
	for _, f := range []*proto.Fleet{fa, fb} {
		for _, id := range []string{s1, s2} {
			poll.Until(t, 2*time.Second, "attached to "+id, func() bool { return attached(f, id) })
		}
	}
	p := newPlayer(t, c1, 2)
	p.roundTrip(t)
	g2.cmd.Process.Kill()
	poll.Until(t, timeout, "link to g2 lost", func() bool { return fa.Stats().LinksLost > 0 })
	start(s2)
	poll.Until(t, timeout, "g2 attached again", func() bool { return fa.Stats().Reconnects > 0 && attached(fa, s2) })
	p.roundTrip(t)
	t.Logf("static: fleet A %+v", fa.Stats())
}
