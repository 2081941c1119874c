package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/loadgen"
)

const benchChildEnv = "PRYVSYNC_BENCH_CHILD"

// TestBenchChildProcess is not a test: it is the entry point of the child
// processes bench starts when it runs inside this test binary (the replica
// of W1/W4, the server of W5).
func TestBenchChildProcess(t *testing.T) {
	if os.Getenv(benchChildEnv) != "1" {
		t.Skip("entry point of bench's child processes")
	}
	os.Exit(exitCode(run(context.Background(), flag.Args(), os.Stdin, os.Stdout, os.Stderr), os.Stderr))
}

// TestBenchRunsEveryWorkloadAtATinySize runs W1–W7 once at a tiny size,
// with child processes, and checks the table, the JSON and the benchmark
// format file.
func TestBenchRunsEveryWorkloadAtATinySize(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	oldExec, oldEnv := benchExec, benchExecEnv
	benchExec = func() []string { return []string{exe, "-test.run=^TestBenchChildProcess$", "--", "bench"} }
	benchExecEnv = []string{benchChildEnv + "=1"}
	t.Cleanup(func() { benchExec, benchExecEnv = oldExec, oldEnv })

	dir := t.TempDir()
	out, bf := filepath.Join(dir, "results.json"), filepath.Join(dir, "results.txt")
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"bench", "--n", "200", "--runs", "1", "--dir", dir,
		"--w3-events", "20", "--w3-pace", "5ms", "--w5-conns", "50", "--w5-writes", "2",
		"--w6-changes", "2000", "--w6-sync-writers", "2", "--w6-http-writers", "1",
		"--w7-trials", "3", "--w7-held", "50", "--out", out, "--benchfmt", bf}, strings.NewReader(""), &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("table:\n%s", stdout.String())
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if got, want := len(rep.Results), len(loadgen.Workloads); got != want {
		t.Fatalf("results for %d workloads, want %d", got, want)
	}
	for i, r := range rep.Results {
		t.Logf("%s took %.1f s", r.Workload, r.Elapsed)
		if want := loadgen.Workloads[i].Name; r.Workload != want {
			t.Errorf("result %d is %s, want %s", i, r.Workload, want)
		}
		if len(r.Metrics) == 0 {
			t.Errorf("%s: no metrics", r.Workload)
		}
		for _, m := range r.Metrics {
			if len(m.Runs) == 0 || m.Median <= 0 && !strings.Contains(m.Name, "per connection") {
				t.Errorf("%s %s: runs %v, median %v", r.Workload, m.Name, m.Runs, m.Median)
			}
		}
		if !strings.Contains(stdout.String(), r.Workload+"  ") {
			t.Errorf("the table lacks %s", r.Workload)
		}
	}
	if rss := findMetric(rep.Results, "W1", "200 replica peak RSS"); rss == nil || rss.Median <= 0 {
		t.Errorf("W1 reports no peak RSS of the child replica: %+v", rss)
	}
	b, err := os.ReadFile(bf)
	if err != nil || !strings.Contains(string(b), "BenchmarkW1 1 ") || !strings.Contains(string(b), "events/s") {
		t.Errorf("benchmark format file: %v\n%s", err, b)
	}
}

func findMetric(rs []*loadgen.Result, workload, name string) *loadgen.Metric {
	for _, r := range rs {
		if r.Workload == workload {
			return r.Metric(name)
		}
	}
	return nil
}
