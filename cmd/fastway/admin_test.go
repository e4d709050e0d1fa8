package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/httpget"
	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

// adminArgs start fastway on free loopback ports with the admin server on.
var adminArgs = append(slices.Clone(loopbackArgs), "-AdminAddr=127.0.0.1:0")

// adminURL waits for the admin listening line and returns its base URL.
func (p *proc) adminURL() string {
	p.t.Helper()
	return "http://" + loopback(p.t, p.waitFrom(0, "listening", "side", "admin").kv["addr"])
}

// httpGet fetches url without keeping the connection (no idle
// goroutines for goleak) and returns the status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	return httpget.Get(t, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: timeout}, url)
}

// waitStatus polls url until it answers status.
func waitStatus(t *testing.T, url string, status int) {
	t.Helper()
	poll.UntilNil(t, timeout, fmt.Sprintf("GET %s to answer %d", url, status), func() error {
		if got, body := httpGet(t, url); got != status {
			return fmt.Errorf("answered %d: %.200s", got, body)
		}
		return nil
	})
}

// scrape fetches /metrics and returns the fastway_ series by their name and
// labels as the text format writes them, e.g.
// `fastway_disconnects_total{reason="peer closed"}`.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	status, body := httpGet(t, base+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %q", status, body)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "fastway_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series
}

// waitMetrics polls /metrics until every series in want has its value and
// returns the last scrape; frames are counted once their write returns and
// disconnects once torn down, a moment after the peer sees them.
func waitMetrics(t *testing.T, base string, want map[string]float64) map[string]float64 {
	t.Helper()
	var got map[string]float64
	poll.UntilNil(t, timeout, "/metrics to show every series wanted", func() error {
		got = scrape(t, base)
		var diff []string
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				diff = append(diff, fmt.Sprintf("%s = %v (present %v), want %v", k, g, ok, v))
			}
		}
		if len(diff) > 0 {
			slices.Sort(diff)
			return errors.New("\n" + strings.Join(diff, "\n"))
		}
		return nil
	})
	return got
}

// unknownCommand is a command frame of a type the protocol does not have.
func unknownCommand() []byte {
	f := make([]byte, proto.PingSize)
	proto.PutHeader(f, 0)
	f[proto.HeaderSize] = 0x7f
	return f
}

