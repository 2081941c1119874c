package server

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// routeAdmin serves /{user}/admin/…: login without credentials, every other
// call with a session id or a personal access token (adminAuth).
func (s *Server) routeAdmin(c *call) {
	p := c.parts[1:]
	if len(p) == 1 && p[0] == "login" {
		if c.method != http.MethodPost {
			s.methodNotAllowed(c)
			return
		}
		s.adminLogin(c)
		return
	}
	if err := s.adminAuth(c); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if len(p) == 0 {
		s.fail(c.w, c.r, unknownResource())
		return
	}
	one := len(p) == 1
	switch {
	case one && p[0] == "logout":
		s.onlyMethod(c, http.MethodPost, s.adminLogout)
	case one && p[0] == "user-info":
		switch c.method {
		case http.MethodGet:
			s.getUserInfo(c)
		case http.MethodPut:
			s.updateUserInfo(c)
		default:
			s.methodNotAllowed(c)
		}
	case one && p[0] == "change-password":
		s.onlyMethod(c, http.MethodPost, s.changePassword)
	case one && p[0] == "get-app-token":
		s.onlyMethod(c, http.MethodPost, s.getAppToken)
	case p[0] == "accesses":
		s.accessCalls(c, p[1:], true)
	case p[0] == "bookmarks":
		s.bookmarkCalls(c, p[1:])
	default:
		s.fail(c.w, c.r, unknownResource())
	}
}

func unknownResource() *model.Error {
	return model.Errorf(model.ErrUnknownChannel, "unknown resource").Path()
}

func (s *Server) onlyMethod(c *call, method string, h func(*call)) {
	if c.method != method {
		s.methodNotAllowed(c)
		return
	}
	h(c)
}

// loginLocks serialise password checks per user (striped), so that parallel
// attempts cannot all pass the rate limiter before the first failure is
// counted.
var loginLocks [64]sync.Mutex

func loginLock(user string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(user))
	return &loginLocks[h.Sum32()%uint32(len(loginLocks))]
}

// passwordGate checks a password of the call's user under the login rate
// limits (SPEC §7): during a lockout every attempt answers 429, a correct
// password included; a wrong password (or a username that is not the
// call's) counts against the user and the client address. It returns the
// user record.
func (s *Server) passwordGate(c *call, usernameOK bool, password string) (*userRecord, error) {
	userKey, addrKey := "user:"+c.user, "addr:"+clientAddr(c.r)
	mu := loginLock(c.user)
	mu.Lock()
	defer mu.Unlock()
	if s.lim.blocked(userKey, s.cfg.LoginFailuresPerUser, addrKey, s.cfg.LoginFailuresPerAddr) {
		return nil, model.Errorf(model.ErrTooManyRequests, "too many failed logins: try again in a minute")
	}
	var u *userRecord
	err := s.st.View(c.user, func(tx *store.Tx) error {
		var err error
		u, _, err = loadUser(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	ok := usernameOK && u != nil && len(u.PasswordHash) > 0 && checkPassword(u.PasswordHash, password)
	if !ok {
		s.lim.fail(userKey, addrKey)
		return nil, model.Errorf(model.ErrInvalidCredentials, "the username or password is wrong")
	}
	return u, nil
}

// adminLogin serves POST /admin/login {username, password, appId}:
// 200 {sessionID, preferredLanguage}.
func (s *Server) adminLogin(c *call) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if err := bodyOnly(body, nil, "username", "password", "appId"); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	username, _, err := bodyString(body, "username", true)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	password, _, err := bodyString(body, "password", true)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if _, _, err := bodyString(body, "appId", true); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	u, err := s.passwordGate(c, strings.EqualFold(username, c.user), password)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	id := hex.EncodeToString(model.NewSecret())
	now := s.now()
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		return tx.PutJSON(store.KeySession(id), &session{User: c.user, Created: now, LastUsed: now})
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	s.log.Info("login", "user", c.user)
	writeJSON(c.w, http.StatusOK, map[string]string{"sessionID": id, "preferredLanguage": u.Language})
}

// adminLogout ends the calling session. Personal accesses stay valid; a
// call made with a personal token has no session to end.
func (s *Server) adminLogout(c *call) {
	if c.access == nil {
		id := tokenOf(c.r)
		err := s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
			tx.Delete(store.KeySession(id))
			return nil
		})
		if err != nil {
			s.fail(c.w, c.r, err)
			return
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{})
}

func (s *Server) getUserInfo(c *call) {
	var u *userRecord
	err := s.st.View(c.user, func(tx *store.Tx) error {
		var err error
		u, _, err = loadUser(tx)
		return err
	})
	if err == nil && u == nil {
		err = model.Errorf(model.ErrUnknownUser, "unknown user %q", c.user)
	}
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, u.info())
}

