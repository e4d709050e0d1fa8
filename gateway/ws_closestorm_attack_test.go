package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// closeReport is what a client read from the gateway up to and after the
// gateway's Close frame, raw.
type closeReport struct {
	frames  int            // proto frames in the data messages
	msgs    int            // data messages
	pongs   int            // Pongs
	closed  bool           // a Close frame came
	code    gws.StatusCode // its status
	after   int            // bytes after the Close frame
	endErr  error          // how the stream ended (after the Close frame, or without one)
	timeout bool           // it did not end: the read deadline passed
	badData error          // a data message that is not whole proto frames
}

// readToClose reads wc's raw stream (its buffered bytes first) frame by
// frame until the gateway's Close frame, then until the stream ends. Each
// data message must hold whole proto frames (a Close frame written inside
// a message breaks them); data frames on id are passed to check.
func readToClose(wc *ws.Client, id uint32, check func([]byte) error) closeReport {
	return readToCloseThen(wc, id, check, nil)
}

// readToCloseThen is readToClose that calls onClose, if set, once the
// Close frame is read.
func readToCloseThen(wc *ws.Client, id uint32, check func([]byte) error, onClose func()) closeReport {
	var rep closeReport
	wc.SetReadDeadline(time.Now().Add(2 * waitFor))
	r := readerFunc(wc.ReadRaw)
	for {
		h, err := gws.ReadHeader(r)
		if err != nil {
			rep.endErr = err
			return rep
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			rep.endErr = err
			return rep
		}
		switch h.OpCode {
		case gws.OpBinary:
			rep.msgs++
			fs, err := wholeFrames(p)
			if err != nil && rep.badData == nil {
				rep.badData = fmt.Errorf("message %d: %w", rep.msgs, err)
			}
			for _, f := range fs {
				rep.frames++
				if check != nil && proto.Header(f).ConnID() == id {
					if err := check(f); err != nil && rep.badData == nil {
						rep.badData = err
					}
				}
			}
		case gws.OpPong:
			rep.pongs++
		case gws.OpClose:
			rep.closed = true
			rep.code = gws.StatusNoStatusRcvd
			if len(p) >= 2 {
				rep.code = gws.StatusCode(binary.BigEndian.Uint16(p))
			}
			if onClose != nil {
				onClose()
			}
			var b [4096]byte
			for {
				n, err := r.Read(b[:])
				rep.after += n
				if err != nil {
					var ne net.Error
					rep.endErr, rep.timeout = err, errors.As(err, &ne) && ne.Timeout()
					return rep
				}
			}
		default:
			if rep.badData == nil {
				rep.badData = fmt.Errorf("opcode %d from the gateway", h.OpCode)
			}
		}
	}
}

// fanoutCloseStorm: n WebSocket clients in one group; a server publishes
// to the group without pause while every client reads a few deliveries,
// then sends its Close frame and reads to the end. Each must get whole
// messages, one Close 1000, nothing after; each link is counted peer
// closed; the frames the clients got are the frames the gateway counted
// written.
func fanoutCloseStorm(t *testing.T, n int, tlsCfg bool) {
	// Queues large enough that no client is a slow consumer.
	g := startGW(t, Config{ClientSendChanSize: 1 << 16, ClientSendQueueBytes: 4 << 20})
	cfg := ws.Config{MaxHandshakesPerSource: -1}
	var opt ws.DialOptions
	if tlsCfg {
		cfg.TLS, opt.TLS = selfSigned(t)
	}
	url := startWS(t, g, cfg)
	s := g.dialServer(t, 1)
	type cli struct {
		wc *ws.Client
		id uint32
	}
	clis := make([]cli, n)
	for i := range clis {
		c, wc := dialWS(t, url, opt)
		id, _ := open(t, c, s, 1)
		s.write(proto.Fanout{Type: proto.CmdJoin, GroupID: 9, ConnID: id}.Append(nil))
		clis[i] = cli{wc, id}
	}
	s.ping()
	payload := bytes.Repeat([]byte("p"), 700)
	pub := proto.Fanout{Type: proto.CmdPublish, GroupID: 9, Payload: payload}.Append(nil)
	var burst []byte
	for range 8 {
		burst = append(burst, pub...)
	}
	stop := make(chan struct{})
	done := sendBursts(s, burst, 300, stop)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var mu sync.Mutex
	got := uint64(n) // the Accept each client read in open
	for i, c := range clis {
		wg.Go(func() {
			c.wc.SetReadDeadline(time.Now().Add(waitFor))
			k := 0
			for range 1 + i%5 {
				_, m, err := c.wc.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("client %d: %v", i, err)
					return
				}
				fs, err := wholeFrames(m)
				if err != nil {
					errs <- fmt.Errorf("client %d: %v", i, err)
					return
				}
				k += len(fs)
			}
			if err := c.wc.WriteFrame(gws.OpClose, true, []byte{0x03, 0xe8}); err != nil {
				errs <- err
				return
			}
			rep := readToClose(c.wc, c.id, func(f []byte) error {
				if !bytes.Equal(f, proto.EncodeData(nil, c.id, payload)) {
					return fmt.Errorf("a frame of %d bytes, not the publication", len(f))
				}
				return nil
			})
			mu.Lock()
			got += uint64(k + rep.frames)
			mu.Unlock()
			switch {
			case rep.badData != nil:
				errs <- fmt.Errorf("client %d: %v", i, rep.badData)
			case !rep.closed || rep.code != gws.StatusNormalClosure:
				errs <- fmt.Errorf("client %d: closed %v code %d after %d messages (%v)", i, rep.closed, rep.code, rep.msgs, rep.endErr)
			case rep.after > 0:
				errs <- fmt.Errorf("client %d: %d bytes after the Close frame", i, rep.after)
			case rep.timeout:
				errs <- fmt.Errorf("client %d: the gateway did not close the connection after its Close", i)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	var st Stats
	poll.Until(t, waitFor, "the clients gone", func() bool {
		st = g.Stats()
		return st.WS.Conns == 0
	})
	t.Logf("%d clients: ws disconnects %v; frames out %d, read %d; deliveries %d, undelivered %v",
		n, st.WS.Disconnects, st.WS.Traffic.FramesOut, got, st.Fanout.Deliveries, st.UndeliveredAt(ReasonPeerClosed))
	if st.WS.Disconnects[ReasonPeerClosed] != uint64(n) {
		t.Errorf("peer closed %d of %d clients, disconnects %v", st.WS.Disconnects[ReasonPeerClosed], n, st.WS.Disconnects)
	}
	if st.WS.Traffic.FramesOut != got {
		t.Errorf("the gateway counted %d frames written to the clients, they read %d", st.WS.Traffic.FramesOut, got)
	}
}

func TestWSAttackFanoutCloseStorm(t *testing.T) { fanoutCloseStorm(t, scaled(200, 60, 30), false) }

func TestWSAttackFanoutCloseStormTLS(t *testing.T) { fanoutCloseStorm(t, scaled(60, 20, 10), true) }
