package main

import (
	"bytes"
	"flag"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/proto"
)

// TestBadFlags runs fastway with bad command lines: each must exit 2 with
// one line on stderr naming the problem, without listening or writing a
// pidfile.
func TestBadFlags(t *testing.T) {
	t.Parallel()
	base := []string{"-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0"}
	pki := newPKI(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	secrets := t.TempDir()
	secretFile := func(name, text string) string {
		path := filepath.Join(secrets, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	emptyFile := secretFile("empty", "")
	twoLines := secretFile("two-lines", "Secret-Line-One\nSecret-Line-Two\n")
	goodPassword := secretFile("password", "Secret-Pass-1\n")
	badKeys := secretFile("bad-keys", "1 Secret-Key-One\nnot-an-id Secret-Key-Two\n")
	overlapKeys := secretFile("overlap-keys", "1-10 Secret-Key-One\n7 Secret-Key-Two\n")
	fifo := filepath.Join(secrets, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing password file", []string{"-ServerAuthPasswordFile=" + missing}, "-ServerAuthPasswordFile: open " + missing + ": no such file or directory"},
		{"empty password file", []string{"-ServerAuthPasswordFile=" + emptyFile}, "-ServerAuthPasswordFile=" + emptyFile + ": the file is empty"},
		{"password file of two lines", []string{"-ServerAuthPasswordFile=" + twoLines}, "holds more than one line"},
		{"password file is a FIFO", []string{"-ServerAuthPasswordFile=" + fifo}, "-ServerAuthPasswordFile=" + fifo + ": not a regular file"},
		{"password file and flag", []string{"-ServerAuthPasswordFile=" + goodPassword, "-ServerAuthPassword=x"}, "both give the password: give one"},
		{"password file and the original's flag", []string{"-ServerAuthPasswordFile=" + goodPassword, "-ServerAuthKey=x"}, "both give the password: give one"},
		{"missing key file", []string{"-ServerKeyFile=" + missing}, "-ServerKeyFile: open " + missing},
		{"bad key file", []string{"-ServerKeyFile=" + badKeys}, "-ServerKeyFile=" + badKeys + `: line 2: bad server ID "not"`},
		{"overlapping key file", []string{"-ServerKeyFile=" + overlapKeys}, "line 2 (7) overlaps line 1 (1-10)"},
		{"empty key file", []string{"-ServerKeyFile=" + emptyFile}, "no entry"},
		{"key file is a FIFO", []string{"-ServerKeyFile=" + fifo}, "not a regular file"},
		{"short admin token", []string{"-AdminAddr=127.0.0.1:0", "-AdminToken=Secret-Short"}, "the admin token is 12 bytes: want at least 16"},
		{"admin token file and flag", []string{"-AdminTokenFile=" + goodPassword, "-AdminToken=Secret-Token-Long-Enough"}, "both give the admin token: give one"},
		{"empty admin token file", []string{"-AdminTokenFile=" + emptyFile}, "-AdminTokenFile=" + emptyFile + ": the file is empty"},
		{"admin token with a space", []string{"-AdminToken=Secret-Token Long-Enough"}, "the admin token holds white space"},
		{"WebSocket URL not ws", []string{"-AdvertiseClientWSAddr=http://gw1:4002/"}, `-AdvertiseClientWSAddr="http://gw1:4002/": want a WebSocket URL`},
		{"WebSocket URL on a wildcard", []string{"-AdvertiseClientWSAddr=ws://0.0.0.0:4002/ws"}, "a wildcard host is no address to dial"},
		{"stray argument after a password", []string{"-ServerAuthPassword", "=", "Secret-Stray"}, "unexpected argument after the flags (not shown: -ServerAuthPassword is set"},
		{"negative size", []string{"-MaxPacket=-1"}, `invalid value "-1" for flag -MaxPacket: negative size`},
		{"negative buffer", []string{"-ClientBufferSize=-2K"}, "negative size"},
		{"zero size", []string{"-ServerBufferSize=0"}, "-ServerBufferSize=0B: want a size from 1B to 1G"},
		{"bad size unit", []string{"-ClientSnetBuffer=32X"}, `unknown unit "X"`},
		{"size too large", []string{"-MaxPacket=2G"}, "-MaxPacket=2G: want a size from 1B to 1G"},
		{"MaxPacket below a header", []string{"-MaxPacket=3"}, "-MaxPacket=3B: want at least 4B"},
		{"unknown pool type", []string{"-MemPoolType=slub"}, `-MemPoolType="slub": want sync, atom, chan or none`},
		{"MinChunk above MaxChunk", []string{"-MemPoolMinChunk=128K"}, "-MemPoolMinChunk=128K is above -MemPoolMaxChunk=64K"},
		{"pool factor", []string{"-MemPoolFactor=1"}, "factor 1 must be at least 2"},
		{"page below MaxChunk", []string{"-MemPoolPageSize=32K"}, "pageSize 32768 is below maxChunk 65536"},
		{"zero max conn", []string{"-ClientMaxConn=0"}, "-ClientMaxConn=0: want at least 1"},
		{"negative timeout", []string{"-ClientIdleTimeout=-1s"}, "-ClientIdleTimeout=-1s: must not be negative"},
		{"zero auth timeout", []string{"-ServerAuthTimeout=0"}, "-ServerAuthTimeout=0s: must be positive"},
		{"MaxPacket above the large-frame budget", []string{"-MaxPacket=100M"}, "-LargeFrameBudget=64M is below -MaxPacket=100M plus its 4-byte header"},
		{"snet buffer too large", []string{"-ClientSnetBuffer=1G"}, "-ClientSnetBuffer=1G: want at most 64M"},
		{"absurd auth timeout", []string{"-ServerAuthTimeout=1ns"}, "-ServerAuthTimeout=1ns: want at least 100ms"},
		{"absurd idle timeout", []string{"-ClientIdleTimeout=1ms"}, "-ClientIdleTimeout=1ms: want 0 (never) or at least 100ms"},
		{"zero send queue bytes", []string{"-ServerSendQueueBytes=0"}, "-ServerSendQueueBytes=0B: want a size from 1B to 1G"},
		{"bad duration", []string{"-ServerIdleTimeout=soon"}, `invalid value "soon" for flag -ServerIdleTimeout`},
		{"address without port", []string{"-ClientAddr=localhost"}, `-ClientAddr="localhost": address localhost: missing port in address`},
		{"port out of range", []string{"-ServerAddr=127.0.0.1:70000"}, `-ServerAddr="127.0.0.1:70000": port must be a number from 0 to 65535`},
		{"named port", []string{"-ClientAddr=:http"}, "port must be a number"},
		{"same port twice", []string{"-ClientAddr=:4000", "-ServerAddr=127.0.0.1:4000", "-ServerAuthPassword=x"}, "overlap"},
		{"empty password on 0.0.0.0", []string{"-ServerAddr=0.0.0.0:0"}, "-ServerAuthPassword is empty but -ServerAddr=0.0.0.0:0 is open to other hosts"},
		{"empty password on ::", []string{"-ServerAddr=[::]:0"}, "-ServerAuthPassword is empty"},
		{"empty password on default ServerAddr", []string{"-ServerAddr=:0"}, "-ServerAuthPassword is empty"},
		{"empty password on a LAN IP", []string{"-ServerAddr=10.1.2.3:0"}, "-ServerAuthPassword is empty"},
		{"empty password on a host name", []string{"-ServerAddr=gw.example.com:0"}, "-ServerAuthPassword is empty"},
		{"client snet encrypt without snet", []string{"-ClientSnetEncrypt=true"}, "-ClientSnetEncrypt needs -ClientSnetEnable"},
		{"server snet encrypt without snet", []string{"-ServerSnetEncrypt", "-ClientSnetEnable"}, "-ServerSnetEncrypt needs -ServerSnetEnable"},
		{"client snet buffer too small", []string{"-ClientSnetEnable", "-ClientSnetBuffer=8K"}, "-ClientSnetBuffer=8K: want at least 16K"},
		{"server snet buffer too small", []string{"-ServerSnetBuffer=1000"}, "-ServerSnetBuffer=1000B: want at least 16K"},
		{"snet buffer too large", []string{"-ServerSnetBuffer=2G"}, "-ServerSnetBuffer=2G: want a size from 1B to 1G"},
		{"zero snet init timeout", []string{"-ClientSnetInitTimeout=0"}, "-ClientSnetInitTimeout=0s: must be positive"},
		{"negative snet init timeout", []string{"-ServerSnetInitTimeout=-1s"}, "-ServerSnetInitTimeout=-1s: must be positive"},
		{"zero snet wait timeout", []string{"-ServerSnetEnable", "-ServerSnetWaitTimeout=0s"}, "-ServerSnetWaitTimeout=0s: must be positive"},
		{"negative snet wait timeout", []string{"-ClientSnetWaitTimeout=-2m"}, "-ClientSnetWaitTimeout=-2m0s: must be positive"},
		{"bad snet timeout", []string{"-ClientSnetWaitTimeout=forever"}, `invalid value "forever" for flag -ClientSnetWaitTimeout`},
		{"negative ClientMaxConns", []string{"-ClientMaxConns=-1"}, "-ClientMaxConns=-1: must not be negative (0: derived from the file descriptor limit)"},
		{"zero ClientMaxServerConns", []string{"-ClientMaxServerConns=0"}, "-ClientMaxServerConns=0: want at least 1"},
		{"huge ClientMaxServerConns", []string{"-ClientMaxServerConns=2000000"}, "-ClientMaxServerConns=2000000: want at most 1048576"},
		{"negative ServerMaxHandshakesPerSource", []string{"-ServerMaxHandshakesPerSource=-2"}, "-ServerMaxHandshakesPerSource=-2: must not be negative (0: no per-source cap)"},
		{"huge ServerMaxHandshakesPerSource", []string{"-ServerMaxHandshakesPerSource=99999999"}, "-ServerMaxHandshakesPerSource=99999999: want at most 1048576"},
		{"negative ServerMaxGroups", []string{"-ServerMaxGroups=-1"}, "-ServerMaxGroups=-1: must not be negative (0: unlimited)"},
		{"negative ServerMaxMemberships", []string{"-ServerMaxMemberships=-5"}, "-ServerMaxMemberships=-5: must not be negative (0: unlimited)"},
		{"huge ServerMaxMemberships", []string{"-ServerMaxMemberships=2000000000"}, "-ServerMaxMemberships=2000000000: want at most 1073741824 (0: unlimited)"},
		{"non-numeric ClientMaxConns", []string{"-ClientMaxConns=many"}, `invalid value "many" for flag -ClientMaxConns`},
		{"negative ServerMaxHandshakes", []string{"-ServerMaxHandshakes=-1"}, "-ServerMaxHandshakes=-1: must not be negative (0: unlimited)"},
		{"negative ServerAuthFailBurst", []string{"-ServerAuthFailBurst=-3"}, "-ServerAuthFailBurst=-3: must not be negative (0: no throttle)"},
		{"zero ServerAuthFailInterval", []string{"-ServerAuthFailInterval=0"}, "-ServerAuthFailInterval=0s: must be positive"},
		{"negative ShutdownTimeout", []string{"-ShutdownTimeout=-1s"}, "-ShutdownTimeout=-1s: must not be negative"},
		{"bad ShutdownTimeout", []string{"-ShutdownTimeout=10"}, `invalid value "10" for flag -ShutdownTimeout`},
		{"client cert without key", []string{"-ClientTLSCert=" + pki.certFile}, "-ClientTLSCert is set without -ClientTLSKey: give both"},
		{"client key without cert", []string{"-ClientTLSKey=" + pki.keyFile}, "-ClientTLSKey is set without -ClientTLSCert: give both"},
		{"server cert without key", []string{"-ServerTLSCert=" + pki.certFile}, "-ServerTLSCert is set without -ServerTLSKey: give both"},
		{"server key without cert", []string{"-ServerTLSKey=" + pki.keyFile}, "-ServerTLSKey is set without -ServerTLSCert: give both"},
		{"client CA without server cert", []string{"-ServerTLSClientCA=" + pki.caFile}, "-ServerTLSClientCA needs -ServerTLSCert and -ServerTLSKey"},
		{"client CA with only the client port on TLS", []string{"-ClientTLSCert=" + pki.certFile, "-ClientTLSKey=" + pki.keyFile, "-ServerTLSClientCA=" + pki.caFile}, "-ServerTLSClientCA needs -ServerTLSCert"},
		{"missing cert file", []string{"-ClientTLSCert=" + missing, "-ClientTLSKey=" + pki.keyFile}, "-ClientTLSCert=" + missing + " -ClientTLSKey=" + pki.keyFile + ": open " + missing + ": no such file or directory"},
		{"missing key file", []string{"-ServerTLSCert=" + pki.certFile, "-ServerTLSKey=" + missing}, "open " + missing + ": no such file or directory"},
		{"cert file not PEM", []string{"-ClientTLSCert=" + garbage, "-ClientTLSKey=" + pki.keyFile}, "-ClientTLSCert=" + garbage + " -ClientTLSKey=" + pki.keyFile + ": tls: failed to find any PEM data in certificate input"},
		{"key file not PEM", []string{"-ServerTLSCert=" + pki.certFile, "-ServerTLSKey=" + garbage}, "tls: failed to find any PEM data in key input"},
		{"key of another certificate", []string{"-ServerTLSCert=" + pki.certFile, "-ServerTLSKey=" + pki.clientKeyFile}, "tls: private key does not match public key"},
		{"missing client CA file", []string{"-ServerTLSCert=" + pki.certFile, "-ServerTLSKey=" + pki.keyFile, "-ServerTLSClientCA=" + missing}, "-ServerTLSClientCA: open " + missing + ": no such file or directory"},
		{"client CA file not PEM", []string{"-ServerTLSCert=" + pki.certFile, "-ServerTLSKey=" + pki.keyFile, "-ServerTLSClientCA=" + garbage}, "-ServerTLSClientCA=" + garbage + ": no PEM certificate in the file"},
		{"unknown flag", []string{"-Verbose"}, "flag provided but not defined: -Verbose"},
		{"admin address without port", []string{"-AdminAddr=localhost"}, `-AdminAddr="localhost": address localhost: missing port in address`},
		{"admin port out of range", []string{"-AdminAddr=127.0.0.1:65536"}, `-AdminAddr="127.0.0.1:65536": port must be a number from 0 to 65535`},
		{"admin port is the client port", []string{"-ClientAddr=127.0.0.1:4000", "-AdminAddr=:4000"}, "-AdminAddr=:4000 and -ClientAddr=127.0.0.1:4000 overlap"},
		{"admin port is the server port", []string{"-ServerAddr=127.0.0.1:4001", "-AdminAddr=127.0.0.1:4001"}, "-AdminAddr=127.0.0.1:4001 and -ServerAddr=127.0.0.1:4001 overlap"},
		{"unknown log level", []string{"-LogLevel=verbose"}, `-LogLevel="verbose": want debug, info, warn or error`},
		{"numeric log level", []string{"-LogLevel=-4"}, `-LogLevel="-4": want debug, info, warn or error`},
		{"unknown log format", []string{"-LogFormat=logfmt"}, `-LogFormat="logfmt": want text or json`},
		{"stray argument", []string{"start"}, `unexpected argument "start"`},
		{"empty command file", []string{"-CmdFile="}, "-CmdFile must not be empty"},
		{"auth key and password differ", []string{"-ServerAuthKey=one", "-ServerAuthPassword=two"}, "-ServerAuthKey and -ServerAuthPassword are set to different passwords"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			c := exec.Command(binary, append(slices.Clone(base), tc.args...)...)
			c.Dir = dir
			c.Env = envWithout(authPasswordEnv, adminTokenEnv)
			var stdout, stderr bytes.Buffer
			c.Stdout, c.Stderr = &stdout, &stderr
			c.WaitDelay = timeout
			done := make(chan error, 1)
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- c.Wait() }()
			select {
			case <-done:
			case <-time.After(timeout):
				c.Process.Kill()
				<-done
				t.Fatalf("still running after %v: %s", timeout, stderr.String())
			}
			if code := c.ProcessState.ExitCode(); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") || !strings.HasPrefix(msg, "fastway: ") {
				t.Errorf("stderr %q, want one line starting with \"fastway: \"", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q lacks %q", msg, tc.want)
			}
			if strings.Contains(msg, "Secret-") {
				t.Errorf("stderr %q shows a secret", msg)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			checkNoPidFile(t, dir)
		})
	}
}

// TestGoodFlags checks command lines that must be accepted, in process.
func TestGoodFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  string // FASTWAY_AUTH_PASSWORD
	}{
		{"defaults with a password", []string{"-ServerAuthPassword=secret"}, ""},
		{"password from the environment", []string{"-ServerAddr=0.0.0.0:4001"}, "secret"},
		{"no password on loopback", []string{"-ServerAddr=127.0.0.1:0"}, ""},
		{"no password on localhost", []string{"-ServerAddr=localhost:4001"}, ""},
		{"no password on ::1", []string{"-ServerAddr=[::1]:4001"}, ""},
		{"sizes in every form", []string{"-ServerAuthPassword=x", "-MaxPacket=1048576", "-ClientBufferSize=4KB",
			"-ServerBufferSize=1MiB", "-MemPoolMinChunk=128b", "-MemPoolMaxChunk=128k", "-MemPoolPageSize=2m"}, ""},
		{"every pool", []string{"-ServerAuthPassword=x", "-MemPoolType=sync"}, ""},
		{"chan pool", []string{"-ServerAuthPassword=x", "-MemPoolType=chan"}, ""},
		{"no pool", []string{"-ServerAuthPassword=x", "-MemPoolType=none"}, ""},
		{"idle timeouts off", []string{"-ServerAuthPassword=x", "-ClientIdleTimeout=0", "-ServerIdleTimeout=0"}, ""},
		{"snet off explicitly", []string{"-ServerAuthPassword=x", "-ClientSnetEnable=false", "-ServerSnetEncrypt=false"}, ""},
		{"snet on both ports", []string{"-ServerAuthPassword=x", "-ClientSnetEnable", "-ClientSnetEncrypt", "-ServerSnetEnable=true"}, ""},
		{"snet tuned", []string{"-ServerAuthPassword=x", "-ClientSnetEnable", "-ClientSnetBuffer=16K", "-ClientSnetInitTimeout=1s",
			"-ClientSnetWaitTimeout=5m", "-ServerSnetEnable", "-ServerSnetBuffer=64M", "-ServerSnetWaitTimeout=100ms"}, ""},
		{"caps off", []string{"-ServerAuthPassword=x", "-ClientMaxConns=0", "-ServerMaxHandshakes=0", "-ServerAuthFailBurst=0"}, ""},
		{"caps set", []string{"-ServerAuthPassword=x", "-ClientMaxConns=100000", "-ServerMaxHandshakes=1", "-ServerAuthFailBurst=1", "-ServerAuthFailInterval=1m"}, ""},
		{"no drain", []string{"-ServerAuthPassword=x", "-ShutdownTimeout=0"}, ""},
		{"long drain", []string{"-ServerAuthPassword=x", "-ShutdownTimeout=5m"}, ""},
		{"same port on different hosts", []string{"-ClientAddr=127.0.0.1:4000", "-ServerAddr=127.0.0.2:4000"}, ""},
		{"admin on loopback", []string{"-ServerAuthPassword=x", "-AdminAddr=127.0.0.1:6060"}, ""},
		{"admin on loopback, no host given", []string{"-ServerAuthPassword=x", "-AdminAddr=:6060"}, ""},
		{"admin on all interfaces", []string{"-ServerAuthPassword=x", "-AdminAddr=0.0.0.0:6060"}, ""},
		{"admin and client both on port 0", []string{"-ServerAuthPassword=x", "-AdminAddr=:0"}, ""},
		{"log level in capitals", []string{"-ServerAuthPassword=x", "-LogLevel=DEBUG"}, ""},
		{"warn in json", []string{"-ServerAuthPassword=x", "-LogLevel=warn", "-LogFormat=json"}, ""},
		{"error in text", []string{"-ServerAuthPassword=x", "-LogLevel=error", "-LogFormat=text"}, ""},
		{"auth key, the original's name", []string{"-ServerAuthKey=x", "-ServerAddr=0.0.0.0:4001"}, ""},
		{"auth key and password alike", []string{"-ServerAuthKey=x", "-ServerAuthPassword=x", "-ServerAddr=0.0.0.0:4001"}, ""},
		{"password file", []string{"-ServerAuthPasswordFile=" + goodFile(t, "pw\r\n"), "-ServerAddr=0.0.0.0:4001"}, ""},
		{"password file beside the environment", []string{"-ServerAuthPasswordFile=" + goodFile(t, "pw"), "-ServerAddr=0.0.0.0:4001"}, "from-env"},
		{"key file and no password", []string{"-ServerKeyFile=" + goodFile(t, "1 k1\n2-9 k2\n"), "-ServerAddr=0.0.0.0:4001"}, ""},
		{"admin token", []string{"-ServerAuthPassword=x", "-AdminAddr=0.0.0.0:6060", "-AdminToken=0123456789abcdef"}, ""},
		{"advertised WebSocket URL", []string{"-ServerAuthPassword=x", "-AdvertiseClientWSAddr=wss://gw1.example.com/ws"}, ""},
		{"admin token file", []string{"-ServerAuthPassword=x", "-AdminAddr=:6060", "-AdminTokenFile=" + goodFile(t, "0123456789abcdef\n")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(authPasswordEnv, tc.env)
			o, err := parseFlags(tc.args)
			if err == nil {
				err = o.validate()
			}
			if err == nil {
				_, err = o.gatewayConfig()
			}
			if err != nil {
				t.Fatalf("%q: %v", tc.args, err)
			}
		})
	}
}

