package store

import (
	"context"
	"sync"
)

// MemLog is a Log held in memory, shared by the Stores of one process: the
// cluster's rules (conditional appends, idempotent retries, one order for
// all users) without a cluster, for tests. It can be told to refuse
// appends (SetDown) to stand for an unreachable log.
type MemLog struct {
	mu      sync.Mutex
	entries []LogEntry        // entries[i].Seq == i+1
	last    map[string]uint64 // last entry per user
	ids     map[string]uint64 // append id -> its entry
	epoch   string
	down    bool
	held    bool          // Follow delivers nothing (see Hold)
	grew    chan struct{} // closed and replaced on each append
	refused int           // appends refused with ErrLogConflict
}

// NewMemLog returns an empty log.
func NewMemLog() *MemLog {
	return &MemLog{last: map[string]uint64{}, ids: map[string]uint64{}, grew: make(chan struct{})}
}

// Hold stops (true) or resumes (false) the delivery of entries to Follow:
// the nodes then lag behind the log, as a slow follower would.
func (m *MemLog) Hold(held bool) {
	m.mu.Lock()
	m.held = held
	close(m.grew)
	m.grew = make(chan struct{})
	m.mu.Unlock()
}

// SetDown makes appends fail (true) or work again (false).
func (m *MemLog) SetDown(down bool) {
	m.mu.Lock()
	m.down = down
	m.mu.Unlock()
}

// Append implements Log.
func (m *MemLog) Append(ctx context.Context, user string, prev uint64, id string, data []byte) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return 0, ErrLogUnavailable
	}
	if seq, ok := m.ids[id]; ok {
		return seq, nil
	}
	if m.last[user] != prev {
		m.refused++
		return 0, ErrLogConflict
	}
	seq := uint64(len(m.entries)) + 1
	m.entries = append(m.entries, LogEntry{User: user, Seq: seq, Data: append([]byte(nil), data...)})
	m.last[user] = seq
	m.ids[id] = seq
	close(m.grew)
	m.grew = make(chan struct{})
	return seq, nil
}

// Read implements Log.
func (m *MemLog) Read(ctx context.Context, user string, after uint64) ([]LogEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []LogEntry
	for _, e := range m.entries[min(after, uint64(len(m.entries))):] {
		if e.User == user {
			out = append(out, e)
		}
	}
	return out, nil
}

// Follow implements Log.
func (m *MemLog) Follow(ctx context.Context, from uint64, fn func(LogEntry)) error {
	next := max(from, 1)
	for {
		m.mu.Lock()
		var batch []LogEntry
		if next <= uint64(len(m.entries)) && !m.held {
			batch = append(batch, m.entries[next-1:]...)
		}
		grew := m.grew
		m.mu.Unlock()
		for _, e := range batch {
			fn(e)
			next = e.Seq + 1
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-grew:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Epoch implements Log.
func (m *MemLog) Epoch(ctx context.Context, proposal string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.epoch == "" {
		m.epoch = proposal
	}
	return m.epoch, nil
}

// Conflicts is the number of appends refused with ErrLogConflict.
func (m *MemLog) Conflicts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused
}

// MaxEntry implements Log: 64 MiB, as a NATS server allows at most.
func (m *MemLog) MaxEntry() int { return 64 << 20 }

// Last implements Log.
func (m *MemLog) Last(context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.entries)), nil
}
