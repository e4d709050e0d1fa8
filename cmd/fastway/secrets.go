package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
)

// adminTokenEnv is read when neither -AdminToken nor -AdminTokenFile is
// given.
const adminTokenEnv = "FASTWAY_ADMIN_TOKEN"

// minAdminToken is the shortest admin token accepted, in bytes: the admin
// endpoint does not slow down guesses, so the token must be too long to
// guess (openssl rand -hex 16 gives 32).
const minAdminToken = 16

// maxSecretFile bounds, in bytes, a password or token file.
const maxSecretFile = 64 << 10

// redacted replaces a secret wherever the command line is shown.
const redacted = "<redacted>"

// secretFlags are the flags whose values are secrets. Their values never
// leave the process: /debug/pprof/cmdline shows the command line through
// redactArgs, and no log line or error message prints them.
var secretFlags = []string{"ServerAuthPassword", "ServerAuthKey", "AdminToken"}

// redactArgs returns a copy of the command line args (program name first)
// with the value of every secret flag replaced by <redacted>, in each form
// the flag package takes: -Name=v, --Name=v, -Name v, --Name v.
func redactArgs(args []string) []string {
	out := slices.Clone(args)
	for i := 1; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break // the flag package stops here (and fastway refuses the rest)
		}
		name := strings.TrimPrefix(a, "-")
		if name == a || name == "" {
			continue
		}
		name = strings.TrimPrefix(name, "-")
		name, _, hasValue := strings.Cut(name, "=")
		if !slices.Contains(secretFlags, name) {
			continue
		}
		if hasValue {
			out[i] = a[:strings.IndexByte(a, '=')+1] + redacted
		} else if i+1 < len(out) {
			i++
			out[i] = redacted
		}
	}
	return out
}

// readSecretFile returns the contents of the file a flag names, read at
// most max bytes of it. It follows symbolic links (a Kubernetes or Docker
// secret is mounted through them) but opens without blocking and reads
// only a regular file, so a FIFO in its place cannot hold up the start or
// a reload. Errors name the flag and the file, never what it holds.
func readSecretFile(flagName, path string, max int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("-%s: %v", flagName, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("-%s: %v", flagName, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("-%s=%s: not a regular file", flagName, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("-%s: %v", flagName, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("-%s=%s: larger than %s", flagName, path, formatSize(max))
	}
	return b, nil
}

// readLineSecret reads a password or token file: one line, its line end
// (\n or \r\n) dropped, nothing else changed. An empty one, or one of more
// than one line, is an error.
func readLineSecret(flagName, path string) (string, error) {
	b, err := readSecretFile(flagName, path, maxSecretFile)
	if err != nil {
		return "", err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	switch {
	case len(b) == 0:
		return "", fmt.Errorf("-%s=%s: the file is empty", flagName, path)
	case bytes.ContainsAny(b, "\r\n"):
		return "", fmt.Errorf("-%s=%s: the file holds more than one line (want the secret alone, optionally with a line end)", flagName, path)
	}
	return string(b), nil
}
