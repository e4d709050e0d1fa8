package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const timeout = 10 * time.Second

// testEtcd is an etcd server on loopback ports with its own data dir: the
// one on the PATH (scripts/install-etcd.sh) or $FASTWAY_ETCD.
type testEtcd struct {
	t        *testing.T
	bin, dir string
	url      string
	peer     string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      bytes.Buffer
	conf     clientv3.Config
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startEtcd(t *testing.T) *testEtcd {
	t.Helper()
	bin := os.Getenv("FASTWAY_ETCD")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			if os.Getenv("FASTWAY_REQUIRE_ETCD") != "" {
				t.Fatal("no etcd server: run scripts/install-etcd.sh")
			}
			t.Skip("no etcd server on the PATH (scripts/install-etcd.sh installs one)")
		}
	}
	e := &testEtcd{t: t, bin: bin, dir: t.TempDir(),
		url: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), peer: fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	e.conf = clientv3.Config{Endpoints: []string{e.url}}
	e.start()
	t.Cleanup(func() {
		e.kill()
		if t.Failed() {
			t.Logf("etcd log:\n%s", e.log.String())
		}
	})
	return e
}

func (e *testEtcd) start() {
	e.t.Helper()
	e.cmd = exec.Command(e.bin, "--name", "t", "--data-dir", e.dir+"/data",
		"--listen-client-urls", e.url, "--advertise-client-urls", e.url,
		"--listen-peer-urls", e.peer, "--initial-advertise-peer-urls", e.peer, "--initial-cluster", "t="+e.peer)
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
		_, err := List(ctx, e.conf, "/probe")
		return err
	})
}

func (e *testEtcd) kill() {
	select {
	case <-e.exited:
		return
	default:
	}
	e.cmd.Process.Kill()
	<-e.exited
}

// client returns an etcd client of the test's, closed at its end.
func (e *testEtcd) client() *clientv3.Client {
	e.t.Helper()
	cli, err := newClient(e.conf)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cli.Close() })
	return cli
}

