package server_test

import "testing"

func TestCreateChannelThenListSortedByName(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	for _, name := range []string{"Work", "diary", "Health"} {
		st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"name": name})
		mustStatus(t, "create "+name, st, v, 201)
	}
	st, v := e.doJSON("GET", "/alice01/channels", tok, nil)
	mustStatus(t, "list", st, v, 200)
	list := v.([]any)
	var names []string
	for _, c := range list {
		names = append(names, c.(map[string]any)["name"].(string))
	}
	if got, want := len(names), 3; got != want {
		t.Fatalf("channels: got %d, want %d", got, want)
	}
	if names[0] != "diary" || names[1] != "Health" || names[2] != "Work" {
		t.Fatalf("order: got %v, want diary, Health, Work (case-insensitive)", names)
	}
}

func TestChannelNameClashIsRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"name": "Diary"})
	mustStatus(t, "create", st, v, 201)
	st, v = e.doJSON("POST", "/alice01/channels", tok, map[string]any{"name": "diary", "id": "other"})
	mustStatus(t, "clash", st, v, 400)
	if got, want := errID(v), "item-name-already-exists"; got != want {
		t.Fatalf("error id: got %q, want %q", got, want)
	}
}

func TestChannelIDIsSlugifiedAndReservedWordsRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"name": "X", "id": "Pas encodé de bleu!"})
	mustStatus(t, "create", st, v, 201)
	if got, want := v.(map[string]any)["id"], "pas-encode-de-bleu"; got != want {
		t.Fatalf("id: got %v, want %v", got, want)
	}
	st, v = e.doJSON("POST", "/alice01/channels", tok, map[string]any{"name": "Y", "id": "accesses"})
	mustStatus(t, "reserved", st, v, 400)
	if got, want := errID(v), "invalid-item-id"; got != want {
		t.Fatalf("error id: got %q, want %q", got, want)
	}
}
