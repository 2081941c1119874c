package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// APIVersion is sent in every response's API-Version header.
const APIVersion = "1.0.0"

// Config configures a Server. The zero value of each field means its default.
type Config struct {
	// AdminKey enables the system API (POST /system/users). Empty: off (404).
	AdminKey string
	// Log, when set, makes this server a node of a cluster whose change
	// logs it holds (store.Options.Log); nil: a single node. Blobs
	// replicates attachment content between the nodes (store.Options.Blobs).
	Log   store.Log
	Blobs store.Blobs
	// MaxBodyBytes bounds JSON bodies. Default 10 MiB.
	MaxBodyBytes int64
	// MaxAttachmentBytes bounds one attachment. Default 100 MiB.
	MaxAttachmentBytes int64
	// MaxFrameBytes bounds one sync frame. Default 4 MiB.
	MaxFrameBytes int64
	// MaxConnsPerUser bounds websocket connections per user. Default 500.
	MaxConnsPerUser int
	// LoginFailuresPerUser and LoginFailuresPerAddr per minute. Defaults 5 and 50.
	LoginFailuresPerUser int
	LoginFailuresPerAddr int
	// SessionTTL is the sliding session lifetime. Default 14 days.
	SessionTTL time.Duration
	// TombstoneHorizon is how long deletions are kept for replicas. Default 180 days.
	TombstoneHorizon time.Duration
	// CompactEvery is how often compaction runs (tombstones and exit markers
	// past the horizon, then value-log GC). Default 1 h; negative: never.
	CompactEvery time.Duration
	// PingInterval and PeerTimeout for websockets. Defaults 30 s and 90 s.
	PingInterval time.Duration
	PeerTimeout  time.Duration
	// Logger receives logs. Default: a null logger.
	Logger hclog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// PasswordCost is the bcrypt cost. Default bcrypt.DefaultCost; tests lower it.
	PasswordCost int
}

// DefaultConfig returns the defaults of SPEC §7.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes: 10 << 20, MaxAttachmentBytes: 100 << 20, MaxFrameBytes: 4 << 20,
		MaxConnsPerUser: 500, LoginFailuresPerUser: 5, LoginFailuresPerAddr: 50,
		SessionTTL: 14 * 24 * time.Hour, TombstoneHorizon: 180 * 24 * time.Hour, CompactEvery: time.Hour,
		PingInterval: 30 * time.Second, PeerTimeout: 90 * time.Second, PasswordCost: 10,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxAttachmentBytes <= 0 {
		c.MaxAttachmentBytes = d.MaxAttachmentBytes
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = d.MaxFrameBytes
	}
	if c.MaxConnsPerUser <= 0 {
		c.MaxConnsPerUser = d.MaxConnsPerUser
	}
	if c.LoginFailuresPerUser <= 0 {
		c.LoginFailuresPerUser = d.LoginFailuresPerUser
	}
	if c.LoginFailuresPerAddr <= 0 {
		c.LoginFailuresPerAddr = d.LoginFailuresPerAddr
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.TombstoneHorizon <= 0 {
		c.TombstoneHorizon = d.TombstoneHorizon
	}
	if c.CompactEvery == 0 {
		c.CompactEvery = d.CompactEvery
	}
	if c.PingInterval <= 0 {
		c.PingInterval = d.PingInterval
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = d.PeerTimeout
	}
	if c.PasswordCost <= 0 {
		c.PasswordCost = d.PasswordCost
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server serves the HTTP API, the notification socket and the sync endpoint.
type Server struct {
	cfg   Config
	st    *store.Store
	hub   *Hub
	clock *crdt.Clock
	log   hclog.Logger
	mux   http.Handler
	lim   *loginLimiter

	baseCtx context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	lastUsedMu sync.Mutex
	lastUsed   map[string]float64

	ops opsState // operations (ops.go)
}

// New returns a server over st. The store's OnCommit must call
// Server.OnCommit; Open wires both (see NewWithStore in tests).
func New(cfg Config, st *store.Store, hub *Hub) *Server {
	cfg.fill()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, st: st, hub: hub, log: cfg.Logger,
		clock:   crdt.NewClock("server", func() time.Time { return cfg.Now() }, 0),
		baseCtx: ctx, cancel: cancel, lastUsed: map[string]float64{},
		lim: newLoginLimiter(cfg.Now),
	}
	s.mux = s.routes()
	return s
}

// Open opens a store in dir ("" = in memory) and a server over it.
func Open(cfg Config, dir string) (*Server, error) {
	cfg.fill()
	hub := NewHub()
	commits := newCommitClock(hub)
	st, err := store.Open(store.Options{Dir: dir, SyncWrites: dir != "", Logger: cfg.Logger.Named("store"), Now: cfg.Now, OnCommit: commits.onCommit, Log: cfg.Log, Blobs: cfg.Blobs})
	if err != nil {
		return nil, err
	}
	s := New(cfg, st, hub)
	s.ops.commits = commits
	s.startMaintenance()
	return s, nil
}

// Store returns the server's store.
func (s *Server) Store() *store.Store { return s.st }

// Close ends live connections (going away) and closes the store.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.st.Close()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("API-Version", APIVersion)
	w.Header().Set("Server-Time", strconv.FormatFloat(s.now(), 'f', 3, 64))
	start := time.Now()
	r, info := withReqInfo(r)
	rw := &statusWriter{ResponseWriter: w, status: 200}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			id := model.NewID()
			s.log.Error("handler panicked", "request_id", id, "path", redactPath(r.URL.Path), "panic", fmt.Sprint(p))
			writeError(rw, model.Errorf(model.ErrUnexpected, "unexpected error (request id %s)", id).WithData(map[string]any{"requestId": id}))
		}
		user, access := info.fields()
		s.log.Info("request", "method", r.Method, "path", redactPath(r.URL.Path), "status", rw.status,
			"user", user, "access", access, "outcome", outcome(rw.status, rw.errID), "duration", time.Since(start))
		route := routeLabel(r.URL.Path)
		requestsTotal.WithLabelValues(route, strconv.Itoa(rw.status)).Inc()
		if rw.errID != "" {
			// Every error answer, whichever path wrote it (writeJSON
			// records its id).
			errorsTotal.WithLabelValues(route, rw.errID).Inc()
		}
	}()
	s.mux.ServeHTTP(rw, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	errID  string // the API error answered, for the log line and the error count
}