// goodFile writes text into a new file of mode 0600 and returns its path.
func goodFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecretFiles: the password and the admin token come from their files
// whole, only the line end dropped; the file wins over the environment; the
// key file gives the gateway its keys.
func TestSecretFiles(t *testing.T) {
	t.Setenv(authPasswordEnv, "from-env")
	t.Setenv(adminTokenEnv, "token-from-the-environment")
	o, err := parseFlags([]string{"-ServerAuthPasswordFile=" + goodFile(t, " pass word \r\n"), "-AdminTokenFile=" + goodFile(t, "token-from-a-file-1234\n"),
		"-ServerKeyFile=" + goodFile(t, "# k\n7 seven\n")})
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.gatewayConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerAuthPassword != " pass word " || o.AdminToken != "token-from-a-file-1234" {
		t.Errorf("password %q, token %q", cfg.ServerAuthPassword, o.AdminToken)
	}
	if k, ok := cfg.ServerKeys.Key(7); !ok || k != "seven" || cfg.ServerKeys.Len() != 1 {
		t.Errorf("keys %v: Key(7) = %q, %v", cfg.ServerKeys, k, ok)
	}
	o, err = parseFlags(nil)
	if err != nil || o.AdminToken != "token-from-the-environment" {
		t.Fatalf("token %q, %v; want it from $%s", o.AdminToken, err, adminTokenEnv)
	}
}