// updateUserInfo changes email and language; username is fixed.
func (s *Server) updateUserInfo(c *call) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if err := bodyOnly(body, nil, "username", "email", "language"); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	email, setEmail, err := bodyString(body, "email", false)
	if err == nil && setEmail {
		err = model.Email(email)
	}
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	lang, setLang, err := bodyString(body, "language", false)
	if err == nil && setLang {
		err = model.Language(lang)
	}
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if raw, ok := body["username"]; ok {
		var name string
		if json.Unmarshal(raw, &name) != nil || !strings.EqualFold(name, c.user) {
			s.fail(c.w, c.r, model.FieldError("username", "is read-only"))
			return
		}
	}
	var out map[string]string
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		u, ok, err := loadUser(tx)
		if err != nil || !ok {
			if err == nil {
				err = model.Errorf(model.ErrUnknownUser, "unknown user %q", c.user)
			}
			return err
		}
		if setEmail {
			u.Email = email
		}
		if setLang {
			u.Language = lang
		}
		out = u.info()
		return tx.PutJSON(store.KeyUserRecord(c.user), u)
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, out)
}

// changePassword serves {oldPassword, newPassword}. A wrong old password is
// 401 invalid-credentials and counts as a failed login, so a stolen session
// cannot be used to guess the password faster than login allows.
func (s *Server) changePassword(c *call) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if err := bodyOnly(body, nil, "oldPassword", "newPassword"); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	oldPW, _, err := bodyString(body, "oldPassword", true)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	newPW, _, err := bodyString(body, "newPassword", true)
	if err == nil {
		err = model.Password("newPassword", newPW)
	}
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if _, err := s.passwordGate(c, true, oldPW); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	hash, err := hashPassword(newPW, s.cfg.PasswordCost)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		u, ok, err := loadUser(tx)
		if err != nil || !ok {
			if err == nil {
				err = model.Errorf(model.ErrUnknownUser, "unknown user %q", c.user)
			}
			return err
		}
		u.PasswordHash = hash
		return tx.PutJSON(store.KeyUserRecord(c.user), u)
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	s.log.Info("password changed", "user", c.user)
	writeJSON(c.w, http.StatusOK, map[string]any{})
}

// getAppToken serves {appId}: 200 {id: <personal token>}, the personal
// access of that app, created on the first call.
func (s *Server) getAppToken(c *call) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if err := bodyOnly(body, nil, "appId"); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	appID, _, err := bodyString(body, "appId", true)
	if err == nil {
		appID = strings.TrimSpace(appID)
		if appID == "" || len(appID) > 256 {
			err = model.FieldError("appId", "must be 1 to 256 characters")
		}
	}
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	now := s.now()
	fresh := &model.Access{
		ID: model.NewID(), Token: model.NewToken(), Type: model.AccessPersonal, Name: appID, AppID: appID,
		Permissions: []model.Permission{}, Created: now, CreatedBy: c.actor.AccessID, Modified: now,
		ModifiedBy: c.actor.AccessID, Version: 1, Key: model.NewSecret(),
	}
	var token string
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		token = ""
		err := store.ScanJSON(tx, store.KeyAccessPrefix(c.user), func(_ string, sa *storedAccess) (bool, error) {
			if sa.Type == model.AccessPersonal && sa.AppID == appID {
				token = sa.Token
				return false, nil
			}
			return true, nil
		})
		if err != nil || token != "" {
			return err
		}
		token = fresh.Token
		if err := saveAccess(tx, fresh); err != nil {
			return err
		}
		return tx.AccessChanged(fresh.ID)
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"id": token})
}

// bookmarkCalls serves /admin/bookmarks and /admin/bookmarks/{id}.
func (s *Server) bookmarkCalls(c *call, rest []string) {
	switch {
	case len(rest) == 0 && c.method == http.MethodGet:
		s.listBookmarks(c)
	case len(rest) == 0 && c.method == http.MethodPost:
		s.createBookmark(c)
	case len(rest) == 1 && c.method == http.MethodPut:
		s.updateBookmark(c, rest[0])
	case len(rest) == 1 && c.method == http.MethodDelete:
		s.deleteBookmark(c, rest[0])
	case len(rest) <= 1:
		s.methodNotAllowed(c)
	default:
		s.fail(c.w, c.r, unknownResource())
	}
}

func (s *Server) listBookmarks(c *call) {
	if err := allowOnly(c.r); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	out := []*model.Bookmark{}
	err := s.st.View(c.user, func(tx *store.Tx) error {
		return store.ScanJSON(tx, store.KeyBookmarkPrefix(c.user), func(_ string, b *model.Bookmark) (bool, error) {
			out = append(out, b)
			return true, nil
		})
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	model.SortByName(out, func(b *model.Bookmark) string { return b.Name }, func(b *model.Bookmark) string { return b.ID })
	writeJSON(c.w, http.StatusOK, out)
}

var bookmarkReadOnly = []string{"id", "url", "accessToken"}

func (s *Server) createBookmark(c *call) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if err := bodyOnly(body, []string{"id"}, "name", "url", "accessToken"); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	b := &model.Bookmark{ID: model.NewID()}
	if b.Name, err = bodyName(body, "name", true); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if b.URL, _, err = bodyString(body, "url", true); err == nil {
		err = checkAPIURL(b.URL)
	}
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	b.AccessToken, _, err = bodyString(body, "accessToken", true)
	if err == nil && (b.AccessToken == "" || len(b.AccessToken) > 512) {
		err = model.FieldError("accessToken", "must be 1 to 512 characters")
	}
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		if err := bookmarkClash(tx, b); err != nil {
			return err
		}
		return tx.PutJSON(store.KeyBookmark(c.user, b.ID), b)
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusCreated, map[string]string{"id": b.ID})
}

