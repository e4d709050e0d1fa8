package admin

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/proto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// unknownCmd is a command frame whose type no protocol version has: the
// gateway closes its sender with reason "protocol error".
func unknownCmd() []byte {
	f := make([]byte, proto.PingSize)
	proto.PutHeader(f, 0)
	f[proto.HeaderSize] = 0x7f
	return f
}

// traffic runs a known exchange through g and waits until the gateway has
// counted all of it:
//   - a client sends an unknown command and is closed (protocol error);
//   - server 1 registers (Ping answered);
//   - a client dials server 1 (accepted) and 42 (unknown id), the server
//     dials client 0 (invalid id);
//   - the client sends 3 data frames of 10 bytes, the server 2 of 20.
func traffic(t *testing.T, g *testGateway) {
	t.Helper()
	bad := g.dialClient(t)
	bad.send(unknownCmd())
	bad.expectEOF()

	s := g.dialServer(t, 1)
	c := g.dialClient(t)
	id := open(t, c, s, 1)
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: 42}.Encode(nil))
	c.expectCmd(proto.CmdRefuse)
	s.send(proto.Command{Type: proto.CmdDial, RemoteID: 0}.Encode(nil))
	s.expectCmd(proto.CmdRefuse)
	for range 3 {
		c.send(proto.EncodeData(nil, id, make([]byte, 10)))
		s.read()
	}
	for range 2 {
		s.send(proto.EncodeData(nil, id, make([]byte, 20)))
		c.read()
	}
	// Fan-out: a group of one, a Publish to it, a Multicast to it and to
	// a ConnID that is not live (skipped).
	s.send(proto.Fanout{Type: proto.CmdJoin, GroupID: 5, ConnID: id}.Append(nil))
	s.send(proto.Fanout{Type: proto.CmdPublish, GroupID: 5, Payload: []byte("pub")}.Append(nil))
	s.send(proto.AppendMulticast(nil, []byte("mc"), id, 1<<30))
	c.read()
	c.read()
	// Frames are counted out after their write returns and a disconnect
	// after the teardown: wait for the last of each.
	eventually(t, "counters settled", func() bool {
		st := g.Stats()
		return st.Client.FramesOut == 6 && st.Server.FramesOut == 6 && st.ClientConns == 1 &&
			st.Disconnected(gateway.ReasonProtocolError) == 1
	})
}

// TestCollectorLint checks the gateway metrics, and the whole /metrics
// registry, against Prometheus's naming and help rules (promlint, the
// rules of promtool check metrics).
func TestCollectorLint(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	traffic(t, g)
	problems, err := testutil.CollectAndLint(NewCollector(g.Gateway))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	problems, err = testutil.GatherAndLint(New(g.Gateway, Options{}).Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint (registry): %s: %s", p.Metric, p.Text)
	}
}

