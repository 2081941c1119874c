package server_test

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

var fuzzTypes = []string{
	"application/json",
	"multipart/form-data; boundary=B",
	"application/x-www-form-urlencoded",
	"",
	"text/plain",
}

// FuzzRouter sends arbitrary method, path, query and body to the router
// and checks that no input makes it fail with a 500 or panic (SPEC §3.5:
// bad input never crashes the server and never answers 500). Each input
// runs against a fresh account holding a channel "$C" (no-overlap), a folder
// "$F", an event "$E" with an attachment "doc", a running period "$R", and
// tokens: personal, a folder-restricted read token, or none. Those
// placeholders in the path, query and body are replaced by the real ids, so
// the fuzzer reaches the handlers behind the routing.
//
// Regression inputs live in testdata/fuzz/FuzzRouter; run longer with
//
//	go test -run '^$' -fuzz FuzzRouter -fuzztime 2m ./server
func FuzzRouter(f *testing.F) {
	seeds := []struct {
		method      uint8
		path, query string
		body        string
		ctype, tok  uint8
	}{
		{0, "$C/events", "fromTime=0&onlyFolders[]=$F&onlyFolders=null&tags=a&limit=5&skip=1&sortAscending=true", "", 3, 0},
		{0, "$C/events", "modifiedSince=0&includeDeletions=true&state=all", "", 3, 1},
		{0, "$C/events", "toTime=1e308&fromTime=-1e308", "", 3, 0},
		{1, "$C/events", "", `{"type":{"class":"a","format":"b"},"folderId":"$F","tags":["x"],"time":5,"duration":null}`, 0, 0},
		{1, "$C/events", "", "--B\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\n{\"type\":{\"class\":\"a\",\"format\":\"b\"}}\r\n--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.txt\"\r\n\r\nhello\r\n--B--\r\n", 1, 0},
		{1, "$C/events/$E", "", "--B\r\nContent-Disposition: form-data; name=\"g\"\r\n\r\nhi\r\n--B--\r\n", 1, 0},
		{1, "$C/events/start", "", `{"type":{"class":"a","format":"b"},"time":10}`, 0, 0},
		{1, "$C/events/stop", "", `{"id":"$R","time":1e9}`, 0, 0},
		{1, "$C/events/stop", "", `{}`, 0, 1},
		{0, "$C/events/running", "", "", 3, 0},
		{1, "$C/events/batch", "", `[{"tempRefId":"a","type":{"class":"a","format":"b"}},{"tempRefId":"b"}]`, 0, 0},
		{0, "$C/events/$E", "", "", 3, 1},
		{2, "$C/events/$E", "", `{"tags":["y"],"clientData":{"k":null},"folderId":null}`, 0, 0},
		{3, "$C/events/$E", "", "", 3, 0},
		{0, "$C/events/$E/doc", "", "", 3, 0},
		{3, "$C/events/$E/doc", "", "", 3, 0},
		{0, "$C/folders", "parentId=$F&state=all&includeHidden=true", "", 3, 1},
		{1, "$C/folders", "", `{"id":"Kid!","name":"Kid","parentId":"$F"}`, 0, 0},
		{2, "$C/folders/$F", "", `{"parentId":"$F"}`, 0, 0},
		{3, "$C/folders/$F", "mergeEventsWithParent=true", "", 3, 0},
		{1, "$C/events", "", "_method=PUT&_json=%7B%7D", 2, 0},
		{0, "channels", "state=all", "", 3, 2},
		{0, "$C/events/%zz", "", "", 3, 0},
		{4, "$C/events/$E/doc/x", "", "", 3, 0},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, []byte(s.body), s.ctype, s.tok)
	}
	e := newEnv(f)
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, method uint8, path, query string, body []byte, ctype, tokSel uint8) {
		user := fmt.Sprintf("fuzz%d", n.Add(1))
		fx := seedFuzzAccount(t, e, user)
		sub := strings.NewReplacer("$C", fx.cid, "$F", fx.fid, "$E", fx.eid, "$R", fx.rid)
		u := &url.URL{Path: "/" + user + "/" + sub.Replace(path), RawQuery: sub.Replace(query)}
		req := httptest.NewRequest("GET", "/", bytes.NewReader([]byte(sub.Replace(string(body)))))
		req.Method = fuzzMethods[int(method)%len(fuzzMethods)]
		req.URL, req.RequestURI = u, u.RequestURI()
		if ct := fuzzTypes[int(ctype)%len(fuzzTypes)]; ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		switch tokSel % 3 {
		case 0:
			req.Header.Set("Authorization", fx.personal)
		case 1:
			req.Header.Set("Authorization", fx.shared)
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		t.Logf("%s %s -> %d %.200s", req.Method, u.String(), rec.Code, rec.Body.Bytes())
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", req.Method, u.String(), rec.Code, rec.Body.Bytes())
		}
	})
}

type fuzzAccount struct {
	cid, fid, eid, rid string
	personal, shared   string
}

// seedFuzzAccount makes an account with a little data, through the store
// for the account and tokens and through the API for the data.
func seedFuzzAccount(t *testing.T, e *testEnv, user string) fuzzAccount {
	t.Helper()
	old := e.t
	e.t = t
	defer func() { e.t = old }()
	e.mustStoreUser(user)
	fx := fuzzAccount{cid: "c", fid: "f", personal: e.personalToken(user)}
	fx.shared = e.storeAccess(user, &model.Access{Type: model.AccessShared, Name: "ro", Permissions: []model.Permission{
		{ChannelID: fx.cid, Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: ptr(fx.fid), Level: "read"}}},
	}})
	send := func(method, path, ctype string, body []byte) []byte {
		req := httptest.NewRequest(method, "/"+user+path, bytes.NewReader(body))
		req.Header.Set("Authorization", fx.personal)
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("seed %s %s: %d %s", method, path, rec.Code, rec.Body.Bytes())
		}
		return rec.Body.Bytes()
	}
	send("POST", "/channels", "application/json", []byte(`{"id":"c","name":"C","enforceNoEventsOverlap":true}`))
	send("POST", "/c/folders", "application/json", []byte(`{"id":"f","name":"F"}`))
	fx.eid, fx.rid = cuid("event"), cuid("running")
	mp := "--B\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\n" +
		`{"id":"` + fx.eid + `","type":{"class":"a","format":"b"},"folderId":"f","time":100,"tags":["a"]}` +
		"\r\n--B\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"doc.txt\"\r\n\r\ncontent\r\n--B--\r\n"
	send("POST", "/c/events", "multipart/form-data; boundary=B", []byte(mp))
	send("POST", "/c/events", "application/json", []byte(`{"id":"`+fx.rid+`","type":{"class":"a","format":"b"},"folderId":"f","time":200,"duration":null}`))
	return fx
}
