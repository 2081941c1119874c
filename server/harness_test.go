package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

// TestMain stops the test cluster (PRYVSYNC_TEST_STORE=jetstream), if
// one was started, and removes its directory.
func TestMain(m *testing.M) {
	code := m.Run()
	server.StopTestCluster()
	os.Exit(code)
}

// testEnv is a server on a real loopback listener over an in-memory store.
type testEnv struct {
	t   testing.TB
	srv *server.Server
	ts  *httptest.Server
	url string
}

const testAdminKey = "test-admin-key"

// newEnv starts a server; cfg may adjust the configuration.
func newEnv(t testing.TB, cfg ...func(*server.Config)) *testEnv {
	t.Helper()
	c := server.DefaultConfig()
	c.AdminKey = testAdminKey
	c.PasswordCost = 4
	c.Logger = hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Warn})
	cleanup, err := server.ConfigForTest(&c)
	if err != nil {
		t.Fatalf("cluster for the test: %v", err)
	}
	t.Cleanup(cleanup)
	for _, f := range cfg {
		f(&c)
	}
	srv, err := server.Open(c, "")
	if err != nil {
		t.Fatalf("open server: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		srv.Close()
	})
	return &testEnv{t: t, srv: srv, ts: ts, url: ts.URL}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// createUser makes an account directly in the store and returns a personal
// token for it.
func (e *testEnv) createUser(name string) string {
	e.t.Helper()
	body := map[string]any{"username": name, "password": "secret-pw", "email": name + "@example.com"}
	st, _ := e.doJSON("POST", "/system/users", testAdminKey, body)
	if st != 201 {
		// Fall back to the store while the system API is not there.
		e.mustStoreUser(name)
	}
	return e.personalToken(name)
}

func (e *testEnv) mustStoreUser(name string) {
	e.t.Helper()
	err := e.srv.Store().Update(context.Background(), name, func(tx *store.Tx) error {
		return tx.PutJSON(store.KeyUserRecord(name), &model.User{Username: name, Email: name + "@example.com", Language: "en"})
	})
	if err != nil {
		e.t.Fatalf("create user: %v", err)
	}
}

// personalToken creates a personal access for user directly in the store.
func (e *testEnv) personalToken(user string) string {
	e.t.Helper()
	return e.storeAccess(user, &model.Access{Type: model.AccessPersonal, Name: "test-personal"})
}

// storeAccess writes an access directly (any type) and returns its token.
func (e *testEnv) storeAccess(user string, a *model.Access) string {
	e.t.Helper()
	tok, err := server.CreateAccessForTest(e.srv, user, a)
	if err != nil {
		e.t.Fatalf("create access: %v", err)
	}
	return tok
}

// do sends a request with a raw body and returns the status and body.
func (e *testEnv) do(method, path, token string, body []byte, header ...string) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// doJSON sends v as JSON and decodes the answer into a generic value.
func (e *testEnv) doJSON(method, path, token string, v any) (int, any) {
	e.t.Helper()
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			e.t.Fatalf("marshal: %v", err)
		}
	}
	st, b, _ := e.do(method, path, token, body)
	var out any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			e.t.Fatalf("%s %s: answer is not JSON (%d): %s", method, path, st, b)
		}
	}
	return st, out
}

// errID returns the error id of an error answer ("" if none).
func errID(v any) string {
	m, _ := v.(map[string]any)
	id, _ := m["id"].(string)
	if _, isErr := m["message"]; !isErr {
		return ""
	}
	return id
}

// mustStatus fails unless st == want, printing the answer.
func mustStatus(t testing.TB, what string, st int, v any, want int) {
	t.Helper()
	if st != want {
		t.Fatalf("%s: status %d, want %d; answer %v", what, st, want, v)
	}
}

// create POSTs body to path and returns the id of the item it created.
func (e *testEnv) create(t *testing.T, tok, path string, body map[string]any) string {
	t.Helper()
	st, v := e.doJSON("POST", path, tok, body)
	mustStatus(t, "POST "+path, st, v, 201)
	return v.(map[string]any)["id"].(string)
}
