package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// userRecord is a user as stored: model.User keeps the hash out of every
// API answer (json:"-"), this record keeps it in the store.
type userRecord struct {
	model.User
	PasswordHash []byte  `json:"passwordHash"`
	Created      float64 `json:"created"`
}

func (u *userRecord) info() map[string]string {
	return map[string]string{"username": u.Username, "email": u.Email, "language": u.Language}
}

// loadUser reads the user record of the transaction's user.
func loadUser(tx *store.Tx) (*userRecord, bool, error) {
	var u userRecord
	ok, err := tx.GetJSON(store.KeyUserRecord(tx.User()), &u)
	if err != nil || !ok {
		return nil, false, err
	}
	return &u, true, nil
}

// adminKeyMatches compares the request's key with the configured one in
// constant time (hashing first hides the key's length as well).
func (s *Server) adminKeyMatches(r *http.Request) bool {
	got := strings.TrimPrefix(strings.TrimSpace(r.Header.Get("Authorization")), "Bearer ")
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.cfg.AdminKey))
	return got != "" && subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// handleCreateUser serves POST /system/users {username, password, email,
// language?}: 201 {username}. The admin key comes in the Authorization
// header only, never in the query, so it cannot reach access logs.
func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AdminKey == "" {
		s.fail(w, r, model.Errorf(model.ErrUnknownUser, "the system API is off (no admin key configured)"))
		return
	}
	if !s.adminKeyMatches(r) {
		s.fail(w, r, model.Errorf(model.ErrInvalidAccessToken, "the admin key is missing or wrong"))
		return
	}
	body, err := s.readObject(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, password, err := parseNewUser(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// bcrypt is slow on purpose: hash before entering the committer.
	hash, err := hashPassword(password, s.cfg.PasswordCost)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rec := &userRecord{User: u, PasswordHash: hash, Created: s.now()}
	err = s.commit(r.Context(), u.Username, func(tx *store.Tx) error {
		if _, exists, err := loadUser(tx); err != nil || exists {
			if err != nil {
				return err
			}
			return model.Errorf(model.ErrItemIDAlreadyExists, "the username %q is taken", u.Username).
				WithData(map[string]any{"field": "username"})
		}
		return tx.PutJSON(store.KeyUserRecord(u.Username), rec)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("user created", "user", u.Username)
	writeJSON(w, http.StatusCreated, map[string]string{"username": u.Username})
}

// parseNewUser validates a user creation body.
func parseNewUser(body map[string]json.RawMessage) (model.User, string, error) {
	var u model.User
	if err := bodyOnly(body, nil, "username", "password", "email", "language"); err != nil {
		return u, "", err
	}
	name, _, err := bodyString(body, "username", true)
	if err != nil {
		return u, "", err
	}
	if u.Username, err = model.Username(name); err != nil {
		return u, "", err
	}
	password, _, err := bodyString(body, "password", true)
	if err != nil {
		return u, "", err
	}
	if err := model.Password("password", password); err != nil {
		return u, "", err
	}
	if u.Email, _, err = bodyString(body, "email", true); err != nil {
		return u, "", err
	}
	if err := model.Email(u.Email); err != nil {
		return u, "", err
	}
	lang, ok, err := bodyString(body, "language", false)
	if err != nil {
		return u, "", err
	}
	if !ok {
		lang = "en"
	}
	if err := model.Language(lang); err != nil {
		return u, "", err
	}
	u.Language = lang
	return u, password, nil
}
