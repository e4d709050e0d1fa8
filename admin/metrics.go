package admin

import (
	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/internal/ws"
	"github.com/prometheus/client_golang/prometheus"
)

// namespace prefixes every gateway metric.
const namespace = "fastway"

// Label values of the side label.
const (
	sideClient = "client"
	sideServer = "server"
)

// collector exports a gateway's Stats at scrape time. The descriptors are
// built once; Collect takes one snapshot and turns it into const metrics,
// so the gateway itself keeps no Prometheus state.
type collector struct {
	g *gateway.Gateway

	conns, virtualConns            *prometheus.Desc
	framesIn, framesOut            *prometheus.Desc
	bytesIn, bytesOut              *prometheus.Desc
	accepted                       *prometheus.Desc
	dialsAccepted, dialsRefused    *prometheus.Desc
	disconnects                    *prometheus.Desc
	authFailures                   *prometheus.Desc
	framesDropped, closesIgnored   *prometheus.Desc
	queueHighWater                 *prometheus.Desc
	largeFrameBytes                *prometheus.Desc
	largeFrameEvictions            *prometheus.Desc
	acceptErrors                   *prometheus.Desc
	undeliveredFrames              *prometheus.Desc
	undeliveredBytes               *prometheus.Desc
	discardedFrames                *prometheus.Desc
	discardedBytes                 *prometheus.Desc
	memReleased, memReclaims       *prometheus.Desc
	groups, memberships            *prometheus.Desc
	deliveries, skipped            *prometheus.Desc
	joinsRefused                   *prometheus.Desc
	tConns, tAccepted              *prometheus.Desc
	tFramesIn, tFramesOut          *prometheus.Desc
	tBytesIn, tBytesOut            *prometheus.Desc
	tDisconnects                   *prometheus.Desc
	refuseReasons                  []gateway.RefuseReason
	reasons                        []gateway.Reason
	refuseReasonNames, reasonNames []string
	describe                       []*prometheus.Desc
}

