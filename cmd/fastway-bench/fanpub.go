package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// The publisher process of a fan-out run (-mode fanpub). Against a gateway
// it is server 1: it prints "registered" once the gateway knows it, takes
// the Connect of each of the -conns virtual connections the receivers
// dial, joins them all to group 1 (publish), and prints "ready". Against a
// bare fan-out process (-baseline) it is a client of it and is ready at
// once. On "start" it publishes; on "stop" it stops and prints "done".

// fanGroup is the GroupID the run's members join.
const fanGroup = 1

// publisher is the state of -mode fanpub.
type publisher struct {
	cfg  *config
	conn net.Conn
	fr   *frameReader
	ids  []uint32 // the members' ConnIDs (gateway targets)

	mu    sync.Mutex
	cond  sync.Cond
	acked []uint64 // per receiver process: messages all its connections received
	err   error    // the reader's, once it failed
}

func runFanPub(ctx context.Context, cfg *config, stdin io.Reader, stdout io.Writer) error {
	p := &publisher{cfg: cfg, acked: make([]uint64, cfg.procs)}
	p.cond.L = &p.mu
	var err error
	d := net.Dialer{Timeout: setupTimeout}
	if cfg.baseline {
		p.conn, err = d.DialContext(ctx, "tcp", cfg.clientAddr)
	} else {
		p.conn, err = d.DialContext(ctx, "tcp", cfg.serverAddr)
	}
	if err != nil {
		return err
	}
	defer p.conn.Close()
	p.fr = newFrameReader(p.conn, 64<<10, 256<<10, cfg.maxPacket)
	if err := p.setUp(stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready")

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go p.readAcks()
	stop := make(chan struct{})
	pubErr := make(chan error, 1)
	started := false
	for {
		select {
		case l, ok := <-lines:
			switch {
			case ok && l == "start" && !started:
				started = true
				go func() { pubErr <- p.publish(stop) }()
			case !ok || l == "stop":
				close(stop)
				p.mu.Lock()
				p.cond.Broadcast()
				p.mu.Unlock()
				var err error
				if started {
					err = <-pubErr
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(stdout, "done")
				// Stay connected until told to go (stdin closes): the
				// receivers stop first, and the gateway would close
				// their virtual connections with this one.
				for range lines {
				}
				return nil
			}
		case err := <-pubErr:
			return err
		case <-ctx.Done():
			return errInterrupted
		}
	}
}

// setUp registers with the target and, against a gateway, gathers the
// members and joins them.
func (p *publisher) setUp(stdout io.Writer) error {
	cfg := p.cfg
	if err := p.conn.SetDeadline(time.Now().Add(4 * setupTimeout)); err != nil {
		return err
	}
	if cfg.baseline {
		if _, err := p.conn.Write(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil)); err != nil {
			return err
		}
		if _, err := p.fr.await("Accept"); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "registered")
		return p.conn.SetDeadline(time.Time{})
	}
	if err := proto.AuthenticateToGateway(p.conn, cfg.key, 1, 0); err != nil {
		return err
	}
	if err := p.ping(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "registered")
	for len(p.ids) < cfg.conns {
		f, err := p.fr.await("Connect")
		if err != nil {
			return fmt.Errorf("%d of %d Connects: %w", len(p.ids), cfg.conns, err)
		}
		if c, err := proto.DecodeCommand(f); err == nil && c.Type == proto.CmdConnect {
			p.ids = append(p.ids, c.ConnID)
		}
	}
	if cfg.fanKind == modePublish {
		var b []byte
		for _, id := range p.ids {
			b = proto.Fanout{Type: proto.CmdJoin, GroupID: fanGroup, ConnID: id}.Append(b)
		}
		if _, err := p.conn.Write(b); err != nil {
			return err
		}
	}
	if err := p.ping(); err != nil { // every Join is through
		return err
	}
	return p.conn.SetDeadline(time.Time{})
}

// ping sends a Ping and waits for its answer.
func (p *publisher) ping() error {
	if _, err := p.conn.Write(proto.Command{Type: proto.CmdPing}.Encode(nil)); err != nil {
		return err
	}
	for {
		f, err := p.fr.await("the answer to Ping (wrong -key?)")
		if err != nil {
			return err
		}
		if c, err := proto.DecodeCommand(f); err == nil && c.Type == proto.CmdPing {
			return nil
		}
	}
}

// readAcks reads the receivers' acknowledgements (and any command) until
// the connection ends.
func (p *publisher) readAcks() {
	err := p.fr.serve(nil, func(f, out []byte) ([]byte, error) {
		if proto.Header(f).ConnID() == 0 {
			if c, err := proto.DecodeCommand(f); err == nil && c.Type == proto.CmdClose {
				return out, fmt.Errorf("the target closed virtual connection %d", c.ConnID)
			}
			return out, nil
		}
		a := f[proto.HeaderSize:]
		if len(a) != 12 {
			return out, fmt.Errorf("an acknowledgement of %d bytes", len(a))
		}
		proc, next := int(binary.LittleEndian.Uint32(a)), binary.LittleEndian.Uint64(a[4:])
		if proc >= len(p.acked) {
			return out, fmt.Errorf("an acknowledgement from receiver %d", proc)
		}
		p.mu.Lock()
		p.acked[proc] = max(p.acked[proc], next)
		p.cond.Broadcast()
		p.mu.Unlock()
		return out, nil
	}, func(b []byte) error { return nil })
	p.mu.Lock()
	p.err = err
	if p.err == nil {
		p.err = errors.New("the target closed the connection")
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// publish writes -batch messages at a time, each as one Publish or as one
// data frame per member, keeping at most -window messages unacknowledged,
// until stop.
func (p *publisher) publish(stop <-chan struct{}) error {
	cfg := p.cfg
	payload := make([]byte, cfg.size)
	var b []byte
	var seq uint64
	// With -rate, burst k is due k·batch/rate after the start.
	var every time.Duration
	var timer *time.Timer
	if cfg.rate > 0 {
		every = time.Duration(float64(time.Second) * float64(cfg.batch) / float64(cfg.rate))
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	start := time.Now()
	for {
		if every > 0 {
			timer.Reset(max(time.Until(start.Add(time.Duration(seq/uint64(cfg.batch))*every)), 0))
			select {
			case <-timer.C:
			case <-stop:
				return nil
			}
		}
		p.mu.Lock()
		for p.err == nil && seq+uint64(cfg.batch) > slicesMin(p.acked)+uint64(cfg.window) {
			select {
			case <-stop:
				p.mu.Unlock()
				return nil
			default:
			}
			p.cond.Wait()
		}
		err := p.err
		p.mu.Unlock()
		select {
		case <-stop:
			return nil
		default:
		}
		if err != nil {
			return err
		}
		b = b[:0]
		now := wallNS()
		for range cfg.batch {
			putFanPayload(payload, seq, now)
			switch {
			case cfg.fanKind == modeUnicast:
				for _, id := range p.ids {
					b = proto.EncodeData(b, id, payload)
				}
			default: // a group at the gateway; all the connections at the bare process
				b = proto.Fanout{Type: proto.CmdPublish, GroupID: fanGroup, Payload: payload}.Append(b)
			}
			seq++
		}
		if _, err := p.conn.Write(b); err != nil {
			return err
		}
	}
}

func slicesMin(v []uint64) uint64 {
	m := v[0]
	for _, x := range v[1:] {
		m = min(m, x)
	}
	return m
}
