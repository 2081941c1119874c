package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"reflect"
	"testing"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
)

// mpPart is one part of a multipart body: a field name, an optional file
// name and content type, and the content.
type mpPart struct {
	name, fileName, ctype string
	body                  []byte
}

func multipartBody(t *testing.T, parts ...mpPart) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disp := map[string]string{"name": p.name}
		if p.fileName != "" {
			disp["filename"] = p.fileName
		}
		h.Set("Content-Disposition", mime.FormatMediaType("form-data", disp))
		if p.ctype != "" {
			h.Set("Content-Type", p.ctype)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(p.body)
	}
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// upload sends a multipart body.
func (f *actFixture) upload(method, p, tok string, parts ...mpPart) (int, any) {
	f.t.Helper()
	body, ctype := multipartBody(f.t, parts...)
	st, b, _ := f.do(method, f.path(p), tok, body, "Content-Type", ctype)
	return st, decodeAnswer(f.t, b)
}

func eventPart(v string) mpPart { return mpPart{name: "event", body: []byte(v)} }

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func attachmentsOf(t *testing.T, ev any) map[string]any {
	t.Helper()
	m, _ := ev.(map[string]any)["attachments"].(map[string]any)
	return m
}

func TestCreateEventWithFilesStoresThemWithMetadata(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	photo := []byte("\x89PNG fake image bytes")
	notes := []byte("some notes")
	st, v := f.upload("POST", "/"+cid+"/events", f.tok,
		mpPart{name: "photo", fileName: "Été à Paris (1).png", ctype: "image/png", body: photo},
		eventPart(`{"type": {"class": "picture", "format": "attached"}, "time": 10}`),
		mpPart{name: "notes", body: notes})
	mustStatus(t, "create", st, v, 201)
	id := v.(map[string]any)["id"].(string)
	ev := f.must(200, "GET", "/"+cid+"/events/"+id, nil)
	want := map[string]any{
		"photo": map[string]any{"fileName": "Été à Paris (1).png", "type": "image/png", "size": float64(len(photo)), "digest": hexSum(photo)},
		"notes": map[string]any{"fileName": "notes", "type": "application/octet-stream", "size": float64(len(notes)), "digest": hexSum(notes)},
	}
	if got := attachmentsOf(t, ev); !reflect.DeepEqual(got, want) {
		t.Fatalf("attachments: got %v, want %v", got, want)
	}
	// Download: bytes, type, disposition with the real name, digest.
	st, b, h := f.do("GET", f.path("/"+cid+"/events/"+id+"/photo"), f.tok, nil)
	mustStatus(t, "download", st, string(b), 200)
	if !bytes.Equal(b, photo) {
		t.Fatalf("content: got %q, want %q", b, photo)
	}
	if got := h.Get("Content-Type"); got != "image/png" {
		t.Fatalf("Content-Type: got %q", got)
	}
	_, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err != nil || params["filename"] != "Été à Paris (1).png" {
		t.Fatalf("Content-Disposition: %q (%v)", h.Get("Content-Disposition"), err)
	}
	sum := sha256.Sum256(photo)
	if got, want := h.Get("Digest"), "sha-256="+base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("Digest: got %q, want %q", got, want)
	}
	st, v = f.call("GET", "/"+cid+"/events/"+id+"/nothing", nil)
	f.wantErr("unknown attachment", st, v, 404, "unknown-attachment")
}

