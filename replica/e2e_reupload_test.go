package replica_test

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// Within one live session, content whose event was removed for good and
// that is then attached again to another event stays available: the server
// keeps what a session uploaded while the session lives, so the second push
// is not refused and the server holds the content.
func TestSameContentAttachedAgainInOneSessionAfterItsEventWasRemoved(t *testing.T) {
	e := newE2E(t)
	r := e.open(e.personal)
	if _, err := r.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	drained := func() bool {
		st, err := r.Status()
		return err == nil && st.Pending == 0 && st.Connected
	}
	content := []byte("the same photo")

	first, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"picture","format":"attached"}}`))
	if err != nil {
		t.Fatal(err)
	}
	att, err := r.AddAttachment(first, "photo.jpg", "photo.jpg", "image/jpeg", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	waitFor("the first event's content on the server", func() bool {
		return drained() && e.srv.Store().HasFile(e2eUser, att.Digest)
	})
	// Trash, then remove for good: the content loses its last reference.
	if err := r.DeleteEvent(first); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteEvent(first); err != nil {
		t.Fatal(err)
	}
	waitFor("the removal pushed", func() bool {
		if !drained() {
			return false
		}
		st, _ := httpDo(t, "GET", e.url+"/"+e2eUser+"/diary/events/"+first, e.personal)
		return st == 404
	})

	// The user attaches the same photo to a new event, same session.
	second, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"picture","format":"attached"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddAttachment(second, "photo.jpg", "photo.jpg", "image/jpeg", bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	waitFor("the second event pushed", drained)
	rej, err := r.Rejections()
	if err != nil {
		t.Fatal(err)
	}
	if len(rej) > 0 {
		t.Fatalf("the new event naming content uploaded earlier in the session was rejected: %+v", rej[0].Error)
	}
	if !e.srv.Store().HasFile(e2eUser, att.Digest) {
		t.Fatalf("the server does not hold the second event's content")
	}

	// Removed for good in its turn, and the session over: no event names
	// the content, and nothing holds it any more.
	if err := r.DeleteEvent(second); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteEvent(second); err != nil {
		t.Fatal(err)
	}
	waitFor("the second removal pushed", func() bool {
		if !drained() {
			return false
		}
		st, _ := httpDo(t, "GET", e.url+"/"+e2eUser+"/diary/events/"+second, e.personal)
		return st == 404
	})
	cancel()
	<-done
	done <- nil // for the deferred wait
	waitFor("the content removed once the session ended", func() bool { return !e.srv.Store().HasFile(e2eUser, att.Digest) })
}
