package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/slab"
)

// Attacks on fan-out (docs/reliability.md §18): a join flood past the
// bounds, huge forged Multicasts, and Publish floods to members that do
// not read. Each logs its figures; run them with
//
//	go test -run 'HardeningFanout' -v ./gateway/

// lineCounter is a slog handler that counts the lines whose message is
// msg (and passes none on).
type lineCounter struct {
	msg string
	n   *atomic.Int64
}

func (h lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h lineCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h lineCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lineCounter) WithGroup(string) slog.Handler      { return h }

// TestHardeningFanoutJoinFlood: a server joins every one of its virtual
// connections to many groups, past ServerMaxMemberships; the Joins past
// the bound are ignored and counted, the refusals logged at most
// logBurst lines (plus one a second), the memory stays at the bound's and
// comes back when the server goes.
func TestHardeningFanoutJoinFlood(t *testing.T) {
	clients := scaled(64, 16, 16) // × 16 virtual connections each
	groups := scaled(250, 40, 40)
	const perClient = 16
	bound := clients * perClient * groups * 4 / 5 // a fifth of the Joins are past it
	var logged atomic.Int64
	g := startGW(t, Config{ServerMaxMemberships: bound, Logger: slog.New(lineCounter{"join ignored", &logged})})
	raiseNoFile(t, uint64(2*clients+100))
	s := g.dialServer(t, 1)
	var ids []uint32
	for range clients {
		c := g.dialClient(t)
		var b []byte
		for range perClient {
			b = proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(b)
		}
		c.write(b)
		for range perClient {
			c.readCmd()
			ids = append(ids, s.readCmd().ConnID)
		}
	}
	before := heapInUse()
	start := time.Now()
	var b []byte
	for gid := 1; gid <= groups; gid++ {
		for _, id := range ids {
			b = append(b, join(uint32(gid), id)...)
		}
		if len(b) > 1<<20 {
			s.write(b)
			b = b[:0]
		}
	}
	s.write(b)
	s.ping()
	took := time.Since(start)
	joins := len(ids) * groups
	st := g.Stats().Fanout
	if st.Memberships != int64(bound) || st.JoinsRefused != uint64(joins-bound) {
		t.Fatalf("memberships %d, joins refused %d; want %d, %d", st.Memberships, st.JoinsRefused, bound, joins-bound)
	}
	held := heapInUse()
	perMember := float64(held-before) / float64(bound)
	t.Logf("%d Joins (%d virtual connections × %d groups) in %v (%.0f ns each): %d memberships in %d groups, %d refused past ServerMaxMemberships=%d, %d lines logged",
		joins, len(ids), groups, took.Round(time.Millisecond), float64(took.Nanoseconds())/float64(joins), st.Memberships, st.Groups, st.JoinsRefused, bound, logged.Load())
	t.Logf("heap in use %.1f → %.1f MiB: %.0f bytes per membership", float64(before)/(1<<20), float64(held)/(1<<20), perMember)
	if n := logged.Load(); n > logBurst+int64(took.Seconds()+1)*logRate {
		t.Errorf("%d \"join ignored\" lines for %d refusals: not rate-limited", n, st.JoinsRefused)
	}
	if perMember > 200 {
		t.Errorf("%.0f bytes per membership; the documented bound assumes about 85", perMember)
	}
	// A Publish to a full group still reaches every member it has, and the
	// server goes on serving.
	s.write(publish(1, 0, "x"))
	s.ping()
	// The groups end with the server; their memory goes.
	s.conn.Close()
	eventually(t, "groups gone", func() bool { return g.Stats().Fanout.Memberships == 0 })
	eventually(t, "virtual connections closed", func() bool { return g.Stats().VirtualConns == 0 })
	after := heapInUse()
	t.Logf("heap in use after the server left: %.1f MiB", float64(after)/(1<<20))
	if after > before+uint64(bound)*20 {
		t.Errorf("heap %.1f MiB after the server left, %.1f before its Joins: the groups' memory stayed", float64(after)/(1<<20), float64(before)/(1<<20))
	}
}

// TestHardeningFanoutForgedMulticast: Multicasts listing 65,535 ConnIDs
// that are not the server's (live ones of another server, and ones that
// never were) deliver nothing, close nothing and are counted; what they
// cost the gateway per listed ConnID is logged.
func TestHardeningFanoutForgedMulticast(t *testing.T) {
	frames := scaled(20, 4, 4)
	g := startGW(t, Config{})
	victimServer := g.dialServer(t, 2)
	victims, vids := fanClients(t, g, victimServer, 2, 4)
	attacker := g.dialServer(t, 1)
	ids := make([]uint32, proto.MaxMulticastCount)
	for i := range ids {
		ids[i] = vids[i%len(vids)] + uint32(i/len(vids))*1000 // the victims', and guesses
	}
	f := proto.AppendMulticast(nil, []byte("forged"), ids...)
	start := time.Now()
	for range frames {
		attacker.write(f)
	}
	attacker.ping()
	took := time.Since(start)
	victimServer.ping()
	quiet(victims...)
	st := g.Stats()
	if st.Fanout.Deliveries != 0 || st.Fanout.Skipped != uint64(frames*len(ids)) || st.Disconnects != [numReasons]uint64{} {
		t.Fatalf("deliveries %d, skipped %d (want %d), disconnects %v", st.Fanout.Deliveries, st.Fanout.Skipped, frames*len(ids), st.Disconnects)
	}
	t.Logf("%d Multicasts of %d forged ConnIDs (%d KiB each) in %v: %.0f ns per ConnID skipped, nothing delivered, nobody closed",
		frames, len(ids), len(f)>>10, took.Round(time.Millisecond), float64(took.Nanoseconds())/float64(frames*len(ids)))
}

