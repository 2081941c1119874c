package loadgen

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Result is what one workload measured over its runs.
type Result struct {
	Workload string         `json:"workload"` // "W1"
	Title    string         `json:"title"`    // what was run, with its size
	Params   map[string]any `json:"params,omitempty"`
	Metrics  []*Metric      `json:"metrics"`
	Notes    []string       `json:"notes,omitempty"`
	Elapsed  float64        `json:"elapsedSeconds"` // wall time of the whole workload, setup included
}

// Metric is one figure over the runs of a workload.
type Metric struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Runs   []float64 `json:"runs"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	// Target is the goal of the figure, as "<= 0.5" or ">= 100000"; empty
	// when the figure is only informative.
	Target string `json:"target,omitempty"`
	// Met says whether the median meets Target (absent without a target).
	Met *bool `json:"met,omitempty"`

	op    string
	bound float64
}

// Metric returns the named metric, or nil.
func (r *Result) Metric(name string) *Metric {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// add records one run's value of a metric, creating it on first use.
func (r *Result) add(name, unit string, v float64) *Metric {
	m := r.Metric(name)
	if m == nil {
		m = &Metric{Name: name, Unit: unit}
		r.Metrics = append(r.Metrics, m)
	}
	m.Runs = append(m.Runs, v)
	return m
}

// target sets the goal of a metric: op is "<=" or ">=".
func (r *Result) target(name, op string, bound float64) {
	m := r.Metric(name)
	if m == nil {
		m = &Metric{Name: name}
		r.Metrics = append(r.Metrics, m)
	}
	m.op, m.bound = op, bound
	m.Target = fmt.Sprintf("%s %g", op, bound)
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// finish computes medians and spreads and checks targets.
func (r *Result) finish(start time.Time) {
	r.Elapsed = time.Since(start).Seconds()
	for _, m := range r.Metrics {
		if len(m.Runs) == 0 {
			continue
		}
		s := slices.Clone(m.Runs)
		slices.Sort(s)
		m.Min, m.Max = s[0], s[len(s)-1]
		m.Median = median(s)
		if m.op != "" {
			met := m.op == "<=" && m.Median <= m.bound || m.op == ">=" && m.Median >= m.bound
			m.Met = &met
		}
	}
}

// median of sorted values (mean of the middle two for an even count).
func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// latencies collects durations and reports nearest-rank percentiles.
type latencies []time.Duration

// pct returns the q-th percentile (0 < q ≤ 100) in milliseconds (0 when
// empty).
func (l latencies) pct(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(q/100*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

// addLatencies records p50, p95, p99 and max of one run under prefix.
func (r *Result) addLatencies(prefix string, l latencies) {
	r.add(prefix+" p50", "ms", l.pct(50))
	r.add(prefix+" p95", "ms", l.pct(95))
	r.add(prefix+" p99", "ms", l.pct(99))
	r.add(prefix+" max", "ms", l.pct(100))
}
