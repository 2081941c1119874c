package replica_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

// seedEvents writes n events into channel straight through the server's
// write rule, in requests of 1000.
func (e *e2e) seedEvents(channel string, n int) {
	e.t.Helper()
	clock := crdt.NewClock("seed", nil, 0)
	actor := &server.Actor{AccessID: "seed", Type: model.AccessPersonal, Scope: model.Personal()}
	for done := 0; done < n; {
		k := min(1000, n-done)
		err := e.srv.Store().Update(context.Background(), e2eUser, func(tx *store.Tx) error {
			for i := 0; i < k; i++ {
				v := clock.MustNow()
				d := crdt.Doc{Fields: map[string]crdt.Field{
					"channelId": {V: v, Val: model.JSONString(channel)},
					"time":      {V: v, Val: model.JSONNumber(float64(1_700_000_000 + done + i))},
					"type":      {V: v, Val: []byte(`{"class":"note","format":"txt"}`)},
					"value":     {V: v, Val: model.JSONString(fmt.Sprintf("event %d of the seed, about eighty characters of text to weigh", done+i))},
				}}
				if _, err := server.ApplyChange(tx, actor, server.Change{Kind: model.KindEvent, ID: model.NewID(), Delta: d, Create: true}, clock); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			e.t.Fatalf("seed: %v", err)
		}
		done += k
	}
}

func TestInterruptedInitialSyncResumesWithoutRefetchingAppliedBatches(t *testing.T) {
	const n = 50_000
	e := newE2E(t)
	owner := e.open(e.personal)
	owner.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`))
	mustSync(t, owner)
	e.seedEvents("diary", n)

	r := e.open(e.personal)
	changes := r.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		seen := 0
		for range changes {
			if seen++; seen == n/3 {
				cancel()
				return
			}
		}
	}()
	first, err := r.Sync(ctx)
	if err == nil {
		t.Fatalf("the first round was not interrupted (applied %d)", first.Applied)
	}
	st, _ := r.Status()
	if first.Applied == 0 || first.Applied >= n {
		t.Fatalf("interrupted round applied %d items, want part of %d", first.Applied, n)
	}
	second := mustSync(t, r)
	// Every item is applied exactly once over the two rounds: no batch
	// applied in the first round came again in the second.
	if got, want := first.Applied+second.Applied, n+1; got != want {
		t.Fatalf("items applied over both rounds: %d + %d = %d, want %d (cursor after the first: %+v)",
			first.Applied, second.Applied, got, want, st.Cursor)
	}
	evs, err := r.ListEvents(replica.Filter{Channel: "diary"})
	if err != nil || len(evs) != n {
		t.Fatalf("replica holds %d events (%v), want %d", len(evs), err, n)
	}
}

func TestNarrowingAnAccessRemovesExactlyWhatLeftTheScope(t *testing.T) {
	e := newE2E(t)
	owner := e.open(e.personal)
	owner.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`))
	owner.CreateChannel(body(t, `{"id":"work","name":"Work"}`))
	keep, _ := owner.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"keep"}`))
	gone, _ := owner.CreateEvent(body(t, `{"channelId":"work","type":{"class":"note","format":"txt"},"value":"gone"}`))
	mustSync(t, owner)
	a := &model.Access{Type: model.AccessShared, Name: "both", Permissions: []model.Permission{
		{ChannelID: "diary", Level: "read"}, {ChannelID: "work", Level: "read"}}}
	r := e.open(e.token(a))
	mustSync(t, r)
	for _, id := range []string{keep, gone} {
		if _, err := r.GetEvent(id); err != nil {
			t.Fatalf("before narrowing the replica should hold %s: %v", id, err)
		}
	}
	st, b := httpJSON(t, "PUT", e.url+"/"+e2eUser+"/accesses/"+a.Token, e.personal,
		`{"permissions":[{"channelId":"diary","level":"read"}]}`)
	if st != 200 {
		t.Fatalf("narrow the access: %d %s", st, b)
	}
	mustSync(t, r)
	if _, err := r.GetEvent(keep); err != nil {
		t.Fatalf("the event still in scope was removed: %v", err)
	}
	if _, err := r.GetEvent(gone); err == nil {
		t.Fatalf("the event that left the scope is still on the replica")
	}
	chs, _ := r.ListChannels()
	if len(chs) != 1 || chs[0].ID != "diary" {
		t.Fatalf("channels after narrowing: %+v, want only diary", chs)
	}
}

func TestRevocationWhileConnectedPurgesTheReplica(t *testing.T) {
	e := newE2E(t)
	owner := e.open(e.personal)
	owner.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`))
	id, _ := owner.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"secret"}`))
	mustSync(t, owner)
	a := &model.Access{Type: model.AccessShared, Name: "shared", Permissions: []model.Permission{{ChannelID: "diary", Level: "read"}}}
	r := e.open(e.token(a))
	mustSync(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	time.Sleep(200 * time.Millisecond)
	if st, b := httpDo(t, "DELETE", e.url+"/"+e2eUser+"/accesses/"+a.Token, e.personal); st != 200 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("Run ended without an error after revocation")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not end after revocation")
	}
	if _, err := r.GetEvent(id); err == nil {
		t.Fatalf("the revoked replica still holds the event")
	}
}

func TestCreatingAnEventWithAnIDAlreadyHeldIsRefused(t *testing.T) {
	e := newE2E(t)
	r := e.open(e.personal)
	r.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`))
	id, _ := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"once"}`))
	mustSync(t, r)
	// A second replica pushing the same creation (same id) is refused: ids
	// are never reused, and nothing is applied twice.
	other := e.open(e.personal)
	mustSync(t, other)
	if _, err := other.CreateEvent(body(t, fmt.Sprintf(`{"id":%q,"channelId":"diary","type":{"class":"note","format":"txt"}}`, id))); err == nil {
		t.Fatalf("creating an event with an id the replica already holds succeeded")
	}
	st, b := httpDo(t, "GET", e.url+"/"+e2eUser+"/diary/events?limit=100", e.personal)
	var evs []map[string]any
	if st != 200 || json.Unmarshal([]byte(b), &evs) != nil || len(evs) != 1 {
		t.Fatalf("events on the server: %d %s, want exactly one", st, b)
	}
}

func httpJSON(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}
