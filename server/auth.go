package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// storedAccess is an access as stored: the API fields plus the blinding
// key and the permissions version, which never leave the server.
type storedAccess struct {
	model.Access
	Secret []byte `json:"secret"`
	Ver    int64  `json:"ver"`
}

func (a *storedAccess) model() *model.Access {
	m := a.Access
	m.Key = a.Secret
	m.Version = a.Ver
	return &m
}

func toStored(a *model.Access) *storedAccess {
	return &storedAccess{Access: *a, Secret: a.Key, Ver: a.Version}
}

// loadAccess loads one access of the transaction's user.
func loadAccess(tx *store.Tx, id string) (*model.Access, bool, error) {
	var sa storedAccess
	ok, err := tx.GetJSON(store.KeyAccess(tx.User(), id), &sa)
	if err != nil || !ok {
		return nil, false, err
	}
	return sa.model(), true, nil
}

// saveAccess stores an access and its token mapping.
func saveAccess(tx *store.Tx, a *model.Access) error {
	tx.PutRaw(store.KeyToken(a.Token), []byte(tx.User()+"/"+a.ID))
	return tx.PutJSON(store.KeyAccess(tx.User(), a.ID), toStored(a))
}

// deleteAccess removes an access and its token, and tells live sessions.
func deleteAccess(tx *store.Tx, a *model.Access) error {
	tx.Delete(store.KeyToken(a.Token))
	tx.Delete(store.KeyAccess(tx.User(), a.ID))
	return tx.AccessChanged(a.ID)
}

// accessByToken resolves a token of user; nil when unknown.
func accessByToken(tx *store.Tx, user, token string) (*model.Access, error) {
	if token == "" || len(token) > 512 {
		return nil, nil
	}
	raw, ok, err := tx.GetRaw(store.KeyToken(token))
	if err != nil || !ok {
		return nil, err
	}
	u, id, found := strings.Cut(string(raw), "/")
	if !found || u != user {
		return nil, nil
	}
	a, ok, err := loadAccess(tx, id)
	if err != nil || !ok {
		return nil, err
	}
	return a, nil
}

// tokenOf extracts the token of a request: Authorization header, auth query
// parameter, or _auth form field.
func tokenOf(r *http.Request) string {
	if t := strings.TrimSpace(r.Header.Get("Authorization")); t != "" {
		return strings.TrimPrefix(t, "Bearer ")
	}
	if t := r.URL.Query().Get("auth"); t != "" {
		return t
	}
	if r.PostForm != nil {
		return r.PostForm.Get("_auth")
	}
	return ""
}

// errBadToken is the one answer for every unusable token, so nothing tells
// an unknown token from an expired or deleted one.
func errBadToken() *model.Error {
	return model.Errorf(model.ErrInvalidAccessToken, "the access token is missing, unknown, expired or revoked")
}

// resolveAccess finds the access of a request's token for user.
func (s *Server) resolveAccess(user string, r *http.Request) (*model.Access, error) {
	token := tokenOf(r)
	var a *model.Access
	lookup := func() error {
		return s.st.View(user, func(tx *store.Tx) error {
			var err error
			a, err = accessByToken(tx, user, token)
			return err
		})
	}
	if err := lookup(); err != nil {
		return nil, err
	}
	if a == nil && s.cfg.Log != nil && token != "" {
		// A cluster node may not have applied yet the access another
		// node just created: take the user's log, then look again.
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		err := s.st.CatchUp(ctx, user)
		cancel()
		if err == nil {
			err = lookup()
		}
		if err != nil {
			return nil, err
		}
	}
	if a == nil || a.Expired(s.now()) {
		return nil, errBadToken()
	}
	s.touch(user, a)
	return a, nil
}

// authenticate fills c.access and c.actor from the request's token.
func (s *Server) authenticate(c *call) error {
	a, err := s.resolveAccess(c.user, c.r)
	if err != nil {
		return err
	}
	c.access = a
	c.actor = actorOf(a)
	return nil
}

func actorOf(a *model.Access) *Actor {
	return &Actor{AccessID: a.ID, Type: a.Type, Scope: model.Compile(a.Type, a.Permissions)}
}

