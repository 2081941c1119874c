package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
)

// openReplica opens a fresh replica configured with token.
func (e *env) openReplica(user, token string) (*replica.Replica, error) {
	return e.openReplicaAt(e.url, user, token)
}

// openReplicaAt opens a replica of the server at url (node B's, in
// cluster mode).
func (e *env) openReplicaAt(url, user, token string) (*replica.Replica, error) {
	dir, err := e.tempDir("replica-")
	if err != nil {
		return nil, err
	}
	r, err := replica.Open(dir, replica.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	if err := r.Configure(url, user, token); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// running is a replica in continuous sync.
type running struct {
	r      *replica.Replica
	cancel context.CancelFunc
	done   chan error
}

func run(r *replica.Replica) *running {
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { rr.done <- r.Run(ctx) }()
	return rr
}

// waitConnected waits until the replica's session is welcomed.
func (rr *running) waitConnected(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := rr.r.Status()
		if err != nil {
			return err
		}
		if st.Connected {
			return nil
		}
		select {
		case err := <-rr.done:
			return fmt.Errorf("replica stopped before connecting: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return errors.New("replica did not connect in 30 s")
}

func (rr *running) stop() error {
	rr.cancel()
	return <-rr.done
}

// W2 is the offline push: a replica that knows its channel records
// W2Events events one at a time with no connection (local write time),
// then syncs them up in one round (sync time).
func W2(ctx context.Context, c Config) (*Result, error) {
	c = c.Defaults()
	start := time.Now()
	n := c.W2Events
	res := &Result{Workload: "W2", Title: fmt.Sprintf("%d offline events recorded one by one, then one sync", n),
		Params: map[string]any{"events": n, "runs": c.Runs}}
	e, err := newEnv(ctx, c)
	if err != nil {
		return nil, err
	}
	defer e.close()
	for run := 1; run <= c.Runs; run++ {
		c.progress("W2: run %d/%d", run, c.Runs)
		a, gens, err := e.setup(ctx, 1)
		if err != nil {
			return nil, err
		}
		r, err := e.openReplica(a.user, a.personal)
		if err != nil {
			return nil, err
		}
		if _, err := r.Sync(ctx); err != nil {
			r.Close()
			return nil, err
		}
		bodies := make([]map[string]json.RawMessage, n)
		for i := range bodies {
			bodies[i] = gens[0].body()
		}
		lat := make(latencies, 0, n)
		t0 := time.Now()
		for i, b := range bodies {
			w := time.Now()
			if _, err := r.CreateEvent(b); err != nil {
				r.Close()
				return nil, fmt.Errorf("W2: local write %d: %w", i, err)
			}
			lat = append(lat, time.Since(w))
		}
		local := time.Since(t0)
		stop, err := profilePhase(c, fmt.Sprintf("W2-sync-%d", run))
		if err != nil {
			r.Close()
			return nil, err
		}
		t1, cpu1 := time.Now(), cpuSeconds()
		rr, err := r.Sync(ctx)
		syncTime, syncCPU := time.Since(t1), cpuSeconds()-cpu1
		stop()
		r.Close()
		if err != nil {
			return nil, err
		}
		if rr.Pushed != n || rr.Rejected != 0 {
			return nil, fmt.Errorf("W2: pushed %d, rejected %d, want %d pushed", rr.Pushed, rr.Rejected, n)
		}
		res.add("local writes seconds", "s", local.Seconds())
		res.add("local writes/s", "events/s", float64(n)/local.Seconds())
		res.add("local write p99", "ms", lat.pct(99))
		res.add("sync seconds", "s", syncTime.Seconds())
		res.add("sync events/s", "events/s", float64(n)/syncTime.Seconds())
		if e.srv != nil {
			res.add("sync CPU per event", "µs", syncCPU/float64(n)*1e6)
		}
	}
	if n == 10_000 {
		res.target("sync seconds", "<=", 0.5)
	}
	res.note("sync seconds is the whole round: hello, %d pushes of up to 1000, pulling the events back, ack", (n+999)/1000)
	if c.Server == "" {
		res.note("sync CPU per event is this process's CPU time (replica and in-process server) over the round")
	}
	res.finish(start)
	return res, nil
}

// W3 is live propagation: replicas A and B in continuous sync; A writes
// W3Events events, one every W3Pace; latency from the start of A's local
// write to B's notification that the change is applied.
func W3(ctx context.Context, c Config) (*Result, error) {
	c = c.Defaults()
	start := time.Now()
	res := &Result{Workload: "W3", Title: fmt.Sprintf("%d events written on A every %v, applied on B", c.W3Events, c.W3Pace),
		Params: map[string]any{"events": c.W3Events, "paceMs": c.W3Pace.Milliseconds(), "runs": c.Runs}}
	e, err := newEnv(ctx, c)
	if err != nil {
		return nil, err
	}
	defer e.close()
	for run := 1; run <= c.Runs; run++ {
		c.progress("W3: run %d/%d", run, c.Runs)
		lat, err := w3Run(ctx, c, e)
		if err != nil {
			return nil, err
		}
		res.addLatencies("latency", lat)
	}
	res.target("latency p99", "<=", 20)
	res.finish(start)
	return res, nil
}

func w3Run(ctx context.Context, c Config, e *env) (latencies, error) {
	a, gens, err := e.setup(ctx, 1)
	if err != nil {
		return nil, err
	}
	var rs []*replica.Replica
	defer func() {
		for _, r := range rs {
			r.Close()
		}
	}()
	// A writes through the server, B reads through node B (the same
	// server unless in cluster mode).
	for _, url := range []string{e.url, e.urlB} {
		r, err := e.openReplicaAt(url, a.user, a.personal)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
		if _, err := r.Sync(ctx); err != nil {
			return nil, err
		}
	}
	ra, rb := run(rs[0]), run(rs[1])
	defer ra.stop()
	defer rb.stop()
	for _, rr := range []*running{ra, rb} {
		if err := rr.waitConnected(ctx); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	written := map[string]time.Time{}
	lat := make(latencies, 0, c.W3Events)
	got := make(chan struct{}, c.W3Events)
	sub := rs[1].Subscribe()
	go func() {
		for ch := range sub {
			if ch.Source != "server" {
				continue
			}
			at := time.Now()
			mu.Lock()
			if t, ok := written[ch.ID]; ok {
				lat = append(lat, at.Sub(t))
				delete(written, ch.ID)
				got <- struct{}{}
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(c.W3Pace)
	defer tick.Stop()
	for i := 0; i < c.W3Events; i++ {
		b := gens[0].body()
		// The id is chosen here so that B's notification can never race
		// ahead of its registration.
		id := model.NewID()
		b["id"] = model.JSONString(id)
		mu.Lock()
		written[id] = time.Now()
		mu.Unlock()
		if _, err := rs[0].CreateEvent(b); err != nil {
			return nil, err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	timeout := time.After(30 * time.Second)
	for range c.W3Events {
		select {
		case <-got:
		case <-timeout:
			mu.Lock()
			defer mu.Unlock()
			return nil, fmt.Errorf("W3: %d of %d events never reached B", len(written), c.W3Events)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return lat, nil
}

// W7 is revocation: a replica holds W7Held events through a shared access
// and is connected; from the start of the access's deletion over HTTP until
// the replica has purged everything it held through it (Run returns
// ErrAccessRevoked after the purge). W7Trials trials per run.
func W7(ctx context.Context, c Config) (*Result, error) {
	c = c.Defaults()
	start := time.Now()
	res := &Result{Workload: "W7", Title: fmt.Sprintf("access deleted over HTTP until the replica purged %d events (%d trials per run)", c.W7Held, c.W7Trials),
		Params: map[string]any{"held": c.W7Held, "trials": c.W7Trials, "runs": c.Runs}}
	e, err := newEnv(ctx, c)
	if err != nil {
		return nil, err
	}
	defer e.close()
	for run := 1; run <= c.Runs; run++ {
		a, gens, err := e.setup(ctx, 1)
		if err != nil {
			return nil, err
		}
		if err := e.seed(ctx, a, gens[0], c.W7Held); err != nil {
			return nil, err
		}
		lat := make(latencies, 0, c.W7Trials)
		for trial := 1; trial <= c.W7Trials; trial++ {
			c.progress("W7: run %d/%d, trial %d/%d", run, c.Runs, trial, c.W7Trials)
			d, err := w7Trial(ctx, c, e, a)
			if err != nil {
				return nil, fmt.Errorf("W7 trial %d: %w", trial, err)
			}
			lat = append(lat, d)
		}
		res.add("purged p50", "ms", lat.pct(50))
		res.add("purged p99", "ms", lat.pct(99))
		res.add("purged max", "ms", lat.pct(100))
	}
	res.target("purged p99", "<=", 100)
	res.finish(start)
	return res, nil
}

func w7Trial(ctx context.Context, c Config, e *env, a account) (time.Duration, error) {
	token, err := e.shareChannel(ctx, a, "c0", "read")
	if err != nil {
		return 0, err
	}
	r, err := e.openReplica(a.user, token)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	res, err := r.Sync(ctx)
	if err != nil {
		return 0, err
	}
	if want := c.W7Held + 1 + foldersPerChannel; res.Applied != want {
		return 0, fmt.Errorf("held %d items, want %d", res.Applied, want)
	}
	rr := run(r)
	if err := rr.waitConnected(ctx); err != nil {
		rr.stop()
		return 0, err
	}
	t0 := time.Now()
	if err := e.call(ctx, "DELETE", "/"+a.user+"/accesses/"+token, a.personal, nil, nil); err != nil {
		rr.stop()
		return 0, err
	}
	select {
	case err = <-rr.done:
	case <-time.After(30 * time.Second):
		rr.stop()
		return 0, errors.New("the replica was not told of the revocation in 30 s")
	}
	d := time.Since(t0)
	if !errors.Is(err, replica.ErrAccessRevoked) {
		return 0, fmt.Errorf("Run ended with %v, want ErrAccessRevoked", err)
	}
	evs, err := r.ListEvents(replica.Filter{State: "all"})
	if err != nil {
		return 0, err
	}
	if len(evs) != 0 {
		return 0, fmt.Errorf("the replica still holds %d events after the purge", len(evs))
	}
	return d, nil
}
