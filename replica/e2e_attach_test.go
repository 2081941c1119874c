package replica_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

func TestAttachmentAddedOfflineIsUploadedAndDownloadedOnDemand(t *testing.T) {
	e := newE2E(t)
	a, b := e.open(e.personal), e.open(e.personal)
	a.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`))
	id, err := a.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"picture","format":"attached"}}`))
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("photo bytes "), 200_000) // over one 1 MiB chunk
	att, err := a.AddAttachment(id, "photo.jpg", "photo.jpg", "image/jpeg", bytes.NewReader(content))
	if err != nil {
		t.Fatalf("add attachment offline: %v", err)
	}
	// Visible locally at once.
	if ev := mustEvent(t, a, id); ev.Attachments["photo.jpg"].Digest != att.Digest {
		t.Fatalf("local event attachments: %+v", ev.Attachments)
	}
	mustSync(t, a)
	st, got := httpDo(t, "GET", e.url+"/"+e2eUser+"/diary/events/"+id+"/photo.jpg", e.personal)
	if st != 200 || got != string(content) {
		t.Fatalf("server copy: status %d, %d bytes, want %d", st, len(got), len(content))
	}
	mustSync(t, b)
	rc, meta, err := b.OpenAttachment(context.Background(), id, "photo.jpg")
	if err != nil {
		t.Fatalf("download on demand: %v", err)
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	if !bytes.Equal(data, content) || meta.Type != "image/jpeg" {
		t.Fatalf("downloaded %d bytes (%s), want %d", len(data), meta.Type, len(content))
	}
}

func TestAttachmentOutsideTheScopeCannotBeDownloaded(t *testing.T) {
	e := newE2E(t)
	owner := e.open(e.personal)
	owner.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`))
	owner.CreateChannel(body(t, `{"id":"work","name":"Work"}`))
	id, _ := owner.CreateEvent(body(t, `{"channelId":"work","type":{"class":"note","format":"txt"}}`))
	if _, err := owner.AddAttachment(id, "secret.txt", "", "text/plain", strings.NewReader("secret")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, owner)
	r := e.open(e.token(&model.Access{Type: model.AccessShared, Name: "diary", Permissions: []model.Permission{{ChannelID: "diary", Level: "read"}}}))
	mustSync(t, r)
	if _, _, err := r.OpenAttachment(context.Background(), id, "secret.txt"); err == nil {
		t.Fatalf("a replica scoped to another channel opened the attachment")
	}
}
