package webapp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func serve(t *testing.T, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/app/", http.StripPrefix("/app/", Handler()))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestHandlerServesIndexAndModules(t *testing.T) {
	rec := serve(t, "GET", "/app/")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `src="./app.js"`) {
		t.Fatalf("GET /app/: %d %q", rec.Code, rec.Body.String())
	}
	if got := rec.Header().Get("Content-Security-Policy"); got != CSP {
		t.Errorf("CSP = %q", got)
	}
	if rec.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Error("missing Referrer-Policy")
	}
	for _, name := range []string{"app.js", "api.js", "views.js"} {
		rec := serve(t, "GET", "/app/"+name)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d", name, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
			t.Errorf("%s Content-Type = %q", name, ct)
		}
	}
	if rec := serve(t, "GET", "/app/style.css"); !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
		t.Errorf("style.css Content-Type = %q", rec.Header().Get("Content-Type"))
	}
}

func TestHandlerRefusesOtherMethodsAndUnknownFiles(t *testing.T) {
	if rec := serve(t, "POST", "/app/"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /app/: %d", rec.Code)
	}
	if rec := serve(t, "GET", "/app/nope.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /app/nope.js: %d", rec.Code)
	}
	if rec := serve(t, "GET", "/app/embed.go"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /app/embed.go: %d (Go sources must not be embedded)", rec.Code)
	}
}
