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
					tx.PutResults(replica, []uint64{3*n + 1, 3*n + 2, 3*n + 3}, [][]byte{[]byte("r"), []byte("r"), []byte("r")})
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
					if err := tx.PruneResults(replica, keep); err != nil {
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
		// Whole pushes of 3 are kept until the newer ones hold keep.
		if want := (keep + 2) / 3; len(keys) != want {
			return fmt.Errorf("rep/2 keeps %d pushes, want %d", len(keys), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStoredResultsAnswerEachChange: the results of a push are stored under
// one key; each change's result is found again, pruning keeps whole pushes
// until the newer ones hold keep results, results stored one per key by an
// earlier version go, and a replica whose id extends another's under "/"
// keeps its own.
func TestStoredResultsAnswerEachChange(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	put := func(replica string, rseqs ...uint64) {
		t.Helper()
		err := s.Update(ctx, "u", func(tx *Tx) error {
			var res [][]byte
			for _, r := range rseqs {
				res = append(res, []byte(fmt.Sprintf("%s:%d", replica, r)))
			}
			tx.PutResults(replica, rseqs, res)
			return tx.PruneResults(replica, 4)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	legacy := KeyResultPrefix("u", "rep") + string(be64(1))
	if err := s.Update(ctx, "u", func(tx *Tx) error { tx.PutRaw(legacy, []byte("old")); return nil }); err != nil {
		t.Fatal(err)
	}
	put("rep/2", 1, 2, 3, 4, 5, 6)
	put("rep", 2, 3, 5)
	put("rep", 7, 9)
	put("rep", 10)
	put("rep", 11, 12) // the newer pushes hold 5 >= 4: the first push goes
	want := map[uint64]bool{7: true, 9: true, 10: true, 11: true, 12: true}
	err = s.View("u", func(tx *Tx) error {
		for rs := uint64(0); rs <= 13; rs++ {
			got, ok, err := tx.Result("rep", rs)
			if err != nil {
				return err
			}
			if ok != want[rs] || ok && string(got) != fmt.Sprintf("rep:%d", rs) {
				return fmt.Errorf("result of rseq %d: %q, %v; want it: %v", rs, got, ok, want[rs])
			}
		}
		if _, ok, _ := tx.get(legacy); ok {
			return errors.New("a result stored one per key by an earlier version is still there")
		}
		for rs := uint64(1); rs <= 6; rs++ {
			if got, ok, err := tx.Result("rep/2", rs); err != nil || !ok || string(got) != fmt.Sprintf("rep/2:%d", rs) {
				return fmt.Errorf("rep/2 result of rseq %d: %q, %v, %v", rs, got, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