// TestAdminMetrics drives known traffic through the binary and checks the
// exact counters on /metrics, the probes, /servers, and that the stats ops
// command reports the same numbers as /metrics.
func TestAdminMetrics(t *testing.T) {
	t.Parallel()
	p := startProc(t, t.TempDir(), adminArgs...)
	clientAddr, serverAddr := p.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)
	base := p.adminURL()
	waitStatus(t, base+"/readyz", http.StatusOK)
	if status, body := httpGet(t, base+"/healthz"); status != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q, want 200 \"ok\\n\"", status, body)
	}

	// A client breaking the protocol: one 9-byte frame, then closed.
	bad := dialPeer(t, clientAddr)
	bad.send(unknownCommand())
	bad.conn.SetReadDeadline(time.Now().Add(timeout))
	if f, err := bad.fr.ReadFrame(); err == nil {
		t.Fatalf("after an unknown command: got frame % x, want the connection closed", f)
	}

	// Server 1 (Ping 9 bytes each way), a client that dials it (Dial 13 in,
	// Accept 17 out, Connect 17 to the server) and dials 99, unknown
	// (Dial 13 in, Refuse 13 out); then 10 data frames of 8+16 bytes from
	// the client and 5 of 8+32 from the server.
	const toServer, toClient = 10, 5
	srv := dialServer(t, serverAddr, 1)
	cl := dialPeer(t, clientAddr)
	cl.send(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))
	id := cl.readCmd(proto.CmdAccept).ConnID
	srv.readCmd(proto.CmdConnect)
	cl.send(proto.Command{Type: proto.CmdDial, RemoteID: 99}.Encode(nil))
	if r := cl.readCmd(proto.CmdRefuse); r.RemoteID != 99 {
		t.Fatalf("Refuse %+v, want RemoteID 99", r)
	}
	for i := range toServer {
		msg := fmt.Sprintf("client frame %03d", i) // 16 bytes
		cl.send(proto.EncodeData(nil, id, []byte(msg)))
		srv.readData(id, msg)
	}
	for i := range toClient {
		msg := fmt.Sprintf("server frame %03d", i) + strings.Repeat(".", 16) // 32 bytes
		srv.send(proto.EncodeData(nil, id, []byte(msg)))
		cl.readData(id, msg)
	}

	waitMetrics(t, base, map[string]float64{
		`fastway_connections{side="client"}`:                 1,
		`fastway_connections{side="server"}`:                 1,
		`fastway_virtual_connections`:                        1,
		`fastway_frames_received_total{side="client"}`:       1 + 2 + toServer,
		`fastway_bytes_received_total{side="client"}`:        9 + 2*13 + toServer*(8+16),
		`fastway_frames_sent_total{side="client"}`:           2 + toClient,
		`fastway_bytes_sent_total{side="client"}`:            17 + 13 + toClient*(8+32),
		`fastway_frames_received_total{side="server"}`:       1 + toClient,
		`fastway_bytes_received_total{side="server"}`:        9 + toClient*(8+32),
		`fastway_frames_sent_total{side="server"}`:           2 + toServer,
		`fastway_bytes_sent_total{side="server"}`:            9 + 17 + toServer*(8+16),
		`fastway_connections_accepted_total{side="client"}`:  2,
		`fastway_connections_accepted_total{side="server"}`:  1,
		`fastway_dials_accepted_total`:                       1,
		`fastway_dials_refused_total{reason="unknown id"}`:   1,
		`fastway_dials_refused_total{reason="limit"}`:        0,
		`fastway_disconnects_total{reason="protocol error"}`: 1,
		`fastway_disconnects_total{reason="peer closed"}`:    0,
		`fastway_disconnects_total{reason="slow consumer"}`:  0,
		`fastway_disconnects_total{reason="idle timeout"}`:   0,
		`fastway_disconnects_total{reason="auth failed"}`:    0,
		`fastway_disconnects_total{reason="shutdown"}`:       0,
		`fastway_disconnects_total{reason="write error"}`:    0,
		`fastway_disconnects_total{reason="read error"}`:     0,
		`fastway_server_auth_failures_total`:                 0,
		`fastway_frames_dropped_total`:                       0,
		`fastway_closes_ignored_total`:                       0,
	})

	// The Go runtime and process collectors are there too.
	_, body := httpGet(t, base+"/metrics")
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if !strings.Contains(body, "\n"+name+" ") {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// /servers: the one server, with its address as the gateway sees it.
	status, body := httpGet(t, base+"/servers")
	var servers []struct {
		ID            uint32   `json:"id"`
		Addr          string   `json:"addr"`
		VirtualConns  int      `json:"virtual_conns"`
		UptimeSeconds *float64 `json:"uptime_seconds"`
		Newest        bool     `json:"newest"`
	}
	if err := json.Unmarshal([]byte(body), &servers); status != http.StatusOK || err != nil {
		t.Fatalf("GET /servers: %d %v: %q", status, err, body)
	}
	if len(servers) != 1 {
		t.Fatalf("/servers lists %d servers, want 1: %s", len(servers), body)
	}
	s := servers[0]
	if s.ID != 1 || s.Addr != srv.conn.LocalAddr().String() || s.VirtualConns != 1 || !s.Newest ||
		s.UptimeSeconds == nil || *s.UptimeSeconds < 0 || *s.UptimeSeconds > timeout.Seconds() {
		t.Errorf("/servers: %s, want id 1, addr %s, 1 virtual connection, newest, a small uptime", body, srv.conn.LocalAddr())
	}

	checkStatsMatchMetrics(t, p, base)

	// A loopback admin address logs no warning.
	p.mu.Lock()
	for _, l := range p.lines {
		if l.kv["level"] == "WARN" {
			t.Errorf("unexpected warning: %s", l.raw)
		}
	}
	p.mu.Unlock()

	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), timeout); err == nil {
		c.Close()
		t.Error("the admin port still accepts connections after exit")
	}
}