// bookmarkClash refuses a name used by another bookmark (case-insensitively)
// and a second bookmark of the same url and token.
func bookmarkClash(tx *store.Tx, b *model.Bookmark) error {
	return store.ScanJSON(tx, store.KeyBookmarkPrefix(tx.User()), func(_ string, o *model.Bookmark) (bool, error) {
		if o.ID == b.ID {
			return true, nil
		}
		if strings.EqualFold(o.Name, b.Name) {
			return false, model.Errorf(model.ErrItemNameAlreadyExists, "a bookmark named %q already exists", b.Name).
				WithData(map[string]any{"field": "name"})
		}
		if sameAPIURL(o.URL, b.URL) && o.AccessToken == b.AccessToken {
			return false, model.Errorf(model.ErrItemNameAlreadyExists, "a bookmark of this url and access token already exists").
				WithData(map[string]any{"field": "accessToken"})
		}
		return true, nil
	})
}

func (s *Server) updateBookmark(c *call, id string) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if err := bodyOnly(body, nil, "id", "name", "url", "accessToken"); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	name, setName := "", false
	if _, ok := body["name"]; ok {
		if name, err = bodyName(body, "name", true); err != nil {
			s.fail(c.w, c.r, err)
			return
		}
		setName = true
	}
	var out *model.Bookmark
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		var b model.Bookmark
		ok, err := tx.GetJSON(store.KeyBookmark(c.user, id), &b)
		if err != nil {
			return err
		}
		if !ok {
			return model.Errorf(model.ErrUnknownBookmark, "unknown bookmark %q", id)
		}
		if err := sameReadOnly(body, &b, bookmarkReadOnly); err != nil {
			return err
		}
		if setName {
			b.Name = name
			if err := bookmarkClash(tx, &b); err != nil {
				return err
			}
		}
		out = &b
		return tx.PutJSON(store.KeyBookmark(c.user, id), &b)
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, out)
}

func (s *Server) deleteBookmark(c *call, id string) {
	err := s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		var b model.Bookmark
		ok, err := tx.GetJSON(store.KeyBookmark(c.user, id), &b)
		if err != nil {
			return err
		}
		if !ok {
			return model.Errorf(model.ErrUnknownBookmark, "unknown bookmark %q", id)
		}
		tx.Delete(store.KeyBookmark(c.user, id))
		return nil
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"bookmarkDeletion": map[string]string{"id": id}})
}

// checkAPIURL accepts the absolute http(s) URL of another account's API.
func checkAPIURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(raw) > 2048 {
		return model.FieldError("url", "must be an http(s) URL such as https://host/username")
	}
	return nil
}

func sameAPIURL(a, b string) bool { return strings.TrimRight(a, "/") == strings.TrimRight(b, "/") }

// bodyOnly refuses body fields other than allowed; the ignored ones (read-only
// fields sent on create, SPEC §7) are dropped from body.
func bodyOnly(body map[string]json.RawMessage, ignored []string, allowed ...string) error {
	for _, f := range ignored {
		delete(body, f)
	}
next:
	for k := range body {
		for _, a := range allowed {
			if k == a {
				continue next
			}
		}
		return model.FieldError(k, "unknown field")
	}
	return nil
}

// bodyString decodes a string field; ok says whether it was present.
// A required field that is absent, null or not a string is refused.
func bodyString(body map[string]json.RawMessage, name string, required bool) (v string, ok bool, err error) {
	raw, present := body[name]
	if !present {
		if required {
			return "", false, model.FieldError(name, "is required")
		}
		return "", false, nil
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, &v) != nil {
		return "", false, model.FieldError(name, "must be a string")
	}
	return v, true, nil
}

// bodyName decodes a trimmed, non-empty name of at most 1 000 characters.
func bodyName(body map[string]json.RawMessage, name string, required bool) (string, error) {
	v, ok, err := bodyString(body, name, required)
	if err != nil || !ok {
		return "", err
	}
	v = strings.TrimSpace(v)
	if v == "" || len([]rune(v)) > 1000 {
		return "", model.FieldError(name, "must be 1 to 1000 characters")
	}
	return v, nil
}

// sameReadOnly refuses a read-only field of body unless it equals the
// stored value (SPEC §7); an absent stored value equals null.
func sameReadOnly(body map[string]json.RawMessage, cur any, fields []string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(jsonRaw(cur), &m); err != nil {
		return err
	}
	for _, f := range fields {
		raw, ok := body[f]
		if !ok {
			continue
		}
		have, ok := m[f]
		if !ok {
			have = json.RawMessage("null")
		}
		a, err1 := model.Canonical(raw)
		b, err2 := model.Canonical(have)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			return model.FieldError(f, "is read-only")
		}
	}
	return nil
}
