package gateway

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

func TestParseServerKeys(t *testing.T) {
	k, err := ParseServerKeys([]byte("# keys\n\n  1   key one  \n100-199\tk100\r\n4294967295 last\n2-2 two\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   uint32
		key  string
		isIn bool
	}{
		{1, "key one", true}, {2, "two", true}, {3, "", false}, {99, "", false}, {100, "k100", true},
		{150, "k100", true}, {199, "k100", true}, {200, "", false}, {0, "", false}, {4294967295, "last", true},
	} {
		if key, ok := k.Key(tc.id); key != tc.key || ok != tc.isIn {
			t.Errorf("Key(%d) = %q, %v; want %q, %v", tc.id, key, ok, tc.key, tc.isIn)
		}
	}
	if got := k.String(); got != "1,2,100-199,4294967295" || k.Len() != 4 {
		t.Errorf("String %q, Len %d", got, k.Len())
	}

	const secret = "Sup3rSecretKeyMaterial"
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", "no entry"},
		{"comments only", "# nothing\n\n", "no entry"},
		{"no key", "1\n", "line 1: no key"},
		{"key only", secret + "\n", "line 1: no key after the IDs"},
		{"key with a space first", secret + " x\n", "line 1: bad server ID \"Sup3...\""},
		{"bad range", "9-3 " + secret, "ends before it starts"},
		{"negative", "-1 " + secret, "bad server ID"},
		{"too large", "4294967296 " + secret, "bad server ID"},
		{"overlap", "1-10 a\n5 " + secret + "\n", "line 2 (5) overlaps line 1 (1-10)"},
		{"duplicate", "7 " + secret + "\n\n7 b\n", "line 3 (7) overlaps line 1 (7)"},
		{"long line", "1 " + strings.Repeat("k", maxKeyLine), "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseServerKeys([]byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "kkkkkkkkkkkkk") {
				t.Fatalf("the error %q quotes a key", err)
			}
		})
	}
}

// FuzzParseServerKeys: any text parses or fails without a panic; what
// parses finds each entry's key at both ends of its range.
func FuzzParseServerKeys(f *testing.F) {
	for _, s := range []string{"1 a\n", "1-9 b\n10 c\n", "# x\n\n5-5  d e \n", "9-3 x", "1 a\n1 b", "x y"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		k, err := ParseServerKeys(text)
		if err != nil {
			return
		}
		for _, e := range k.entries {
			for _, id := range []uint32{e.first, e.last} {
				if key, ok := k.Key(id); !ok || key != e.key || key == "" {
					t.Fatalf("Key(%d) = %q, %v; want %q", id, key, ok, e.key)
				}
			}
		}
	})
}

// authAs runs a server handshake with key as id and reports whether the
// gateway registered it (it answers the first Ping) or closed it.
func authAs(t *testing.T, g *testGW, key string, id uint32) (*peer, bool) {
	t.Helper()
	c, err := net.Dial("tcp", g.serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.AuthenticateToGateway(c, key, id, waitFor); err != nil {
		t.Fatal(err)
	}
	p := newPeer(t, c)
	p.send(proto.Command{Type: proto.CmdPing})
	p.conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := p.fr.ReadFrame(); err != nil {
		return nil, false
	}
	return p, true
}

// TestServerKeys mounts issue 14's finding 9 against a gateway on
// loopback: with per-server keys, a server that holds ID 1's key cannot
// register as ID 2, nor as an ID the file does not list when there is no
// shared password; with one, the unlisted IDs take it and the listed ones
// do not. A reload (SetServerAuth) applies to the next handshakes and
// leaves registered servers alone. Every refusal is counted.
func TestServerKeys(t *testing.T) {
	g := startGW(t, Config{ServerAuthFailBurst: -1})
	keys, err := ParseServerKeys([]byte("1 key-of-one\n2 key-of-two\n10-19 key-of-ten\n"))
	if err != nil {
		t.Fatal(err)
	}
	g.SetServerAuth("", keys)
	refusals := 0
	refused := func(key string, id uint32) {
		t.Helper()
		if _, ok := authAs(t, g, key, id); ok {
			t.Fatalf("a server with key %q registered as %d", key, id)
		}
		refusals++
		eventually(t, "the refusal counted", func() bool { return g.Stats().AuthFailures == uint64(refusals) })
	}
	one, ok := authAs(t, g, "key-of-one", 1)
	if !ok {
		t.Fatal("server 1 with its key was refused")
	}
	refused("key-of-one", 2)                          // another listed ID
	refused("key-of-one", 3)                          // an ID no entry lists, and no shared password
	refused("key-of-one", 15)                         // inside a range keyed otherwise
	refused("", 3)                                    // the empty key admits nothing
	refused(testKey, 1)                               // the old shared password no longer admits a listed ID
	if _, ok := authAs(t, g, "key-of-ten", 19); !ok { // the range's key, at its end
		t.Fatal("server 19 with its range's key was refused")
	}

	// With a shared password too: unlisted IDs take it, listed ones still
	// need their own key.
	g.SetServerAuth("shared", keys)
	if _, ok := authAs(t, g, "shared", 3); !ok {
		t.Fatal("unlisted server 3 with the shared password was refused")
	}
	refused("shared", 1)
	refused("key-of-one", 3)

	// Reload: ID 2 now takes ID 1's key (say server 1's host moved to ID
	// 2); server 1, registered before, keeps its connection and routes.
	keys2, err := ParseServerKeys([]byte("2 key-of-one\n"))
	if err != nil {
		t.Fatal(err)
	}
	g.SetServerAuth("", keys2)
	if _, ok := authAs(t, g, "key-of-one", 2); !ok {
		t.Fatal("after the reload, server 2 with its new key was refused")
	}
	refused("key-of-two", 2)
	refused("key-of-one", 1)
	one.ping()
	c := g.dialClient(t)
	open(t, c, one, 1)
}
