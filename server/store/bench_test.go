package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

const benchWriters = 64

func benchDoc(n int) crdt.Doc {
	v := crdt.Version{Time: int64(n), Node: "bench"}
	return crdt.Doc{Fields: map[string]crdt.Field{
		"channelId": {V: v, Val: model.JSONString("ch")},
		"time":      {V: v, Val: model.JSONNumber(float64(n))},
		"type":      {V: v, Val: model.JSONString("note-txt")},
		"content":   {V: v, Val: model.JSONString("a small note of some sixty bytes, as typical events are")},
	}}
}

// benchCommitter runs b.N write requests from benchWriters goroutines, each
// request writing perReq new items, against an on-disk store with SyncWrites.
// Writers build their changes before calling Update, as the server's
// handlers do, so the benchmark measures the committer, not doc building.
func benchCommitter(b *testing.B, perReq int) {
	s, err := store.Open(store.Options{Dir: b.TempDir(), SyncWrites: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for range benchWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, perReq)
			docs := make([]crdt.Doc, perReq)
			for {
				n := int(next.Add(1))
				if n > b.N {
					return
				}
				for j := range perReq {
					k := n*perReq + j
					ids[j], docs[j] = fmt.Sprintf("e%09d", k), benchDoc(k)
				}
				err := s.Update(context.Background(), user, func(tx *store.Tx) error {
					for j := range perReq {
						if _, err := tx.PutItem(model.KindEvent, ids[j], docs[j]); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N*perReq)/elapsed.Seconds(), "changes/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
	// CPU time of the whole process (writers, committer, Badger, GC) per
	// change: what the 2 cores pay, less sensitive to a busy machine than
	// changes/s.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*perReq), "cpu-µs/change")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCommitter: 64 writers, one small PutItem per Update, durable.
func BenchmarkCommitter(b *testing.B) { benchCommitter(b, 1) }

// BenchmarkCommitterBatch100: 64 writers, 100 PutItems per Update, durable.
func BenchmarkCommitterBatch100(b *testing.B) { benchCommitter(b, 100) }

// BenchmarkReadFeed reads a 100k-entry channel feed from start to end.
func BenchmarkReadFeed(b *testing.B) {
	const items = 100_000
	s, err := store.Open(store.Options{Dir: b.TempDir(), SyncWrites: false})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < items; i += 1000 {
		err := s.Update(context.Background(), user, func(tx *store.Tx) error {
			for k := i; k < i+1000; k++ {
				if _, err := tx.PutItem(model.KindEvent, fmt.Sprintf("e%09d", k), benchDoc(k)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		err := s.View(user, func(tx *store.Tx) error {
			return tx.ReadFeed([]string{"ch"}, 0, func(store.FeedEntry) (bool, error) { n++; return true, nil })
		})
		if err != nil || n != items {
			b.Fatalf("read %d entries, err %v", n, err)
		}
	}
	b.ReportMetric(float64(items)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
