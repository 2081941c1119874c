package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pryvsync/pryvsync/syncproto"
)

// W6 is ingest: W6SyncWriters sync writers push W6Changes new events in
// pushes of up to 1000 (each acks the changes the server echoes back, as a
// live replica does) while W6HTTPWriters post events one at a time. Each
// writer has its own account, as devices of different users would. Durable
// changes per second over the time the sync writers take.
func W6(ctx context.Context, c Config) (*Result, error) {
	c = c.Defaults()
	start := time.Now()
	res := &Result{Workload: "W6", Title: fmt.Sprintf("%d changes from %d sync writers, with %d HTTP writers alongside", c.W6Changes, c.W6SyncWriters, c.W6HTTPWriters),
		Params: map[string]any{"changes": c.W6Changes, "syncWriters": c.W6SyncWriters, "httpWriters": c.W6HTTPWriters,
			"pushSize": syncproto.MaxPushChanges, "runs": c.Runs}}
	e, err := newEnv(ctx, c)
	if err != nil {
		return nil, err
	}
	defer e.close()
	for run := 1; run <= c.Runs; run++ {
		c.progress("W6: run %d/%d", run, c.Runs)
		if err := w6Run(ctx, c, e, res); err != nil {
			return nil, err
		}
	}
	res.target("sync changes/s", ">=", 50_000)
	res.finish(start)
	return res, nil
}

func w6Run(ctx context.Context, c Config, e *env, res *Result) error {
	type writer struct {
		a   account
		gen *eventGen
		p   *pusher
	}
	mk := func(n int) ([]*writer, error) {
		ws := make([]*writer, n)
		for i := range ws {
			a, gens, err := e.setup(ctx, 1)
			if err != nil {
				return nil, err
			}
			ws[i] = &writer{a: a, gen: gens[0]}
		}
		return ws, nil
	}
	syncers, err := mk(c.W6SyncWriters)
	if err != nil {
		return err
	}
	posters, err := mk(c.W6HTTPWriters)
	if err != nil {
		return err
	}
	for _, w := range syncers {
		if w.p, err = dialPusher(ctx, e.url, w.a.user, w.a.personal); err != nil {
			return err
		}
		defer w.p.close()
	}
	per := c.W6Changes / len(syncers)
	// The pushes are encoded before the clock starts, as a replica's are
	// recorded before it syncs: W6 measures the server taking them in.
	type push struct {
		frame []byte
		n     int
	}
	pushes := make([][]push, len(syncers))
	for i, w := range syncers {
		for done := 0; done < per; {
			k := min(syncproto.MaxPushChanges, per-done)
			frame, err := w.p.encode(w.gen, k)
			if err != nil {
				return err
			}
			pushes[i] = append(pushes[i], push{frame, k})
			done += k
		}
	}
	var synced, posted atomic.Int64
	var firstErr error
	var errMu sync.Mutex
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	stop := make(chan struct{})
	var hwg, swg sync.WaitGroup
	t0 := time.Now()
	for _, w := range posters {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := e.call(ctx, "POST", "/"+w.a.user+"/c0/events", w.a.personal, w.gen.body(), nil); err != nil {
					fail(err)
					return
				}
				posted.Add(1)
			}
		}()
	}
	for i, w := range syncers {
		swg.Add(1)
		go func() {
			defer swg.Done()
			// Two pushes in flight, as a replica keeps them.
			sent := 0
			for done := range pushes[i] {
				for ; sent < len(pushes[i]) && sent < done+2; sent++ {
					if err := w.p.send(ctx, pushes[i][sent].frame); err != nil {
						fail(err)
						return
					}
				}
				ok, err := w.p.result(ctx, pushes[i][done].n)
				synced.Add(int64(ok))
				if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	swg.Wait()
	elapsed := time.Since(t0).Seconds()
	httpDone := posted.Load()
	close(stop)
	hwg.Wait()
	if firstErr != nil {
		return fmt.Errorf("W6: %w", firstErr)
	}
	res.add("sync changes/s", "changes/s", float64(synced.Load())/elapsed)
	res.add("HTTP changes/s", "changes/s", float64(httpDone)/elapsed)
	res.add("total durable changes/s", "changes/s", float64(synced.Load()+httpDone)/elapsed)
	res.add("seconds", "s", elapsed)
	return nil
}
