package server

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// Operations: the online backup, scheduled compaction, the metrics handler
// (with the store size measured at scrape time), the feed-lag clock and the
// caller fields of the request log line.

var (
	compactedEntries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pryvsync_compacted_entries_total", Help: "Feed entries removed by compaction, by kind (tombstone, exit).",
	}, []string{"kind"})
	compactionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pryvsync_compaction_seconds", Help: "Duration of one compaction run (all users and value-log GC).",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
	})
	backupsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pryvsync_backups_total", Help: "Online backups by outcome (ok, failed).",
	}, []string{"outcome"})
)

func init() {
	Registry.MustRegister(compactedEntries, compactionSeconds, backupsTotal)
}

// handleBackup serves GET /system/backup: the store's consistent backup
// (store.Backup's tar format) streamed as it is made. The admin key comes in
// the Authorization header only. Writes go on meanwhile. If the backup fails
// half-way, the connection is cut, so the client never takes a truncated
// stream for a whole one (restore also refuses an archive without its
// trailer).
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AdminKey == "" {
		s.fail(w, r, model.Errorf(model.ErrUnknownUser, "the system API is off (no admin key configured)"))
		return
	}
	if !s.adminKeyMatches(r) {
		s.fail(w, r, model.Errorf(model.ErrInvalidAccessToken, "the admin key is missing or wrong"))
		return
	}
	start := time.Now()
	name := "pryvsync-" + s.cfg.Now().UTC().Format("20060102T150405Z") + ".tar"
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	cw := &countingWriter{w: w}
	if err := s.st.Backup(cw); err != nil {
		backupsTotal.WithLabelValues("failed").Inc()
		s.log.Error("online backup failed", "bytes", cw.n, "duration", time.Since(start), "error", err)
		panic(http.ErrAbortHandler) // cut the stream: no valid end
	}
	backupsTotal.WithLabelValues("ok").Inc()
	s.log.Info("online backup", "bytes", cw.n, "duration", time.Since(start))
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Compact runs one compaction now: tombstones and exit markers older than
// the tombstone horizon, then value-log GC (store.Compact).
func (s *Server) Compact(ctx context.Context) (store.CompactStats, error) {
	st, err := s.st.Compact(ctx, s.cfg.Now(), s.cfg.TombstoneHorizon)
	compactedEntries.WithLabelValues("tombstone").Add(float64(st.Tombstones))
	compactedEntries.WithLabelValues("exit").Add(float64(st.ExitMarkers))
	compactionSeconds.Observe(st.Duration.Seconds())
	if err != nil && ctx.Err() == nil {
		s.log.Error("compaction failed", "error", err)
	}
	return st, err
}

// startMaintenance runs Compact every CompactEvery until Close. Called by
// Open; a negative CompactEvery disables it.
func (s *Server) startMaintenance() {
	if s.cfg.CompactEvery <= 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.CompactEvery)
		defer t.Stop()
		for {
			select {
			case <-s.baseCtx.Done():
				return
			case <-t.C:
				_, _ = s.Compact(s.baseCtx)
			}
		}
	}()
}

// MetricsHandler serves the Prometheus text format of Registry, after
// measuring the store's size.
func (s *Server) MetricsHandler() http.Handler {
	h := promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.measureStore()
		h.ServeHTTP(w, r)
	})
}

// WithoutMetrics is the API handler for when /metrics is served on another
// listener (--metrics-listen): there, GET /metrics answers 404.
func (s *Server) WithoutMetrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			w.Header().Set("API-Version", APIVersion)
			w.Header().Set("Server-Time", strconv.FormatFloat(s.now(), 'f', 3, 64))
			writeError(w, model.Errorf(model.ErrUnknownUser, "metrics are served on another address"))
			return
		}
		s.ServeHTTP(w, r)
	})
}

// opsState is the Server's operations state (Server.ops).
type opsState struct {
	commits *commitClock // nil when the server was not made by Open

	sizeMu        sync.Mutex
	filesBytes    int64
	filesMeasured time.Time
}

