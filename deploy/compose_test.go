package deploy

import (
	"bytes"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const composeFile = "compose/docker-compose.yml"

// composeSpec is the part of the Compose specification the recipe uses;
// decoding is strict, so a field outside it (or misspelt) fails.
type composeSpec struct {
	Name     string                    `yaml:"name"`
	XGateway yaml.Node                 `yaml:"x-gateway"` // the gateways' shared part, merged into each
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]struct{} `yaml:"volumes"`
}

type composeService struct {
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Image           string            `yaml:"image"`
	Entrypoint      []string          `yaml:"entrypoint"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	DependsOn       []string          `yaml:"depends_on"`
	Secrets         []string          `yaml:"secrets"`
	Volumes         []string          `yaml:"volumes"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Restart         string            `yaml:"restart"`
	Profiles        []string          `yaml:"profiles"`
	Healthcheck     *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) *composeSpec {
	t.Helper()
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c composeSpec
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return &c
}

// composeCommand returns a service's program and flags; etcd's command
// names its binary first.
func composeCommand(t *testing.T, name string, s composeService) (program, map[string]string) {
	t.Helper()
	cmd := s.Command
	if len(cmd) > 0 && cmd[0] == "/usr/local/bin/etcd" {
		cmd = cmd[1:]
	}
	return programOf(t, s.Image, s.Entrypoint), flagArgs(t, name, cmd)
}

// gatewayServices returns the compose services that run fastway.
func (c *composeSpec) gatewayServices() []string {
	var gws []string
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "fastway:") {
			gws = append(gws, name)
		}
	}
	slices.Sort(gws)
	return gws
}

// TestComposeFlags: every service's flags are its program's, every image
// built from this repository has its Dockerfile, every secret a service
// uses is declared.
func TestComposeFlags(t *testing.T) {
	c := loadCompose(t)
	if len(c.gatewayServices()) < 2 {
		t.Fatalf("gateways %q: want 2 or 3", c.gatewayServices())
	}
	for name, s := range c.Services {
		p, flags := composeCommand(t, name, s)
		checkFlags(t, name, p, flags)
		if s.Build != nil {
			df := filepath.Join(filepath.Dir(composeFile), s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: build %s: %v", name, df, err)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("%s: secret %s is not declared", name, sec)
			}
		}
		for _, f := range []string{"ServerAuthPasswordFile", "password-file"} {
			if v, ok := flags[f]; ok && !slices.Contains(s.Secrets, strings.TrimPrefix(v, "/run/secrets/")) {
				t.Errorf("%s: -%s=%s is not one of its secrets (/run/secrets/NAME)", name, f, v)
			}
		}
	}
}

// TestComposePorts: each gateway publishes its client and admin ports, its
// health check asks /readyz on the admin port, its etcd is the etcd
// service's client port, its advertised server address is its own
// service name, and docker's stop grace covers the drain.
func TestComposePorts(t *testing.T) {
	c := loadCompose(t)
	_, ef := composeCommand(t, "etcd", c.Services["etcd"])
	u, err := url.Parse(ef["listen-client-urls"])
	if err != nil {
		t.Fatal(err)
	}
	etcdURL := "http://etcd:" + strconv.Itoa(port(t, "etcd --listen-client-urls", u.Host))
	ids := map[string]bool{}
	for _, name := range c.gatewayServices() {
		s := c.Services[name]
		_, f := composeCommand(t, name, s)
		clientPort := port(t, name+" -ClientAddr", f["ClientAddr"])
		adminPort := port(t, name+" -AdminAddr", f["AdminAddr"])
		serverPort := port(t, name+" -ServerAddr", f["ServerAddr"])
		var published []int
		for _, p := range s.Ports {
			i := strings.LastIndexByte(p, ':')
			n, err := strconv.Atoi(p[i+1:])
			if i < 0 || err != nil {
				t.Errorf("%s: port %q: want [host:]hostport:containerport", name, p)
			}
			published = append(published, n)
		}
		if !slices.Contains(published, clientPort) || !slices.Contains(published, adminPort) {
			t.Errorf("%s publishes container ports %v: want its client port %d and admin port %d", name, published, clientPort, adminPort)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 || s.Healthcheck.Test[0] != "CMD" {
			t.Errorf("%s: want a CMD health check", name)
		} else {
			hu, err := url.Parse(s.Healthcheck.Test[len(s.Healthcheck.Test)-1])
			if err != nil || hu.Path != "/readyz" || port(t, name+" health check", hu.Host) != adminPort {
				t.Errorf("%s: health check %q: want GET /readyz on the admin port %d", name, s.Healthcheck.Test, adminPort)
			}
		}
		if f["Etcd"] != etcdURL {
			t.Errorf("%s: -Etcd=%s, want %s", name, f["Etcd"], etcdURL)
		}
		if want := net.JoinHostPort(name, strconv.Itoa(serverPort)); f["AdvertiseServerAddr"] != want {
			t.Errorf("%s: -AdvertiseServerAddr=%s, want %s (the backend dials it on the compose network)", name, f["AdvertiseServerAddr"], want)
		}
		if ids[f["GatewayID"]] {
			t.Errorf("%s: -GatewayID=%s is another gateway's", name, f["GatewayID"])
		}
		ids[f["GatewayID"]] = true
		grace, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil {
			t.Fatalf("%s: stop_grace_period %q: %v", name, s.StopGracePeriod, err)
		}
		if budget := drainBudget(t, 0, f); grace < budget+5*time.Second {
			t.Errorf("%s: stop_grace_period %v: want at least 5 s above -EtcdDrainWait + -ShutdownTimeout + %v = %v", name, grace, adminShutdown, budget)
		}
	}
	_, bf := composeCommand(t, "backend", c.Services["backend"])
	if bf["etcd"] != etcdURL {
		t.Errorf("backend -etcd=%s, want %s", bf["etcd"], etcdURL)
	}
	_, pf := composeCommand(t, "players", c.Services["players"])
	for _, gw := range strings.Split(pf["gateways"], ",") {
		h, p, _ := net.SplitHostPort(gw)
		s, ok := c.Services[h]
		if !ok || !strings.HasPrefix(s.Image, "fastway:") {
			t.Errorf("players -gateways: %s is no gateway service", gw)
			continue
		}
		_, f := composeCommand(t, h, s)
		if strconv.Itoa(port(t, h, f["ClientAddr"])) != p {
			t.Errorf("players -gateways: %s, but %s's client port is %s", gw, h, f["ClientAddr"])
		}
	}
}
