// Package testbin is for the tests of a command that run a real binary:
// Main builds it once, runs the tests, and checks no goroutine outlived
// them.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// Main is a TestMain: it builds the Go package in directory pkg (such as
// "." or "../fastway") into a temporary directory, sets *bin to the
// binary's path (named after the directory), runs m, fails the run if goroutines are left over
// (go.uber.org/goleak), removes the directory and exits.
func Main(m *testing.M, pkg string, bin *string) {
	os.Exit(run(m, pkg, bin))
}

func run(m *testing.M, pkg string, bin *string) int {
	dir, err := os.MkdirTemp("", "fastway-testbin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	abs, err := filepath.Abs(pkg) // "." names the binary after its directory, as go build does
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*bin = filepath.Join(dir, filepath.Base(abs))
	if out, err := exec.Command("go", "build", "-o", *bin, pkg).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
		return 1
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
