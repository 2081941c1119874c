package server

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry holds the server's Prometheus metrics.
var Registry = prometheus.NewRegistry()

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pryvsync_http_requests_total", Help: "HTTP requests by route and status.",
	}, []string{"route", "status"})
	errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pryvsync_http_errors_total", Help: "API errors by route and error id.",
	}, []string{"route", "error"})
	connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pryvsync_connections", Help: "Open websocket connections by kind.",
	}, []string{"kind"})
	syncItemsOut = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pryvsync_sync_items_out_total", Help: "Items and removals sent to replicas.",
	})
	syncItemsIn = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pryvsync_sync_items_in_total", Help: "Changes pushed by replicas.",
	})
	rejectedWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pryvsync_rejected_writes_total", Help: "Pushed changes rejected.",
	})
	pushLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pryvsync_push_seconds", Help: "Time to apply one push.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	pullLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pryvsync_pull_batch_seconds", Help: "Time to read and send one changes batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	feedLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pryvsync_feed_lag_seconds", Help: "From commit signal to a session sending the change.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	storeSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pryvsync_store_bytes", Help: "Badger store size (lsm, vlog).",
	}, []string{"part"})
)

func init() {
	Registry.MustRegister(requestsTotal, errorsTotal, connections, syncItemsOut, syncItemsIn, rejectedWrites,
		pushLatency, pullLatency, feedLag, storeSize,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// routeLabel reduces a path to a bounded label (no ids, no tokens).
func routeLabel(p string) string {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(segs) == 0 || segs[0] == "":
		return "/"
	case segs[0] == "system" || segs[0] == "healthz" || segs[0] == "readyz" || segs[0] == "metrics" || segs[0] == "app":
		return "/" + segs[0]
	case len(segs) == 1:
		return "/{user}"
	}
	switch segs[1] {
	case "channels", "access-info", "accesses", "profile", "admin", "sync", "socket":
		if segs[1] == "admin" && len(segs) > 2 {
			switch segs[2] {
			case "login", "logout", "user-info", "change-password", "get-app-token", "accesses", "bookmarks":
				return "/{user}/admin/" + segs[2]
			}
			return "/{user}/admin/other"
		}
		return "/{user}/" + segs[1]
	}
	if len(segs) > 2 && (segs[2] == "events" || segs[2] == "folders") {
		return "/{user}/{channel}/" + segs[2]
	}
	return "/{user}/other"
}
