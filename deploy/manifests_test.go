package deploy

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	k8sDir    = "kubernetes"
	namespace = "fastway"
)

// Measured figures the gateway's memory is sized from (docs/scaling.md,
// "Capacity planning"): gateway RSS per player connection under echo load
// at saturation, and kernel socket memory per connection (slab, which the
// memory cgroup charges).
const (
	rssPerBusyConnKiB = 12.0
	kernelPerConnKiB  = 4.8
	gatewayBaseMiB    = 16
)

// adminShutdown is fastway's bound on the admin server's shutdown, after
// the drain (cmd/fastway adminShutdownTimeout).
const adminShutdown = 2 * time.Second

// manifests are the objects of every file under kubernetes/, decoded
// strictly into their API types.
type manifests struct {
	files        []string
	services     []*corev1.Service
	secrets      []*corev1.Secret
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	pdbs         []*policyv1.PodDisruptionBudget
	namespaces   []*corev1.Namespace
	kustomize    []string // the kustomization's resources
}

// workload is a Deployment or StatefulSet: its name, replicas and pods.
type workload struct {
	kind, name string
	replicas   int32
	template   *corev1.PodTemplateSpec
	selector   *metav1.LabelSelector
}

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, d := range m.deployments {
		ws = append(ws, workload{"Deployment", d.Name, *d.Spec.Replicas, &d.Spec.Template, d.Spec.Selector})
	}
	for _, s := range m.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, *s.Spec.Replicas, &s.Spec.Template, s.Spec.Selector})
	}
	return ws
}

// splitDocs splits a YAML stream on its "---" lines.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	m := &manifests{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m.files = append(m.files, filepath.Base(f))
		for i, doc := range splitDocs(b) {
			where := fmt.Sprintf("%s, document %d", f, i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				o := &corev1.Namespace{}
				m.namespaces, obj = append(m.namespaces, o), o
			case "v1 Secret":
				o := &corev1.Secret{}
				m.secrets, obj = append(m.secrets, o), o
			case "v1 Service":
				o := &corev1.Service{}
				m.services, obj = append(m.services, o), o
			case "apps/v1 Deployment":
				o := &appsv1.Deployment{}
				m.deployments, obj = append(m.deployments, o), o
			case "apps/v1 StatefulSet":
				o := &appsv1.StatefulSet{}
				m.statefulSets, obj = append(m.statefulSets, o), o
			case "policy/v1 PodDisruptionBudget":
				o := &policyv1.PodDisruptionBudget{}
				m.pdbs, obj = append(m.pdbs, o), o
			case "kustomize.config.k8s.io/v1beta1 Kustomization":
				var k struct {
					APIVersion string   `json:"apiVersion"`
					Kind       string   `json:"kind"`
					Resources  []string `json:"resources"`
				}
				if err := yaml.UnmarshalStrict(doc, &k); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				m.kustomize = k.Resources
				continue
			default:
				t.Fatalf("%s: %s %s: no API type known to decode it into", where, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: %s: %v", where, tm.Kind, err)
			}
		}
	}
	return m
}