// TestRedactArgs: every secret flag's value is replaced, in every form the
// flag package takes; nothing else changes.
func TestRedactArgs(t *testing.T) {
	in := []string{"fastway", "-ServerAuthPassword=p1", "--ServerAuthKey=p2", "-AdminToken", "p3", "--AdminToken", "p4",
		"-ServerAuthPassword", "p5", "-ClientAddr=:4000", "-ServerAuthPasswordFile=/run/pw", "-AdminTokenFile", "/run/token",
		"-ServerAuthKey=", "-ReusePort", "--", "-ServerAuthPassword=after-the-end"}
	want := []string{"fastway", "-ServerAuthPassword=<redacted>", "--ServerAuthKey=<redacted>", "-AdminToken", "<redacted>", "--AdminToken", "<redacted>",
		"-ServerAuthPassword", "<redacted>", "-ClientAddr=:4000", "-ServerAuthPasswordFile=/run/pw", "-AdminTokenFile", "/run/token",
		"-ServerAuthKey=<redacted>", "-ReusePort", "--", "-ServerAuthPassword=after-the-end"}
	if got := redactArgs(in); !slices.Equal(got, want) {
		t.Errorf("redactArgs\n got %q\nwant %q", got, want)
	}
	if in[1] != "-ServerAuthPassword=p1" {
		t.Error("redactArgs changed its argument")
	}
	// Every flag whose value is a secret is in secretFlags.
	for name := range flagDefaults() {
		lower := strings.ToLower(name)
		secret := (strings.Contains(lower, "password") || strings.Contains(lower, "token") || strings.HasSuffix(name, "AuthKey")) && !strings.HasSuffix(name, "File")
		if secret != slices.Contains(secretFlags, name) {
			t.Errorf("-%s: secret %v, in secretFlags %v", name, secret, slices.Contains(secretFlags, name))
		}
	}
}

