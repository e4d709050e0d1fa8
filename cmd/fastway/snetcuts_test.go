package main

import (
	"bytes"
	"context"
	bin "encoding/binary"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/faultproxy"
	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/snet"
)

// TestSnetCuts's knobs, which scripts/snet-cuts.sh sets.
const (
	// snetCutsMiBEnv: MiB each way per round (default defaultSnetCutsMiB).
	snetCutsMiBEnv     = "FASTWAY_SNET_CUTS_MIB"
	defaultSnetCutsMiB = 2
	// snetCutsControlEnv, set to 1, runs the control: the same streams
	// through the same proxy, but plain TCP (no snet) and never cut, so a
	// failure there is the gateway's, not snet's.
	snetCutsControlEnv = "FASTWAY_SNET_CUTS_CONTROL"
	snetCutsEvery      = 200 * time.Millisecond
	snetCutsMinCuts    = 3
	snetCutsDeadline   = 3 * time.Minute
)

// TestSnetCuts runs the real gateway at its default flags with snet on the
// client port (plain, then encrypted) and streams each way at full speed
// between an snet client and a server, while a proxy in front of the client
// port cuts every TCP connection after about 200 ms: rounds of a few MiB
// each way, until the proxy has cut at least 3 times. Every message must
// arrive once and in order, on the one virtual connection, and the gateway
// must count no refused resume: at the default rewrite buffer (32 KiB) no
// resume may fail. The client is snet's own (snet.TCPDialer sizes its
// sockets for the default buffer); the proxy holds up to about 14 KiB of
// each direction itself (faultproxy.NewTimed). scripts/snet-cuts.sh runs it
// 20 times with 8 MiB rounds.
//
// The stream goes in rounds of 512 KiB each way (64 messages of 8 KiB), at
// full speed within a round, and the next starts once both directions have
// finished it (an application's flow control): the default
// -ClientSendQueueBytes (1 MiB) then holds a whole round, so a client
// stalled by reconnects is never dropped as a slow consumer (a separate
// policy, not tested here).
func TestSnetCuts(t *testing.T) {
	t.Parallel()
	mib := defaultSnetCutsMiB
	if v := os.Getenv(snetCutsMiBEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("$%s=%q: want a positive number of MiB", snetCutsMiBEnv, v)
		}
		mib = n
	}
	control := os.Getenv(snetCutsControlEnv) == "1"
	for i, crypt := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "crypt"}[crypt], func(t *testing.T) {
			if control && crypt {
				t.Skip("the control runs without snet")
			}
			args := slices.Clone(loopbackArgs)
			if !control {
				args = append(args, "-ClientSnetEnable")
			}
			if crypt {
				args = append(args, "-ClientSnetEncrypt")
			}
			p := startProc(t, t.TempDir(), args...)
			clientAddr, serverAddr := p.ready()
			clientAddr, serverAddr = loopback(t, clientAddr), loopback(t, serverAddr)

			sconn, err := net.DialTimeout("tcp", serverAddr, timeout)
			if err != nil {
				t.Fatal(err)
			}
			wire := &recordingConn{Conn: sconn}
			srv, err := proto.DialServer(wire, proto.EndPointCfg{ServerID: 1, AuthKey: password})
			if err != nil {
				sconn.Close()
				t.Fatal(err)
			}
			closeOnCleanup(t, srv)
			p.waitFrom(0, "server registered", "id", "1")

			proxy := faultproxy.NewTimed(t, clientAddr, snetCutsEvery, uint64(time.Now().UnixNano())+uint64(i))
			cfg := snet.Config{EnableCrypt: crypt} // the defaults, as the gateway's
			dial := snet.TCPDialer(cfg, proxy.Addr(), timeout)
			var cconn net.Conn
			if control {
				cconn, err = dial()
			} else {
				cconn, err = snet.Dial(cfg, dial)
			}
			if err != nil {
				t.Fatal(err)
			}
			cli, err := proto.NewClient(cconn, proto.EndPointCfg{PingInterval: -1})
			if err != nil {
				cconn.Close()
				t.Fatal(err)
			}
			closeOnCleanup(t, cli)
			ctx, cancel := context.WithTimeout(context.Background(), snetCutsDeadline)
			defer cancel()
			c, err := cli.DialContext(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			s, err := srv.AcceptContext(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !control {
				proxy.Arm()
			}

			start := time.Now()
			const size, msgs = 8 << 10, 64 // a round: 512 KiB each way
			rounds := 0
			for rounds*msgs*size < mib<<20 || (!control && proxy.Cuts() < snetCutsMinCuts) {
				errs := make(chan error, 4)
				go func() { errs <- sendStream(ctx, c, 1, rounds, msgs, size) }()
				go func() { errs <- recvStream(ctx, s, 1, rounds, msgs, size) }()
				go func() { errs <- sendStream(ctx, s, 2, rounds, msgs, size) }()
				go func() { errs <- recvStream(ctx, c, 2, rounds, msgs, size) }()
				for range 4 {
					if err := <-errs; err != nil {
						t.Logf("what the gateway sent the server: %s", wire.check(size))
						t.Fatalf("round %d, after %d cuts in %v: %v", rounds, proxy.Cuts(), time.Since(start).Round(time.Millisecond), err)
					}
				}
				rounds++
			}
			t.Logf("2 × %d rounds of 512 KiB (%d MiB each way) with %d cuts in %v", rounds, rounds*msgs*size>>20, proxy.Cuts(), time.Since(start).Round(time.Millisecond))
			// One client connection throughout: every cut was resumed.
			res := p.run("stats", false).kv["result"]
			for _, want := range []string{"accepted.client=1 ", "conns.client=1 ", "conns.virtual=1 ", "frames_dropped=0 "} {
				if !strings.Contains(res+" ", want) {
					t.Errorf("stats %q lacks %q", res, want)
				}
			}
			if control {
				return
			}
			res = p.run("snet", false).kv["result"]
			for _, want := range []string{"snet.client.sessions=1 ", "snet.client.resumes_refused=0 ", "snet.client.gaps_too_large=0 ", "snet.client.expired=0 "} {
				if !strings.Contains(res+" ", want) {
					t.Errorf("snet counters %q lack %q", res, want)
				}
			}
			t.Logf("gateway: %s", res)
			p.stop()
		})
	}
}

