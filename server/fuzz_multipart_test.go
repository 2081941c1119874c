package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

// Limits of the FuzzMultipart server, small so that the fuzzer reaches them.
const (
	fuzzMaxBody       = 1 << 10
	fuzzMaxAttachment = 2 << 10
)

// mpNames are the part names the fuzzer picks from: the event part, plain
// keys, a key the seeded event already has, and keys that cannot be one.
var mpNames = []string{
	"event", "f", "g", "doc", "", "a b", ".", "..", "x/y", "%41", "k\x01", "é",
	"\"quoted\"", "back\\slash", strings.Repeat("n", 255), strings.Repeat("n", 256), "EVENT", "\xff\xfe",
}

var mpTypes = []string{
	"text/plain", "application/octet-stream", "image/png; name=\"a\"", "", ";;;", "text/plain; charset=\"", "a/b; c=d; c=e",
}

var mpExtraHeaders = []string{
	"Content-Transfer-Encoding: base64",
	"Content-Transfer-Encoding: quoted-printable",
	"Content-Disposition: form-data; name=\"second\"",
	"no colon here",
	"X-Long: " + strings.Repeat("h", 5000),
	"Content-Disposition: attachment; filename=\"../../etc/passwd\"",
	" folded: continuation",
	"Content-Length: 99999999",
}

// fuzzSizes are the lengths of part bodies around the limits.
func fuzzSize(sel byte, limit int) int {
	sizes := []int{0, 1, 7, 100, limit - 1, limit, limit + 1, 3*limit + 5}
	return sizes[int(sel)%len(sizes)]
}

// fill repeats seed to n bytes.
func fill(seed []byte, n int) []byte {
	if len(seed) == 0 {
		seed = []byte("x")
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, seed[:min(len(seed), n-len(out))]...)
	}
	return out
}

