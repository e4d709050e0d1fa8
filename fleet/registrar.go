// Package fleet runs a fleet of fastway gateways on etcd: a gateway
// registers itself under a lease (Registrar), and servers find the live
// gateways (Discovery, for proto.NewFleet). See docs/scaling.md.
//
// A gateway's key is Prefix + "/gateways/" + ID; its value is a
// proto.GatewayInfo as JSON, refreshed every TTL/3 with the gateway's load.
// The key lives as long as its lease: revoked on drain, expired TTL after
// the gateway was lost.
package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastway-go/fastway/proto"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultPrefix is where gateways register unless told otherwise.
const DefaultPrefix = "/fastway"

// DefaultTTL is the lease TTL unless told otherwise: a lost gateway's key
// is gone that long after its last refresh.
const DefaultTTL = 10 * time.Second

// MinTTL bounds the lease TTL from below: etcd grants no shorter lease with
// its default timing (1.5 s), and the refresh (TTL/3) must fit a round trip.
const MinTTL = 2 * time.Second

// Key returns a gateway's key under prefix.
func Key(prefix, id string) string { return Dir(prefix) + id }

// Dir returns the key prefix of every gateway under prefix.
func Dir(prefix string) string { return strings.TrimSuffix(prefix, "/") + "/gateways/" }

// RegistrarConfig configures NewRegistrar.
type RegistrarConfig struct {
	// Etcd is the client's configuration: Endpoints, TLS, Username and
	// Password. Its Logger, if nil, is a no-op: the registrar logs itself.
	Etcd clientv3.Config
	// Prefix is the key prefix; empty: DefaultPrefix.
	Prefix string
	// TTL is the lease's; 0: DefaultTTL. The key is refreshed every TTL/3.
	TTL time.Duration
	// Info returns the record to store, as of now (ID, addresses, version,
	// load). The ID must not change.
	Info func() proto.GatewayInfo
	// Ready reports whether the gateway serves (nil: at once). The key is
	// written once it does.
	Ready func() bool
	// Logger receives registrations and failures; nil: slog.Default().
	Logger *slog.Logger
}

// RegistrarStats counts what a Registrar did.
type RegistrarStats struct {
	Registrations   uint64 // leases granted and keys written (the first one included)
	Reregistrations uint64 // registrations after the first: after a lease expired, or a grant whose key was not written
	Refreshes       uint64 // refreshes that kept the lease alive and rewrote the key
	Failures        uint64 // registrations, refreshes or the revocation that failed (etcd unreachable, say)
	LeasesLost      uint64 // leases found expired (etcd was unreachable longer than the TTL)
	Registered      bool   // the key is held now, as of the last attempt
	Up              bool   // etcd answered the last request (registration, refresh or revocation)
}

// Registrar keeps a gateway's key in etcd: registered once the gateway is
// ready, refreshed, registered again after an outage. An etcd outage only
// logs: the gateway serves on.
type Registrar struct {
	cfg RegistrarConfig
	key string
	log *slog.Logger
	cli *clientv3.Client

	ctx    context.Context // ends the loop and its requests
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop returns
	once   sync.Once

	lease clientv3.LeaseID // the loop's; read by Deregister after done

	registrations, refreshes, failures, leasesLost atomic.Uint64
	registered, up                                 atomic.Bool
}

// NewRegistrar makes the etcd client (it connects in the background) and
// starts the registration loop.
func NewRegistrar(cfg RegistrarConfig) (*Registrar, error) {
	if cfg.Info == nil {
		return nil, errors.New("fleet: RegistrarConfig.Info is nil")
	}
	cfg.Prefix = cmp.Or(cfg.Prefix, DefaultPrefix)
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	if cfg.TTL < MinTTL {
		return nil, fmt.Errorf("fleet: TTL %v is below %v", cfg.TTL, MinTTL)
	}
	id := cfg.Info().ID
	if id == "" || strings.Contains(id, "/") {
		return nil, fmt.Errorf("fleet: gateway ID %q: want a non-empty ID without '/'", id)
	}
	cli, err := newClient(cfg.Etcd)
	if err != nil {
		return nil, err
	}
	r := &Registrar{cfg: cfg, key: Key(cfg.Prefix, id), log: cmp.Or(cfg.Logger, slog.Default()), cli: cli, done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.loop()
	return r, nil
}

// newClient makes an etcd client that does not log (zap) by itself.
func newClient(cfg clientv3.Config) (*clientv3.Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.DialTimeout = cmp.Or(cfg.DialTimeout, 2*time.Second)
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("fleet: etcd client: %w", err)
	}
	return cli, nil
}

// Key returns the gateway's key.
func (r *Registrar) Key() string { return r.key }

