package gateway

import "sync"

// numShards spreads a table over independent locks so that lookups from many
// connections do not serialize on one mutex (shardBits is its log2).
const (
	shardBits = 6
	numShards = 1 << shardBits
)

// table is a sharded map from a uint32 ID (ConnID or client ID) to T.
type table[T any] struct {
	shards [numShards]shard[T]
}

// A shard takes a plain mutex, not a sync.RWMutex: lookups are short and
// rarely contended (readers keep route caches), and a Mutex costs half the
// atomic operations of an RWMutex's Lock and Unlock.
type shard[T any] struct {
	mu sync.Mutex
	m  map[uint32]T
	_  [48]byte // keep shards on separate cache lines
}

// shard returns id's shard. ConnIDs are handed out in blocks of
// connIDBlock (64) per reader, so the low bits would put the first ConnID
// of every client in one shard, the second in the next: with a few
// virtual connections per client, nearly all of them were in two or three
// shards. A multiplicative hash (as routeSlot) spreads them.
func (t *table[T]) shard(id uint32) *shard[T] {
	return &t.shards[(id*0x9E3779B1)>>(32-shardBits)]
}

// get returns the value stored under id.
func (t *table[T]) get(id uint32) (T, bool) {
	s := t.shard(id)
	s.mu.Lock()
	v, ok := s.m[id]
	s.mu.Unlock()
	return v, ok
}

// insert stores v under id unless id is taken; it reports whether it stored.
func (t *table[T]) insert(id uint32, v T) bool {
	s := t.shard(id)
	s.mu.Lock()
	if _, taken := s.m[id]; taken {
		s.mu.Unlock()
		return false
	}
	if s.m == nil {
		s.m = make(map[uint32]T)
	}
	s.m[id] = v
	s.mu.Unlock()
	return true
}

// remove deletes id if its value satisfies match, and returns the value and
// whether it did. Exactly one of several concurrent removers of the same
// entry wins.
func (t *table[T]) remove(id uint32, match func(T) bool) (T, bool) {
	s := t.shard(id)
	s.mu.Lock()
	v, ok := s.m[id]
	if !ok || (match != nil && !match(v)) {
		s.mu.Unlock()
		var zero T
		return zero, false
	}
	delete(s.m, id)
	s.mu.Unlock()
	return v, true
}

// removeAll deletes every entry whose value satisfies match and returns
// their values. It locks one shard at a time: an entry inserted meanwhile
// into a shard it has passed is not seen.
func (t *table[T]) removeAll(match func(T) bool) []T {
	var out []T
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for id, v := range s.m {
			if match(v) {
				out = append(out, v)
				delete(s.m, id)
			}
		}
		s.mu.Unlock()
	}
	return out
}

// each calls f on every value, one shard at a time, under its lock.
func (t *table[T]) each(f func(T)) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, v := range s.m {
			f(v)
		}
		s.mu.Unlock()
	}
}

// len counts the entries (for stats and tests; it locks every shard in turn).
func (t *table[T]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
