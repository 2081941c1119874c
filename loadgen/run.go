package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
)

// Run runs one workload. With c.ProfileDir set, this process's CPU profile
// of the whole workload goes to <dir>/<W>.cpu.pprof and its heap profile at
// the end to <dir>/<W>.heap.pprof. W2 and W5 profile only their timed
// phases instead, where the untimed setup would otherwise dominate: W2 its
// sync rounds, one file per run (<dir>/W2-sync-<run>.cpu.pprof; pprof
// merges several), W5 the writes of its first run (<dir>/W5-writes.cpu.pprof,
// and its server's W5-server.cpu.pprof).
func Run(ctx context.Context, w Workload, c Config) (*Result, error) {
	if c.ProfileDir == "" {
		return w.Run(ctx, c)
	}
	if err := os.MkdirAll(c.ProfileDir, 0o755); err != nil {
		return nil, err
	}
	if w.Name == "W2" || w.Name == "W5" {
		return w.Run(ctx, c)
	}
	f, err := os.Create(filepath.Join(c.ProfileDir, w.Name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, err
	}
	res, err := w.Run(ctx, c)
	pprof.StopCPUProfile()
	if err == nil {
		err = writeHeapProfile(filepath.Join(c.ProfileDir, w.Name+".heap.pprof"))
	}
	return res, err
}

// profilePhase starts a CPU profile to <dir>/<name>.cpu.pprof when
// c.ProfileDir is set, and returns what stops it.
func profilePhase(c Config, name string) (stop func(), err error) {
	if c.ProfileDir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(c.ProfileDir, name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// Machine describes where the figures come from.
type Machine struct {
	CPU      string  `json:"cpu"`
	Cores    int     `json:"cores"`
	MemoryGB float64 `json:"memoryGB"`
	Go       string  `json:"go"`
	OS       string  `json:"os"`
	Kernel   string  `json:"kernel,omitempty"`
}

// ThisMachine reads the CPU model, memory and kernel from /proc.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if v, err := procMeminfo("MemTotal"); err == nil {
		m.MemoryGB = float64(v) / (1 << 30)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func procMeminfo(field string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			var kb int64
			_, err := fmt.Sscan(strings.TrimSpace(v), &kb)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("meminfo: no %s", field)
}

// WriteTable prints results as a table: median, spread (min–max), runs and
// target.
func WriteTable(w io.Writer, results []*Result) {
	fmt.Fprintf(w, "%-4s  %-38s  %12s  %-25s  %4s  %-14s\n", "", "metric", "median", "spread (min–max)", "runs", "target")
	for _, r := range results {
		fmt.Fprintf(w, "%s  %s\n", r.Workload, r.Title)
		for _, m := range r.Metrics {
			if len(m.Runs) == 0 {
				continue
			}
			name := m.Name
			if m.Unit != "" && !strings.HasSuffix(name, m.Unit) {
				name += " (" + m.Unit + ")"
			}
			target := ""
			if m.Met != nil {
				target = m.Target
				if *m.Met {
					target += "  ok"
				} else {
					target += "  MISSED"
				}
			}
			fmt.Fprintf(w, "%-4s  %-38s  %12s  %-25s  %4d  %s\n", "", name, num(m.Median), num(m.Min)+" – "+num(m.Max), len(m.Runs), target)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%-4s  note: %s\n", "", n)
		}
	}
}

func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 10_000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// WriteBenchfmt writes results in the Go benchmark format, one line per run
// (metrics with one value per run only), so that benchstat can compare two
// result files.
func WriteBenchfmt(w io.Writer, m Machine, results []*Result) {
	fmt.Fprintf(w, "goos: %s\ngoarch: %s\npkg: github.com/pryvsync/pryvsync/loadgen\ncpu: %s\n", runtime.GOOS, runtime.GOARCH, m.CPU)
	for _, r := range results {
		runs := 0
		for _, mt := range r.Metrics {
			runs = max(runs, len(mt.Runs))
		}
		if p, ok := r.Params["runs"].(int); ok {
			runs = p
		}
		for i := 0; i < runs; i++ {
			var b strings.Builder
			fmt.Fprintf(&b, "Benchmark%s 1", r.Workload)
			for _, mt := range r.Metrics {
				if len(mt.Runs) != runs {
					continue
				}
				fmt.Fprintf(&b, " %g %s", mt.Runs[i], benchUnit(mt))
			}
			fmt.Fprintln(w, b.String())
		}
	}
}

func benchUnit(m *Metric) string {
	u := m.Name
	if m.Unit != "" && !strings.HasSuffix(u, m.Unit) {
		u += "-" + m.Unit
	}
	u = strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(u)
	if slices.Contains([]string{"ns/op", "B/op", "allocs/op"}, u) {
		u = "w-" + u
	}
	return u
}
