package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

// openVirtual has client cl dial server srv (registered as id) and returns
// the ConnID of the new virtual connection.
func openVirtual(t *testing.T, cl, srv *peer, id uint32) uint32 {
	t.Helper()
	cl.send(proto.Command{Type: proto.CmdDial, RemoteID: id}.Encode(nil))
	acc := cl.readCmd(proto.CmdAccept)
	if con := srv.readCmd(proto.CmdConnect); con.ConnID != acc.ConnID {
		t.Fatalf("Connect %+v, want ConnID %d", con, acc.ConnID)
	}
	return acc.ConnID
}

// pingPong sends msg from cl to srv on connID, and back.
func pingPong(t *testing.T, cl, srv *peer, connID uint32, msg string) {
	t.Helper()
	cl.send(proto.EncodeData(nil, connID, []byte(msg)))
	srv.readData(connID, msg)
	srv.send(proto.EncodeData(nil, connID, []byte(msg)))
	cl.readData(connID, msg)
}

// waitClosed reads from pe until its connection closes; a timeout or a
// frame fails the test.
func waitClosed(t *testing.T, pe *peer, what string) {
	t.Helper()
	pe.conn.SetReadDeadline(time.Now().Add(timeout))
	f, err := pe.fr.ReadFrame()
	if err == nil {
		t.Fatalf("%s: got frame % x, want the connection closed", what, f)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s: %v, want the connection closed", what, err)
	}
}

// waitStats runs the stats command until its result has every key=value
// pair in want (counters are updated a moment after the peer sees the
// effect), and returns the result.
func (p *proc) waitStats(want ...string) string {
	p.t.Helper()
	var res string
	poll.UntilNil(p.t, timeout, fmt.Sprintf("stats to show %q", want), func() error {
		res = p.run("stats", false).kv["result"]
		fields := strings.Fields(res)
		if missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return slices.Contains(fields, w) }); len(missing) > 0 {
			return fmt.Errorf("stats %q lacks %q", res, missing)
		}
		return nil
	})
	return res
}

// TestClientMaxConns: with -ClientMaxConns=2 a third client is closed at
// once and counted, the first two keep working, and once one of them
// leaves a new client gets in.
func TestClientMaxConns(t *testing.T) {
	t.Parallel()
	p := startProc(t, t.TempDir(), append(slices.Clone(loopbackArgs), "-ClientMaxConns=2")...)
	clientAddr, serverAddr := p.ready()
	clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)
	srv := dialServer(t, serverAddr, 1)
	first, second := dialPeer(t, clientAddr), dialPeer(t, clientAddr)
	id1 := openVirtual(t, first, srv, 1)
	id2 := openVirtual(t, second, srv, 1)

	third := dialPeer(t, clientAddr)
	waitClosed(t, third, "third client")
	pingPong(t, first, srv, id1, "first")
	pingPong(t, second, srv, id2, "second")
	p.waitStats("disconnects.connection_limit=1", "conns.client=2", "accepted.client=2")
	p.waitFrom(0, "connection refused", "side", "client", "reason", "connection limit")

	first.conn.Close()
	srv.readCmd(proto.CmdClose)
	p.waitStats("conns.client=1")
	fourth := dialPeer(t, clientAddr)
	pingPong(t, fourth, srv, openVirtual(t, fourth, srv, 1), "fourth")
	p.stop()
}

// TestShutdownTimeout: SIGTERM while 32 MiB are queued to a client that
// reads nothing. The drain lasts -ShutdownTimeout, then the connections are
// closed hard and fastway exits 0, saying so in its log.
func TestShutdownTimeout(t *testing.T) {
	t.Parallel()
	const drain = 500 * time.Millisecond
	// The client's queue may hold what the server sends it (32 MiB).
	p := startProc(t, t.TempDir(), append(slices.Clone(loopbackArgs), "-ShutdownTimeout="+drain.String(), "-ClientSendQueueBytes=64M")...)
	clientAddr, serverAddr := p.ready()
	srv := dialServer(t, loopback(t, serverAddr), 1)
	cl := dialPeer(t, loopback(t, clientAddr))
	// A small, locked receive buffer: the gateway cannot hand it much.
	if err := cl.conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	id := openVirtual(t, cl, srv, 1)
	const frames, size = 128, 256 << 10
	var data []byte
	for range frames {
		data = proto.EncodeData(data, id, make([]byte, size))
	}
	srv.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := srv.conn.Write(data); err != nil {
		t.Fatal(err)
	}
	p.waitStats("server.frames_in=129") // the Ping and the data

	start := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait()
	elapsed := time.Since(start)
	if code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if elapsed < drain || elapsed > drain+3*time.Second {
		t.Errorf("exited %v after SIGTERM, want -ShutdownTimeout=%v and a little more", elapsed, drain)
	}
	p.waitFrom(0, "shutting down", "timeout", drain.String())
	p.waitFrom(0, "shutdown cut short; the remaining connections were closed hard, without flushing")
	p.waitFrom(0, "stopped")
}
