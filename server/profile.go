package server

import (
	"encoding/json"
	"net/http"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// maxProfileBytes bounds one app profile, which grows by merging.
const maxProfileBytes = model.MaxItemSize

// routeProfile serves GET/PUT /profile/app: a free JSON object per app
// access, merged key by key on update (null removes a key).
func (s *Server) routeProfile(c *call) {
	if len(c.parts) != 2 || c.parts[1] != "app" {
		s.fail(c.w, c.r, unknownResource())
		return
	}
	if c.access == nil || c.access.Type != model.AccessApp {
		s.fail(c.w, c.r, model.Errorf(model.ErrForbidden, "the app profile is for app accesses only"))
		return
	}
	switch c.method {
	case http.MethodGet:
		s.getProfile(c)
	case http.MethodPut:
		s.updateProfile(c)
	default:
		s.methodNotAllowed(c)
	}
}

func loadProfile(tx *store.Tx, accessID string) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if _, err := tx.GetJSON(store.KeyProfile(tx.User(), accessID), &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	return m, nil
}

func (s *Server) getProfile(c *call) {
	var m map[string]json.RawMessage
	err := s.st.View(c.user, func(tx *store.Tx) error {
		var err error
		m, err = loadProfile(tx, c.access.ID)
		return err
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, m)
}

func (s *Server) updateProfile(c *call) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	set := make(map[string]json.RawMessage, len(body))
	for k, v := range body {
		if isJSONNull(v) {
			set[k] = nil
			continue
		}
		cv, err := model.Canonical(v)
		if err != nil {
			s.fail(c.w, c.r, model.Errorf(model.ErrInvalidRequestStructure, "malformed JSON"))
			return
		}
		set[k] = cv
	}
	var out map[string]json.RawMessage
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		m, err := loadProfile(tx, c.access.ID)
		if err != nil {
			return err
		}
		for k, v := range set {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		if len(jsonRaw(m)) > maxProfileBytes {
			return model.Errorf(model.ErrPayloadTooLarge, "an app profile is at most %d bytes", maxProfileBytes)
		}
		out = m
		if len(m) == 0 {
			tx.Delete(store.KeyProfile(c.user, c.access.ID))
			return nil
		}
		return tx.PutJSON(store.KeyProfile(c.user, c.access.ID), m)
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, out)
}

func isJSONNull(raw []byte) bool {
	v, err := model.Canonical(raw)
	return err == nil && string(v) == "null"
}
