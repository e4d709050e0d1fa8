package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/fastway-go/fastway/proto"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultResync is how often Discovery reads the whole set again, beside
// its watch.
const DefaultResync = 10 * time.Second

// Discovery is a proto.Discovery of the gateways registered in etcd: it
// reads them all, then watches the prefix for changes, and reads them all
// again every Resync or whenever the watch breaks. While etcd is
// unreachable it reports the error and the fleet keeps the gateways it
// knows, so live traffic goes on.
type Discovery struct {
	// Etcd is the client's configuration; Run makes the client and closes
	// it when it returns.
	Etcd clientv3.Config
	// Prefix is the key prefix the gateways register under; empty:
	// DefaultPrefix.
	Prefix string
	// Resync is the period of full reads; 0: DefaultResync.
	Resync time.Duration
}

var _ proto.Discovery = (*Discovery)(nil)

// Run implements proto.Discovery.
func (d *Discovery) Run(ctx context.Context, report func([]proto.GatewayInfo, error)) {
	cli, err := newClient(d.Etcd)
	if err != nil {
		report(nil, err)
		return
	}
	defer cli.Close()
	dir := Dir(cmp.Or(d.Prefix, DefaultPrefix))
	resync := cmp.Or(d.Resync, DefaultResync)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		set, rev, err := list(ctx, cli, dir, min(resync, 2*time.Second))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			report(nil, err)
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, resync)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		backoff = 100 * time.Millisecond
		report(values(set), nil)
		if err := d.watch(ctx, cli, dir, rev, set, resync, report); err != nil && ctx.Err() == nil {
			report(nil, err)
		}
	}
}

// watch applies the changes after revision rev to set and reports each,
// until resync has passed, the watch breaks (its error) or ctx ends.
func (d *Discovery) watch(ctx context.Context, cli *clientv3.Client, dir string, rev int64, set map[string]proto.GatewayInfo, resync time.Duration, report func([]proto.GatewayInfo, error)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := cli.Watch(wctx, dir, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	t := time.NewTimer(resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			return nil
		case wr, ok := <-wch:
			if !ok {
				return fmt.Errorf("etcd watch closed")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("etcd watch: %w", err)
			}
			for _, ev := range wr.Events {
				k := string(ev.Kv.Key)
				if ev.Type == mvccpb.DELETE {
					delete(set, k)
				} else if gi, ok := decode(dir, ev.Kv); ok {
					set[k] = gi
				}
			}
			if len(wr.Events) > 0 {
				report(values(set), nil)
			}
		}
	}
}

// list reads every gateway under dir and returns them by key, with the
// revision read.
func list(ctx context.Context, cli *clientv3.Client, dir string, timeout time.Duration) (map[string]proto.GatewayInfo, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd get %s: %w", dir, err)
	}
	set := make(map[string]proto.GatewayInfo, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if gi, ok := decode(dir, kv); ok {
			set[string(kv.Key)] = gi
		}
	}
	return set, resp.Header.Revision, nil
}

// decode returns the record in kv; one that does not parse, or whose ID
// is not its key's, is skipped.
func decode(dir string, kv *mvccpb.KeyValue) (proto.GatewayInfo, bool) {
	var gi proto.GatewayInfo
	if json.Unmarshal(kv.Value, &gi) != nil || gi.ID != strings.TrimPrefix(string(kv.Key), dir) {
		return gi, false
	}
	return gi, true
}

func values(set map[string]proto.GatewayInfo) []proto.GatewayInfo {
	list := make([]proto.GatewayInfo, 0, len(set))
	for _, gi := range set {
		list = append(list, gi)
	}
	slices.SortFunc(list, func(a, b proto.GatewayInfo) int { return cmp.Compare(a.ID, b.ID) })
	return list
}

// List reads the gateways registered under prefix once, for a login or
// lobby service that hands players a gateway without linking to any (a
// Fleet's ClientAddrs does it for a server): sorted least loaded first.
func List(ctx context.Context, cfg clientv3.Config, prefix string) ([]proto.GatewayInfo, error) {
	cli, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	set, _, err := list(ctx, cli, Dir(cmp.Or(prefix, DefaultPrefix)), timeout)
	if err != nil {
		return nil, err
	}
	l := values(set)
	slices.SortStableFunc(l, func(a, b proto.GatewayInfo) int { return cmp.Compare(a.Clients, b.Clients) })
	return l, nil
}
