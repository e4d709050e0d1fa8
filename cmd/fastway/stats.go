package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fastway-go/fastway/cmd"
	"github.com/fastway-go/fastway/fleet"
	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/snet"
)

// statsCommand returns the "stats" ops command: it answers the gateway's
// counters on one line, which the interpreter logs as the result, followed
// by the etcd registration's (etcd.*) when reg is not nil.
func statsCommand(g *gateway.Gateway, reg *fleet.Registrar) cmd.Handler {
	return func(args []string) (string, error) {
		if len(args) != 0 {
			return "", fmt.Errorf("%w: stats takes no arguments", cmd.ErrBadArgs)
		}
		line := formatStats(g.Stats())
		if reg != nil {
			line += " " + formatEtcdStats(reg.Stats())
		}
		return line, nil
	}
}

// formatEtcdStats prints the registration's counters as etcd.* pairs (the
// booleans as 0 or 1):
//
//	etcd.registered=1 etcd.up=1 etcd.registrations=1 etcd.reregistrations=0 etcd.refreshes=12 etcd.failures=0 etcd.leases_lost=0
func formatEtcdStats(s fleet.RegistrarStats) string {
	b01 := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	return fmt.Sprintf("etcd.registered=%d etcd.up=%d etcd.registrations=%d etcd.reregistrations=%d etcd.refreshes=%d etcd.failures=%d etcd.leases_lost=%d",
		b01(s.Registered), b01(s.Up), s.Registrations, s.Reregistrations, s.Refreshes, s.Failures, s.LeasesLost)
}

// formatStats prints s on one line of space-separated key=value pairs,
// grouped by a prefix: conns, client and server traffic, dials,
// disconnects by reason, and what was not delivered: undelivered_frames
// and undelivered_bytes by the reason the connection closed
// (undelivered_frames.shutdown: the data frames dropped at shutdown, cut by
// its deadline), then discarded_frames and discarded_bytes (sent by peers
// after a shutdown stopped reading them), the memory given back after
// bursts (mem.*), and the servers' fan-out (fanout.*: groups and
// memberships now, deliveries, skipped ConnIDs, refused Joins). Reason names have their spaces turned into underscores,
// so every pair is one word:
//
//	conns.client=1 conns.server=1 conns.virtual=1 client.frames_in=2 ... dials.accepted=1 dials.refused.unknown_id=0 ... disconnects.peer_closed=0 ...
func formatStats(s gateway.Stats) string {
	var b strings.Builder
	put := func(key string, v uint64) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(key)
		b.WriteByte('=')
		b.WriteString(strconv.FormatUint(v, 10))
	}
	put("conns.client", uint64(max(s.ClientConns, 0)))
	put("conns.server", uint64(max(s.ServerConns, 0)))
	put("conns.virtual", uint64(max(s.VirtualConns, 0)))
	for _, side := range []struct {
		name string
		t    gateway.Traffic
	}{{"client", s.Client}, {"server", s.Server}} {
		put(side.name+".frames_in", side.t.FramesIn)
		put(side.name+".frames_out", side.t.FramesOut)
		put(side.name+".bytes_in", side.t.BytesIn)
		put(side.name+".bytes_out", side.t.BytesOut)
	}
	put("accepted.client", s.ClientAccepts)
	put("accepted.server", s.ServerAccepts)
	put("dials.accepted", s.DialsAccepted)
	for _, r := range gateway.RefuseReasons() {
		put("dials.refused."+word(r.String()), s.Refused(r))
	}
	for _, r := range gateway.Reasons() {
		put("disconnects."+word(r.String()), s.Disconnected(r))
	}
	put("auth_failures", s.AuthFailures)
	put("frames_dropped", s.FramesDropped)
	put("closes_ignored", s.ClosesIgnored)
	put("queue_high_water.client", uint64(max(s.QueueHighWater[0], 0)))
	put("queue_high_water.server", uint64(max(s.QueueHighWater[1], 0)))
	put("large_frame_budget_used", uint64(max(s.LargeFrameBytes, 0)))
	put("large_frame_evictions", s.LargeFrameEvictions)
	put("accept_errors.client", s.AcceptErrors[0])
	put("accept_errors.server", s.AcceptErrors[1])
	for _, r := range gateway.Reasons() {
		put("undelivered_frames."+word(r.String()), s.UndeliveredAt(r).Frames)
		put("undelivered_bytes."+word(r.String()), s.UndeliveredAt(r).Bytes)
	}
	put("discarded_frames", s.Discarded.Frames)
	put("discarded_bytes", s.Discarded.Bytes)
	put("mem.pool_released_bytes", s.MemReleased)
	put("mem.reclaims", s.MemReclaims)
	put("fanout.groups", uint64(max(s.Fanout.Groups, 0)))
	put("fanout.memberships", uint64(max(s.Fanout.Memberships, 0)))
	put("fanout.deliveries", s.Fanout.Deliveries)
	put("fanout.skipped", s.Fanout.Skipped)
	put("fanout.joins_refused", s.Fanout.JoinsRefused)
	for _, t := range transports(s) {
		put(t.name+".conns", uint64(max(t.Conns, 0)))
		put(t.name+".accepts", t.Accepts)
		put(t.name+".frames_in", t.Traffic.FramesIn)
		put(t.name+".frames_out", t.Traffic.FramesOut)
		put(t.name+".bytes_in", t.Traffic.BytesIn)
		put(t.name+".bytes_out", t.Traffic.BytesOut)
		for _, r := range gateway.Reasons() {
			put(t.name+".disconnects."+word(r.String()), t.Disconnects[r])
		}
	}
	return b.String()
}