func TestCreateEventWithFilesRefusesBadMultipart(t *testing.T) {
	f := newActFixture(t, func(c *server.Config) { c.MaxAttachmentBytes = 64 })
	cid := f.channel("Diary")
	ev := eventPart(`{"type": {"class": "note", "format": "txt"}}`)
	file := mpPart{name: "f", fileName: "f.txt", body: []byte("x")}
	cases := []struct {
		name   string
		parts  []mpPart
		status int
		id     string
	}{
		{"name used twice", []mpPart{ev, file, file}, 400, "invalid-request-structure"},
		{"two event parts", []mpPart{ev, ev}, 400, "invalid-request-structure"},
		{"event part not JSON", []mpPart{eventPart(`{not json`), file}, 400, "invalid-request-structure"},
		{"event part invalid", []mpPart{eventPart(`{"time": 1}`), file}, 400, "invalid-parameters-format"},
		{"no event part", []mpPart{file}, 400, "invalid-request-structure"},
		{"file too large", []mpPart{ev, {name: "big", fileName: "big", body: bytes.Repeat([]byte("x"), 65)}}, 413, "payload-too-large"},
		{"unusable key", []mpPart{ev, {name: "a/b", fileName: "x", body: []byte("x")}}, 400, "invalid-parameters-format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, v := f.upload("POST", "/"+cid+"/events", f.tok, tc.parts...)
			f.wantErr(tc.name, st, v, tc.status, tc.id)
		})
	}
	if n := len(f.list("/" + cid + "/events?state=all")); n != 0 {
		t.Fatalf("refused uploads created %d events", n)
	}
	if f.srv.Store().HasFile(f.user, hexSum([]byte("x"))) {
		t.Fatalf("content of refused uploads was kept")
	}
	st, b, _ := f.do("POST", f.path("/"+cid+"/events"), f.tok, []byte("--zz\r\ngarbage"), "Content-Type", "multipart/form-data; boundary=zz")
	f.wantErr("truncated multipart", st, decodeAnswer(t, b), 400, "invalid-request-structure")
}

func TestAddAttachmentsKeepsExistingOnes(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	st, v := f.upload("POST", "/"+cid+"/events", f.tok, eventPart(`{"type": {"class": "note", "format": "txt"}}`),
		mpPart{name: "one", fileName: "one.txt", body: []byte("1")})
	mustStatus(t, "create", st, v, 201)
	id := v.(map[string]any)["id"].(string)
	st, v = f.upload("POST", "/"+cid+"/events/"+id, f.tok, mpPart{name: "two", fileName: "two.txt", ctype: "text/plain; charset=utf-8", body: []byte("22")})
	mustStatus(t, "add", st, v, 200)
	att := attachmentsOf(t, v)
	if len(att) != 2 || att["one"] == nil || att["two"] == nil {
		t.Fatalf("attachments after add: %v", att)
	}
	st, v = f.upload("POST", "/"+cid+"/events/"+id, f.tok, mpPart{name: "one", fileName: "again.txt", body: []byte("again")})
	f.wantErr("same key", st, v, 400, "item-id-already-exists")
	st, b, _ := f.do("POST", f.path("/"+cid+"/events/"+id), f.tok, []byte(`{"x": 1}`))
	f.wantErr("not multipart", st, decodeAnswer(t, b), 400, "invalid-request-structure")
	st, v = f.upload("POST", "/"+cid+"/events/"+cuid("nope"), f.tok, mpPart{name: "x", body: []byte("x")})
	f.wantErr("unknown event", st, v, 404, "unknown-event")
	if f.srv.Store().HasFile(f.user, hexSum([]byte("again"))) {
		t.Fatalf("content of a refused add was kept")
	}
}

func TestDeleteAttachmentRemovesReferenceAndContent(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	shared := []byte("same content in two events")
	own := []byte("only here")
	mk := func() string {
		st, v := f.upload("POST", "/"+cid+"/events", f.tok, eventPart(`{"type": {"class": "note", "format": "txt"}}`),
			mpPart{name: "shared", fileName: "s", body: shared}, mpPart{name: "own", fileName: "o", body: own})
		mustStatus(t, "create", st, v, 201)
		return v.(map[string]any)["id"].(string)
	}
	a, b := mk(), mk()
	st := f.srv.Store()
	ev := f.must(200, "DELETE", "/"+cid+"/events/"+a+"/own", nil)
	if att := attachmentsOf(t, ev); len(att) != 1 || att["shared"] == nil {
		t.Fatalf("attachments after delete: %v", att)
	}
	code, v := f.call("GET", "/"+cid+"/events/"+a+"/own", nil)
	f.wantErr("deleted attachment", code, v, 404, "unknown-attachment")
	code, v = f.call("DELETE", "/"+cid+"/events/"+a+"/own", nil)
	f.wantErr("deleted twice", code, v, 404, "unknown-attachment")
	if !st.HasFile(f.user, hexSum(own)) {
		t.Fatalf("content still used by another event was removed")
	}
	// Removing event b for good drops its files; a still holds shared.
	f.must(200, "DELETE", "/"+cid+"/events/"+b, nil)
	f.must(200, "DELETE", "/"+cid+"/events/"+b, nil)
	if st.HasFile(f.user, hexSum(own)) {
		t.Fatalf("unreferenced content kept after the event was removed")
	}
	if !st.HasFile(f.user, hexSum(shared)) {
		t.Fatalf("content still referenced by %s was removed", a)
	}
	f.must(200, "DELETE", "/"+cid+"/events/"+a+"/shared", nil)
	if st.HasFile(f.user, hexSum(shared)) {
		t.Fatalf("content kept after its last reference went")
	}
}