// TestHardeningFanoutPublishFlood: a server floods Publishes to a group in
// which most members never read. Each slow member is dropped as a slow
// consumer once the gateway holds ClientSendQueueBytes for it, exactly as
// for unicast, while the reading members get every message in order and
// the server is never paused. The gateway's buffers peak far below what
// the same deliveries as unicast frames would hold (slow members ×
// ClientSendQueueBytes), because every member shares one copy of each
// large payload.
func TestHardeningFanoutPublishFlood(t *testing.T) {
	slowN := scaled(100, 30, 30)
	const readers, queueBytes = 4, 256 << 10
	for _, tc := range []struct {
		size    int
		unicast bool
	}{{512, false}, {512, true}, {4 << 10, false}, {4 << 10, true}} { // copied per member, shared; and the same as unicast frames
		size := tc.size
		name := fmt.Sprintf("%dB", size)
		if tc.unicast {
			name += "-unicast"
		}
		t.Run(name, func(t *testing.T) {
			pool := &bytesPool{Pool: slab.NewSyncPool(64, 64<<10, 2)}
			g := startGW(t, Config{ClientSendQueueBytes: queueBytes, MemPool: pool})
			raiseNoFile(t, uint64(2*(slowN+readers)+100))
			s := g.dialServer(t, 1)
			var b []byte
			var all []uint32 // every member, for the unicast run
			for range slowN {
				c := g.dialClient(t) // never read
				c.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
				id, _ := open(t, c, s, 1)
				b = append(b, join(1, id)...)
				all = append(all, id)
			}
			good, gids := fanClients(t, g, s, 1, readers)
			for _, id := range gids {
				b = append(b, join(1, id)...)
			}
			all = append(all, gids...)
			// A message: one Publish, or one data frame per member still
			// live (the server stops sending to those it got Close for).
			var dead sync.Map
			message := func(p string) []byte {
				if !tc.unicast {
					return publish(1, 0, p)
				}
				var f []byte
				for _, id := range all {
					if _, gone := dead.Load(id); !gone {
						f = proto.EncodeData(f, id, []byte(p))
					}
				}
				return f
			}
			s.write(b)
			s.ping()
			base := pool.resetPeak()

			// The server writes numbered messages until every slow member
			// is dropped; the readers read everything, a window behind.
			var mu sync.Mutex
			cond := sync.NewCond(&mu)
			read := make([]int, readers)
			stop := make(chan struct{})
			wrote := make(chan int, 1)
			start := time.Now()
			go func() {
				pad := strings.Repeat("p", size-8)
				i := 0
				for {
					select {
					case <-stop:
						s.conn.Write(message("end"))
						wrote <- i
						return
					default:
					}
					mu.Lock()
					for minInts(read) < i-64 {
						cond.Wait()
					}
					mu.Unlock()
					s.conn.SetWriteDeadline(time.Now().Add(waitFor))
					if _, err := s.conn.Write(message(fmt.Sprintf("%08d%s", i, pad))); err != nil {
						wrote <- -1
						return
					}
					i++
				}
			}()
			errs := make(chan error, readers)
			for k, c := range good {
				go func() {
					defer func() {
						mu.Lock()
						read[k] = 1 << 30
						cond.Broadcast()
						mu.Unlock()
					}()
					for i := 0; ; i++ {
						c.conn.SetReadDeadline(time.Now().Add(4 * waitFor))
						f, err := c.fr.ReadFrame()
						if err != nil {
							errs <- err
							return
						}
						p := f[proto.HeaderSize:]
						if bytes.Equal(p, []byte("end")) {
							errs <- nil
							return
						}
						if got := string(p[:8]); got != fmt.Sprintf("%08d", i) {
							errs <- fmt.Errorf("reader %d got %s, want %08d", k, got, i)
							return
						}
						mu.Lock()
						read[k] = i + 1
						cond.Broadcast()
						mu.Unlock()
					}
				}()
			}
			for closed := 0; closed < slowN; {
				// Close of a slow member (and, for unicast, the gateway's
				// answers to frames sent to one already gone).
				c := s.readCmd()
				if c.Type != proto.CmdClose {
					t.Fatalf("server got %+v, want Close of a slow member", c)
				}
				if _, seen := dead.LoadOrStore(c.ConnID, true); !seen {
					closed++
				}
			}
			dropped := time.Since(start)
			close(stop)
			for range readers {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			n := <-wrote
			st := g.Stats()
			if st.Disconnected(ReasonSlowConsumer) != uint64(slowN) || (!tc.unicast && st.Fanout.Memberships != readers) {
				t.Fatalf("%d slow consumers (want %d), %d memberships (want %d)", st.Disconnected(ReasonSlowConsumer), slowN, st.Fanout.Memberships, readers)
			}
			peak := pool.peak.Load() - base
			unicast := int64(slowN) * queueBytes
			how := "Publishes"
			if tc.unicast {
				how = "messages as unicast frames"
			}
			t.Logf("%d-byte %s to %d members (%d never read): all %d slow ones dropped after %v and %d messages; the %d readers got all %d in order; "+
				"gateway buffers peaked %.1f MiB above the start (the slow members' bounds: %.1f MiB)",
				size, how, slowN+readers, slowN, slowN, dropped.Round(time.Millisecond), n, readers, n, float64(peak)/(1<<20), float64(unicast)/(1<<20))
			if !tc.unicast && size >= fanCopyMax && peak > unicast/4 {
				t.Errorf("buffers peaked %d bytes: shared payloads should hold far less than %d", peak, unicast)
			}
		})
	}
}

func minInts(v []int) int {
	m := v[0]
	for _, x := range v[1:] {
		m = min(m, x)
	}
	return m
}
