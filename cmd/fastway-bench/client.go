package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// setupTimeout bounds a client's TCP connect plus the replies to its Dials,
// and a server's handshake plus its first Ping.
const setupTimeout = 30 * time.Second

// dialParallel is how many client connections are opened at once: enough
// to open 100,000 in seconds, few enough to stay under the listen backlog.
const dialParallel = 64

// clientBufMax bounds the growth of a client's read buffer.
const clientBufMax = 64 << 10

// client is one client physical connection of the bench and the virtual
// connections it dialed. After set-up one goroutine owns it: it reads, and
// it writes (its replies are batched, one write per read).
type client struct {
	idx  int
	conn net.Conn
	fr   *frameReader
	ids  []uint32 // ConnIDs of its virtual connections, in dial order
}

// remoteID returns the server the g-th virtual connection dials: servers
// 1..N round-robin. A bare echo process accepts any ID but 0.
func remoteID(servers, g int) uint32 {
	if servers <= 0 {
		return 1
	}
	return uint32(1 + g%servers)
}

// dialClient opens client connection idx from its source address and
// dials vconns virtual connections on it.
func dialClient(ctx context.Context, cfg *config, src srcAddrs, idx, vconns, bufSize int) (*client, error) {
	d := net.Dialer{LocalAddr: src.local(idx), Timeout: setupTimeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.clientAddr)
	if err != nil {
		return nil, fmt.Errorf("client %d: %w", idx, err)
	}
	if cfg.ws {
		wc, err := wsDial(conn, cfg.clientAddr, cfg.wsPath)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("client %d (%s): %w", idx, conn.LocalAddr(), err)
		}
		conn = wc
	}
	c := &client{idx: idx, conn: conn, fr: newFrameReader(conn, bufSize, clientBufMax, cfg.maxPacket)}
	if vconns > 0 {
		if err := c.dialVConns(cfg.servers, vconns); err != nil {
			conn.Close()
			return nil, fmt.Errorf("client %d (%s): %w", idx, conn.LocalAddr(), err)
		}
	}
	return c, nil
}

// dialVConns sends n Dials at once and waits for their replies, which come
// back in order (docs/protocol.md §1).
func (c *client) dialVConns(servers, n int) error {
	if err := c.conn.SetDeadline(time.Now().Add(setupTimeout)); err != nil {
		return err
	}
	var b []byte
	for j := range n {
		b = proto.Command{Type: proto.CmdDial, RemoteID: remoteID(servers, c.idx*n+j)}.Encode(b)
	}
	if _, err := c.conn.Write(b); err != nil {
		return err
	}
	for len(c.ids) < n {
		f, err := c.fr.await("Accept")
		if err != nil {
			return err
		}
		if proto.Header(f).ConnID() != 0 {
			continue // data before set-up ends: not ours to judge here
		}
		cmd, err := proto.DecodeCommand(f)
		if err != nil {
			return err
		}
		switch cmd.Type {
		case proto.CmdAccept:
			c.ids = append(c.ids, cmd.ConnID)
		case proto.CmdRefuse:
			return fmt.Errorf("the Dial to %d was refused (is server %d connected? is the gateway's -ClientMaxConn below -vconns?)",
				cmd.RemoteID, cmd.RemoteID)
		}
	}
	return c.conn.SetDeadline(time.Time{})
}

// dialClients opens cfg.conns client connections, dialParallel at a time,
// each with vconns virtual connections, and calls opened (if not nil) on
// each as soon as it is set up. On the first error it closes every
// connection it opened and returns the error.
func dialClients(ctx context.Context, cfg *config, src srcAddrs, vconns, bufSize int, opened func(*client) error) ([]*client, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clients := make([]*client, cfg.conns)
	var (
		mu       sync.Mutex
		firstErr error
		next     int
		wg       sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next >= cfg.conns {
			return 0, false
		}
		next++
		return next - 1, true
	}
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	for range min(dialParallel, cfg.conns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := take()
				if !ok {
					return
				}
				c, err := dialClient(ctx, cfg, src, i, vconns, bufSize)
				if err == nil && opened != nil {
					if err = opened(c); err != nil {
						c.conn.Close()
					}
				}
				if err != nil {
					fail(err)
					return
				}
				clients[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = errInterrupted
	}
	if firstErr != nil {
		closeClients(clients)
		if errors.Is(firstErr, context.Canceled) {
			firstErr = errInterrupted
		}
		return nil, firstErr
	}
	return clients, nil
}

// closeClients closes every connection in cs (nil entries are skipped).
func closeClients(cs []*client) {
	for _, c := range cs {
		if c != nil {
			c.conn.Close()
		}
	}
}

// runClients runs load(i, phase) for every client i, each on its own
// goroutine, through the warm-up and the measured
// window (measureWindow), and returns the window and each client's error.
// load reads phase to know when to count and when to stop.
func runClients(ctx context.Context, cfg *config, clients []*client, load func(i int, phase *atomic.Int32) error) (window, []error, error) {
	errs := make([]error, len(clients))
	var (
		phase atomic.Int32
		wg    sync.WaitGroup
	)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = load(i, &phase)
		}()
	}
	w, err := measureWindow(ctx, cfg, &phase, clients, &wg)
	return w, errs, err
}

// measureWindow runs the warm-up and the measured window of a load whose
// client goroutines (counted in wg) read phase: it measures the target's
// CPU and RSS over the window, then stops the load, closes the clients and
// waits for their goroutines.
func measureWindow(ctx context.Context, cfg *config, phase *atomic.Int32, clients []*client, wg *sync.WaitGroup) (window, error) {
	w := window{pid: cfg.gwpid}
	err := sleepCtx(ctx, cfg.warmup)
	if err == nil {
		err = w.begin()
		phase.Store(phaseMeasure)
	}
	if err == nil {
		err = sleepCtx(ctx, cfg.dur)
	}
	phase.Store(phaseStop)
	if err == nil {
		err = w.finish()
	}
	closeClients(clients)
	wg.Wait()
	return w, err
}

// pump is a client's read/write loop (frameReader.serve): it writes out,
// reads what the target sent, and hands every whole frame to handle, whose
// replies go out in one write at the next round; handle returns errStop
// when the run is over.
func (c *client) pump(out []byte, phase *atomic.Int32, handle func(f, out []byte) ([]byte, error)) error {
	err := c.fr.serve(out, handle, func(b []byte) error {
		_, err := c.conn.Write(b)
		return err
	})
	if err != nil {
		return c.fail(phase, err)
	}
	return nil
}