// TestManifestsDecode: every document decodes strictly (an unknown or
// misspelt field fails), every object is in the fastway namespace, and the
// kustomization lists every file.
func TestManifestsDecode(t *testing.T) {
	m := loadManifests(t)
	var metas []metav1.ObjectMeta
	for _, o := range m.services {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range m.secrets {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range m.deployments {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range m.statefulSets {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range m.pdbs {
		metas = append(metas, o.ObjectMeta)
	}
	for _, meta := range metas {
		if meta.Namespace != namespace {
			t.Errorf("%s: namespace %q, want %q", meta.Name, meta.Namespace, namespace)
		}
	}
	if len(m.namespaces) != 1 || m.namespaces[0].Name != namespace {
		t.Errorf("want one Namespace %q", namespace)
	}
	want := slices.DeleteFunc(slices.Clone(m.files), func(f string) bool { return f == "kustomization.yaml" })
	got := slices.Sorted(slices.Values(m.kustomize))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %q, want every manifest %q", got, want)
	}
	if len(m.deployments) != 2 || len(m.statefulSets) != 1 || len(m.pdbs) != 1 {
		t.Errorf("%d Deployments, %d StatefulSets, %d PodDisruptionBudgets: want the gateway and backend, etcd, one budget",
			len(m.deployments), len(m.statefulSets), len(m.pdbs))
	}
}

// container returns the one container of workload name.
func (m *manifests) container(t *testing.T, name string) (*corev1.PodSpec, *corev1.Container) {
	t.Helper()
	for _, w := range m.workloads() {
		if w.name == name {
			if len(w.template.Spec.Containers) != 1 {
				t.Fatalf("%s: %d containers, want 1", name, len(w.template.Spec.Containers))
			}
			return &w.template.Spec, &w.template.Spec.Containers[0]
		}
	}
	t.Fatalf("no workload %s", name)
	return nil, nil
}

// args returns a container's command line: its args, after the command
// if there is one (the image's entrypoint otherwise).
func containerArgs(c *corev1.Container) (entrypoint, args []string) {
	if len(c.Command) > 0 {
		return c.Command[:1], append(slices.Clone(c.Command[1:]), c.Args...)
	}
	return nil, c.Args
}

// TestManifestFlags: every flag a container passes is one its program's
// -h lists (fastway, the example backend, etcd).
func TestManifestFlags(t *testing.T) {
	m := loadManifests(t)
	for _, w := range m.workloads() {
		for _, c := range w.template.Spec.Containers {
			t.Run(w.name, func(t *testing.T) {
				entry, args := containerArgs(&c)
				if c.Image == "" {
					t.Fatal("no image")
				}
				// etcd's image has no entrypoint: the command names it.
				if len(entry) == 1 && entry[0] == "/usr/local/bin/etcd" {
					entry = nil
				}
				p := programOf(t, c.Image, entry)
				checkFlags(t, w.name, p, flagArgs(t, w.name, args))
			})
		}
	}
}

// port returns the port of a host:port (or URL host) value.
func port(t *testing.T, where, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("%s: %q is not host:port", where, hostport)
	}
	return n
}

// containerPort resolves a port of a probe or a Service's targetPort (a
// name or a number) among c's ports; 0 when it is not one of them.
func containerPort(c *corev1.Container, p intstr.IntOrString) int {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

// TestManifestPorts: the gateway listens where its container ports say,
// its probes hit the admin port's /readyz and /healthz, every Service
// selects pods that have its target ports, the etcd endpoints are the
// StatefulSet's members on its client port.
func TestManifestPorts(t *testing.T) {
	m := loadManifests(t)
	_, gw := m.container(t, "fastway")
	flags := flagArgs(t, "fastway", gw.Args)
	for _, f := range []struct{ flag, port string }{
		{"ClientAddr", "client"}, {"ServerAddr", "server"}, {"AdminAddr", "admin"},
		{"AdvertiseServerAddr", "server"}, {"AdvertiseClientAddr", "client"},
	} {
		want := containerPort(gw, intstr.FromString(f.port))
		if got := port(t, "-"+f.flag, flags[f.flag]); want == 0 || got != want {
			t.Errorf("-%s=%s: port %d, the container's %q port is %d", f.flag, flags[f.flag], got, f.port, want)
		}
	}
	if h, _, _ := net.SplitHostPort(flags["AdminAddr"]); h != "0.0.0.0" {
		t.Errorf("-AdminAddr=%s: the kubelet's probes come from outside the pod: listen on 0.0.0.0", flags["AdminAddr"])
	}
	admin := containerPort(gw, intstr.FromString("admin"))
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", gw.ReadinessProbe, "/readyz"}, {"liveness", gw.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || containerPort(gw, p.probe.HTTPGet.Port) != admin {
			t.Errorf("%s probe: GET %s on port %s, want %s on the admin port %d", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path, admin)
		}
	}

	// Services: each selects a workload's pods, whose container has the
	// target port; their selectors are the workloads' labels.
	for _, s := range m.services {
		var matched []workload
		for _, w := range m.workloads() {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
				matched = append(matched, w)
			}
		}
		if len(matched) != 1 {
			t.Errorf("Service %s selects %d workloads, want 1", s.Name, len(matched))
			continue
		}
		c := &matched[0].template.Spec.Containers[0]
		for _, sp := range s.Spec.Ports {
			cp := containerPort(c, sp.TargetPort)
			if cp == 0 {
				t.Errorf("Service %s port %s: target %s is not a port of %s", s.Name, sp.Name, sp.TargetPort.String(), matched[0].name)
			}
			if int(sp.Port) != cp {
				t.Errorf("Service %s port %s: %d in front of container port %d (keep them equal: the DNS and etcd records carry the container's)", s.Name, sp.Name, sp.Port, cp)
			}
		}
	}
	svc := func(name string) *corev1.Service {
		for _, s := range m.services {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no Service %s", name)
		return nil
	}
	if lb := svc("fastway-clients"); lb.Spec.Type != corev1.ServiceTypeLoadBalancer || lb.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("fastway-clients: type %s, externalTrafficPolicy %s: want LoadBalancer, Local", lb.Spec.Type, lb.Spec.ExternalTrafficPolicy)
	}
	if s := svc("fastway-servers"); s.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("fastway-servers: clusterIP %q: want None (headless), so DNS lists every gateway", s.Spec.ClusterIP)
	}

	// The PodDisruptionBudget covers the gateways.
	for _, p := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		var gwTemplate *corev1.PodTemplateSpec
		for _, w := range m.workloads() {
			if w.name == "fastway" {
				gwTemplate = w.template
			}
		}
		if !sel.Matches(labels.Set(gwTemplate.Labels)) {
			t.Errorf("PodDisruptionBudget %s does not select the gateways", p.Name)
		}
	}
	for _, w := range m.workloads() {
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if err != nil || !sel.Matches(labels.Set(w.template.Labels)) {
			t.Errorf("%s %s: its selector does not match its pods' labels", w.kind, w.name)
		}
	}

	// etcd: the members the gateway and the backend list are the
	// StatefulSet's, on the port its members listen on for clients.
	_, etcd := m.container(t, "etcd")
	_, etcdArgs := containerArgs(etcd)
	ef := flagArgs(t, "etcd", etcdArgs)
	u, err := url.Parse(ef["listen-client-urls"])
	if err != nil {
		t.Fatal(err)
	}
	clientPort := port(t, "--listen-client-urls", u.Host)
	if cp := containerPort(etcd, intstr.FromString("client")); cp != clientPort {
		t.Errorf("etcd listens for clients on %d, its container's client port is %d", clientPort, cp)
	}
	ss := m.statefulSets[0]
	var members []string
	for i := range *ss.Spec.Replicas {
		members = append(members, fmt.Sprintf("http://%s-%d.%s:%d", ss.Name, i, ss.Spec.ServiceName, clientPort))
	}
	if s := svc(ss.Spec.ServiceName); s.Spec.ClusterIP != corev1.ClusterIPNone || !s.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: want headless with publishNotReadyAddresses, for the members to find each other while they bootstrap", s.Name)
	}
	var peers []string
	for i := range *ss.Spec.Replicas {
		peers = append(peers, fmt.Sprintf("%s-%d=http://%s-%d.%s:2380", ss.Name, i, ss.Name, i, ss.Spec.ServiceName))
	}
	if got := ef["initial-cluster"]; got != strings.Join(peers, ",") {
		t.Errorf("etcd --initial-cluster=%s, want the %d members %s", got, *ss.Spec.Replicas, strings.Join(peers, ","))
	}
	_, be := m.container(t, "fleet-backend")
	for _, e := range []struct{ who, flag, v string }{{"fastway", "-Etcd", flags["Etcd"]}, {"backend", "-etcd", flagArgs(t, "backend", be.Args)["etcd"]}} {
		if e.v != strings.Join(members, ",") {
			t.Errorf("%s %s=%s, want etcd's members %s", e.who, e.flag, e.v, strings.Join(members, ","))
		}
	}
	if bf := flagArgs(t, "backend", be.Args); bf["etcd-prefix"] != flags["EtcdPrefix"] {
		t.Errorf("backend -etcd-prefix=%s, the gateways register under -EtcdPrefix=%s", bf["etcd-prefix"], flags["EtcdPrefix"])
	}
}

