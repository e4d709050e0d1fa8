package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// bound is the most any single step of these tests waits.
const bound = 15 * time.Second

// freePort returns a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// until polls cond every 10 ms until it holds, failing the test after d.
func until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// process is a running binary with its output.
type process struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	out    syncBuffer
	exited chan struct{}
	err    error
}

func start(t *testing.T, name, dir string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{t: t, name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir, p.cmd.Env = dir, env
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *process) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("%s did not exit within %v", p.name, d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

// waitOutput waits for the process to write something matching re.
func (p *process) waitOutput(re string) {
	p.t.Helper()
	r := regexp.MustCompile(re)
	until(p.t, bound, fmt.Sprintf("%s to log %q", p.name, re), func() bool { return r.MatchString(p.out.String()) })
}

// startEtcd runs an etcd server on loopback ports with its own data dir,
// and returns its client URL once it answers /health.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin := etcdBinary(t)
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	start(t, "etcd", t.TempDir(), os.Environ(), bin, "--name=t", "--data-dir="+filepath.Join(t.TempDir(), "data"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer, "--initial-cluster=t="+peer)
	until(t, bound, "etcd to answer /health", func() bool { return httpStatus(client+"/health") == http.StatusOK })
	return client
}

// httpStatus GETs url and returns the status, 0 if the request failed.
func httpStatus(url string) int {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// local is how a deployment's gateway runs on this host: the loopback
// ports that stand for its container ports, etcd, and the files that
// stand for its secret mounts.
type local struct {
	client, server, admin, ws int
	etcd                      string
	files                     map[string]string // path in the container → path here
}

// localize rewrites a command line's addresses, etcd endpoints and secret
// files for l; every other flag stays as the deployment gives it.
func (l *local) localize(t *testing.T, args []string) []string {
	t.Helper()
	out := make([]string, 0, len(args))
	for _, a := range args {
		name, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		dash := a[:len(a)-len(strings.TrimLeft(a, "-"))]
		switch name {
		case "ClientAddr", "AdvertiseClientAddr":
			v = fmt.Sprintf("127.0.0.1:%d", l.client)
		case "ClientWSAddr":
			v = fmt.Sprintf("127.0.0.1:%d", l.ws)
		case "AdvertiseClientWSAddr":
			v = fmt.Sprintf("ws://127.0.0.1:%d/ws", l.ws)
		case "ServerAddr", "AdvertiseServerAddr":
			v = fmt.Sprintf("127.0.0.1:%d", l.server)
		case "AdminAddr":
			v = fmt.Sprintf("127.0.0.1:%d", l.admin)
		case "Etcd", "etcd":
			v = l.etcd
		case "ServerAuthPasswordFile", "AdminTokenFile", "password-file":
			p, ok := l.files[v]
			if !ok {
				t.Fatalf("%s: no local file stands for %s", a, v)
			}
			v = p
		}
		out = append(out, dash+name+"="+v)
	}
	return out
}

// deployment is a gateway (and backend) as one recipe runs them.
type deployment struct {
	gatewayArgs, backendArgs []string
	env                      []string          // the gateway container's environment
	secrets                  map[string]string // secret file in the container → its contents
	readiness, liveness      string            // probe paths on the admin port
	preStop, grace           time.Duration
}

// expandK8s expands $(VAR) in s as the kubelet does.
func expandK8s(s string, env map[string]string) string {
	return regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func k8sDeployment(t *testing.T) deployment {
	m := loadManifests(t)
	spec, gw := m.container(t, "fastway")
	bspec, be := m.container(t, "fleet-backend")
	vars := map[string]string{}
	var env []string
	for _, e := range gw.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			v = map[string]string{"metadata.name": "fastway-7d4b9c-x2k4p", "status.podIP": "127.0.0.1"}[e.ValueFrom.FieldRef.FieldPath]
		}
		vars[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	var args []string
	for _, a := range gw.Args {
		args = append(args, expandK8s(a, vars))
	}
	secrets := map[string]string{}
	for _, s := range []struct {
		spec *corev1.PodSpec
		c    *corev1.Container
	}{{spec, gw}, {bspec, be}} {
		for _, vm := range s.c.VolumeMounts {
			for _, v := range s.spec.Volumes {
				if v.Name != vm.Name || v.Secret == nil {
					continue
				}
				for _, sec := range m.secrets {
					if sec.Name != v.Secret.SecretName {
						continue
					}
					for k, val := range sec.StringData {
						path := k
						if len(v.Secret.Items) > 0 {
							i := slices.IndexFunc(v.Secret.Items, func(it corev1.KeyToPath) bool { return it.Key == k })
							if i < 0 {
								continue
							}
							path = v.Secret.Items[i].Path
						}
						secrets[filepath.Join(vm.MountPath, path)] = val
					}
				}
			}
		}
	}
	return deployment{
		gatewayArgs: args, backendArgs: be.Args, env: env, secrets: secrets,
		readiness: gw.ReadinessProbe.HTTPGet.Path, liveness: gw.LivenessProbe.HTTPGet.Path,
		preStop: preStopSleep(t, gw), grace: time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second,
	}
}

func composeDeployment(t *testing.T) deployment {
	c := loadCompose(t)
	gw, be := c.Services[c.gatewayServices()[0]], c.Services["backend"]
	grace, err := time.ParseDuration(gw.StopGracePeriod)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, s := range gw.Secrets {
		secrets["/run/secrets/"+s] = "compose-trial-password-" + s
	}
	var env []string
	for k, v := range gw.Environment {
		env = append(env, k+"="+v)
	}
	health := gw.Healthcheck.Test[len(gw.Healthcheck.Test)-1]
	return deployment{
		gatewayArgs: gw.Command, backendArgs: be.Command, env: env, secrets: secrets,
		readiness: health[strings.LastIndex(health, "/"):], liveness: "/healthz", grace: grace,
	}
}

// TestGatewayRun runs each recipe's gateway with its args and environment
// on loopback (etcd, the ports and the secret files local), with the
// example backend and players as the recipe runs them: the probes answer
// 200, players get their echoes, then SIGTERM (what the kubelet sends after
// preStop, and docker stop): /readyz answers 503 at once, players are
// drained, and fastway exits 0 within the grace period.
func TestGatewayRun(t *testing.T) {
	for _, r := range []struct {
		name string
		d    func(*testing.T) deployment
	}{{"kubernetes", k8sDeployment}, {"compose", composeDeployment}} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			runDeployment(t, r.d(t))
		})
	}
}

func runDeployment(t *testing.T, d deployment) {
	dir := t.TempDir()
	l := &local{client: freePort(t), server: freePort(t), admin: freePort(t), ws: freePort(t), etcd: startEtcd(t), files: map[string]string{}}
	for path, v := range d.secrets {
		p := filepath.Join(dir, "secrets", strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "_"))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		l.files[path] = p
	}
	base := slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "FASTWAY_") || strings.HasPrefix(e, "GOMEMLIMIT=") })
	gwArgs := l.localize(t, d.gatewayArgs)
	t.Logf("fastway %s", strings.Join(gwArgs, " "))
	gw := start(t, "fastway", dir, append(slices.Clone(base), d.env...), fastwayBin, gwArgs...)
	admin := fmt.Sprintf("http://127.0.0.1:%d", l.admin)
	until(t, bound, "the readiness probe to pass", func() bool { return httpStatus(admin+d.readiness) == http.StatusOK })
	if s := httpStatus(admin + d.liveness); s != http.StatusOK {
		t.Fatalf("liveness probe GET %s: %d", d.liveness, s)
	}
	gw.waitOutput(`registered in etcd`)

	backend := start(t, "backend", dir, base, backendBin, l.localize(t, d.backendArgs)...)
	backend.waitOutput(`fastway fleet: attached to gateway`)
	clientAddr := fmt.Sprintf("127.0.0.1:%d", l.client)
	echo := start(t, "players", dir, base, playersBin, "-gateways="+clientAddr, "-players=4", "-mode=echo", "-dur=300ms", "-timeout=10s")
	if code := echo.wait(bound); code != 0 || !strings.Contains(echo.out.String(), "total mode=echo players=4 failed=0 closed=0") {
		t.Fatalf("players: exit %d:\n%s", code, echo.out.String())
	}

	// Players connected through the stop.
	ready := filepath.Join(dir, "players.ready")
	held := start(t, "players (held)", dir, base, playersBin, "-gateways="+clientAddr, "-players=8", "-mode=echo", "-dur=60s", "-timeout=70s", "-ready="+ready)
	until(t, bound, "the players to connect", func() bool { _, err := os.Stat(ready); return err == nil })

	stopAt := time.Now()
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	until(t, time.Second, "/readyz to answer 503 after SIGTERM", func() bool {
		return httpStatus(admin+d.readiness) == http.StatusServiceUnavailable
	})
	notReady := time.Since(stopAt)
	if s := httpStatus(admin + d.liveness); s != http.StatusOK {
		t.Errorf("liveness probe during the drain: %d, want 200 (a failing liveness probe would have the kubelet kill the drain)", s)
	}
	budget := d.grace - d.preStop
	if code := gw.wait(budget); code != 0 {
		t.Fatalf("fastway exit code %d, want 0", code)
	}
	took := time.Since(stopAt)
	t.Logf("SIGTERM → /readyz 503 in %v, → exit 0 in %v (grace %v, less preStop %v: %v)", notReady.Round(time.Millisecond), took.Round(time.Millisecond), d.grace, d.preStop, budget)
	out := gw.out.String()
	if !strings.Contains(out, "shutdown complete") || strings.Contains(out, "cut short") {
		t.Errorf("fastway's drain did not complete cleanly")
	}
	if code := held.wait(bound); code != 0 || !strings.Contains(held.out.String(), "total mode=echo players=8 failed=0 closed=8") {
		t.Errorf("held players: exit %d, want all 8 closed by the drain:\n%s", code, held.out.String())
	}
	backend.cmd.Process.Signal(syscall.SIGTERM)
	if code := backend.wait(bound); code != 0 {
		t.Errorf("backend exit code %d after SIGTERM", code)
	}
}