// TestCollectorValues checks exact values of a few series after a known
// exchange.
func TestCollectorValues(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	traffic(t, g)
	c := NewCollector(g.Gateway)

	// Client in: the unknown command (9 bytes), two Dials (13 each), three
	// data frames (8+10). Server in: Ping (9), a Dial (13), two data frames
	// (8+20), Join (17), Publish (17+3), Multicast (11+2·4+2).
	want := `
# HELP fastway_connections Physical connections open now, by side (server: authenticated).
# TYPE fastway_connections gauge
fastway_connections{side="client"} 1
fastway_connections{side="server"} 1
# HELP fastway_virtual_connections Virtual connections open now.
# TYPE fastway_virtual_connections gauge
fastway_virtual_connections 1
# HELP fastway_frames_received_total Frames read from peers, by side, commands included.
# TYPE fastway_frames_received_total counter
fastway_frames_received_total{side="client"} 6
fastway_frames_received_total{side="server"} 7
# HELP fastway_bytes_received_total Bytes of frames read from peers, by side.
# TYPE fastway_bytes_received_total counter
fastway_bytes_received_total{side="client"} 89
fastway_bytes_received_total{side="server"} 136
# HELP fastway_connections_accepted_total Client connections accepted and server connections authenticated, by side.
# TYPE fastway_connections_accepted_total counter
fastway_connections_accepted_total{side="client"} 2
fastway_connections_accepted_total{side="server"} 1
# HELP fastway_dials_accepted_total Dials that opened a virtual connection.
# TYPE fastway_dials_accepted_total counter
fastway_dials_accepted_total 1
# HELP fastway_dials_refused_total Dials refused, by reason.
# TYPE fastway_dials_refused_total counter
fastway_dials_refused_total{reason="invalid id"} 1
fastway_dials_refused_total{reason="limit"} 0
fastway_dials_refused_total{reason="peer closing"} 0
fastway_dials_refused_total{reason="unknown id"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"fastway_connections", "fastway_virtual_connections", "fastway_frames_received_total",
		"fastway_bytes_received_total", "fastway_connections_accepted_total",
		"fastway_dials_accepted_total", "fastway_dials_refused_total"); err != nil {
		t.Error(err)
	}
	// Client out: Accept (17), a Refuse (13), two data frames (8+20), two
	// deliveries (8+3, 8+2).
	// Server out: Ping (9), Connect (17), a Refuse (13), three data frames
	// (8+10).
	for _, tc := range []struct {
		name, labels string
		want         float64
	}{
		{"fastway_frames_sent_total", `side="client"`, 6},
		{"fastway_bytes_sent_total", `side="client"`, 107},
		{"fastway_frames_sent_total", `side="server"`, 6},
		{"fastway_bytes_sent_total", `side="server"`, 93},
		{"fastway_disconnects_total", `reason="protocol error"`, 1},
		{"fastway_disconnects_total", `reason="slow consumer"`, 0},
		{"fastway_server_auth_failures_total", "", 0},
		{"fastway_frames_dropped_total", "", 0},
		{"fastway_closes_ignored_total", "", 0},
	} {
		if got := sample(t, c, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s{%s} = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// One series per disconnect reason, zero or not.
	if n, want := testutil.CollectAndCount(c, "fastway_disconnects_total"), len(gateway.Reasons()); n != want {
		t.Errorf("%d disconnect series, want %d (one per reason)", n, want)
	}
}

// TestCollectorConsistent registers the collector on a pedantic registry,
// which checks that every metric collected was described, with its labels.
func TestCollectorConsistent(t *testing.T) {
	g := startGateway(t, gateway.Config{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(g.Gateway))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 35 {
		t.Errorf("%d metric families, want 35 (28, and 7 by transport)", len(mfs))
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "fastway_") {
			t.Errorf("metric %s lacks the fastway_ prefix", mf.GetName())
		}
	}
}

// TestCollectorMatchesStats checks every metric against the Stats
// snapshot it comes from, after the known exchange.
func TestCollectorMatchesStats(t *testing.T) {
	g := startGateway(t, gateway.Config{ClientSendChanSize: 4})
	traffic(t, g)
	c := NewCollector(g.Gateway)
	st := g.Stats()
	check := func(name, labels string, want float64) {
		t.Helper()
		if got := sample(t, c, name, labels); got != want {
			t.Errorf("%s{%s} = %v, Stats has %v", name, labels, got, want)
		}
	}
	check("fastway_connections", `side="client"`, float64(st.ClientConns))
	check("fastway_connections", `side="server"`, float64(st.ServerConns))
	check("fastway_virtual_connections", "", float64(st.VirtualConns))
	for side, tr := range map[string]gateway.Traffic{"client": st.Client, "server": st.Server} {
		l := `side="` + side + `"`
		check("fastway_frames_received_total", l, float64(tr.FramesIn))
		check("fastway_frames_sent_total", l, float64(tr.FramesOut))
		check("fastway_bytes_received_total", l, float64(tr.BytesIn))
		check("fastway_bytes_sent_total", l, float64(tr.BytesOut))
	}
	check("fastway_connections_accepted_total", `side="client"`, float64(st.ClientAccepts))
	check("fastway_connections_accepted_total", `side="server"`, float64(st.ServerAccepts))
	check("fastway_dials_accepted_total", "", float64(st.DialsAccepted))
	for _, r := range gateway.RefuseReasons() {
		check("fastway_dials_refused_total", `reason="`+r.String()+`"`, float64(st.Refused(r)))
	}
	for _, r := range gateway.Reasons() {
		check("fastway_disconnects_total", `reason="`+r.String()+`"`, float64(st.Disconnected(r)))
	}
	check("fastway_server_auth_failures_total", "", float64(st.AuthFailures))
	check("fastway_frames_dropped_total", "", float64(st.FramesDropped))
	check("fastway_closes_ignored_total", "", float64(st.ClosesIgnored))
	check("fastway_send_queue_high_water_frames", `side="client"`, float64(st.QueueHighWater[0]))
	check("fastway_send_queue_high_water_frames", `side="server"`, float64(st.QueueHighWater[1]))
	check("fastway_accept_errors_total", `side="client"`, float64(st.AcceptErrors[0]))
	check("fastway_accept_errors_total", `side="server"`, float64(st.AcceptErrors[1]))
	for _, r := range gateway.Reasons() {
		check("fastway_frames_undelivered_total", `reason="`+r.String()+`"`, float64(st.UndeliveredAt(r).Frames))
		check("fastway_bytes_undelivered_total", `reason="`+r.String()+`"`, float64(st.UndeliveredAt(r).Bytes))
	}
	check("fastway_frames_discarded_at_shutdown_total", "", float64(st.Discarded.Frames))
	check("fastway_bytes_discarded_at_shutdown_total", "", float64(st.Discarded.Bytes))
	check("fastway_memory_pool_released_bytes_total", "", float64(st.MemReleased))
	check("fastway_memory_reclaims_total", "", float64(st.MemReclaims))
	if st.Fanout != (gateway.FanoutStats{Groups: 1, Memberships: 1, Deliveries: 2, Skipped: 1}) {
		t.Errorf("fan-out stats %+v after the known exchange", st.Fanout)
	}
	check("fastway_fanout_groups", "", float64(st.Fanout.Groups))
	check("fastway_fanout_memberships", "", float64(st.Fanout.Memberships))
	check("fastway_fanout_deliveries_total", "", float64(st.Fanout.Deliveries))
	check("fastway_fanout_skipped_total", "", float64(st.Fanout.Skipped))
	check("fastway_fanout_joins_refused_total", "", float64(st.Fanout.JoinsRefused))
}

// sample returns the value of the series name{labels} collected from c
// (labels as the text format prints them; "" for none). It fails the test
// if there is no such series.
func sample(t *testing.T, c prometheus.Collector, name, labels string) float64 {
	t.Helper()
	text, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, name)
	if err != nil {
		t.Fatal(err)
	}
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in:\n%s", series, text)
	return 0
}