// Stats returns the registrar's counters.
func (r *Registrar) Stats() RegistrarStats {
	n := r.registrations.Load()
	return RegistrarStats{
		Registrations:   n,
		Reregistrations: max(n, 1) - 1,
		Refreshes:       r.refreshes.Load(),
		Failures:        r.failures.Load(),
		LeasesLost:      r.leasesLost.Load(),
		Registered:      r.registered.Load(),
		Up:              r.up.Load(),
	}
}

// refreshEvery is the wait between two refreshes.
func (r *Registrar) refreshEvery() time.Duration { return r.cfg.TTL / 3 }

// opTimeout bounds one etcd request.
func (r *Registrar) opTimeout() time.Duration { return min(r.refreshEvery(), 2*time.Second) }

func (r *Registrar) loop() {
	defer close(r.done)
	backoff := 100 * time.Millisecond
	failing := 0 // failures in a row
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		if r.cfg.Ready != nil && !r.cfg.Ready() {
			t.Reset(20 * time.Millisecond)
			continue
		}
		err := r.refresh()
		if r.ctx.Err() != nil {
			return
		}
		r.up.Store(err == nil)
		if err != nil {
			failing++
			n := r.failures.Add(1)
			wait := backoff/2 + rand.N(backoff/2+1)
			// The first failure of a streak warns; the rest are debug, so
			// a long outage does not flood the log.
			level := slog.LevelWarn
			if failing > 1 {
				level = slog.LevelDebug
			}
			r.log.Log(r.ctx, level, "etcd registration failed; serving on, retrying", "key", r.key, "err", err, "retry_in", wait.Round(time.Millisecond), "failures", n, "in_a_row", failing)
			backoff = min(2*backoff, r.refreshEvery())
			t.Reset(wait)
			continue
		}
		if failing > 0 {
			r.log.Info("etcd registration recovered", "key", r.key, "failed_attempts", failing, "lease", fmt.Sprintf("%x", int64(r.lease)))
		}
		failing = 0
		backoff = 100 * time.Millisecond
		t.Reset(r.refreshEvery())
	}
}

// refresh registers the gateway when it holds no lease, or keeps its lease
// alive and rewrites its record.
func (r *Registrar) refresh() error {
	ctx, cancel := context.WithTimeout(r.ctx, r.opTimeout())
	defer cancel()
	val, err := json.Marshal(r.cfg.Info())
	if err != nil {
		return err
	}
	if r.lease != 0 {
		_, err := r.cli.KeepAliveOnce(ctx, r.lease)
		if err == nil {
			_, err = r.cli.Put(ctx, r.key, string(val), clientv3.WithLease(r.lease))
		}
		if err == nil {
			r.refreshes.Add(1)
			r.registered.Store(true)
			return nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.registered.Store(false)
			return fmt.Errorf("refresh: %w", err)
		}
		n := r.leasesLost.Add(1)
		r.log.Warn("etcd lease expired; registering again", "key", r.key, "lease", fmt.Sprintf("%x", int64(r.lease)), "leases_lost", n)
		r.lease = 0
	}
	r.registered.Store(false)
	g, err := r.cli.Grant(ctx, int64((r.cfg.TTL+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("lease grant: %w", err)
	}
	if _, err := r.cli.Put(ctx, r.key, string(val), clientv3.WithLease(g.ID)); err != nil {
		// The lease expires by itself.
		return fmt.Errorf("put: %w", err)
	}
	r.lease = g.ID
	r.registered.Store(true)
	n := r.registrations.Add(1)
	r.log.Info("registered in etcd", "key", r.key, "lease", fmt.Sprintf("%x", int64(g.ID)), "ttl", r.cfg.TTL, "registrations", n)
	return nil
}

// Deregister stops refreshing and revokes the lease, which deletes the key
// at once: servers and lobbies watching etcd stop sending anyone here. When
// etcd cannot be reached within ctx the key expires with its TTL. Call it
// first thing on drain; it is idempotent.
func (r *Registrar) Deregister(ctx context.Context) error {
	first := false
	r.once.Do(func() { first = true })
	r.cancel()
	<-r.done
	if !first || r.lease == 0 {
		return nil
	}
	lease := r.lease
	r.lease = 0
	r.registered.Store(false)
	if _, err := r.cli.Revoke(ctx, lease); err != nil {
		r.up.Store(false)
		n := r.failures.Add(1)
		r.log.Warn("etcd deregistration failed; the key expires with its lease", "key", r.key, "err", err, "ttl", r.cfg.TTL, "failures", n)
		return err
	}
	r.log.Info("deregistered from etcd", "key", r.key, "lease", fmt.Sprintf("%x", int64(lease)))
	return nil
}

// Close stops the registrar (without revoking: see Deregister) and closes
// the etcd client.
func (r *Registrar) Close() error {
	r.once.Do(func() {})
	r.cancel()
	<-r.done
	return r.cli.Close()
}