func (w *statusWriter) WriteHeader(code int)        { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// redactPath keeps tokens out of logs: only the first two path segments
// are logged (the query, which may hold auth=, never is).
func redactPath(p string) string {
	parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 3)
	if len(parts) > 2 {
		parts = parts[:2]
		return "/" + strings.Join(parts, "/") + "/…"
	}
	return "/" + strings.Join(parts, "/")
}

func (s *Server) now() float64 { return float64(s.cfg.Now().UnixMicro()) / 1e6 }

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	if e, ok := v.(*model.Error); ok {
		if sw, ok := w.(*statusWriter); ok {
			sw.errID = e.ID
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// writeError answers an error; anything that is not a *model.Error is a bug
// and answers 500 unexpected-error with a request id.
func writeError(w http.ResponseWriter, err error) {
	var me *model.Error
	if !errors.As(err, &me) {
		id := model.NewID()
		me = model.Errorf(model.ErrUnexpected, "unexpected error (request id %s)", id).WithData(map[string]any{"requestId": id})
	}
	writeJSON(w, me.Status(), me)
}

// fail logs unexpected errors and answers them.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var me *model.Error
	if !errors.As(err, &me) && errors.Is(err, store.ErrLogUnavailable) {
		s.log.Warn("write refused: the cluster log is unavailable", "method", r.Method, "path", redactPath(r.URL.Path), "error", err)
		me = model.Errorf(model.ErrUnavailable, "the cluster cannot take writes at the moment; try again")
	}
	if me == nil {
		id := model.NewID()
		s.log.Error("request failed", "request_id", id, "method", r.Method, "path", redactPath(r.URL.Path), "error", err)
		writeJSON(w, 500, model.Errorf(model.ErrUnexpected, "unexpected error (request id %s)", id).WithData(map[string]any{"requestId": id}))
		return
	}
	writeJSON(w, me.Status(), me)
}

// readBody reads a request body up to limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, model.Errorf(model.ErrInvalidRequestStructure, "could not read the body")
	}
	if int64(len(b)) > limit {
		return nil, model.Errorf(model.ErrPayloadTooLarge, "the body is over %d bytes", limit)
	}
	return b, nil
}

// readObject reads a JSON object body (or the _json field of a form post).
func (s *Server) readObject(r *http.Request) (map[string]json.RawMessage, error) {
	body, err := s.body(r)
	if err != nil {
		return nil, err
	}
	return model.DecodeObject(body)
}

// body returns the JSON body, taking the _json field of a browser form.
func (s *Server) body(r *http.Request) ([]byte, error) {
	if j, ok := formJSON(r); ok {
		return []byte(j), nil
	}
	return readBody(r, s.cfg.MaxBodyBytes)
}
