package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// TestPruneResultsSeesEveryLayer: PruneResults lists a replica's stored
// results without scanning whole write sets; with group commits pipelined,
// requests rolled back and replica ids that extend one another, it must
// still list exactly what a scan of the prefix lists, and keep the newest.
func TestPruneResultsSeesEveryLayer(t *testing.T) {
	// Small group commits, so that requests often run while one is in flight.
	s, err := Open(Options{Dir: t.TempDir(), SyncWrites: true, MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, each, keep = 8, 30, 7
	errRollback := errors.New("rolled back")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				replica := []string{"rep", "rep/2"}[w%2]
				err := s.Update(context.Background(), "u", func(tx *Tx) error {
					raw, _, err := tx.GetRaw("u/u/counter")
					if err != nil {
						return err
					}
					var n uint64
					if len(raw) == 8 {
						n = beUint(raw)
					}
					for k := range uint64(3) {
						tx.PutResult(replica, 3*n+k+1, []byte("r"))
					}
					tx.PutRaw("u/u/counter", be64(n+1))
					for _, rep := range []string{"rep", "rep/2"} {
						prefix := KeyResultPrefix("u", rep)
						var want []string
						err = tx.scan(prefix, true, func(k string, _ []byte) (bool, error) {
							want = append(want, k)
							return true, nil
						})
						if err != nil {
							return err
						}
						got, err := tx.resultKeys(prefix)
						if err != nil {
							return err
						}
						if !reflect.DeepEqual(got, want) {
							return fmt.Errorf("%s: result keys %q, scan %q", rep, got, want)
						}
					}
					if err := tx.PruneResults(replica, 0, keep); err != nil {
						return err
					}
					if i%4 == 3 {
						return errRollback
					}
					return nil
				})
				if err != nil && !errors.Is(err, errRollback) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	err = s.View("u", func(tx *Tx) error {
		var keys []string
		err := tx.scan(KeyResultPrefix("u", "rep/2"), true, func(k string, _ []byte) (bool, error) {
			keys = append(keys, k)
			return true, nil
		})
		if err != nil {
			return err
		}
		if len(keys) != keep {
			return fmt.Errorf("rep/2 keeps %d results, want %d", len(keys), keep)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
