package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/loadpeer"
	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

// envInt returns the integer in environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// statsKV parses the counters of the stats command's line.
func statsKV(line string) map[string]int64 {
	kv := map[string]int64{}
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		n, _ := strconv.ParseInt(v, 10, 64)
		kv[k] = n
	}
	return kv
}

// TestSigtermUnderLoad: the real binary under the load of issue 13 item 7,
// then SIGTERM. Clients send frames (1 KiB) as fast as they can to a server
// that reads at a bounded rate and pings meanwhile, so that a backlog waits
// in the gateway; the drain has time enough. Every data frame fastway read
// from clients (its final stats) reaches the server, exactly, and in order;
// fastway logs nothing undelivered and exits 0.
//
// The figures of docs/reliability.md ("SIGTERM under load") come from this
// test with FASTWAY_SIGTERM_RATE=2097152 FASTWAY_SIGTERM_QUEUE=100000
// FASTWAY_SIGTERM_SIZE=256 FASTWAY_SIGTERM_TIMEOUT=40 FASTWAY_SIGTERM_LOAD=5, and with
// FASTWAY_SIGTERM_BIN set to a build from before the fix (which fails it).
func TestSigtermUnderLoad(t *testing.T) {
	t.Parallel()
	size := envInt(t, "FASTWAY_SIGTERM_SIZE", 1<<10) // bytes per frame
	clients := envInt(t, "FASTWAY_SIGTERM_CLIENTS", 8)
	rate := envInt(t, "FASTWAY_SIGTERM_RATE", 4<<20)  // server reads, bytes/s
	queue := envInt(t, "FASTWAY_SIGTERM_QUEUE", 2000) // -ServerSendChanSize
	shutdownTimeout := time.Duration(envInt(t, "FASTWAY_SIGTERM_TIMEOUT", 30)) * time.Second
	load := time.Duration(envInt(t, "FASTWAY_SIGTERM_LOAD", 0)) * time.Second // load before SIGTERM, past the first backlog
	bin := binary
	if b := os.Getenv("FASTWAY_SIGTERM_BIN"); b != "" {
		bin = b
	}
	p := startBinary(t, bin, t.TempDir(), append(loopbackArgs,
		"-ShutdownTimeout="+shutdownTimeout.String(), "-ServerSendChanSize="+strconv.Itoa(queue))...)
	clientAddr, serverAddr := p.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)

	sc, err := net.DialTimeout("tcp", serverAddr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	sc.(*net.TCPConn).SetReadBuffer(128 << 10) // the backlog waits at the gateway
	if err := proto.AuthenticateToGateway(sc, password, 1, timeout); err != nil {
		t.Fatal(err)
	}
	srv, err := loadpeer.NewSlowServer(sc, rate, 2*time.Millisecond, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	var cls []*loadpeer.FloodClient
	for range clients {
		c, err := net.DialTimeout("tcp", clientAddr, timeout)
		if err != nil {
			t.Fatal(err)
		}
		fc, err := loadpeer.NewFloodClient(c, size, timeout, shutdownTimeout+timeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fc.Close)
		cls = append(cls, fc)
	}
	poll.Until(t, timeout, "the server reading", func() bool { _, got := srv.Data(); return got >= int64(rate/4) })
	if load > 0 {
		time.Sleep(load) // a longer load, for measurements only
	}
	backlog := statsKV(p.run("stats", false).kv["result"])
	since := p.mark()
	sigterm := time.Now()
	p.signal(syscall.SIGTERM)
	if err := srv.Wait(shutdownTimeout + timeout); err != nil {
		t.Errorf("server: %v", err)
	}
	for i, c := range cls {
		if err := c.Wait(shutdownTimeout + timeout); err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	select {
	case <-p.exited:
	case <-time.After(shutdownTimeout + timeout):
		t.Fatalf("fastway did not exit within %v of SIGTERM", shutdownTimeout+timeout)
	}
	took := time.Since(sigterm)
	st := statsKV(p.waitFrom(since, "stopped").kv["stats"])
	dials := int64(clients)
	read := st["client.frames_in"] - dials
	readBytes := st["client.bytes_in"] - dials*int64(proto.CmdSize(proto.CmdDial))
	got, gotBytes := srv.Data()
	t.Logf("%d clients sending %d B frames, server reading %d KiB/s, -ServerSendChanSize=%d, -ShutdownTimeout=%v: at SIGTERM %d data frames queued toward the server; exit %d after %v; fastway read %d data frames (%d B) from clients, the server got %d (%d B): %d lost; fastway counted undelivered %d, discarded %d frames (%d B); server ended with %v",
		clients, size, rate>>10, queue, shutdownTimeout, backlog["client.frames_in"]-backlog["server.frames_out"], p.code, took.Round(time.Millisecond),
		read, readBytes, got, gotBytes, read-got, st["undelivered_frames.shutdown"], st["discarded_frames"], st["discarded_bytes"], srv.Err())
	if p.code != 0 {
		t.Errorf("exit code %d, want 0", p.code)
	}
	if got != read || gotBytes != readBytes {
		t.Errorf("the server got %d data frames (%d B), fastway read %d (%d B) from clients", got, gotBytes, read, readBytes)
	}
	if l := p.waitFrom(since, "shutdown complete"); l.kv["undelivered_frames"] != "0" {
		t.Errorf("logged %s", l.raw)
	}
}