// TestManifestSecrets: every secret file a flag names is in a volume of an
// existing Secret, under one of its keys.
func TestManifestSecrets(t *testing.T) {
	m := loadManifests(t)
	secrets := map[string]*corev1.Secret{}
	for _, s := range m.secrets {
		secrets[s.Name] = s
	}
	for _, c := range []struct {
		workload string
		flags    []string
	}{{"fastway", []string{"ServerAuthPasswordFile", "AdminTokenFile"}}, {"fleet-backend", []string{"password-file"}}} {
		spec, ctr := m.container(t, c.workload)
		fl := flagArgs(t, c.workload, ctr.Args)
		for _, f := range c.flags {
			path := fl[f]
			if path == "" {
				t.Errorf("%s: no -%s", c.workload, f)
				continue
			}
			found := false
			for _, vm := range ctr.VolumeMounts {
				rel, err := filepath.Rel(vm.MountPath, path)
				if err != nil || strings.HasPrefix(rel, "..") {
					continue
				}
				for _, v := range spec.Volumes {
					if v.Name != vm.Name || v.Secret == nil {
						continue
					}
					s := secrets[v.Secret.SecretName]
					if s == nil {
						t.Errorf("%s: volume %s names Secret %s, which is not in the manifests", c.workload, v.Name, v.Secret.SecretName)
						continue
					}
					key := rel
					for _, it := range v.Secret.Items {
						if it.Path == rel {
							key = it.Key
						}
					}
					if len(v.Secret.Items) > 0 && !slices.ContainsFunc(v.Secret.Items, func(it corev1.KeyToPath) bool { return it.Path == rel }) {
						continue
					}
					if _, ok := s.StringData[key]; ok {
						found = true
					} else if _, ok := s.Data[key]; ok {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("%s -%s=%s: not a key of a mounted Secret", c.workload, f, path)
			}
		}
	}
}

// drainBudget returns how long the gateway may take from the start of its
// pod's termination to its exit: the preStop sleep, then -EtcdDrainWait,
// -ShutdownTimeout and the admin server's shutdown.
func drainBudget(t *testing.T, preStop time.Duration, flags map[string]string) time.Duration {
	t.Helper()
	var sum time.Duration
	for _, f := range []string{"EtcdDrainWait", "ShutdownTimeout"} {
		d, err := time.ParseDuration(flags[f])
		if err != nil {
			t.Fatalf("-%s=%q: %v", f, flags[f], err)
		}
		sum += d
	}
	return preStop + sum + adminShutdown
}

// preStopSleep returns the gateway's preStop sleep: an exec of sleep N.
func preStopSleep(t *testing.T, c *corev1.Container) time.Duration {
	t.Helper()
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatal("the gateway has no preStop exec")
	}
	cmd := c.Lifecycle.PreStop.Exec.Command
	n, err := strconv.Atoi(cmd[len(cmd)-1])
	if len(cmd) != 2 || cmd[0] != "sleep" || err != nil || n <= 0 {
		t.Fatalf("preStop %q: want [sleep N]", cmd)
	}
	return time.Duration(n) * time.Second
}

// TestManifestDrain: the kubelet's grace period covers the preStop sleep
// and the whole drain, with room to spare.
func TestManifestDrain(t *testing.T) {
	m := loadManifests(t)
	spec, gw := m.container(t, "fastway")
	budget := drainBudget(t, preStopSleep(t, gw), flagArgs(t, "fastway", gw.Args))
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if grace < budget+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v: want at least 5 s above preStop + -EtcdDrainWait + -ShutdownTimeout + %v = %v", grace, adminShutdown, budget)
	}
}