// measureStore sets the store size gauges. Walking the attachment directory
// costs a directory read per user, so that part is refreshed at most once a
// minute.
func (s *Server) measureStore() {
	o := &s.ops
	o.sizeMu.Lock()
	defer o.sizeMu.Unlock()
	lsm, vlog, err := s.st.DiskUsage()
	if err != nil {
		s.log.Warn("measure store", "error", err)
		return
	}
	if o.filesMeasured.IsZero() || time.Since(o.filesMeasured) > time.Minute {
		files, err := s.st.FilesUsage()
		if err != nil {
			s.log.Warn("measure attachment content", "error", err)
		}
		o.filesBytes, o.filesMeasured = files, time.Now()
	}
	storeSize.WithLabelValues("lsm").Set(float64(lsm))
	storeSize.WithLabelValues("vlog").Set(float64(vlog))
	storeSize.WithLabelValues("files").Set(float64(o.filesBytes))
}

// commitClock remembers when each user's recent heads were committed, so a
// sync session that sends a change can observe the change-feed lag (commit
// to send). It keeps a short window per user with live connections only.
type commitClock struct {
	hub *Hub
	mu  sync.Mutex
	m   map[string][]headTime
}

type headTime struct {
	head uint64
	at   time.Time
}

const commitClockWindow = 256

func newCommitClock(hub *Hub) *commitClock {
	return &commitClock{hub: hub, m: map[string][]headTime{}}
}

// onCommit is the store's OnCommit: it records, then publishes to the hub.
// It runs on the committer goroutine and does not block.
func (c *commitClock) onCommit(commits []store.Commit) {
	now := time.Now()
	c.mu.Lock()
	for _, cm := range commits {
		if cm.Head == 0 {
			continue
		}
		if c.hub.Count(cm.User) == 0 {
			delete(c.m, cm.User)
			continue
		}
		l := append(c.m[cm.User], headTime{cm.Head, now})
		if len(l) > commitClockWindow {
			l = append(l[:0:0], l[len(l)-commitClockWindow:]...)
		}
		c.m[cm.User] = l
	}
	c.mu.Unlock()
	c.hub.Publish(commits)
}

// sent observes the lag of the oldest change in (from, to] that a session
// has just sent: the time since its commit. Changes older than the window
// (a replica catching up) are not live traffic and are not observed.
func (c *commitClock) sent(user string, from, to uint64) {
	if c == nil || to <= from {
		return
	}
	c.mu.Lock()
	var at time.Time
	for _, ht := range c.m[user] {
		if ht.head > from {
			if ht.head <= to {
				at = ht.at
			}
			break
		}
	}
	c.mu.Unlock()
	if !at.IsZero() {
		feedLag.Observe(time.Since(at).Seconds())
	}
}

// FeedSent is called by a sync session after it sent a changes batch that
// moved its cursor from `from` to `to`: it observes the change-feed lag.
func (s *Server) FeedSent(user string, from, to uint64) { s.ops.commits.sent(user, from, to) }

// reqInfo is filled while a request is served, for its log line: the
// account and access it acted as (never the token).
type reqInfo struct {
	mu     sync.Mutex
	user   string
	access string
}

type reqInfoKey struct{}

func withReqInfo(r *http.Request) (*http.Request, *reqInfo) {
	info := &reqInfo{}
	return r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info)), info
}

// noteCaller records the call's user and access for the request log line.
// dispatch defers it once the user is known to exist, so it also sees the
// access that a handler authenticated later (admin calls).
func noteCaller(c *call) {
	info, _ := c.r.Context().Value(reqInfoKey{}).(*reqInfo)
	if info == nil {
		return
	}
	info.mu.Lock()
	defer info.mu.Unlock()
	info.user = c.user
	switch {
	case c.access != nil:
		info.access = c.access.ID
	case c.actor != nil:
		info.access = c.actor.AccessID // "session" for a session id
	}
}

func (i *reqInfo) fields() (user, access string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.user, i.access
}

// outcome is the request log line's outcome: "ok", or the API error id.
func outcome(status int, errID string) string {
	switch {
	case errID != "":
		return errID
	case status >= 400:
		return "status-" + strconv.Itoa(status)
	}
	return "ok"
}
