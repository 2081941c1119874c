package server

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/webapp"
)

// call is one authenticated API request.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	user   string
	access *model.Access // nil for session-only admin calls
	actor  *Actor
	method string   // after _method override
	parts  []string // path segments after the username
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.st.Head("system"); err != nil {
			writeJSON(w, 503, map[string]string{"status": "store unavailable"})
			return
		}
		writeJSON(w, 200, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", s.MetricsHandler())
	mux.HandleFunc("POST /system/users", s.handleCreateUser)
	mux.HandleFunc("GET /system/backup", s.handleBackup)
	mux.HandleFunc("/system/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, model.Errorf(model.ErrUnknownUser, "no such system call"))
	})
	mux.Handle("/app/", http.StripPrefix("/app/", webapp.Handler()))
	mux.HandleFunc("GET /app", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/app/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/", s.dispatch)
	return mux
}

// formJSON returns the _json field of a browser form post.
func formJSON(r *http.Request) (string, bool) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return "", false
	}
	if err := r.ParseForm(); err != nil {
		return "", false
	}
	j := r.PostForm.Get("_json")
	return j, j != ""
}

// dispatch routes /{username}/… by hand: path words like "admin" and
// channel ids share positions, which http.ServeMux patterns cannot tell apart.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	// Split the escaped path, then unescape each segment once: an id or an
	// attachment key may contain "%" or an escaped "/".
	path := strings.Trim(r.URL.EscapedPath(), "/")
	if path == "" {
		http.Redirect(w, r, "/app/", http.StatusFound)
		return
	}
	segs := strings.Split(path, "/")
	for i, sg := range segs {
		u, err := url.PathUnescape(sg)
		if err != nil {
			writeError(w, model.Errorf(model.ErrInvalidRequestStructure, "bad path"))
			return
		}
		segs[i] = u
	}
	username := strings.ToLower(segs[0])
	c := &call{w: w, r: r, user: username, method: r.Method, parts: segs[1:]}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		err := r.ParseForm()
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			writeError(w, model.Errorf(model.ErrPayloadTooLarge, "the body is over %d bytes", s.cfg.MaxBodyBytes))
			return
		}
		if err == nil {
			if m := strings.ToUpper(r.PostForm.Get("_method")); m == "PUT" || m == "DELETE" {
				c.method = m
			}
		}
	}
	if len(c.parts) == 0 {
		writeError(w, model.Errorf(model.ErrUnknownChannel, "unknown resource").Path())
		return
	}
	if !s.userExists(username) {
		writeError(w, model.Errorf(model.ErrUnknownUser, "unknown user %q", segs[0]))
		return
	}
	defer noteCaller(c) // the request log line's user and access (ops.go)
	p := c.parts
	// Administration: session or personal token.
	if p[0] == "admin" {
		s.routeAdmin(c)
		return
	}
	if p[0] == "sync" && len(p) == 1 {
		s.handleSync(c)
		return
	}
	if p[0] == "socket" && len(p) == 1 {
		s.handleSocket(c)
		return
	}
	if err := s.authenticate(c); err != nil {
		s.fail(w, r, err)
		return
	}
	switch {
	case p[0] == "channels" && len(p) == 1:
		switch c.method {
		case "GET":
			s.listChannels(c)
		case "POST":
			s.createChannel(c)
		default:
			s.methodNotAllowed(c)
		}
	case p[0] == "channels" && len(p) == 2:
		switch c.method {
		case "PUT":
			s.updateChannel(c, p[1])
		case "DELETE":
			s.deleteChannel(c, p[1])
		default:
			s.methodNotAllowed(c)
		}
	case p[0] == "access-info" && len(p) == 1:
		s.accessInfo(c)
	case p[0] == "accesses":
		s.routeAccesses(c)
	case p[0] == "profile":
		s.routeProfile(c)
	case p[0] == "bookmarks":
		s.fail(w, r, model.Errorf(model.ErrForbidden, "bookmarks are managed through /admin/bookmarks"))
	case len(p) >= 2 && p[1] == "events":
		s.routeEvents(c, p[0], p[2:])
	case len(p) >= 2 && p[1] == "folders":
		s.routeFolders(c, p[0], p[2:])
	default:
		s.fail(w, r, model.Errorf(model.ErrUnknownChannel, "unknown resource").Path())
	}
}

func (s *Server) methodNotAllowed(c *call) {
	c.w.Header().Set("Allow", "GET, POST, PUT, DELETE")
	writeJSON(c.w, http.StatusMethodNotAllowed, model.Errorf(model.ErrInvalidOperation, "method %s not allowed here", c.method))
}