// get returns key's record and lease, ok false when the key is absent.
func (e *testEtcd) get(cli *clientv3.Client, key string) (proto.GatewayInfo, clientv3.LeaseID, bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return proto.GatewayInfo{}, 0, false
	}
	var gi proto.GatewayInfo
	if err := json.Unmarshal(resp.Kvs[0].Value, &gi); err != nil {
		e.t.Fatalf("record %q: %v", resp.Kvs[0].Value, err)
	}
	return gi, clientv3.LeaseID(resp.Kvs[0].Lease), true
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestRegistrar follows one registration: written only once the gateway
// is ready, refreshed with the load, registered again when its lease is
// gone (counted), through an etcd outage, and revoked on Deregister.
func TestRegistrar(t *testing.T) {
	e := startEtcd(t)
	cli := e.client()
	var ready atomic.Bool
	var clients, readyCalls atomic.Int64
	r, err := NewRegistrar(RegistrarConfig{
		Etcd: e.conf, Prefix: "/reg", TTL: 2 * time.Second, Logger: quiet(),
		Info: func() proto.GatewayInfo {
			return proto.GatewayInfo{ID: "gw1", ServerAddr: "10.0.0.1:4001", ClientAddr: "10.0.0.1:4000", WSAddr: "wss://gw1/ws", Clients: clients.Load()}
		},
		Ready: func() bool { readyCalls.Add(1); return ready.Load() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Key() != "/reg/gateways/gw1" {
		t.Fatalf("key %q", r.Key())
	}
	// Not ready: asked again and again, nothing written meanwhile.
	poll.Until(t, timeout, "Ready asked 3 times", func() bool { return readyCalls.Load() >= 3 })
	if _, _, ok := e.get(cli, r.Key()); ok || r.Stats().Registrations != 0 {
		t.Fatalf("registered before ready: %+v", r.Stats())
	}
	ready.Store(true)
	poll.Until(t, timeout, "registered", func() bool { return r.Stats().Registered })
	gi, lease, ok := e.get(cli, r.Key())
	if !ok || gi.ID != "gw1" || gi.ServerAddr != "10.0.0.1:4001" || gi.WSAddr != "wss://gw1/ws" || lease == 0 {
		t.Fatalf("record %+v lease %x", gi, lease)
	}

	// Refreshes carry the load.
	clients.Store(42)
	poll.Until(t, timeout, "the load refreshed", func() bool { gi, _, _ := e.get(cli, r.Key()); return gi.Clients == 42 })

	// The lease revoked behind its back (as when it expired during a
	// partition): found lost, registered again under a new lease.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	cancel()
	poll.Until(t, timeout, "registered again", func() bool {
		_, l, ok := e.get(cli, r.Key())
		return ok && l != lease && r.Stats().Registrations == 2 // counted just after the write
	})
	if st := r.Stats(); st.LeasesLost != 1 || st.Registrations != 2 || st.Reregistrations != 1 || !st.Up {
		t.Fatalf("after a lost lease: %+v", st)
	}

	// etcd down: failures counted, not registered, not up; back: recovered.
	e.kill()
	poll.Until(t, timeout, "failures counted", func() bool { st := r.Stats(); return st.Failures > 0 && !st.Up && !st.Registered })
	e.start()
	poll.Until(t, timeout, "registered after the outage", func() bool { st := r.Stats(); return st.Up && st.Registered })
	if _, _, ok := e.get(cli, r.Key()); !ok {
		t.Fatal("no key after the outage")
	}

	// Deregister: the key is gone at once.
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := e.get(cli, r.Key()); ok || r.Stats().Registered {
		t.Fatalf("key still there after Deregister: %+v", r.Stats())
	}
	if err := r.Deregister(ctx); err != nil {
		t.Fatalf("second Deregister: %v", err)
	}
	t.Logf("registrar: %+v", r.Stats())
}

// TestRegistrarConfig: the checks of NewRegistrar.
func TestRegistrarConfig(t *testing.T) {
	info := func(id string) func() proto.GatewayInfo {
		return func() proto.GatewayInfo { return proto.GatewayInfo{ID: id, ServerAddr: "a:1"} }
	}
	for _, cfg := range []RegistrarConfig{
		{},
		{Info: info("")},
		{Info: info("a/b")},
		{Info: info("gw"), TTL: time.Second},
	} {
		if r, err := NewRegistrar(cfg); err == nil {
			r.Close()
			t.Errorf("NewRegistrar(%+v): no error", cfg)
		}
	}
}

// TestDiscovery: the etcd discovery reports the set at once and on every
// change, skips records that do not parse or whose ID is not their key's,
// and List sorts the gateways least loaded first.
func TestDiscovery(t *testing.T) {
	e := startEtcd(t)
	cli := e.client()
	put := func(key, val string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := cli.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}
	del := func(key string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := cli.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(id string, clients int64) string {
		b, _ := json.Marshal(proto.GatewayInfo{ID: id, ServerAddr: id + ":4001", ClientAddr: id + ":4000", Clients: clients})
		return string(b)
	}
	dir := Dir("/disc")
	put(dir+"a", rec("a", 30))
	put(dir+"bad", "{not json")
	put(dir+"liar", rec("someone-else", 0))
	put("/other/gateways/x", rec("x", 0))

	var mu sync.Mutex
	var last []string
	reports := 0
	d := &Discovery{Etcd: e.conf, Prefix: "/disc", Resync: 500 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx, func(set []proto.GatewayInfo, err error) {
			if err != nil {
				return
			}
			var ids []string
			for _, g := range set {
				ids = append(ids, g.ID)
			}
			mu.Lock()
			last, reports = ids, reports+1
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	is := func(want ...string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return slices.Equal(last, want) }
	}
	poll.Until(t, timeout, "a only", is("a"))
	put(dir+"b", rec("b", 10))
	poll.Until(t, timeout, "a and b", is("a", "b"))
	put(dir+"c", rec("c", 20))
	poll.Until(t, timeout, "a, b and c", is("a", "b", "c"))
	del(dir + "a")
	poll.Until(t, timeout, "b and c", is("b", "c"))
	// Resyncs report the same set again.
	mu.Lock()
	n := reports
	mu.Unlock()
	poll.Until(t, timeout, "a resync", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return reports >= n+2 && slices.Equal(last, []string{"b", "c"})
	})

	lctx, lcancel := context.WithTimeout(context.Background(), timeout)
	defer lcancel()
	l, err := List(lctx, e.conf, "/disc")
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].ID != "b" || l[0].Clients != 10 || l[0].ClientAddr != "b:4000" || l[1].ID != "c" {
		t.Fatalf("List: %+v, want b (10 clients) then c (20)", l)
	}
}