func TestAttachmentsFollowTheEventsScope(t *testing.T) {
	s := newScopeFixture(t)
	for _, id := range []string{s.eWork, s.eHome} {
		st, v := s.upload("POST", "/"+s.cid+"/events/"+id, s.tok, mpPart{name: "doc", fileName: "doc.txt", body: []byte("doc of " + id)})
		mustStatus(t, "add to "+id, st, v, 200)
	}
	tok := s.token(model.Permission{ChannelID: s.cid, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("work"), Level: "read"}}})
	st, b, _ := s.do("GET", s.path("/"+s.cid+"/events/"+s.eWork+"/doc"), tok, nil)
	mustStatus(t, "in scope", st, string(b), 200)
	stU, bU, _ := s.do("GET", s.path("/"+s.cid+"/events/"+s.unknown+"/doc"), tok, nil)
	st, b, _ = s.do("GET", s.path("/"+s.cid+"/events/"+s.eHome+"/doc"), tok, nil)
	if st != 404 || stU != 404 || errID(decodeAnswer(t, b)) != "unknown-event" ||
		!bytes.Equal(bytes.ReplaceAll(b, []byte(s.eHome), []byte("X")), bytes.ReplaceAll(bU, []byte(s.unknown), []byte("X"))) {
		t.Fatalf("out-of-scope attachment: %d %s; unknown event: %d %s", st, b, stU, bU)
	}
	// Read rights read attachments but do not change them.
	code, v := s.upload("POST", "/"+s.cid+"/events/"+s.eWork, tok, mpPart{name: "more", body: []byte("more")})
	s.wantErr("add with read rights", code, v, 403, "forbidden")
	code, v = s.call("DELETE", "/"+s.cid+"/events/"+s.eWork+"/doc", nil, tok)
	s.wantErr("delete with read rights", code, v, 403, "forbidden")
	code, v = s.call("DELETE", "/"+s.cid+"/events/"+s.eHome+"/doc", nil, tok)
	s.wantErr("delete out of scope", code, v, 404, "unknown-event")
	if s.srv.Store().HasFile(s.user, hexSum([]byte("more"))) {
		t.Fatalf("content of a forbidden add was kept")
	}
}

func TestAttachmentKeyIsThePartNameNotTheFileName(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	st, v := f.upload("POST", "/"+cid+"/events", f.tok, eventPart(`{"type": {"class": "note", "format": "txt"}}`),
		mpPart{name: "key-1", fileName: "report.pdf", ctype: "application/pdf", body: []byte("%PDF")})
	mustStatus(t, "create", st, v, 201)
	id := v.(map[string]any)["id"].(string)
	att := attachmentsOf(t, f.must(200, "GET", "/"+cid+"/events/"+id, nil))
	meta, _ := att["key-1"].(map[string]any)
	if meta["fileName"] != "report.pdf" || meta["type"] != "application/pdf" {
		t.Fatalf("attachment: %v", att)
	}
	st, b, h := f.do("GET", f.path(fmt.Sprintf("/%s/events/%s/key-1", cid, id)), f.tok, nil)
	mustStatus(t, "download", st, string(b), 200)
	if h.Get("Content-Type") != "application/pdf" {
		t.Fatalf("Content-Type %q", h.Get("Content-Type"))
	}
	// A key with spaces and accents is addressed escaped in the path.
	key := "mon fichier é+1"
	st, v = f.upload("POST", "/"+cid+"/events/"+id, f.tok, mpPart{name: key, body: []byte("accents")})
	mustStatus(t, "add", st, v, 200)
	st, b, _ = f.do("GET", f.path(fmt.Sprintf("/%s/events/%s/%s", cid, id, url.PathEscape(key))), f.tok, nil)
	if st != 200 || string(b) != "accents" {
		t.Fatalf("escaped key: %d %q", st, b)
	}
	f.must(200, "DELETE", fmt.Sprintf("/%s/events/%s/%s", cid, id, url.PathEscape(key)), nil)
}
