package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/pryvsync/pryvsync/loadgen"
)

// benchExecEnv is added to the environment of the child processes bench
// starts; tests set it so that the test binary re-executes as the CLI.
var benchExecEnv []string

// benchExec returns how bench re-executes itself (nil: no child processes).
var benchExec = func() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe, "bench"}
}

// benchReport is the JSON written by --out.
type benchReport struct {
	Machine loadgen.Machine   `json:"machine"`
	Config  map[string]any    `json:"config"`
	Started time.Time         `json:"started"`
	Results []*loadgen.Result `json:"results"`
}

// runBench serves `pryvsync bench`: the workloads W1–W7 of DESIGN.md §6.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	workloads := fs.String("workloads", "W1,W2,W3,W4,W5,W6,W7", "comma-separated workloads to run")
	n := fs.Int("n", 100_000, "events of the big initial sync (W1 also runs n/10; W4 spreads n over 10 channels)")
	runs := fs.Int("runs", 3, "measured runs per workload")
	serverURL := fs.String("server", "", "root URL of a running server (default: one in-process server per workload, on a temporary on-disk store with SyncWrites)")
	clusterMode := fs.Bool("cluster", false, "run each workload's server as a node of a cluster: 3 NATS servers (JetStream, R3) in this process and two nodes; W3's receiving replica on the second node (W5 does not run in this mode)")
	adminKey := fs.String("admin-key", "", "admin key of the --server (bench users are created through the system API)")
	serverPID := fs.Int("server-pid", 0, "process id of the --server, for W5's memory per connection")
	out := fs.String("out", "", "write the results as JSON to this file")
	benchfmt := fs.String("benchfmt", "", "also write the results in Go benchmark format (for benchstat) to this file")
	profileDir := fs.String("profile-dir", "", "write CPU and heap profiles of each workload (and of child replicas) here")
	dir := fs.String("dir", "", "directory for temporary stores (default: the system's temporary directory)")
	w2 := fs.Int("w2-events", 0, "W2: offline events (default n/10)")
	w3 := fs.Int("w3-events", 500, "W3: events written on A")
	w3pace := fs.Duration("w3-pace", 20*time.Millisecond, "W3: write pace")
	w5 := fs.Int("w5-conns", 10_000, "W5: idle connected replicas")
	w5writes := fs.Int("w5-writes", 5, "W5: writes that must reach every replica")
	w6 := fs.Int("w6-changes", 0, "W6: changes pushed by the sync writers (default n)")
	w6sync := fs.Int("w6-sync-writers", 8, "W6: concurrent sync writers")
	w6http := fs.Int("w6-http-writers", 4, "W6: concurrent HTTP writers")
	w7 := fs.Int("w7-trials", 50, "W7: revocations per run")
	w7held := fs.Int("w7-held", 1000, "W7: events the revoked replica holds")
	noChild := fs.Bool("no-child", false, "do not start child processes (memory figures become in-process Go memory)")
	// Internal: the child process sides.
	role := fs.String("role", "", "internal: replica or server (a child process of bench)")
	user := fs.String("user", "", "internal (--role replica): username")
	token := fs.String("token", "", "internal (--role replica): token")
	cpuprofile := fs.String("cpuprofile", "", "internal (--role replica, server): CPU profile file")
	memprofile := fs.String("memprofile", "", "internal (--role replica, server): heap profile file")
	listen := fs.String("listen", "127.0.0.1:0", "internal (--role server): listen address")
	helped := false
	fs.Usage = func() {
		helped = true
		fmt.Fprintln(stderr, "usage: pryvsync bench [--workloads W1,W3] [--n 100000] [--runs 3] [--server URL --admin-key K] [--out results.json]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil || helped {
		return err // a help request prints the flags and runs nothing
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("bench: unexpected argument %q", fs.Arg(0))}
	}
	switch *role {
	case "":
	case "replica":
		return loadgen.PullChild(ctx, loadgen.PullSpec{Server: *serverURL, User: *user, Token: *token, Dir: *dir,
			CPUProfile: *cpuprofile, HeapProfile: *memprofile}, stdout)
	case "server":
		return loadgen.ServeChild(ctx, loadgen.ServeSpec{Dir: *dir, Listen: *listen, AdminKey: *adminKey,
			HeapProfile: *memprofile, CPUProfile: *cpuprofile}, os.Stdin, stdout)
	default:
		return usageError{fmt.Sprintf("bench: unknown --role %q", *role)}
	}
	if *n < 10 || *runs < 1 {
		return usageError{"bench: --n must be at least 10 and --runs at least 1"}
	}
	var selected []loadgen.Workload
	for _, name := range strings.Split(*workloads, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		w, ok := loadgen.Lookup(name)
		if !ok {
			return usageError{fmt.Sprintf("bench: unknown workload %q (W1–W7)", name)}
		}
		selected = append(selected, w)
	}
	cfg := loadgen.Config{
		Server: *serverURL, AdminKey: *adminKey, ServerPID: *serverPID,
		N: *n, Runs: *runs, W2Events: *w2, W3Events: *w3, W3Pace: *w3pace, W5Conns: *w5, W5Writes: *w5writes,
		W6Changes: *w6, W6SyncWriters: *w6sync, W6HTTPWriters: *w6http, W7Trials: *w7, W7Held: *w7held,
		Dir: *dir, ProfileDir: *profileDir, Cluster: *clusterMode,
	}
	if *clusterMode && *serverURL != "" {
		return usageError{"bench: --cluster starts its own nodes; it does not go with --server"}
	}
	if !*noChild {
		cfg.Exec, cfg.ExecEnv = benchExec(), benchExecEnv
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cfg.Progress = func(msg string) { fmt.Fprintf(stderr, "\r\033[K%s", msg) }
	}
	loadgen.RaiseFileLimit()
	cfg = cfg.Defaults()
	report := benchReport{Machine: loadgen.ThisMachine(), Started: time.Now().UTC(), Config: map[string]any{
		"server": orInProcess(*serverURL), "n": cfg.N, "runs": cfg.Runs, "w2Events": cfg.W2Events, "w3Events": cfg.W3Events,
		"w3PaceMs": cfg.W3Pace.Milliseconds(), "w5Conns": cfg.W5Conns, "w6Changes": cfg.W6Changes, "w7Trials": cfg.W7Trials,
		"w7Held": cfg.W7Held, "childProcesses": len(cfg.Exec) > 0,
	}}
	for _, w := range selected {
		res, err := loadgen.Run(ctx, w, cfg)
		if cfg.Progress != nil {
			fmt.Fprint(stderr, "\r\033[K")
		}
		if err != nil {
			return fmt.Errorf("bench %s: %w", w.Name, err)
		}
		report.Results = append(report.Results, res)
		loadgen.WriteTable(stdout, []*loadgen.Result{res})
	}
	if *out != "" {
		b, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *benchfmt != "" {
		f, err := os.Create(*benchfmt)
		if err != nil {
			return err
		}
		loadgen.WriteBenchfmt(f, report.Machine, report.Results)
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

func orInProcess(s string) string {
	if s == "" {
		return "in-process (temporary on-disk store, SyncWrites)"
	}
	return s
}