// namedTransport is one transport's share of the client side.
type namedTransport struct {
	name string
	gateway.TransportStats
}

// transports splits the client side's counters by transport: tcp (the
// client port, TLS and snet included) and ws (the WebSocket port).
func transports(s gateway.Stats) []namedTransport {
	tcp := gateway.TransportStats{
		Conns:   s.ClientConns - s.WS.Conns,
		Accepts: s.ClientAccepts - s.WS.Accepts,
		Traffic: gateway.Traffic{
			FramesIn: s.Client.FramesIn - s.WS.Traffic.FramesIn, FramesOut: s.Client.FramesOut - s.WS.Traffic.FramesOut,
			BytesIn: s.Client.BytesIn - s.WS.Traffic.BytesIn, BytesOut: s.Client.BytesOut - s.WS.Traffic.BytesOut,
		},
	}
	for i := range tcp.Disconnects {
		tcp.Disconnects[i] = s.ClientDisconnects[i] - s.WS.Disconnects[i]
	}
	return []namedTransport{{"tcp", tcp}, {"ws", s.WS}}
}

// word turns a reason name into one word.
func word(s string) string { return strings.ReplaceAll(s, " ", "_") }

// snetPort is a port's snet listener, for the snet command.
type snetPort struct {
	side string // "client" or "server"
	l    *snet.Listener
}

// snetCommand returns the "snet" ops command: it answers the counters of
// the ports that run snet on one line, each key prefixed with
// snet.<side>. (see formatSnetStats); "snet off" when neither does.
func snetCommand(ports []snetPort) cmd.Handler {
	return func(args []string) (string, error) {
		if len(args) != 0 {
			return "", fmt.Errorf("%w: snet takes no arguments", cmd.ErrBadArgs)
		}
		if len(ports) == 0 {
			return "snet off", nil
		}
		var parts []string
		for _, p := range ports {
			parts = append(parts, formatSnetStats(p.side, p.l.Stats()))
		}
		return strings.Join(parts, " "), nil
	}
}

// formatSnetStats prints one snet port's counters as key=value pairs:
//
//	snet.client.sessions=1 snet.client.resumes=3 ... snet.client.rewrite_bytes=32768
func formatSnetStats(side string, s snet.ListenerStats) string {
	var b strings.Builder
	put := func(key string, v uint64) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("snet." + side + "." + key + "=")
		b.WriteString(strconv.FormatUint(v, 10))
	}
	put("sessions", s.Sessions)
	put("resumes", s.Resumes)
	put("handshakes_refused", s.HandshakesRefused)
	put("handshakes_failed", s.HandshakesFailed)
	put("resumes_refused", s.ResumesRefused)
	put("gaps_too_large", s.GapsTooLarge)
	put("expired", s.Expired)
	put("max_replay_out", s.MaxReplayOut)
	put("max_replay_in", s.MaxReplayIn)
	put("handshaking", uint64(s.Handshaking))
	put("waiting", uint64(s.Waiting))
	put("rewrite_bytes", uint64(s.RewriteBytes))
	return b.String()
}
