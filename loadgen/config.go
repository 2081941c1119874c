package loadgen

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config says where and how big to run the workloads. Zero fields take the
// sizes of DESIGN.md §6 (see Defaults).
type Config struct {
	// Server is the root URL of a running server. Empty: each workload
	// starts its own server in this process, on loopback, on a temporary
	// on-disk store with SyncWrites on.
	Server string
	// AdminKey is the external server's admin key: the workloads create
	// their users through the system API.
	AdminKey string
	// ServerPID is the external server's process id, for W5's memory figure
	// (0: not measured).
	ServerPID int
	// Cluster runs each workload's in-process server as node A of a
	// cluster: three NATS servers with JetStream in this process and a
	// second node B; W3's receiving replica is on node B.
	Cluster bool

	// N is the size of the big initial sync (W1 pulls N and N/10 events,
	// W4 spreads N over 10 channels). Default 100 000.
	N int
	// Runs is the number of measured runs of each workload. Default 3.
	Runs int
	// W2Events is how many offline events W2 records. Default N/10.
	W2Events int
	// W3Events and W3Pace: events A writes in W3, and how often. Defaults 500
	// and 20 ms.
	W3Events int
	W3Pace   time.Duration
	// W5Conns is how many idle replicas W5 connects (capped by the open-file
	// limit). Default 10 000. W5Writes is how many writes reach them. Default 5.
	W5Conns  int
	W5Writes int
	// W6Changes is the number of changes W6 pushes, split over W6SyncWriters
	// sync writers while W6HTTPWriters post events one at a time. Defaults N,
	// 8 and 4.
	W6Changes     int
	W6SyncWriters int
	W6HTTPWriters int
	// W7Trials and W7Held: revocations per run, and events the replica holds.
	// Defaults 50 and 1000.
	W7Trials int
	W7Held   int

	// Dir holds the temporary stores ("": the system's temporary directory).
	Dir string
	// Exec runs this program's bench command in a child process, for the
	// sides whose memory is measured (the pulling replica of W1 and W4, the
	// server of W5): Exec[0] is the executable, the rest its leading
	// arguments; ExecEnv is added to the child's environment. Nil: no child
	// processes, memory is then in-process Go memory.
	Exec    []string
	ExecEnv []string
	// ProfileDir, when set, receives CPU and heap profiles of each workload
	// (this process) and of the child replicas.
	ProfileDir string
	// Progress, when set, is told what is running.
	Progress func(msg string)
}

// Defaults fills the zero fields of c.
func (c Config) Defaults() Config {
	if c.N <= 0 {
		c.N = 100_000
	}
	if c.Runs <= 0 {
		c.Runs = 3
	}
	if c.W2Events <= 0 {
		c.W2Events = max(1, c.N/10)
	}
	if c.W3Events <= 0 {
		c.W3Events = 500
	}
	if c.W3Pace <= 0 {
		c.W3Pace = 20 * time.Millisecond
	}
	if c.W5Conns <= 0 {
		c.W5Conns = 10_000
	}
	if c.W5Writes <= 0 {
		c.W5Writes = 5
	}
	if c.W6Changes <= 0 {
		c.W6Changes = c.N
	}
	if c.W6SyncWriters <= 0 {
		c.W6SyncWriters = 8
	}
	if c.W6HTTPWriters <= 0 {
		c.W6HTTPWriters = 4
	}
	if c.W7Trials <= 0 {
		c.W7Trials = 50
	}
	if c.W7Held <= 0 {
		c.W7Held = 1000
	}
	if c.Dir == "" {
		c.Dir = os.TempDir()
	}
	c.Server = strings.TrimRight(c.Server, "/")
	return c
}

func (c Config) progress(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(fmt.Sprintf(format, args...))
	}
}

// Workload is one of W1–W7.
type Workload struct {
	Name  string
	Title string
	Run   func(ctx context.Context, c Config) (*Result, error)
}

// Workloads lists W1–W7 in order.
var Workloads = []Workload{
	{"W1", "initial sync into a fresh replica", W1},
	{"W2", "offline writes pushed in one sync", W2},
	{"W3", "live propagation between two replicas", W3},
	{"W4", "scoped initial sync (one channel of ten)", W4},
	{"W5", "fan-out to idle connected replicas", W5},
	{"W6", "ingest from concurrent sync and HTTP writers", W6},
	{"W7", "revocation until the replica has purged", W7},
}

// Lookup returns the workload named name (case-insensitive).
func Lookup(name string) (Workload, bool) {
	for _, w := range Workloads {
		if strings.EqualFold(w.Name, name) {
			return w, true
		}
	}
	return Workload{}, false
}