// statsSeries maps a stats key to the /metrics series with the same number.
func statsSeries(key string) (string, bool) {
	if r, ok := strings.CutPrefix(key, "dials.refused."); ok {
		return `fastway_dials_refused_total{reason="` + strings.ReplaceAll(r, "_", " ") + `"}`, true
	}
	if r, ok := strings.CutPrefix(key, "disconnects."); ok {
		return `fastway_disconnects_total{reason="` + strings.ReplaceAll(r, "_", " ") + `"}`, true
	}
	if r, ok := strings.CutPrefix(key, "undelivered_frames."); ok {
		return `fastway_frames_undelivered_total{reason="` + strings.ReplaceAll(r, "_", " ") + `"}`, true
	}
	if r, ok := strings.CutPrefix(key, "undelivered_bytes."); ok {
		return `fastway_bytes_undelivered_total{reason="` + strings.ReplaceAll(r, "_", " ") + `"}`, true
	}
	if tr, kind, ok := strings.Cut(key, "."); ok && (tr == "tcp" || tr == "ws") {
		if r, ok := strings.CutPrefix(kind, "disconnects."); ok {
			return `fastway_client_disconnects_total{reason="` + strings.ReplaceAll(r, "_", " ") + `",transport="` + tr + `"}`, true
		}
		name := map[string]string{
			"conns": "fastway_client_connections", "accepts": "fastway_client_connections_accepted_total",
			"frames_in": "fastway_client_frames_received_total", "frames_out": "fastway_client_frames_sent_total",
			"bytes_in": "fastway_client_bytes_received_total", "bytes_out": "fastway_client_bytes_sent_total",
		}[kind]
		return name + `{transport="` + tr + `"}`, name != ""
	}
	if side, kind, ok := strings.Cut(key, "."); ok && (side == "client" || side == "server") {
		name := map[string]string{
			"frames_in": "fastway_frames_received_total", "frames_out": "fastway_frames_sent_total",
			"bytes_in": "fastway_bytes_received_total", "bytes_out": "fastway_bytes_sent_total",
		}[kind]
		return name + `{side="` + side + `"}`, name != ""
	}
	s, ok := map[string]string{
		"conns.client":            `fastway_connections{side="client"}`,
		"conns.server":            `fastway_connections{side="server"}`,
		"conns.virtual":           `fastway_virtual_connections`,
		"accepted.client":         `fastway_connections_accepted_total{side="client"}`,
		"accepted.server":         `fastway_connections_accepted_total{side="server"}`,
		"dials.accepted":          `fastway_dials_accepted_total`,
		"auth_failures":           `fastway_server_auth_failures_total`,
		"frames_dropped":          `fastway_frames_dropped_total`,
		"closes_ignored":          `fastway_closes_ignored_total`,
		"discarded_frames":        `fastway_frames_discarded_at_shutdown_total`,
		"discarded_bytes":         `fastway_bytes_discarded_at_shutdown_total`,
		"mem.pool_released_bytes": `fastway_memory_pool_released_bytes_total`,
		"mem.reclaims":            `fastway_memory_reclaims_total`,
		"fanout.groups":           `fastway_fanout_groups`,
		"fanout.memberships":      `fastway_fanout_memberships`,
		"fanout.deliveries":       `fastway_fanout_deliveries_total`,
		"fanout.skipped":          `fastway_fanout_skipped_total`,
		"fanout.joins_refused":    `fastway_fanout_joins_refused_total`,
		"queue_high_water.client": `fastway_send_queue_high_water_frames{side="client"}`,
		"queue_high_water.server": `fastway_send_queue_high_water_frames{side="server"}`,
		"large_frame_budget_used": `fastway_large_frame_budget_used_bytes`,
		"large_frame_evictions":   `fastway_large_frame_evictions_total`,
		"accept_errors.client":    `fastway_accept_errors_total{side="client"}`,
		"accept_errors.server":    `fastway_accept_errors_total{side="server"}`,
	}[key]
	return s, ok
}

// checkStatsMatchMetrics runs the stats ops command, scrapes /metrics, and
// checks both report every counter with the same value: each stats key has
// its series and each fastway_ series its stats key. The gateway must be
// quiet meanwhile.
func checkStatsMatchMetrics(t *testing.T, p *proc, base string) {
	t.Helper()
	res := p.run("stats", false).kv["result"]
	series := scrape(t, base)
	covered := map[string]bool{}
	for _, f := range strings.Fields(res) {
		key, val, _ := strings.Cut(f, "=")
		s, ok := statsSeries(key)
		if !ok {
			t.Errorf("stats key %s has no metric", key)
			continue
		}
		covered[s] = true
		m, ok := series[s]
		if !ok {
			t.Errorf("stats key %s: /metrics has no %s", key, s)
			continue
		}
		if strconv.FormatFloat(m, 'f', -1, 64) != val {
			t.Errorf("stats %s=%s, /metrics %s %v", key, val, s, m)
		}
	}
	for s := range series {
		// The admin server's own counter is not the gateway's.
		if !covered[s] && s != "fastway_admin_requests_refused_total" {
			t.Errorf("/metrics %s has no stats key", s)
		}
	}
}