func TestPasswordFromEnv(t *testing.T) {
	t.Setenv(authPasswordEnv, "from-env")
	o, err := parseFlags(nil)
	if err != nil || o.ServerAuthPassword != "from-env" {
		t.Fatalf("got %v, %v; want the password from $%s", o, err, authPasswordEnv)
	}
	o, err = parseFlags([]string{"-ServerAuthPassword=flag"})
	if err != nil || o.ServerAuthPassword != "flag" {
		t.Fatalf("got %v, %v; want the flag to win", o, err)
	}
	cfg, err := o.gatewayConfig()
	if err != nil || cfg.ServerAuthPassword != "flag" {
		t.Fatalf("config %+v, %v", cfg, err)
	}
}

// TestServerAuthKey: -ServerAuthKey (the original fastway's name) sets the
// password exactly as -ServerAuthPassword does, and wins over the
// environment as the flag does.
func TestServerAuthKey(t *testing.T) {
	t.Setenv(authPasswordEnv, "from-env")
	for _, args := range [][]string{
		{"-ServerAuthKey=flag"},
		{"-ServerAuthPassword=flag"},
		{"-ServerAuthKey=flag", "-ServerAuthPassword=flag"},
		{"-ServerAuthPassword=flag", "-ServerAuthKey", "flag"},
	} {
		o, err := parseFlags(args)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		cfg, err := o.gatewayConfig()
		if err != nil || cfg.ServerAuthPassword != "flag" {
			t.Fatalf("%q: password %q, %v; want \"flag\"", args, cfg.ServerAuthPassword, err)
		}
	}
	if _, err := parseFlags([]string{"-ServerAuthKey=a", "-ServerAuthPassword=b"}); err == nil || strings.Contains(err.Error(), "=a") || strings.Contains(err.Error(), "=b") {
		t.Fatalf("different passwords: %v; want an error that does not show them", err)
	}
}