// NewCollector returns a prometheus.Collector for g's counters (the
// fastway_* metrics of docs/operations.md). Each scrape calls g.Stats once.
// Register it on your own registry to export a gateway embedded in another
// program; New does that for its /metrics.
func NewCollector(g *gateway.Gateway) prometheus.Collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	c := &collector{
		g:                   g,
		conns:               desc("connections", "Physical connections open now, by side (server: authenticated).", "side"),
		virtualConns:        desc("virtual_connections", "Virtual connections open now."),
		framesIn:            desc("frames_received_total", "Frames read from peers, by side, commands included.", "side"),
		framesOut:           desc("frames_sent_total", "Frames written to peers, by side, commands included.", "side"),
		bytesIn:             desc("bytes_received_total", "Bytes of frames read from peers, by side.", "side"),
		bytesOut:            desc("bytes_sent_total", "Bytes written to peers, by side.", "side"),
		accepted:            desc("connections_accepted_total", "Client connections accepted and server connections authenticated, by side.", "side"),
		dialsAccepted:       desc("dials_accepted_total", "Dials that opened a virtual connection."),
		dialsRefused:        desc("dials_refused_total", "Dials refused, by reason.", "reason"),
		disconnects:         desc("disconnects_total", "Physical connections closed, by reason.", "reason"),
		authFailures:        desc("server_auth_failures_total", "Server handshakes that failed."),
		framesDropped:       desc("frames_dropped_total", "Data frames dropped: for a dead or foreign virtual connection."),
		closesIgnored:       desc("closes_ignored_total", "Close commands ignored: for an unknown or foreign virtual connection."),
		queueHighWater:      desc("send_queue_high_water_frames", "Longest send queue seen since start, in frames, by side.", "side"),
		largeFrameBytes:     desc("large_frame_budget_used_bytes", "Bytes unfinished large client frames hold of LargeFrameBudget now."),
		largeFrameEvictions: desc("large_frame_evictions_total", "Client connections closed because their source was over its fair share of a full LargeFrameBudget."),
		acceptErrors:        desc("accept_errors_total", "Accept calls that failed on a listener (out of file descriptors, say), by side.", "side"),
		undeliveredFrames: desc("frames_undelivered_total",
			"Data frames accepted for a connection that closed before writing them whole, by the reason it closed (shutdown: cut by the shutdown deadline).", "reason"),
		undeliveredBytes: desc("bytes_undelivered_total", "Bytes of the frames in fastway_frames_undelivered_total, by reason.", "reason"),
		discardedFrames:  desc("frames_discarded_at_shutdown_total", "Frames peers sent after a shutdown stopped reading them, read and thrown away."),
		discardedBytes:   desc("bytes_discarded_at_shutdown_total", "Bytes peers sent after a shutdown stopped reading them, read and thrown away."),
		memReleased:      desc("memory_pool_released_bytes_total", "Bytes of buffer pool pages let go of after they were idle for the release interval."),
		memReclaims:      desc("memory_reclaims_total", "Times the gateway made the Go runtime return free memory to the OS (debug.FreeOSMemory) after a burst."),
		groups:           desc("fanout_groups", "Groups of the server connections open now (fan-out)."),
		memberships:      desc("fanout_memberships", "Memberships of those groups, in all."),
		deliveries:       desc("fanout_deliveries_total", "Data frames fan-out (Multicast, Publish) queued to clients."),
		skipped:          desc("fanout_skipped_total", "ConnIDs fan-out commands named that were not live or not the sending server's, skipped."),
		joinsRefused:     desc("fanout_joins_refused_total", "Joins ignored because they would have passed ServerMaxGroups or ServerMaxMemberships."),
		tConns:           desc("client_connections", "Client connections open now, by transport (tcp: the client port, TLS and snet included; ws: the WebSocket port, wss included).", "transport"),
		tAccepted:        desc("client_connections_accepted_total", "Client connections accepted, by transport.", "transport"),
		tFramesIn:        desc("client_frames_received_total", "Frames read from clients, by transport.", "transport"),
		tFramesOut:       desc("client_frames_sent_total", "Frames written to clients, by transport.", "transport"),
		tBytesIn:         desc("client_bytes_received_total", "Bytes of frames read from clients, by transport (WebSocket framing not included).", "transport"),
		tBytesOut:        desc("client_bytes_sent_total", "Bytes of frames written to clients, by transport (WebSocket framing not included).", "transport"),
		tDisconnects:     desc("client_disconnects_total", "Client connections closed, by transport and reason.", "transport", "reason"),
		refuseReasons:    gateway.RefuseReasons(),
		reasons:          gateway.Reasons(),
	}
	for _, r := range c.refuseReasons {
		c.refuseReasonNames = append(c.refuseReasonNames, r.String())
	}
	for _, r := range c.reasons {
		c.reasonNames = append(c.reasonNames, r.String())
	}
	c.describe = []*prometheus.Desc{
		c.conns, c.virtualConns, c.framesIn, c.framesOut, c.bytesIn, c.bytesOut, c.accepted,
		c.dialsAccepted, c.dialsRefused, c.disconnects, c.authFailures, c.framesDropped,
		c.closesIgnored, c.queueHighWater, c.largeFrameBytes, c.largeFrameEvictions, c.acceptErrors, c.undeliveredFrames, c.undeliveredBytes,
		c.discardedFrames, c.discardedBytes, c.memReleased, c.memReclaims,
		c.groups, c.memberships, c.deliveries, c.skipped, c.joinsRefused,
		c.tConns, c.tAccepted, c.tFramesIn, c.tFramesOut, c.tBytesIn, c.tBytesOut, c.tDisconnects,
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.describe {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one Stats snapshot per scrape.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.g.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	gauge(c.conns, float64(s.ClientConns), sideClient)
	gauge(c.conns, float64(s.ServerConns), sideServer)
	gauge(c.virtualConns, float64(s.VirtualConns))
	for _, side := range []struct {
		name string
		t    gateway.Traffic
	}{{sideClient, s.Client}, {sideServer, s.Server}} {
		counter(c.framesIn, side.t.FramesIn, side.name)
		counter(c.framesOut, side.t.FramesOut, side.name)
		counter(c.bytesIn, side.t.BytesIn, side.name)
		counter(c.bytesOut, side.t.BytesOut, side.name)
	}
	counter(c.accepted, s.ClientAccepts, sideClient)
	counter(c.accepted, s.ServerAccepts, sideServer)
	counter(c.dialsAccepted, s.DialsAccepted)
	for i, r := range c.refuseReasons {
		counter(c.dialsRefused, s.Refused(r), c.refuseReasonNames[i])
	}
	for i, r := range c.reasons {
		counter(c.disconnects, s.Disconnected(r), c.reasonNames[i])
	}
	counter(c.authFailures, s.AuthFailures)
	counter(c.framesDropped, s.FramesDropped)
	counter(c.closesIgnored, s.ClosesIgnored)
	gauge(c.queueHighWater, float64(s.QueueHighWater[0]), sideClient)
	gauge(c.queueHighWater, float64(s.QueueHighWater[1]), sideServer)
	gauge(c.largeFrameBytes, float64(s.LargeFrameBytes))
	counter(c.largeFrameEvictions, s.LargeFrameEvictions)
	counter(c.acceptErrors, s.AcceptErrors[0], sideClient)
	counter(c.acceptErrors, s.AcceptErrors[1], sideServer)
	for i, r := range c.reasons {
		u := s.UndeliveredAt(r)
		counter(c.undeliveredFrames, u.Frames, c.reasonNames[i])
		counter(c.undeliveredBytes, u.Bytes, c.reasonNames[i])
	}
	counter(c.discardedFrames, s.Discarded.Frames)
	counter(c.discardedBytes, s.Discarded.Bytes)
	counter(c.memReleased, s.MemReleased)
	counter(c.memReclaims, s.MemReclaims)
	gauge(c.groups, float64(s.Fanout.Groups))
	gauge(c.memberships, float64(s.Fanout.Memberships))
	counter(c.deliveries, s.Fanout.Deliveries)
	counter(c.skipped, s.Fanout.Skipped)
	counter(c.joinsRefused, s.Fanout.JoinsRefused)

	// By transport: the WebSocket share, and the rest (tcp).
	for _, t := range []struct {
		name        string
		conns       int64
		accepts     uint64
		traffic     gateway.Traffic
		disconnects func(gateway.Reason) uint64
	}{
		{"tcp", s.ClientConns - s.WS.Conns, s.ClientAccepts - s.WS.Accepts, gateway.Traffic{
			FramesIn: s.Client.FramesIn - s.WS.Traffic.FramesIn, FramesOut: s.Client.FramesOut - s.WS.Traffic.FramesOut,
			BytesIn: s.Client.BytesIn - s.WS.Traffic.BytesIn, BytesOut: s.Client.BytesOut - s.WS.Traffic.BytesOut,
		}, func(r gateway.Reason) uint64 { return s.ClientDisconnects[r] - s.WS.Disconnects[r] }},
		{"ws", s.WS.Conns, s.WS.Accepts, s.WS.Traffic, func(r gateway.Reason) uint64 { return s.WS.Disconnects[r] }},
	} {
		gauge(c.tConns, float64(t.conns), t.name)
		counter(c.tAccepted, t.accepts, t.name)
		counter(c.tFramesIn, t.traffic.FramesIn, t.name)
		counter(c.tFramesOut, t.traffic.FramesOut, t.name)
		counter(c.tBytesIn, t.traffic.BytesIn, t.name)
		counter(c.tBytesOut, t.traffic.BytesOut, t.name)
		for i, r := range c.reasons {
			counter(c.tDisconnects, t.disconnects(r), t.name, c.reasonNames[i])
		}
	}
}

// wsCollector exports the WebSocket port's handshake counters; with no
// port it exports nothing.
type wsCollector struct {
	stats                        func() ws.Stats
	upgrades, failed, inProgress *prometheus.Desc
	subproto                     *prometheus.Desc
}

func newWSCollector(stats func() ws.Stats) prometheus.Collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "ws", name), help, labels, nil)
	}
	return &wsCollector{
		stats:      stats,
		upgrades:   desc("upgrades_total", "WebSocket handshakes that succeeded."),
		subproto:   desc("subprotocol_upgrades_total", "Of those, the ones that chose the fastway subprotocol."),
		failed:     desc("handshake_failures_total", "WebSocket handshakes that failed, by reason (timeout, tls, bad_request, path, origin, too_large, io, overflow, source).", "reason"),
		inProgress: desc("handshakes_in_progress", "WebSocket handshakes in progress now."),
	}
}

func (c *wsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.upgrades
	ch <- c.subproto
	ch <- c.failed
	ch <- c.inProgress
}

func (c *wsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.stats == nil {
		return
	}
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.upgrades, prometheus.CounterValue, float64(s.Upgrades))
	ch <- prometheus.MustNewConstMetric(c.subproto, prometheus.CounterValue, float64(s.Subproto))
	for _, f := range ws.Failures() {
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(s.Failed[f]), f.String())
	}
	ch <- prometheus.MustNewConstMetric(c.inProgress, prometheus.GaugeValue, float64(s.InProgress))
}
