package gateway

import (
	"container/list"
	"net/netip"
)

// knownSources remembers the sources (sourceKey) servers registered from
// lately, the most recent maxKnownSources of them. The last
// 1/knownShare of the ServerMaxHandshakes slots admits only them: a flood
// from more addresses than the per-source caps can stop (each holds up to
// ServerMaxHandshakesPerSource slots, so 128 addresses fill 1024) can keep
// new hosts from registering, but not the hosts whose servers registered
// before, which reconnect after a restart of their own. The table lives in
// memory only: after a restart of the gateway every host is new until its
// servers register again. Guarded by the gateway's mu.
type knownSources struct {
	m   map[netip.Prefix]*list.Element
	lru list.List // of netip.Prefix, the most recent first
}

const (
	maxKnownSources = 4096
	knownShare      = 8
)

// add records that a server registered from src.
func (k *knownSources) add(src netip.Prefix) {
	if !src.IsValid() {
		return
	}
	if e := k.m[src]; e != nil {
		k.lru.MoveToFront(e)
		return
	}
	if k.m == nil {
		k.m = make(map[netip.Prefix]*list.Element)
	}
	if k.lru.Len() >= maxKnownSources {
		delete(k.m, k.lru.Remove(k.lru.Back()).(netip.Prefix))
	}
	k.m[src] = k.lru.PushFront(src)
}

// has reports whether a server registered from src lately. A source that
// is not an IP (a Unix socket, a pipe) is local, and counts as known.
func (k *knownSources) has(src netip.Prefix) bool {
	return !src.IsValid() || k.m[src] != nil
}
