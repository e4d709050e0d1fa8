package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxServerKeysSize bounds, in bytes, the text ParseServerKeys reads.
const MaxServerKeysSize = 1 << 20

// maxKeyLine bounds one line of a key file, in bytes.
const maxKeyLine = 4 << 10

// ServerKeys maps server IDs, one by one or by ranges, to the key a server
// must prove in the handshake to register under that ID (docs/protocol.md
// §2: the ServerID travels next to the digest, so the gateway picks the key
// by it and the servers need no change). A server that knows one ID's key
// cannot register under another ID with it. It is immutable; ParseServerKeys
// builds one, Gateway.SetServerAuth installs a new one without a restart.
type ServerKeys struct {
	entries []keyEntry // sorted by first; no two overlap
}

// keyEntry gives the IDs first..last (inclusive) one key.
type keyEntry struct {
	first, last uint32
	key         string
	line        int // in the file, for messages
}

// ParseServerKeys reads a key file: one entry a line, an ID or an inclusive
// range FIRST-LAST (decimal u32), white space, then the key, which is the
// rest of the line without its surrounding white space (so a key may hold
// spaces inside, but not at either end). Blank lines and lines whose first
// non-blank character is # are ignored. For example:
//
//	# fastway server keys
//	1          9f8e7d6c5b4a39281706f5e4d3c2b1a0
//	100-199    3b2a19080f1e2d3c4b5a69788796a5b4
//
// Entries may not overlap, a key may not be empty, and the file must hold
// at least one entry. Errors name the line, never a key.
func ParseServerKeys(text []byte) (*ServerKeys, error) {
	if len(text) > MaxServerKeysSize {
		return nil, fmt.Errorf("fastway: server keys: larger than %d bytes", MaxServerKeysSize)
	}
	k := &ServerKeys{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 256), maxKeyLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		ids, key := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			ids, key = line[:i], strings.TrimSpace(line[i+1:])
		}
		if key == "" {
			return nil, fmt.Errorf("fastway: server keys: line %d: no key after the IDs", n)
		}
		e := keyEntry{key: key, line: n}
		var err error
		if a, b, isRange := strings.Cut(ids, "-"); isRange {
			if e.first, err = parseID(a); err == nil {
				e.last, err = parseID(b)
			}
			if err == nil && e.first > e.last {
				err = fmt.Errorf("range %d-%d ends before it starts", e.first, e.last)
			}
		} else {
			e.first, err = parseID(ids)
			e.last = e.first
		}
		if err != nil {
			return nil, fmt.Errorf("fastway: server keys: line %d: %w (want ID or FIRST-LAST, then the key)", n, err)
		}
		k.entries = append(k.entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("fastway: server keys: a line is longer than %d bytes", maxKeyLine)
		}
		return nil, fmt.Errorf("fastway: server keys: %w", err)
	}
	if len(k.entries) == 0 {
		return nil, errors.New("fastway: server keys: no entry (want lines of ID or FIRST-LAST, then the key)")
	}
	slices.SortFunc(k.entries, func(a, b keyEntry) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	for i := 1; i < len(k.entries); i++ {
		a, b := k.entries[i-1], k.entries[i]
		if b.first <= a.last {
			first, second := a, b
			if first.line > second.line {
				first, second = second, first
			}
			return nil, fmt.Errorf("fastway: server keys: line %d (%s) overlaps line %d (%s): an ID has one key", second.line, second.ids(), first.line, first.ids())
		}
	}
	return k, nil
}

// parseID parses a decimal server ID.
func parseID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad server ID %q", capWord(s))
	}
	return uint32(v), nil
}

// capWord shortens what a message quotes from the file, so that a line
// holding only a key is not quoted whole.
func capWord(s string) string {
	if len(s) > 12 {
		return s[:4] + "..."
	}
	return s
}

// ids prints the entry's IDs: "7" or "100-199".
func (e keyEntry) ids() string {
	if e.first == e.last {
		return strconv.FormatUint(uint64(e.first), 10)
	}
	return strconv.FormatUint(uint64(e.first), 10) + "-" + strconv.FormatUint(uint64(e.last), 10)
}

// Key returns the key of server ID id, and false if no entry covers it.
func (k *ServerKeys) Key(id uint32) (string, bool) {
	if k == nil {
		return "", false
	}
	i, found := slices.BinarySearchFunc(k.entries, id, func(e keyEntry, id uint32) int {
		switch {
		case e.last < id:
			return -1
		case e.first > id:
			return 1
		}
		return 0
	})
	if !found {
		return "", false
	}
	return k.entries[i].key, true
}

// Len returns the number of entries.
func (k *ServerKeys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.entries)
}

// String lists the IDs that have keys, never the keys: "1,100-199".
func (k *ServerKeys) String() string {
	if k == nil {
		return ""
	}
	parts := make([]string, len(k.entries))
	for i, e := range k.entries {
		parts[i] = e.ids()
	}
	return strings.Join(parts, ",")
}

// serverAuth is what the server handshake checks against: the shared
// password and the per-server keys. It is replaced whole (SetServerAuth).
type serverAuth struct {
	password string
	keys     *ServerKeys
}

// key returns the key server ID id must prove: its own when keys lists
// it; else the password, unless keys is set and the password is empty
// (then no key admits it, rather than the empty one).
func (a *serverAuth) key(id uint32) (string, bool) {
	if key, ok := a.keys.Key(id); ok {
		return key, true
	}
	if a.keys != nil && a.password == "" {
		return "", false
	}
	return a.password, true
}

// SetServerAuth replaces the shared password and the per-server keys
// (Config.ServerAuthPassword and Config.ServerKeys) for every handshake
// that checks its reply from now on. Servers already registered stay: a
// reload does not cut anyone off. It is safe to call at any time.
func (g *Gateway) SetServerAuth(password string, keys *ServerKeys) {
	g.auth.Store(&serverAuth{password: password, keys: keys})
}

// serverKey is the handshake's proto.KeyFunc.
func (g *Gateway) serverKey(id uint32) (string, bool) {
	return g.auth.Load().key(id)
}