// originalFlags is a command line of the original fastway: every flag it
// had, each with its default written as the original took it (sizes as
// plain byte counts, booleans as true/false, durations as Go durations).
var originalFlags = []string{
	"-ReusePort=false", "-MaxPacket=524288", "-MemPoolType=atom", "-MemPoolFactor=2",
	"-MemPoolMinChunk=64", "-MemPoolMaxChunk=65536", "-MemPoolPageSize=1048576",
	"-ClientAddr=127.0.0.1:0", "-ClientMaxConn=16", "-ClientBufferSize=2048", "-ClientSendChanSize=1024",
	"-ClientIdleTimeout=30s", "-ClientSnetEnable=false", "-ClientSnetEncrypt=false", "-ClientSnetBuffer=65536",
	"-ClientSnetInitTimeout=10s", "-ClientSnetWaitTimeout=1m0s",
	"-ServerAddr=127.0.0.1:0", "-ServerAuthKey=" + password, "-ServerBufferSize=65536", "-ServerSendChanSize=102400",
	"-ServerIdleTimeout=30s", "-ServerSnetEnable=false", "-ServerSnetEncrypt=false", "-ServerSnetBuffer=65536",
	"-ServerSnetInitTimeout=10s", "-ServerSnetWaitTimeout=1m0s",
}