// buildMultipart turns the fuzzer's spec into a multipart body. Each part
// takes 4 bytes of spec: its name, flags, body size and an extra header.
func buildMultipart(boundary string, spec, content []byte, eid string) []byte {
	var b bytes.Buffer
	for i := 0; len(spec) >= 4; i++ {
		nameSel, flags, sizeSel, hdrSel := spec[0], spec[1], spec[2], spec[3]
		spec = spec[4:]
		eol := "\r\n"
		if flags&0x40 != 0 {
			eol = "\n"
		}
		name := mpNames[int(nameSel)%len(mpNames)]
		if nameSel >= 0xf0 && len(content) > 0 {
			name = string(content[:int(nameSel-0xf0)%len(content)])
		}
		b.WriteString("--" + boundary + eol)
		if flags&0x20 == 0 {
			disp := `form-data; name="` + strings.NewReplacer(`"`, `\"`, `\`, `\\`).Replace(name) + `"`
			if flags&0x04 != 0 {
				disp = "form-data; name=" + name // unquoted, unescaped
			}
			if flags&0x01 != 0 {
				disp += `; filename="` + name + `.bin"`
			}
			if flags&0x80 != 0 {
				disp += "; filename*=UTF-8''%E2%82%AC%20rates"
			}
			b.WriteString("Content-Disposition: " + disp + eol)
		}
		if flags&0x02 != 0 {
			b.WriteString("Content-Type: " + mpTypes[int(hdrSel)%len(mpTypes)] + eol)
		}
		if flags&0x10 != 0 {
			b.WriteString(mpExtraHeaders[int(hdrSel)%len(mpExtraHeaders)] + eol)
		}
		b.WriteString(eol)
		switch {
		case name == "event" && flags&0x08 != 0:
			// A valid event padded to the size; with the seeded event's id
			// when asked, to collide.
			id := ""
			if hdrSel&1 != 0 {
				id = `"id":"` + eid + `",`
			}
			ev := `{` + id + `"type":{"class":"note","format":"txt"},"time":` + fmt.Sprint(i) + `,"description":"`
			n := max(fuzzSize(sizeSel, fuzzMaxBody)-len(ev)-2, 0)
			b.WriteString(ev + string(fill([]byte("d"), n)) + `"}`)
		case name == "event":
			b.Write(fill(content, fuzzSize(sizeSel, fuzzMaxBody)))
		default:
			// Salted so that parts differ from each other and from the
			// seeded attachment, unless the fuzzer makes them equal.
			b.Write(fill(append([]byte{byte(i)}, content...), fuzzSize(sizeSel, fuzzMaxAttachment)))
		}
		b.WriteString(eol)
	}
	if len(spec) == 0 {
		b.WriteString("--" + boundary + "--\r\n")
	} else {
		b.Write(spec) // leftover bytes: an epilogue, or a body cut short
	}
	return b.Bytes()
}

// multipartContentType is the request's Content-Type for sel.
func multipartContentType(sel uint8, boundary string) string {
	switch sel % 6 {
	case 0:
		return "multipart/form-data; boundary=" + boundary
	case 1:
		return `multipart/form-data; boundary="` + boundary + `"`
	case 2:
		return "multipart/mixed; boundary=" + boundary
	case 3:
		return "multipart/form-data"
	case 4:
		return "multipart/form-data; boundary=" + boundary + "x"
	default:
		return "Multipart/Form-Data ; charset=utf-8; boundary=" + boundary + "; boundary=other"
	}
}

// FuzzMultipart posts random multipart bodies (boundaries, part names,
// headers, sizes around the limits, truncation) to event creation and to
// adding attachments. It checks that no input answers 500 or panics (SPEC
// §3.5), that a refused request leaves the stored data and content files
// exactly as they were, and that after any request every attachment an
// event names has its content and no content is left unreferenced.
//
// mode: bit 0 target (create / add to the seeded event), bit 1 raw (content
// is the whole body, "$B" standing for the boundary), bits 2-4 the
// Content-Type form, bit 5 the read-only token.
//
// Regression inputs live in testdata/fuzz/FuzzMultipart; run longer with
//
//	go test -run '^$' -fuzz FuzzMultipart -fuzztime 3m ./server
func FuzzMultipart(f *testing.F) {
	seeds := []struct {
		mode     uint8
		boundary string
		spec     []byte
		content  string
	}{
		// create: a valid event and two files
		{0, "B", []byte{0, 0x08, 3, 0, 1, 0x01, 3, 0, 2, 0x03, 2, 1}, "hello"},
		// create: files first, then the event
		{0, "xyz", []byte{1, 0x01, 4, 0, 0, 0x08, 2, 0}, "abc"},
		// create: a file one byte over the limit after one that fits
		{0, "B", []byte{0, 0x08, 3, 0, 1, 0x01, 5, 0, 2, 0x01, 6, 0}, "over"},
		// create: the event part over the body limit
		{0, "B", []byte{0, 0x08, 6, 0}, ""},
		// create: the event's id is the seeded one
		{0, "B", []byte{0, 0x08, 3, 1, 1, 0x01, 2, 0}, "dup"},
		// create: two parts named event, a name used twice, no event part
		{0, "B", []byte{0, 0x08, 3, 0, 0, 0x08, 3, 0}, ""},
		{0, "B", []byte{0, 0x08, 3, 0, 1, 0, 2, 0, 1, 0, 2, 0}, "twice"},
		{0, "B", []byte{1, 0x01, 2, 0}, "noevent"},
		// create: raw event part that is not JSON
		{0, "B", []byte{0, 0, 3, 0, 1, 0x01, 2, 0}, "{not json"},
		// create: a part without Content-Disposition, with odd headers, LF line ends
		{0, "B", []byte{0, 0x08, 3, 0, 1, 0x20, 2, 0, 2, 0x12, 2, 3}, "odd"},
		{0, "B", []byte{0, 0x48, 3, 0, 1, 0x41, 2, 0}, "lf"},
		// create: bad keys
		{0, "B", []byte{0, 0x08, 3, 0, 8, 0x01, 2, 0, 9, 0, 2, 0, 10, 0, 1, 0}, "keys"},
		{0, "B", []byte{0, 0x08, 3, 0, 15, 0x01, 2, 0}, "long"},
		{0, "B", []byte{0, 0x08, 3, 0, 4, 0x01, 2, 0}, "empty name"},
		// create: unquoted name, filename*, base64 encoding header
		{0, "B", []byte{0, 0x0c, 3, 0, 1, 0x85, 2, 0, 2, 0x11, 2, 0}, "enc"},
		// create: a body cut short, an epilogue
		{0, "B", []byte{0, 0x08, 3, 0, 1, 0x01, 2, 0, 7}, "cut"},
		// create: boundary forms
		{4, "B", []byte{0, 0x08, 3, 0}, ""},
		{8, "B", []byte{0, 0x08, 3, 0}, ""},
		{12, "B", []byte{0, 0x08, 3, 0}, ""},
		{16, "B", []byte{0, 0x08, 3, 0}, ""},
		{20, "a b", []byte{0, 0x08, 3, 0}, ""},
		{0, strings.Repeat("b", 71), []byte{0, 0x08, 3, 0}, ""},
		{0, "", []byte{0, 0x08, 3, 0}, ""},
		// create with the read-only token
		{32, "B", []byte{0, 0x08, 3, 0, 1, 0x01, 2, 0}, "ro"},
		// add: files, one over the limit, a key the event has, the name "event"
		{1, "B", []byte{1, 0x01, 3, 0, 2, 0x03, 2, 0}, "add"},
		{1, "B", []byte{1, 0x01, 4, 0, 2, 0x01, 6, 0}, "add over"},
		{1, "B", []byte{3, 0x01, 2, 0}, "add doc"},
		{1, "B", []byte{0, 0x00, 2, 0}, "add event"},
		{1, "B", []byte{}, ""},
		{33, "B", []byte{1, 0x01, 3, 0}, "add ro"},
		// raw bodies
		{2, "B", nil, "--$B\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\n{\"type\":{\"class\":\"a\",\"format\":\"b\"}}\r\n--$B--\r\n"},
		{2, "B", nil, "--$B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\nhi\r\n--$B"},
		{3, "B", nil, "--$B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n--$B\r\n\r\n--$B--"},
		{2, "B", nil, "garbage"},
		{2, "B", nil, "--$B--\r\n"},
		{2, "B", nil, "--$B\r\n\r\n\r\n--$B--\r\n"},
	}
	for _, s := range seeds {
		f.Add(s.mode, s.boundary, s.spec, []byte(s.content))
	}
	e := newEnv(f, func(c *server.Config) {
		c.MaxBodyBytes = fuzzMaxBody
		c.MaxAttachmentBytes = fuzzMaxAttachment
	})
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, mode uint8, boundary string, spec, content []byte) {
		user := fmt.Sprintf("mp%d", n.Add(1))
		fx := seedFuzzAccount(t, e, user)
		var body []byte
		if mode&2 != 0 {
			body = bytes.ReplaceAll(bytes.ReplaceAll(content, []byte("$B"), []byte(boundary)), []byte("$E"), []byte(fx.eid))
		} else {
			body = buildMultipart(boundary, spec, content, fx.eid)
		}
		path := "/" + user + "/" + fx.cid + "/events"
		if mode&1 != 0 {
			path += "/" + fx.eid
		}
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Content-Type", multipartContentType(mode>>2, boundary))
		req.Header.Set("Authorization", fx.personal)
		if mode&32 != 0 {
			req.Header.Set("Authorization", fx.shared)
		}
		before := storedState(t, e, user)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		t.Logf("POST %s (%d bytes, %s) -> %d %.300s", path, len(body), req.Header.Get("Content-Type"), rec.Code, rec.Body.Bytes())
		if rec.Code >= 500 {
			t.Fatalf("answered %d: %s", rec.Code, rec.Body.Bytes())
		}
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("answer is not a JSON object: %s", rec.Body.Bytes())
		}
		if rec.Code >= 300 {
			if id, _ := answer["id"].(string); id == "" {
				t.Fatalf("refusal without an error id: %s", rec.Body.Bytes())
			}
			mustBeUnchanged(t, "a refused request", before, storedState(t, e, user))
		}
		checkContentReferences(t, e, user)
	})
}

// checkContentReferences fails unless the user's content files are exactly
// the contents that events' attachments name, with no upload left over.
func checkContentReferences(t *testing.T, e *testEnv, user string) {
	t.Helper()
	named := map[string]bool{}
	err := e.srv.Store().View(user, func(tx *store.Tx) error {
		return tx.Items(model.KindEvent, func(id string, r *store.Record) (bool, error) {
			for key, raw := range r.Doc.FileMap() {
				var att model.Attachment
				if err := json.Unmarshal(raw, &att); err != nil {
					return false, fmt.Errorf("event %s attachment %q: %v", id, key, err)
				}
				named[att.Digest] = true
			}
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for k := range storedState(t, e, user) {
		if name, ok := strings.CutPrefix(k, "file/"); ok {
			files[name] = true
		}
	}
	for d := range named {
		if !files[d] {
			t.Fatalf("an attachment names content %s that is not stored", d)
		}
	}
	for name := range files {
		if !named[name] {
			t.Fatalf("content file %s is not referenced by any event", name)
		}
	}
}
