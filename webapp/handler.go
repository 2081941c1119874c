package webapp

import (
	"net/http"
	"strings"
)

// CSP is the Content-Security-Policy sent with every file of the app. It
// matches the one in index.html and adds what a meta tag cannot carry.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves Files. Mount it under /app/ with the prefix stripped:
//
//	mux.Handle("/app/", http.StripPrefix("/app/", webapp.Handler()))
//
// It answers GET and HEAD only, serves index.html for the root, and sets
// security headers (CSP, no referrer, no sniffing) and Cache-Control: no-cache
// so that a new binary's app is picked up at once.
func Handler() http.Handler {
	files := http.FileServer(http.FS(Files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		if strings.HasSuffix(r.URL.Path, ".js") {
			h.Set("Content-Type", "text/javascript; charset=utf-8")
		}
		files.ServeHTTP(w, r)
	})
}
