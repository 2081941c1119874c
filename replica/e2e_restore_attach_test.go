package replica_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"
)

// After a server restore (new epoch) the replica re-pushes what it holds
// (repushAll). An event it received with an attachment whose content it never
// downloaded (content is fetched on demand) names a digest absent from the
// local content store. The round must still complete and push the replica's
// own pending write.
func TestRestoreWithAnUndownloadedAttachmentCompletesTheRound(t *testing.T) {
	e := newDiskE2E(t, filepath.Join(t.TempDir(), "before"))
	a, b := e.open(), e.open()
	if _, err := a.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`)); err != nil {
		t.Fatal(err)
	}
	pic, err := a.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"picture","format":"attached"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddAttachment(pic, "photo.jpg", "photo.jpg", "image/jpeg", bytes.NewReader([]byte("jpeg bytes"))); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustSync(t, b) // b holds the event and its metadata, not the content
	var backup bytes.Buffer
	if err := e.srv().Store().Backup(&backup); err != nil {
		t.Fatal(err)
	}
	e.restart(&backup)

	mine, err := b.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"offline on b"}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := b.Sync(ctx); err != nil {
		st, _ := b.Status()
		t.Fatalf("sync after the restore: %v (status %+v)", err, st)
	}
	if v, live := e.serverEvent(mine); !live || v != `"offline on b"` {
		t.Fatalf("b's pending write never reached the server (value %s, live %v)", v, live)
	}
}
