// Package admin serves a gateway's operations endpoints over HTTP: Prometheus
// metrics, pprof, liveness and readiness probes, and the list of registered
// servers. It is meant for a loopback or private address (pprof exposes the
// process's memory and can stall it for a profile's duration).
//
//	/metrics         Prometheus text format: the gateway's counters (fastway_*),
//	                 Go runtime (go_*) and process (process_*) metrics
//	/healthz         200 "ok" while the process is alive
//	/readyz          200 while the gateway listens on both ports and is not
//	                 shutting down (or while Options.Ready says so), 503
//	                 otherwise
//	/servers         JSON list of the registered server connections
//	/debug/pprof/    the net/http/pprof handlers; cmdline shows Options.Cmdline
//	                 (the program's name only by default), never os.Args
//
// With Options.Token set, every endpoint but /healthz and /readyz needs
// "Authorization: Bearer <token>"; other requests get 401, are counted
// (fastway_admin_requests_refused_total) and logged, rate-limited. The
// token is compared in constant time. Without a token anyone who reaches
// the port may read profiles and stall the process with a CPU profile, so
// keep the server on loopback then.
//
// The metrics come from a custom prometheus.Collector (NewCollector) that
// takes one gateway.Stats snapshot per scrape: the gateway's hot path keeps
// its plain per-link atomics and pays nothing for the export. The Server
// registers it on a private prometheus.Registry, never the global one.
//
// docs/operations.md lists every metric with its type and labels, with an
// example scrape config and alert rules.
package admin