// TestOriginalFlags: every flag of the original fastway is defined here and
// takes the original's value formats, on their own (the original's command
// line) and in their other forms (bare booleans, other pool types, snet on).
func TestOriginalFlags(t *testing.T) {
	defined := flagDefaults()
	for _, arg := range originalFlags {
		name := strings.TrimPrefix(arg[:strings.IndexByte(arg, '=')], "-")
		if _, ok := defined[name]; !ok {
			t.Errorf("the original's -%s is not a flag", name)
		}
	}
	for _, extra := range [][]string{
		nil,
		{"-ReusePort", "-ClientSnetEnable", "-ClientSnetEncrypt", "-ServerSnetEnable", "-ServerSnetEncrypt=true"},
		{"-MemPoolType=sync"},
		{"-MemPoolType=chan", "-MemPoolFactor=4", "-MemPoolMaxChunk=262144", "-MemPoolPageSize=4194304"},
		{"-ClientSnetEnable=true", "-ClientSnetBuffer=32768", "-ServerSnetEnable=true", "-ServerSnetBuffer=1048576"},
	} {
		args := append(slices.Clone(originalFlags), extra...)
		o, err := parseFlags(args)
		if err == nil {
			err = o.validate()
		}
		if err == nil {
			_, err = o.gatewayConfig()
		}
		if err != nil {
			t.Errorf("original flags with %q: %v", extra, err)
		} else if o.ServerAuthPassword != password {
			t.Errorf("original flags with %q: password %q, want -ServerAuthKey's", extra, o.ServerAuthPassword)
		}
	}
}