// TestManifestResources: the gateway's memory limit holds -ClientMaxConns
// busy players at the measured cost a player, and GOMEMLIMIT stays under
// it (leaving room for the kernel's socket memory).
func TestManifestResources(t *testing.T) {
	m := loadManifests(t)
	_, gw := m.container(t, "fastway")
	maxConns, err := strconv.Atoi(flagArgs(t, "fastway", gw.Args)["ClientMaxConns"])
	if err != nil || maxConns <= 0 {
		t.Fatalf("-ClientMaxConns: want a cap the memory is sized for (%v)", err)
	}
	need := int64((float64(maxConns)*(rssPerBusyConnKiB+kernelPerConnKiB))*1024) + gatewayBaseMiB<<20
	limit := gw.Resources.Limits[corev1.ResourceMemory]
	request := gw.Resources.Requests[corev1.ResourceMemory]
	if limit.Value() < need || request.Value() < need {
		t.Errorf("memory request %s, limit %s: %d players need %s", request.String(), limit.String(), maxConns, resource.NewQuantity(need, resource.BinarySI).String())
	}
	var gomem string
	for _, e := range gw.Env {
		if e.Name == "GOMEMLIMIT" {
			gomem = e.Value
		}
	}
	q, err := resource.ParseQuantity(strings.TrimSuffix(gomem, "B"))
	if err != nil || q.Value() >= limit.Value() || q.Value() < int64(float64(maxConns)*rssPerBusyConnKiB*1024) {
		t.Errorf("GOMEMLIMIT=%q: want it above %d players' Go memory and below the limit %s", gomem, maxConns, limit.String())
	}
	if _, ok := gw.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Error("no CPU request")
	}
}
