package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

// User is the one account of a simulated world.
const User = "simuser01"

// World is one server and the replicas around it, on loopback TCP. The
// server can be swapped (crash-restart of an on-disk server) behind the
// same address.
type World struct {
	T       testing.TB
	DataDir string // "" for an in-memory server
	Cfg     server.Config

	cur     atomic.Pointer[server.Server]
	ts      *httptest.Server
	URL     string
	Addr    string
	HTTP    *http.Client // plain client (no tap, no faults)
	Owner   string       // personal token of the owner (HTTP writes)
	OwnerID string

	mu        sync.Mutex
	endpoints []*Endpoint
	replicas  []*replica.Replica
	nodes     int // cluster mode: nodes started after the first
}

// NewWorld starts a server (in memory when dataDir is "") with one user and
// an owner's personal token.
func NewWorld(t testing.TB, dataDir string, cfg ...func(*server.Config)) *World {
	t.Helper()
	c := server.DefaultConfig()
	c.PasswordCost = 4
	for _, f := range cfg {
		f(&c)
	}
	w := &World{T: t, DataDir: dataDir, Cfg: c}
	srv, err := server.Open(c, dataDir)
	if err != nil {
		t.Fatalf("open server: %v", err)
	}
	w.cur.Store(srv)
	w.ts = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s := w.cur.Load()
		if s == nil {
			http.Error(rw, `{"id":"unexpected-error","message":"server down"}`, http.StatusServiceUnavailable)
			return
		}
		s.ServeHTTP(rw, r)
	}))
	w.URL = w.ts.URL
	w.Addr = strings.TrimPrefix(w.ts.URL, "http://")
	w.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	t.Cleanup(w.close)
	err = srv.Store().Update(context.Background(), User, func(tx *store.Tx) error {
		return tx.PutJSON(store.KeyUserRecord(User), &model.User{Username: User, Email: "sim@example.com", Language: "en"})
	})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	a := &model.Access{Type: model.AccessPersonal, Name: "owner"}
	w.Owner = w.StoreAccess(a)
	w.OwnerID = a.ID
	return w
}

func (w *World) close() {
	w.mu.Lock()
	reps := w.replicas
	eps := w.endpoints
	w.replicas, w.endpoints = nil, nil
	w.mu.Unlock()
	for _, r := range reps {
		r.Close()
	}
	for _, ep := range eps {
		ep.CloseAll()
		ep.Client.CloseIdleConnections()
	}
	w.ts.CloseClientConnections()
	w.ts.Close()
	w.HTTP.CloseIdleConnections()
	if s := w.cur.Swap(nil); s != nil {
		s.Close()
	}
}

// Server returns the running server.
func (w *World) Server() *server.Server { return w.cur.Load() }

// RestartServer closes the server and opens it again from its directory
// (an on-disk world only). In a cluster world it opens another node, on a
// new empty directory, over the same log.
func (w *World) RestartServer() {
	w.T.Helper()
	if w.DataDir == "" {
		w.T.Fatalf("restart of an in-memory server")
	}
	old := w.cur.Swap(nil)
	w.ts.CloseClientConnections()
	w.HTTP.CloseIdleConnections() // else the next request may reuse a closed one (EOF)
	if err := old.Close(); err != nil {
		w.T.Fatalf("close server: %v", err)
	}
	dir := w.DataDir
	if w.Cfg.Log != nil {
		w.nodes++
		dir = fmt.Sprintf("%s-node%d", w.DataDir, w.nodes)
	}
	srv, err := server.Open(w.Cfg, dir)
	if err != nil {
		w.T.Fatalf("reopen server: %v", err)
	}
	w.cur.Store(srv)
}

// StoreAccess writes an access straight into the store and returns its token.
func (w *World) StoreAccess(a *model.Access) string {
	w.T.Helper()
	tok, err := server.CreateAccessForTest(w.Server(), User, a)
	if err != nil {
		w.T.Fatalf("create access: %v", err)
	}
	return tok
}

// Endpoint returns a new tapped endpoint.
func (w *World) Endpoint(name string) *Endpoint {
	ep := NewEndpoint(name, w.Addr)
	w.mu.Lock()
	w.endpoints = append(w.endpoints, ep)
	w.mu.Unlock()
	return ep
}

// OpenReplica opens (creating if needed) a replica in dir dialing through ep.
func (w *World) OpenReplica(dir string, ep *Endpoint, now func() time.Time) (*replica.Replica, error) {
	r, err := replica.Open(dir, replica.Options{HTTPClient: ep.Client, Now: now,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.replicas = append(w.replicas, r)
	w.mu.Unlock()
	return r, nil
}

// CloseReplica closes r and forgets it.
func (w *World) CloseReplica(r *replica.Replica) error {
	w.mu.Lock()
	for i, x := range w.replicas {
		if x == r {
			w.replicas = append(w.replicas[:i], w.replicas[i+1:]...)
			break
		}
	}
	w.mu.Unlock()
	return r.Close()
}

// Do sends an HTTP request with token and an optional JSON body; it
// returns the status and the raw answer.
func (w *World) Do(method, path, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, w.URL+"/"+User+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// MustDo is Do that fails the test unless the status is want.
func (w *World) MustDo(method, path, token string, body any, want int) []byte {
	w.T.Helper()
	st, b, err := w.Do(method, path, token, body)
	if err != nil || st != want {
		w.T.Fatalf("%s %s: status %d (%v), want %d: %s", method, path, st, err, want, b)
	}
	return b
}

// CreateShared creates a shared access over HTTP with the owner's token
// and returns its token.
func (w *World) CreateShared(name string, perms []model.Permission, extra map[string]any) (string, error) {
	body := map[string]any{"name": name, "type": "shared", "permissions": perms}
	for k, v := range extra {
		body[k] = v
	}
	st, b, err := w.Do("POST", "/accesses", w.Owner, body)
	if err != nil {
		return "", err
	}
	if st != 201 {
		return "", fmt.Errorf("create access %q: %d %s", name, st, b)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", err
	}
	return out.Token, nil
}

// Head is the user's head sequence.
func (w *World) Head() uint64 {
	h, err := w.Server().Store().Head(User)
	if err != nil {
		w.T.Fatalf("head: %v", err)
	}
	return h
}

// RemoveDir removes a replica directory (a wipe).
func RemoveDir(dir string) error { return os.RemoveAll(dir) }