// sendStream sends round's msgs messages of size bytes on c, each numbered,
// with a pattern from seed.
func sendStream(ctx context.Context, c *proto.Conn, seed byte, round, msgs, size int) error {
	msg := make([]byte, size)
	for seq := round * msgs; seq < (round+1)*msgs; seq++ {
		fillMsg(msg, seed, seq)
		if err := c.SendContext(ctx, msg); err != nil {
			return fmt.Errorf("send %d: %w", seq, err)
		}
	}
	return nil
}

// recvStream checks that the next messages on c are sendStream's.
func recvStream(ctx context.Context, c *proto.Conn, seed byte, round, msgs, size int) error {
	want := make([]byte, size)
	for seq := round * msgs; seq < (round+1)*msgs; seq++ {
		m, err := c.ReceiveContext(ctx)
		if err != nil {
			return fmt.Errorf("receive %d: %w", seq, err)
		}
		fillMsg(want, seed, seq)
		if got := m.([]byte); !bytes.Equal(got, want) {
			return fmt.Errorf("stream %d: message %d corrupted or out of order: %s", seed, seq, diff(got, want))
		}
	}
	return nil
}

// diff describes where got first differs from want.
func diff(got, want []byte) string {
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	if i == len(got) && i == len(want) {
		return "equal"
	}
	return fmt.Sprintf("%d bytes, want %d; from byte %d: % x..., want % x...",
		len(got), len(want), i, got[i:min(len(got), i+16)], want[i:min(len(want), i+16)])
}

// fillMsg writes message seq of a stream into b: its number, then a
// pattern.
func fillMsg(b []byte, seed byte, seq int) {
	bin.LittleEndian.PutUint32(b, uint32(seq))
	for i := 4; i < len(b); i++ {
		b[i] = seed + byte(seq) + byte(i>>3)
	}
}

// recordingConn keeps every byte read from its connection, so that a test
// can tell a message the gateway corrupted from one the reader did.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.got = append(r.got, p[:n]...)
	r.mu.Unlock()
	return n, err
}

// check parses what was read after the handshake's challenge as frames and
// compares the data frames of size bytes with stream 1, in order.
func (r *recordingConn) check(size int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.got[min(len(r.got), proto.ChallengeSize):]
	want := make([]byte, size)
	seq := 0
	for len(b) >= proto.HeaderSize {
		n := proto.SizeOfLength + int(bin.LittleEndian.Uint32(b))
		if len(b) < n {
			break
		}
		if proto.Header(b).ConnID() != 0 {
			if n != proto.HeaderSize+size {
				return fmt.Sprintf("after %d good messages, a %d-byte frame", seq, n)
			}
			fillMsg(want, 1, seq)
			if !bytes.Equal(b[proto.HeaderSize:n], want) {
				return fmt.Sprintf("message %d already corrupted on the wire: %s", seq, diff(b[proto.HeaderSize:n], want))
			}
			seq++
		}
		b = b[n:]
	}
	return fmt.Sprintf("%d messages, all as sent", seq)
}