// TestAdminReadyzDuringShutdown holds the gateway's graceful shutdown open
// (a client that reads nothing while 32 MiB are queued to it) and checks
// that meanwhile /readyz answers 503 while /healthz and /metrics still
// answer; once the client goes, fastway exits 0 and the admin port closes.
func TestAdminReadyzDuringShutdown(t *testing.T) {
	t.Parallel()
	// The client's queue may hold what the server sends it (32 MiB).
	p := startProc(t, t.TempDir(), append(slices.Clone(adminArgs), "-ClientSendQueueBytes=64M")...)
	clientAddr, serverAddr := p.ready()
	base := p.adminURL()
	waitStatus(t, base+"/readyz", http.StatusOK)

	srv := dialServer(t, loopback(t, serverAddr), 1)
	cl := dialPeer(t, loopback(t, clientAddr))
	// A small, locked receive buffer: the gateway cannot hand it much.
	if err := cl.conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	cl.send(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))
	id := cl.readCmd(proto.CmdAccept).ConnID
	srv.readCmd(proto.CmdConnect)
	const frames, size = 128, 256 << 10
	var data []byte
	for range frames {
		data = proto.EncodeData(data, id, make([]byte, size))
	}
	srv.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := srv.conn.Write(data); err != nil {
		t.Fatal(err)
	}
	got := waitMetrics(t, base, map[string]float64{`fastway_frames_received_total{side="server"}`: 1 + frames})
	if n := got[`fastway_frames_sent_total{side="client"}`]; n >= 1+frames {
		t.Fatalf("the gateway wrote all %v frames to a client that reads nothing", n)
	}

	p.signal(syscall.SIGTERM)
	p.waitFrom(0, "shutting down")
	waitStatus(t, base+"/readyz", http.StatusServiceUnavailable)
	if status, _ := httpGet(t, base+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz during shutdown: %d, want 200", status)
	}
	if m := scrape(t, base); len(m) == 0 {
		t.Error("GET /metrics during shutdown: no fastway_ series")
	}
	p.mu.Lock()
	for _, l := range p.lines {
		if l.kv["msg"] == "stopped" {
			t.Errorf("fastway stopped while a client still had frames queued: %s", l.raw)
		}
	}
	p.mu.Unlock()

	cl.conn.Close() // the gateway's write fails; its shutdown completes
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	p.waitFrom(0, "stopped")
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), timeout); err == nil {
		c.Close()
		t.Error("the admin port still accepts connections after exit")
	}
}

// TestLogFormatJSONLevelWarn runs fastway with -LogFormat=json
// -LogLevel=warn and an admin address open to other hosts: the log is one
// JSON object a line, the only record is the admin warning, and no INFO
// record is written, not even at exit.
func TestLogFormatJSONLevelWarn(t *testing.T) {
	t.Parallel()
	p := startProc(t, t.TempDir(), append(slices.Clone(loopbackArgs), "-LogFormat=json", "-LogLevel=warn", "-AdminAddr=0.0.0.0:0")...)
	type record struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
		Addr  string `json:"addr"`
	}
	records := func() []record {
		p.mu.Lock()
		defer p.mu.Unlock()
		var rs []record
		for _, l := range p.lines {
			var r record
			if err := json.Unmarshal([]byte(l.raw), &r); err != nil {
				t.Fatalf("log line %q is not JSON: %v", l.raw, err)
			}
			rs = append(rs, r)
		}
		return rs
	}
	poll.Until(t, timeout, "a log record", func() bool { return len(records()) > 0 })
	w := records()[0]
	if w.Level != "WARN" || !strings.Contains(w.Msg, "reachable from other hosts") {
		t.Fatalf("first record %+v, want the admin warning", w)
	}
	// The admin server answers on the port the warning names.
	waitStatus(t, "http://"+loopback(t, w.Addr)+"/healthz", http.StatusOK)

	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	for _, r := range records() {
		if r.Level != "WARN" && r.Level != "ERROR" {
			t.Errorf("record %+v logged at -LogLevel=warn", r)
		}
	}
}

// TestAdminAddrInUse: an admin port that cannot be bound stops the start,
// exit 1, before the pidfile is written.
func TestAdminAddrInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := startProc(t, t.TempDir(), append(slices.Clone(loopbackArgs), "-AdminAddr="+ln.Addr().String())...)
	if code := p.wait(); code != exitError {
		t.Errorf("exit code %d, want %d", code, exitError)
	}
	p.waitFrom(0, "cannot listen", "side", "admin")
	checkNoPidFile(t, p.dir)
}
