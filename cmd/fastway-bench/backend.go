package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// serverPingEvery is how often a backend pings the gateway, so that one
// that only receives (idle, churn) is not closed by -ServerIdleTimeout.
const serverPingEvery = time.Second

// A backend's read buffer starts at backendBufMin and grows to
// backendBufMax while reads fill it: then one read takes the frames of many
// clients.
const (
	backendBufMin = 16 << 10
	backendBufMax = 256 << 10
)

// backend is one of the bench's servers. It echoes every data frame back,
// bytes unchanged, so the frame returns on the same ConnID to the client
// that sent it; it accepts every Connect and ignores Close and Ping. One
// goroutine reads and writes the batched echoes; another pings.
type backend struct {
	id   uint32
	conn net.Conn
	fr   *frameReader

	wmu      sync.Mutex // one writer at a time: the reader's batches and the pinger
	stopping atomic.Bool
	stopCh   chan struct{}
	wg       sync.WaitGroup
	err      error // why the reader ended early; read after wg.Wait
}

// startBackends connects servers 1..cfg.servers and waits until the
// gateway has registered each (the answer to its first Ping).
func startBackends(ctx context.Context, cfg *config) ([]*backend, error) {
	var bs []*backend
	for id := 1; id <= cfg.servers; id++ {
		b, err := connectBackend(ctx, cfg, uint32(id))
		if err != nil {
			stopBackends(bs)
			return nil, err
		}
		bs = append(bs, b)
	}
	return bs, nil
}

func connectBackend(ctx context.Context, cfg *config, id uint32) (*backend, error) {
	d := net.Dialer{Timeout: setupTimeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.serverAddr)
	if err != nil {
		return nil, fmt.Errorf("server %d: %w", id, err)
	}
	b := &backend{id: id, conn: conn, fr: newFrameReader(conn, backendBufMin, backendBufMax, cfg.maxPacket), stopCh: make(chan struct{})}
	if err := b.handshake(cfg.key); err != nil {
		conn.Close()
		return nil, fmt.Errorf("server %d: %w", id, err)
	}
	b.wg.Add(2)
	go b.echo()
	go b.ping()
	return b, nil
}

// handshake authenticates, then sends a Ping and waits for its answer: the
// gateway registers a server before it reads the server's first frame, so
// the answer proves the server is dialable (docs/protocol.md §2).
func (b *backend) handshake(key string) error {
	if err := proto.AuthenticateToGateway(b.conn, key, b.id, 0); err != nil {
		return err
	}
	if err := b.conn.SetDeadline(time.Now().Add(setupTimeout)); err != nil {
		return err
	}
	if _, err := b.conn.Write(proto.Command{Type: proto.CmdPing}.Encode(nil)); err != nil {
		return err
	}
	for {
		f, err := b.fr.await("the answer to Ping (wrong -key?)")
		if err != nil {
			return err
		}
		if c, err := proto.DecodeCommand(f); err == nil && c.Type == proto.CmdPing {
			return b.conn.SetDeadline(time.Time{})
		}
	}
}

// echo is the reader: it writes back every data frame, one write per read.
// Commands need no answer (Connect, Close, Ping).
func (b *backend) echo() {
	defer b.wg.Done()
	err := b.fr.serve(nil, func(f, out []byte) ([]byte, error) {
		if proto.Header(f).ConnID() != 0 {
			out = append(out, f...)
		}
		return out, nil
	}, func(out []byte) error {
		b.wmu.Lock()
		defer b.wmu.Unlock()
		_, err := b.conn.Write(out)
		return err
	})
	if err != nil {
		b.fail(err)
	}
}

func (b *backend) fail(err error) {
	if !b.stopping.Load() {
		b.err = fmt.Errorf("server %d: %w", b.id, err)
	}
}

func (b *backend) ping() {
	defer b.wg.Done()
	t := time.NewTicker(serverPingEvery)
	defer t.Stop()
	ping := proto.Command{Type: proto.CmdPing}.Encode(nil)
	for {
		select {
		case <-b.stopCh:
			return
		case <-t.C:
			b.wmu.Lock()
			_, err := b.conn.Write(ping)
			b.wmu.Unlock()
			if err != nil {
				return // the reader sees the same failure
			}
		}
	}
}

// stop closes the connection, waits for both goroutines and returns why
// the reader had ended, if it ended before stop.
func (b *backend) stop() error {
	b.stopping.Store(true)
	close(b.stopCh)
	b.conn.Close()
	b.wg.Wait()
	return b.err
}

// stopBackends stops every backend and returns their errors.
func stopBackends(bs []*backend) []error {
	var errs []error
	for _, b := range bs {
		if err := b.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
