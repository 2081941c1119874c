package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), exitCode(err, &errb)
}

func TestReplicaCLILocal(t *testing.T) {
	dir := t.TempDir()
	if _, e, code := runCLI(t, "replica", "init", "--dir", dir, "--server", "http://127.0.0.1:1", "--username", "alice", "--token", "tok"); code != 0 {
		t.Fatalf("init: %d %s", code, e)
	}
	out, e, code := runCLI(t, "replica", "events", "add", "--dir", dir, "--channel", "diary", "--type", "note/txt", "--value", `"hello"`, "--tag", "a", "--time", "100", "--json")
	if code != 0 {
		t.Fatalf("add: %d %s", code, e)
	}
	var added struct{ ID string }
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.ID == "" {
		t.Fatalf("add output %q: %v", out, err)
	}
	if _, e, code := runCLI(t, "replica", "events", "update", "--dir", dir, "--add-tag", "b", "--description", "d", added.ID); code != 0 {
		t.Fatalf("update: %d %s", code, e)
	}
	out, _, code = runCLI(t, "replica", "events", "list", "--dir", dir, "--json")
	var evs []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &evs) != nil || len(evs) != 1 || evs[0]["channelId"] != "diary" {
		t.Fatalf("list: %d %s", code, out)
	}
	if tags := evs[0]["tags"].([]any); len(tags) != 2 {
		t.Fatalf("tags %v", tags)
	}
	out, _, code = runCLI(t, "replica", "events", "get", "--dir", dir, "--json", added.ID)
	if code != 0 || !strings.Contains(out, `"description":"d"`) {
		t.Fatalf("get: %d %s", code, out)
	}
	out, _, code = runCLI(t, "replica", "status", "--dir", dir, "--json")
	var st map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st["pending"] != float64(2) || st["username"] != "alice" ||
		st["server"] != "http://127.0.0.1:1" || st["rejections"] != float64(0) {
		t.Fatalf("status: %d %s", code, out)
	}
	for _, k := range []string{"cursor", "lastSync"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status lacks %s", k)
		}
	}
	out, _, code = runCLI(t, "replica", "rejections", "--dir", dir, "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("rejections: %d %q", code, out)
	}
	if _, _, code := runCLI(t, "replica", "events", "get", "--dir", dir, "cnotthere000000000000000000"); code != 1 {
		t.Fatalf("unknown event exit %d", code)
	}
	if _, _, code := runCLI(t, "replica", "events", "add", "--dir", dir, "--channel", "x"); code != 2 {
		t.Fatalf("missing --type exit %d", code)
	}
	if _, _, code := runCLI(t, "replica", "events", "get", "--dir", dir); code != 2 {
		t.Fatalf("missing id exit %d", code)
	}
	if _, _, code := runCLI(t, "replica", "bogus"); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
	// Sync against nothing: failure, exit 1.
	if _, _, code := runCLI(t, "replica", "sync", "--dir", dir); code != 1 {
		t.Fatalf("sync without server exit %d", code)
	}
}