func TestIdleTimeoutZeroIsNever(t *testing.T) {
	o, err := parseFlags([]string{"-ServerAuthPassword=x", "-ClientIdleTimeout=0", "-ServerIdleTimeout=5s"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.gatewayConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientIdleTimeout >= 0 || cfg.ServerIdleTimeout != 5*time.Second {
		t.Fatalf("idle timeouts %v, %v; want negative (never) and 5s", cfg.ClientIdleTimeout, cfg.ServerIdleTimeout)
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		show string
	}{
		{"0", 0, "0B"},
		{"64", 64, "64B"},
		{"64B", 64, "64B"},
		{"1000", 1000, "1000B"},
		{"2K", 2 << 10, "2K"},
		{"2048", 2 << 10, "2K"},
		{"64kb", 64 << 10, "64K"},
		{"64KiB", 64 << 10, "64K"},
		{"1536K", 1536 << 10, "1536K"},
		{"512K", 512 << 10, "512K"},
		{"1M", 1 << 20, "1M"},
		{"1024K", 1 << 20, "1M"},
		{"1G", 1 << 30, "1G"},
		{" 32K ", 32 << 10, "32K"},
	} {
		var s size
		if err := s.Set(tc.in); err != nil {
			t.Errorf("Set(%q): %v", tc.in, err)
			continue
		}
		if int(s) != tc.n || s.String() != tc.show {
			t.Errorf("Set(%q) = %d %q, want %d %q", tc.in, int(s), s.String(), tc.n, tc.show)
		}
	}
	for _, in := range []string{"", "-1", "-1K", "K", "1.5M", "1T", "1 K", "0x10", "99999999999999999999", "9999999999999G"} {
		var s size
		if err := s.Set(in); err == nil {
			t.Errorf("Set(%q) = %d, want an error", in, int(s))
		}
	}
}

// TestHelp checks that -h prints every flag with its default to stdout and
// exits 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	c := exec.Command(binary, "-h")
	c.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	c.WaitDelay = timeout
	if err := c.Run(); err != nil {
		t.Fatalf("fastway -h: %v; stderr %q", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q, want nothing", stderr.String())
	}
	out := stdout.String()
	defaults := flagDefaults()
	if len(defaults) != 78 {
		t.Errorf("%d flags, want 78", len(defaults))
	}
	for name, def := range defaults {
		if !strings.Contains(out, "  -"+name+"="+def+" ") {
			t.Errorf("-h output lacks -%s=%s", name, def)
		}
	}
	for _, want := range []string{"-MaxPacket=512K", "-MemPoolType=atom", "-MemPoolMinChunk=64B", "-ClientSendChanSize=1000",
		"-ServerSendChanSize=100000", "-ServerAuthTimeout=3s", "-PidFile=fastway.pid", "-CmdFile=fastway.cmd", "-ClientAddr=:0",
		`-AdminAddr=""`, "-LogLevel=info", "-LogFormat=text", "-ClientMaxConns=0", "-ServerMaxHandshakes=1024", "-ServerAuthFailBurst=5",
		"-ServerMaxHandshakesPerSource=8", "-ClientMaxServerConns=64",
		"-ServerAuthFailInterval=1s", "-ShutdownTimeout=10s", "-ClientSnetBuffer=32K", "-ServerSnetBuffer=1M", "-ClientSnetInitTimeout=10s",
		"-ServerSnetWaitTimeout=1m0s", `-ClientTLSCert=""`, `-ServerTLSClientCA=""`, `-ServerAuthPasswordFile=""`,
		`-ServerKeyFile=""`, `-AdminToken=""`, `-AdminTokenFile=""`} {
		if !strings.Contains(out, want) {
			t.Errorf("-h output lacks %s", want)
		}
	}
}

// flagDefaults maps every flag to its default as -h prints it.
func flagDefaults() map[string]string {
	m := map[string]string{}
	newFlagSet(&options{}).VisitAll(func(f *flag.Flag) { m[f.Name] = showDefault(f) })
	return m
}

func TestUsageListsEveryFlag(t *testing.T) {
	seen := map[string]int{}
	for _, s := range sections {
		for _, n := range s.names {
			seen[n]++
		}
	}
	for name := range flagDefaults() {
		if seen[name] != 1 {
			t.Errorf("flag -%s is in %d usage sections, want 1", name, seen[name])
		}
		delete(seen, name)
	}
	for name := range seen {
		t.Errorf("usage section lists -%s, which is not a flag", name)
	}
}

// TestDocsFlagTable checks that docs/operations.md lists every flag with
// the default the binary has.
func TestDocsFlagTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `-(\\w+)` \\| `([^`]*)` \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = m[2]
	}
	for name, def := range flagDefaults() {
		got, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("docs/operations.md has no row for -%s", name)
		case got != def:
			t.Errorf("docs/operations.md: -%s default %q, binary has %q", name, got, def)
		}
		delete(documented, name)
	}
	for name := range documented {
		t.Errorf("docs/operations.md documents -%s, which is not a flag", name)
	}
}

// TestBoundLoopback (issue 14, finding 8): an empty password was allowed
// on -ServerAddr=localhost:... by the name alone; it is now decided by the
// address the listener bound, so a "localhost" that resolves elsewhere
// does not open a password-less server port.
func TestBoundLoopback(t *testing.T) {
	noPassword := &options{ServerAddr: "localhost:4001"}
	for _, tc := range []struct {
		bound string
		ok    bool
	}{{"127.0.0.1:4001", true}, {"127.8.9.1:4001", true}, {"[::1]:4001", true}, {"[::ffff:127.0.0.1]:4001", true},
		{"10.0.0.7:4001", false}, {"[2001:db8::1]:4001", false}, {"0.0.0.0:4001", false}, {"[::]:4001", false}} {
		ap := netip.MustParseAddrPort(tc.bound)
		err := checkBoundLoopback(noPassword, net.TCPAddrFromAddrPort(ap))
		if (err == nil) != tc.ok {
			t.Errorf("bound %s: %v, want ok=%v", tc.bound, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "-ServerAuthPassword is empty but -ServerAddr=localhost:4001 bound "+tc.bound) {
			t.Errorf("bound %s: message %q", tc.bound, err)
		}
	}
	if err := checkBoundLoopback(&options{ServerAddr: "localhost:4001", ServerAuthPassword: "x"}, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7)}); err != nil {
		t.Errorf("with a password: %v", err)
	}
}

// TestLocalhostNoPassword: the binary with -ServerAddr=localhost:0 and no
// password starts (localhost is loopback here) and serves a server that
// authenticates with the empty key.
func TestLocalhostNoPassword(t *testing.T) {
	t.Parallel()
	p := startProc(t, t.TempDir(), "-ClientAddr=127.0.0.1:0", "-ServerAddr=localhost:0")
	_, serverAddr := p.ready()
	host, _, _ := net.SplitHostPort(serverAddr)
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		t.Fatalf("localhost bound %s", serverAddr)
	}
	c, err := net.DialTimeout("tcp", serverAddr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := proto.AuthenticateToGateway(c, "", 1, timeout); err != nil {
		t.Fatal(err)
	}
	p.waitStats("conns.server=1")
	p.stop()
}

// TestFanoutFlags: the fan-out bounds reach the gateway's Config, 0 meaning
// unlimited, and the defaults are the gateway's.
func TestFanoutFlags(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		groups, memb int
	}{
		{nil, gateway.DefaultServerMaxGroups, gateway.DefaultServerMaxMemberships},
		{[]string{"-ServerMaxGroups=10", "-ServerMaxMemberships=100"}, 10, 100},
		{[]string{"-ServerMaxGroups=0", "-ServerMaxMemberships=0"}, -1, -1},
	} {
		o, err := parseFlags(append([]string{"-ServerAuthPassword=x"}, tc.args...))
		if err == nil {
			err = o.validate()
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		cfg, err := o.gatewayConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ServerMaxGroups != tc.groups || cfg.ServerMaxMemberships != tc.memb {
			t.Errorf("%q: ServerMaxGroups %d, ServerMaxMemberships %d; want %d, %d", tc.args, cfg.ServerMaxGroups, cfg.ServerMaxMemberships, tc.groups, tc.memb)
		}
	}
}
