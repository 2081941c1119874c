package sim

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	seedFlag  = flag.Int64("seed", 0, "run only this simulator seed (replay)")
	seedsFlag = flag.Int("sim.seeds", 0, "how many seeds TestSim runs (default: $PRYVSYNC_SIM_SEEDS, else 200, or 2000 with PRYVSYNC_LONG=1)")
	baseFlag  = flag.Int64("sim.base", 1, "first seed of TestSim")
	opsFlag   = flag.Int("sim.ops", 0, "ops per seed (default 40, 120 with PRYVSYNC_LONG=1)")
	traceFlag = flag.Bool("sim.trace", false, "log the trace of passing seeds too")
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreAnyFunction("github.com/dgraph-io/ristretto/v2.(*defaultPolicy[...]).processItems"),
	)
}

func long() bool { return os.Getenv("PRYVSYNC_LONG") != "" }

// simConfig is the configuration of one seed: 3 or 4 replicas, an on-disk
// server for one seed in four, a cluster node (replaced by a new node on an
// empty directory at each restart) for another one in four.
func simConfig(seed int64) Config {
	ops := *opsFlag
	if ops == 0 {
		ops = 40
		if long() {
			ops = 120
		}
	}
	return Config{Seed: seed, Replicas: 3 + int(seed%2), Ops: ops, OnDisk: seed%4 == 0, Cluster: seed%4 == 2}
}

// TestSim runs the seeded simulator over many seeds. Every failing seed
// prints its replay command.
func TestSim(t *testing.T) {
	var seeds []int64
	if *seedFlag != 0 {
		seeds = []int64{*seedFlag}
	} else {
		n := *seedsFlag
		if n == 0 {
			n = Env("PRYVSYNC_SIM_SEEDS", 200)
			if long() && os.Getenv("PRYVSYNC_SIM_SEEDS") == "" {
				n = 2000
			}
		}
		if testing.Short() {
			n = min(n, 20)
		}
		for i := 0; i < n; i++ {
			seeds = append(seeds, *baseFlag+int64(i))
		}
	}
	TraceAll = *traceFlag
	start := time.Now()
	var mu sync.Mutex
	summary := map[string][]int64{}
	// Print the whole trace of the first two failing seeds of each class.
	traced := map[string]int{}
	TraceBudget = func(classes []string) bool {
		mu.Lock()
		defer mu.Unlock()
		show := false
		for _, c := range classes {
			if traced[c] < 2 {
				show = true
			}
			traced[c]++
		}
		return show
	}
	defer func() { TraceBudget = nil }()
	var total Stats
	t.Run("seeds", func(t *testing.T) {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				s := New(t, simConfig(seed))
				s.Run()
				s.Report()
				mu.Lock()
				defer mu.Unlock()
				for _, c := range s.Classes() {
					summary[c] = append(summary[c], seed)
				}
				st := s.Stats()
				total.Ops += st.Ops - 1
				total.LocalOK += st.LocalOK
				total.LocalRefused += st.LocalRefused
				total.HTTPWrites += st.HTTPWrites
				total.Syncs += st.Syncs
				total.Faults += st.Faults
				total.Cuts += st.Cuts
				total.Restarts += st.Restarts
				total.Checks += st.Checks
				total.Pushed += st.Pushed
				total.Rejected += st.Rejected
				total.Conflicts += st.Conflicts
				total.Replays += st.Replays
			})
		}
	})
	t.Logf("%d seeds in %v: %+v", len(seeds), time.Since(start).Round(time.Millisecond), total)
	var classes []string
	for c := range summary {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		l := summary[c]
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		t.Logf("invariant %-28s failed in %d seeds, first %v", c, len(l), first64(l, 8))
	}
}

func first64(l []int64, n int) []int64 {
	if len(l) > n {
		return l[:n]
	}
	return l
}
