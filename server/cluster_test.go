package server_test

import (
	"testing"

	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

// A cluster node whose log cannot take writes answers 503
// service-unavailable, and writes again once the log is back.
func TestAClusterNodeWithoutItsLogAnswersUnavailable(t *testing.T) {
	log := store.NewMemLog()
	e := newEnv(t, func(c *server.Config) { c.Log = log })
	tok := e.createUser("alice01")
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"id": "diary", "name": "Diary"})
	if st != 201 {
		t.Fatalf("create channel: %d %v", st, v)
	}
	log.SetDown(true)
	st, v = e.doJSON("POST", "/alice01/diary/events", tok, map[string]any{"type": map[string]string{"class": "note", "format": "txt"}})
	if m, _ := v.(map[string]any); st != 503 || m["id"] != "service-unavailable" {
		t.Fatalf("write with the log down: %d %v, want 503 service-unavailable", st, v)
	}
	log.SetDown(false)
	st, v = e.doJSON("POST", "/alice01/diary/events", tok, map[string]any{"type": map[string]string{"class": "note", "format": "txt"}})
	if st != 201 {
		t.Fatalf("write once the log is back: %d %v", st, v)
	}
}
