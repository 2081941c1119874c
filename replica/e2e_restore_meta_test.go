package replica_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
)

// httpCreateWithFile creates an event in diary over HTTP with one attachment
// whose multipart file name is fileName; it returns the event id.
func httpCreateWithFile(t *testing.T, e *diskE2E, fileName string, content []byte) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	ev, _ := mw.CreateFormField("event")
	ev.Write([]byte(`{"type":{"class":"picture","format":"attached"}}`))
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="photo"; filename="`+fileName+`"`)
	h.Set("Content-Type", "image/jpeg")
	fw, _ := mw.CreatePart(h)
	fw.Write(content)
	mw.Close()
	req, _ := http.NewRequest("POST", e.url+"/"+e2eUser+"/diary/events", &buf)
	req.Header.Set("Authorization", e.personal)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		t.Fatalf("create with a file named %d bytes: %d %s", len(fileName), resp.StatusCode, b)
	}
	var out struct {
		ID string `json:"id"`
	}
	json.Unmarshal(b, &out)
	return out.ID
}

// After a server restore, the replica re-pushes an event whose attachment
// the server wrote itself from an HTTP upload with a long file name: pushed
// metadata takes every shape the server writes (no length caps on the name
// and type; MaxItemSize bounds the item).
func TestRestoreRepushesAnEventWhoseLongFileNameTheServerWroteItself(t *testing.T) {
	e := newDiskE2E(t, filepath.Join(t.TempDir(), "before"))
	b := e.open()
	if _, err := b.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	var backup bytes.Buffer
	if err := e.srv().Store().Backup(&backup); err != nil {
		t.Fatal(err)
	}
	short := httpCreateWithFile(t, e, "photo.jpg", []byte("short name bytes"))
	long := httpCreateWithFile(t, e, strings.Repeat("p", 300)+".jpg", []byte("long name bytes"))
	mustSync(t, b)
	for _, id := range []string{short, long} {
		rc, _, err := b.OpenAttachment(context.Background(), id, "photo")
		if err != nil {
			t.Fatalf("download %s: %v", id, err)
		}
		rc.Close()
	}
	e.restart(&backup)
	mustSync(t, b)
	mustSync(t, b)
	if _, live := e.serverEvent(short); !live {
		t.Fatalf("control: the event with a short file name was not re-pushed")
	}
	if _, live := e.serverEvent(long); !live {
		rej, _ := b.Rejections()
		t.Fatalf("the event the server itself stored (file name of 304 bytes) never came back after the restore; rejections: %+v", rej)
	}
}
