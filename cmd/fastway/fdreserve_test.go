package main

import (
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// TestFDReserve (issue 14, finding 4) mounts the review's attack on the
// binary: fastway runs under a descriptor limit of 4,000 (ulimit -n in the
// shell that execs it), with default flags, and 4,000 idle clients connect.
// The review saw a server's registration time out and "accept4: too many
// open files" logged in a loop: nothing capped client connections. The
// default -ClientMaxConns now leaves 1,344 descriptors (64 + the 1024 server
// handshakes + 256 servers) out of the clients' reach: 2,656 clients get in,
// the others are refused, and a server registers, the admin port answers,
// and no accept fails, while clients hold every descriptor they may.
//
// FASTWAY_FDRESERVE_BIN runs it against another build (one from before the
// fix fails it).
func TestFDReserve(t *testing.T) {
	const limit, clients, reserve = 4000, 4000, 64 + 1024 + 256
	bin := binary
	if b := os.Getenv("FASTWAY_FDRESERVE_BIN"); b != "" {
		bin = b
	}
	args := append([]string{"-c", `ulimit -n ` + strconv.Itoa(limit) + ` && exec "$0" "$@"`, bin}, adminArgs...)
	p := startBinary(t, "/bin/sh", t.TempDir(), args...)
	clientAddr, serverAddr := p.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)
	admin := p.adminURL()
	maxConns := limit - reserve
	if bin == binary {
		started := p.waitFrom(0, "started", "fd_limit", strconv.Itoa(limit), "fd_reserve", strconv.Itoa(reserve))
		if got := started.kv["client_max_conns"]; got != strconv.Itoa(maxConns) {
			t.Fatalf("client_max_conns=%s under a limit of %d, want %d", got, limit, maxConns)
		}
	}

	// The clients: each connects and sends nothing. Those past the cap
	// are closed by the gateway; every socket stays open on this side
	// until the end.
	start := time.Now()
	for i := range clients {
		c, err := net.DialTimeout("tcp", clientAddr, timeout)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	p.waitStats("conns.client="+strconv.Itoa(maxConns), "disconnects.connection_limit="+strconv.Itoa(clients-maxConns))
	t.Logf("%d idle clients connected in %v under a limit of %d descriptors: %d held, %d refused",
		clients, time.Since(start).Round(time.Millisecond), limit, maxConns, clients-maxConns)

	// While they hold every descriptor they may: a server registers and
	// serves, the admin port answers, a client past the cap is turned
	// away at once, and no accept has failed.
	srv := dialServer(t, serverAddr, 1)
	if status, body := httpGet(t, admin+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz: %d %q", status, body)
	}
	late := dialPeer(t, clientAddr)
	waitClosed(t, late, "a client past the cap")
	srv.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
	srv.readCmd(proto.CmdPing)
	p.waitStats("conns.server=1", "accept_errors.client=0", "accept_errors.server=0")
	p.mu.Lock()
	lines := slices.Clone(p.lines)
	p.mu.Unlock()
	for _, l := range lines {
		if m := l.kv["msg"]; m == "accept failing; backing off" || m == "accept failed; retrying" {
			t.Errorf("accept failed: %s", l.raw)
		}
	}
	p.stop()
}
