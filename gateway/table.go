package gateway

import "sync"

// numShards spreads a table over independent locks so that lookups from many
// connections do not serialize on one mutex. IDs are handed out sequentially,
// so the low bits spread them evenly.
const numShards = 64

// table is a sharded map from a uint32 ID (ConnID or client ID) to T.
type table[T any] struct {
	shards [numShards]shard[T]
}

type shard[T any] struct {
	mu sync.RWMutex
	m  map[uint32]T
	_  [40]byte // keep shards on separate cache lines
}

func (t *table[T]) shard(id uint32) *shard[T] { return &t.shards[id%numShards] }

// get returns the value stored under id.
func (t *table[T]) get(id uint32) (T, bool) {
	s := t.shard(id)
	s.mu.RLock()
	v, ok := s.m[id]
	s.mu.RUnlock()
	return v, ok
}

// insert stores v under id unless id is taken; it reports whether it stored.
func (t *table[T]) insert(id uint32, v T) bool {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.m[id]; taken {
		return false
	}
	if s.m == nil {
		s.m = make(map[uint32]T)
	}
	s.m[id] = v
	return true
}

// remove deletes id if its value satisfies match, and returns the value and
// whether it did. Exactly one of several concurrent removers of the same
// entry wins.
func (t *table[T]) remove(id uint32, match func(T) bool) (T, bool) {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok || (match != nil && !match(v)) {
		var zero T
		return zero, false
	}
	delete(s.m, id)
	return v, true
}

// len counts the entries (for stats and tests; it locks every shard in turn).
func (t *table[T]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
