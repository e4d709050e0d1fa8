package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/fastway-go/fastway/cmd"
	"github.com/fastway-go/fastway/gateway"
)

// serverAuth is where the server handshake's secrets come from: a fixed
// password (-ServerAuthPassword, -ServerAuthKey or $FASTWAY_AUTH_PASSWORD),
// or one read from -ServerAuthPasswordFile, and the per-server keys of
// -ServerKeyFile. The files are read at start and again on each reload
// (SIGHUP or the keys reload command); a reload that fails keeps what the
// gateway has.
type serverAuth struct {
	fixed        string // the password when no file gives it
	passwordFile string
	keyFile      string

	mu       sync.Mutex // one load or reload at a time; guards the rest
	g        *gateway.Gateway
	log      *slog.Logger
	password string
	keys     *gateway.ServerKeys
	reloads  uint64
	failures uint64
}

// load reads the files and returns what they give, changing nothing.
// Errors are one line that names the flag, never a secret.
func (a *serverAuth) load() (password string, keys *gateway.ServerKeys, err error) {
	password = a.fixed
	if a.passwordFile != "" {
		if password, err = readLineSecret("ServerAuthPasswordFile", a.passwordFile); err != nil {
			return "", nil, err
		}
	}
	if a.keyFile != "" {
		b, err := readSecretFile("ServerKeyFile", a.keyFile, gateway.MaxServerKeysSize)
		if err != nil {
			return "", nil, err
		}
		if keys, err = gateway.ParseServerKeys(b); err != nil {
			return "", nil, fmt.Errorf("-ServerKeyFile=%s: %s", a.keyFile, strings.TrimPrefix(err.Error(), "fastway: server keys: "))
		}
	}
	return password, keys, nil
}

// reloadable reports whether a reload has a file to read.
func (a *serverAuth) reloadable() bool { return a.passwordFile != "" || a.keyFile != "" }

// start records what the gateway g was configured with, for reloads.
func (a *serverAuth) start(g *gateway.Gateway, log *slog.Logger, password string, keys *gateway.ServerKeys) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.g, a.log, a.password, a.keys = g, log, password, keys
}

// reload reads the files again and, if they are good, gives the gateway
// the new password and keys; otherwise it keeps the old ones. Either way it
// logs the outcome (trigger says what asked: SIGHUP or the command) and
// returns the summary or the error.
func (a *serverAuth) reload(trigger string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.reloadable() {
		a.log.Info("server keys: nothing to reload (no -ServerKeyFile or -ServerAuthPasswordFile)", "trigger", trigger)
		return "nothing to reload: no -ServerKeyFile or -ServerAuthPasswordFile", nil
	}
	password, keys, err := a.load()
	if err != nil {
		a.failures++
		a.log.Error("server keys reload failed; the gateway keeps the keys it had", "trigger", trigger, "err", err)
		return "", fmt.Errorf("reload failed, the old keys stay: %w", err)
	}
	a.password, a.keys = password, keys
	a.reloads++
	a.g.SetServerAuth(password, keys)
	sum := a.summaryLocked()
	a.log.Info("server keys reloaded", "trigger", trigger, "keys", sum)
	return sum, nil
}

// summary describes the keys in use, never a key.
func (a *serverAuth) summary() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.summaryLocked()
}

func (a *serverAuth) summaryLocked() string {
	var b strings.Builder
	pw := "none"
	switch {
	case a.password != "" && a.passwordFile != "":
		pw = "file"
	case a.password != "":
		pw = "set"
	}
	fmt.Fprintf(&b, "password=%s", pw)
	if a.keyFile != "" {
		ids := a.keys.String()
		if len(ids) > 200 {
			ids = ids[:200] + "..."
		}
		fmt.Fprintf(&b, " key_file=%s entries=%d ids=%s", a.keyFile, a.keys.Len(), ids)
		if a.password == "" {
			b.WriteString(" unlisted_ids=refused")
		} else {
			b.WriteString(" unlisted_ids=password")
		}
	}
	b.WriteString(" reloads=" + strconv.FormatUint(a.reloads, 10) + " reload_failures=" + strconv.FormatUint(a.failures, 10))
	return b.String()
}

// keysCommand returns the "keys" ops command: "keys" answers the keys in
// use (which IDs have their own, never a key), "keys reload" rereads
// -ServerKeyFile and -ServerAuthPasswordFile, as SIGHUP does.
func keysCommand(a *serverAuth) cmd.Handler {
	return func(args []string) (string, error) {
		switch {
		case len(args) == 0:
			return a.summary(), nil
		case len(args) == 1 && args[0] == "reload":
			return a.reload("command")
		}
		return "", fmt.Errorf("%w: keys takes nothing or reload", cmd.ErrBadArgs)
	}
}
