// Package deploy holds the tests of the Kubernetes manifests (kubernetes/)
// and the compose recipe (compose/): they decode strictly into the
// Kubernetes API types, their flags are checked against the real binaries'
// -h, their ports against each other, and the gateway runs with their
// args on loopback. It is a module of its own, so the root module does
// not depend on the Kubernetes API.
package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The binaries the manifests run, built from the root module by TestMain.
var (
	fastwayBin, backendBin, playersBin string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fastway-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, b := range []struct {
		bin *string
		pkg string
	}{{&fastwayBin, "./cmd/fastway"}, {&backendBin, "./examples/fleet/backend"}, {&playersBin, "./examples/fleet/players"}} {
		*b.bin = filepath.Join(dir, filepath.Base(b.pkg))
		if out, err := exec.Command("go", "-C", "..", "build", "-o", *b.bin, b.pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// Flag lines of each program's help text.
var (
	fastwayFlagRe = regexp.MustCompile(`^\s+-([A-Za-z]\w*)=`)         // "  -ClientAddr=:0   ..."
	goFlagRe      = regexp.MustCompile(`^\s+-([a-z][\w-]*)(\s|$)`)    // the flag package: "  -id uint"
	etcdFlagRe    = regexp.MustCompile(`^\s+--([a-z][\w-]*)(\s|=|$)`) // "  --name 'default'"
)

// helpFlags runs bin with arg (-h) and returns the flags its help lists.
func helpFlags(t *testing.T, re *regexp.Regexp, bin string, arg string) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, arg)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, arg, err, out.String())
	}
	flags := map[string]bool{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			flags[m[1]] = true
		}
	}
	if len(flags) < 3 {
		t.Fatalf("%s %s lists %d flags: %q", bin, arg, len(flags), out.String())
	}
	return flags
}

// etcdBinary returns the etcd server to check flags against and to run:
// $FASTWAY_ETCD, else etcd on the PATH (scripts/install-etcd.sh installs
// it). Without one the test is skipped, unless $FASTWAY_REQUIRE_ETCD is set
// (scripts/test.sh sets it).
func etcdBinary(t *testing.T) string {
	t.Helper()
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

// program names the binary an image runs, and how to read its flags.
type program struct {
	name  string
	flags func(t *testing.T) map[string]bool
}

// programOf returns the program of an image (and entrypoint, when one
// replaces the image's).
func programOf(t *testing.T, image string, entrypoint []string) program {
	t.Helper()
	repo, _, _ := strings.Cut(image, ":")
	switch {
	case repo == "fastway":
		return program{"fastway", func(t *testing.T) map[string]bool { return helpFlags(t, fastwayFlagRe, fastwayBin, "-h") }}
	case repo == "fastway-fleet-backend" && len(entrypoint) == 1 && entrypoint[0] == "/usr/local/bin/players":
		return program{"players", func(t *testing.T) map[string]bool { return helpFlags(t, goFlagRe, playersBin, "-h") }}
	case repo == "fastway-fleet-backend" && len(entrypoint) == 0:
		return program{"backend", func(t *testing.T) map[string]bool { return helpFlags(t, goFlagRe, backendBin, "-h") }}
	case strings.HasSuffix(repo, "/etcd"):
		return program{"etcd", func(t *testing.T) map[string]bool { return helpFlags(t, etcdFlagRe, etcdBinary(t), "--help") }}
	}
	t.Fatalf("image %s (entrypoint %q): no program known to check its flags", image, entrypoint)
	return program{}
}

// flagArgs splits a command line into its flags, -Name=value or
// --name=value: name → value. Any other argument fails the test.
func flagArgs(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range args {
		name, value, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || !ok || name == "" {
			t.Errorf("%s: argument %q is not -Name=value", where, a)
			continue
		}
		if _, dup := out[name]; dup {
			t.Errorf("%s: -%s given twice", where, name)
		}
		out[name] = value
	}
	return out
}

// checkFlags checks every flag of args against p's help.
func checkFlags(t *testing.T, where string, p program, args map[string]string) {
	t.Helper()
	known := p.flags(t)
	for name := range args {
		if !known[name] {
			t.Errorf("%s: %s has no flag -%s (its -h lists %d flags)", where, p.name, name, len(known))
		}
	}
}