// touch records the access's last use, at most once a minute per access,
// off the request path.
func (s *Server) touch(user string, a *model.Access) {
	now := s.now()
	key := user + "/" + a.ID
	s.lastUsedMu.Lock()
	last := s.lastUsed[key]
	if now-last < 60 {
		s.lastUsedMu.Unlock()
		return
	}
	s.lastUsed[key] = now
	s.lastUsedMu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.st.Update(s.baseCtx, user, func(tx *store.Tx) error {
			cur, ok, err := loadAccess(tx, a.ID)
			if err != nil || !ok {
				return err
			}
			cur.LastUsed = now
			return tx.PutJSON(store.KeyAccess(user, cur.ID), toStored(cur))
		})
	}()
}

func (s *Server) userExists(user string) bool {
	var u model.User
	ok := false
	_ = s.st.View(user, func(tx *store.Tx) error {
		var err error
		ok, err = tx.GetJSON(store.KeyUserRecord(user), &u)
		return err
	})
	return ok
}

// session is an admin session.
type session struct {
	User     string  `json:"user"`
	Created  float64 `json:"created"`
	LastUsed float64 `json:"lastUsed"`
}

// adminAuth accepts a session id or a personal access token for user.
func (s *Server) adminAuth(c *call) error {
	token := tokenOf(c.r)
	if token == "" {
		return errBadToken()
	}
	var ses session
	var ok bool
	err := s.st.View(c.user, func(tx *store.Tx) error {
		var err error
		ok, err = tx.GetJSON(store.KeySession(token), &ses)
		return err
	})
	if err != nil {
		return err
	}
	now := s.now()
	if ok && ses.User == c.user {
		if now-ses.LastUsed > s.cfg.SessionTTL.Seconds() {
			return errBadToken()
		}
		if now-ses.LastUsed > 60 {
			ses.LastUsed = now
			_ = s.st.Update(c.r.Context(), c.user, func(tx *store.Tx) error {
				return tx.PutJSON(store.KeySession(token), &ses)
			})
		}
		c.actor = &Actor{AccessID: "session", Type: model.AccessPersonal, Scope: model.Personal()}
		return nil
	}
	a, err := s.resolveAccess(c.user, c.r)
	if err != nil {
		return err
	}
	if a.Type != model.AccessPersonal {
		return model.Errorf(model.ErrForbidden, "administration needs a session or a personal access")
	}
	c.access, c.actor = a, actorOf(a)
	return nil
}

func hashPassword(pw string, cost int) ([]byte, error) {
	return bcrypt.GenerateFromPassword(bcryptInput(pw), cost)
}

func checkPassword(hash []byte, pw string) bool {
	return bcrypt.CompareHashAndPassword(hash, bcryptInput(pw)) == nil
}

// bcryptInput pre-hashes a password: bcrypt refuses inputs over 72 bytes,
// and a valid password may have 99 characters of up to 4 bytes each. The
// base64 form keeps NUL bytes out of bcrypt's input.
func bcryptInput(pw string) []byte {
	sum := sha256.Sum256([]byte(pw))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

// loginLimiter counts failed logins per user and per client address in a
// one-minute window.
type loginLimiter struct {
	mu   sync.Mutex
	now  func() time.Time
	hits map[string]*window
}

type window struct {
	start time.Time
	n     int
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, hits: map[string]*window{}}
}

func (l *loginLimiter) count(key string) int {
	w, ok := l.hits[key]
	if !ok || l.now().Sub(w.start) >= time.Minute {
		return 0
	}
	return w.n
}

// blocked reports whether either key is over its limit.
func (l *loginLimiter) blocked(userKey string, userMax int, addrKey string, addrMax int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count(userKey) >= userMax || l.count(addrKey) >= addrMax
}

func (l *loginLimiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		w, ok := l.hits[k]
		if !ok || now.Sub(w.start) >= time.Minute {
			w = &window{start: now}
			l.hits[k] = w
		}
		w.n++
	}
	if len(l.hits) > 100000 {
		for k, w := range l.hits {
			if now.Sub(w.start) >= time.Minute {
				delete(l.hits, k)
			}
		}
	}
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// commit runs fn in the committer for the call's user.
func (s *Server) commit(ctx context.Context, user string, fn func(tx *store.Tx) error) error {
	return s.st.Update(ctx, user, fn)
}
