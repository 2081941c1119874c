package server

import (
	"sync"

	"github.com/pryvsync/pryvsync/server/store"
)

// Hub fans committed changes out to live connections. It never blocks the
// committer: Publish only records what changed on each subscriber and
// signals it through a coalescing channel of capacity one. Each connection
// then reads the store itself, at its own pace.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[*Sub]struct{}

	// frames lets the sessions that one commit wakes share the encoding of
	// the same changes batch (framecache.go).
	frames frameCache
}

// Sub is one live connection's subscription to its user's changes.
type Sub struct {
	user string
	wake chan struct{}

	mu       sync.Mutex
	head     uint64
	notices  []store.Notice
	accesses []string
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[string]map[*Sub]struct{}{}} }

// Subscribe registers a connection of user.
func (h *Hub) Subscribe(user string) *Sub {
	s := &Sub{user: user, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	m := h.subs[user]
	if m == nil {
		m = map[*Sub]struct{}{}
		h.subs[user] = m
	}
	m[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Unsubscribe removes a connection.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	if m := h.subs[s.user]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.subs, s.user)
		}
	}
	h.mu.Unlock()
}

// Count returns how many connections user has.
func (h *Hub) Count(user string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[user])
}

// Publish is the store's OnCommit: it runs on the committer goroutine and
// must stay O(subscribers) without blocking.
func (h *Hub) Publish(commits []store.Commit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range commits {
		for s := range h.subs[c.User] {
			s.mu.Lock()
			if c.Head > s.head {
				s.head = c.Head
			}
			s.notices = append(s.notices, c.Notices...)
			s.accesses = append(s.accesses, c.AccessesChanged...)
			s.mu.Unlock()
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Wake is signalled (coalesced) when something was published.
func (s *Sub) Wake() <-chan struct{} { return s.wake }

// Take returns and clears what was published since the last Take.
func (s *Sub) Take() (head uint64, notices []store.Notice, accesses []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	head, notices, accesses = s.head, s.notices, s.accesses
	s.notices, s.accesses = nil, nil
	return
}
