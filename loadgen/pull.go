package loadgen

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// W1 is the initial sync: the server holds N/10 (then N) events in one
// channel; a fresh replica pulls all of them. Seconds, events/s and the
// replica's peak RSS.
func W1(ctx context.Context, c Config) (*Result, error) {
	c = c.Defaults()
	start := time.Now()
	res := &Result{Workload: "W1", Title: fmt.Sprintf("initial sync of %d and %d events into a fresh replica", c.N/10, c.N),
		Params: map[string]any{"events": []int{c.N / 10, c.N}, "runs": c.Runs, "childProcess": len(c.Exec) > 0}}
	e, err := newEnv(ctx, c)
	if err != nil {
		return nil, err
	}
	defer e.close()
	for _, n := range []int{c.N / 10, c.N} {
		if n <= 0 {
			continue
		}
		c.progress("W1: seeding %d events", n)
		a, gens, err := e.setup(ctx, 1)
		if err != nil {
			return nil, err
		}
		if err := e.seed(ctx, a, gens[0], n); err != nil {
			return nil, err
		}
		label := sizeLabel(n)
		for run := 1; run <= c.Runs; run++ {
			c.progress("W1 %s: run %d/%d", label, run, c.Runs)
			rep, err := e.pullOnce(ctx, c, a.user, a.personal, fmt.Sprintf("W1-%s-run%d", label, run), run == 1)
			if err != nil {
				return nil, err
			}
			if want := n + 1 + foldersPerChannel; rep.Applied != want {
				return nil, fmt.Errorf("W1: replica applied %d items, want %d", rep.Applied, want)
			}
			res.add(label+" seconds", "s", rep.Seconds)
			res.add(label+" events/s", "events/s", float64(n)/rep.Seconds)
			res.addPeak(label, rep)
			res.addCPU(label, rep, n, len(c.Exec) > 0)
		}
		if n == c.N {
			res.target(label+" events/s", ">=", 100_000)
			res.target(label+" replica peak RSS", "<=", 200)
		}
	}
	if len(c.Exec) == 0 {
		res.note("no child process: the peak RSS is this whole process's, the server's included")
	}
	res.finish(start)
	return res, nil
}

func (r *Result) addPeak(label string, rep PullReport) {
	r.add(label+" replica peak RSS", "MB", float64(rep.PeakRSS)/1e6)
}

func (r *Result) addCPU(label string, rep PullReport, n int, child bool) {
	if child {
		r.add(label+" replica CPU per event", "µs", rep.CPU/float64(n)*1e6)
	}
}

// pullOnce pulls everything token sees into a fresh replica directory.
func (e *env) pullOnce(ctx context.Context, c Config, user, token, name string, profile bool) (PullReport, error) {
	dir, err := e.tempDir("replica-")
	if err != nil {
		return PullReport{}, err
	}
	spec := PullSpec{Server: e.url, User: user, Token: token, Dir: dir}
	if profile && c.ProfileDir != "" && len(c.Exec) > 0 {
		spec.CPUProfile = filepath.Join(c.ProfileDir, name+"-replica.cpu.pprof")
		spec.HeapProfile = filepath.Join(c.ProfileDir, name+"-replica.heap.pprof")
	}
	return pull(ctx, c, spec)
}

func sizeLabel(n int) string {
	switch {
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	default:
		return fmt.Sprint(n)
	}
}

// W4 is the scoped sync: N events across 10 channels; a replica whose token
// reads one channel pulls its N/10. Its time is compared, run by run, with a
// W1 pull of N/10 events from a one-channel account.
func W4(ctx context.Context, c Config) (*Result, error) {
	c = c.Defaults()
	start := time.Now()
	per := c.N / 10
	res := &Result{Workload: "W4", Title: fmt.Sprintf("one channel of 10 (%d of %d events) vs W1 at %d", per, per*10, per),
		Params: map[string]any{"events": per * 10, "channels": 10, "pulled": per, "runs": c.Runs}}
	e, err := newEnv(ctx, c)
	if err != nil {
		return nil, err
	}
	defer e.close()
	c.progress("W4: seeding %d events in 10 channels", per*10)
	big, gens, err := e.setup(ctx, 10)
	if err != nil {
		return nil, err
	}
	for _, g := range gens {
		if err := e.seed(ctx, big, g, per); err != nil {
			return nil, err
		}
	}
	token, err := e.shareChannel(ctx, big, "c0", "read")
	if err != nil {
		return nil, err
	}
	small, sgens, err := e.setup(ctx, 1)
	if err != nil {
		return nil, err
	}
	if err := e.seed(ctx, small, sgens[0], per); err != nil {
		return nil, err
	}
	want := per + 1 + foldersPerChannel
	for run := 1; run <= c.Runs; run++ {
		c.progress("W4: run %d/%d", run, c.Runs)
		ref, err := e.pullOnce(ctx, c, small.user, small.personal, fmt.Sprintf("W4-ref-run%d", run), false)
		if err != nil {
			return nil, err
		}
		sc, err := e.pullOnce(ctx, c, big.user, token, fmt.Sprintf("W4-scoped-run%d", run), run == 1)
		if err != nil {
			return nil, err
		}
		if ref.Applied != want || sc.Applied != want {
			return nil, fmt.Errorf("W4: applied %d (unscoped) and %d (scoped) items, want %d", ref.Applied, sc.Applied, want)
		}
		res.add("scoped seconds", "s", sc.Seconds)
		res.add("W1 same size seconds", "s", ref.Seconds)
		res.add("scoped / W1", "ratio", sc.Seconds/ref.Seconds)
		res.add("scoped events/s", "events/s", float64(per)/sc.Seconds)
	}
	res.target("scoped / W1", "<=", 1.2)
	res.finish(start)
	return res, nil
}
