package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// accessInfo serves GET /access-info: the calling access.
func (s *Server) accessInfo(c *call) {
	if c.method != http.MethodGet {
		s.methodNotAllowed(c)
		return
	}
	a := publicAccess(c.access)
	writeJSON(c.w, http.StatusOK, struct {
		Name        string             `json:"name"`
		Type        string             `json:"type"`
		Permissions []model.Permission `json:"permissions"`
		Expires     *float64           `json:"expires,omitempty"`
	}{a.Name, a.Type, a.Permissions, a.Expires})
}

// routeAccesses serves /accesses with an access token (SPEC §2): shared
// accesses may not use it at all.
func (s *Server) routeAccesses(c *call) {
	if !c.actor.Scope.IsPersonal() && c.actor.Type != model.AccessApp {
		s.fail(c.w, c.r, model.Errorf(model.ErrForbidden, "a shared access cannot manage accesses"))
		return
	}
	s.accessCalls(c, c.parts[1:], false)
}

// accessCalls serves the accesses calls, under /accesses (personal and app
// tokens) and /admin/accesses (session or personal token, plus check-app).
func (s *Server) accessCalls(c *call, rest []string, admin bool) {
	switch {
	case len(rest) == 0 && c.method == http.MethodGet:
		s.listAccesses(c)
	case len(rest) == 0 && c.method == http.MethodPost:
		s.createAccess(c)
	case admin && len(rest) == 1 && rest[0] == "check-app" && c.method == http.MethodPost:
		s.checkApp(c)
	case len(rest) == 1 && c.method == http.MethodPut:
		s.updateAccess(c, rest[0])
	case len(rest) == 1 && c.method == http.MethodDelete:
		s.deleteAccessCall(c, rest[0])
	case len(rest) <= 1:
		s.methodNotAllowed(c)
	default:
		s.fail(c.w, c.r, unknownResource())
	}
}

// manages reports whether the actor may see and change the target access:
// a personal actor every access, an app actor the shared accesses within
// its own permissions.
func manages(a *Actor, target *model.Access, tree model.Tree) bool {
	if a.Scope.IsPersonal() {
		return true
	}
	return a.Type == model.AccessApp && target.Type == model.AccessShared && a.Scope.Covers(target.Permissions, tree)
}

// covers reports whether the actor's scope covers perms, with the user's
// folder tree as it stands (a folder grant covers the descendants).
func (s *Server) covers(c *call, perms []model.Permission) (bool, error) {
	if c.actor.Scope.IsPersonal() {
		return true, nil
	}
	ok := false
	err := s.st.View(c.user, func(tx *store.Tx) error {
		ok = c.actor.Scope.Covers(perms, txTree{tx})
		return nil
	})
	return ok, err
}

// errUnknownAccess never echoes the token it was asked about.
func errUnknownAccess() *model.Error {
	return model.Errorf(model.ErrUnknownAccess, "unknown access")
}

// publicAccess is an access as the API shows it.
func publicAccess(a *model.Access) *model.Access {
	p := *a
	p.Key = nil
	if p.Permissions == nil {
		p.Permissions = []model.Permission{}
	}
	return &p
}

func (s *Server) listAccesses(c *call) {
	if err := allowOnly(c.r); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	out := []*model.Access{}
	err := s.st.View(c.user, func(tx *store.Tx) error {
		return store.ScanJSON(tx, store.KeyAccessPrefix(c.user), func(_ string, sa *storedAccess) (bool, error) {
			if a := sa.model(); manages(c.actor, a, txTree{tx}) {
				out = append(out, publicAccess(a))
			}
			return true, nil
		})
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	model.SortByName(out, func(a *model.Access) string { return a.Name }, func(a *model.Access) string { return a.ID })
	writeJSON(c.w, http.StatusOK, out)
}

// accessReadOnly are the fields an update may only send back unchanged.
var accessReadOnly = []string{"id", "token", "type", "created", "createdBy", "modified", "modifiedBy", "lastUsed", "expires"}

// createAccess serves POST /accesses: 201 {token}.
func (s *Server) createAccess(c *call) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	a, err := s.parseNewAccess(c, body)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	requested := a.Permissions
	a.Permissions = withoutDefaultNames(requested)
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		if _, taken, err := tx.GetRaw(store.KeyToken(a.Token)); err != nil || taken {
			if err != nil {
				return err
			}
			return model.Errorf(model.ErrItemIDAlreadyExists, "this token is already used").
				WithData(map[string]any{"field": "token"})
		}
		if err := accessNameClash(tx, a); err != nil {
			return err
		}
		// Only a session or a personal token may create the items that
		// defaultName asks for (SPEC §7).
		if c.actor.Scope.IsPersonal() {
			if err := s.ensureDefaultItems(tx, c.actor, requested); err != nil {
				return err
			}
		}
		if err := saveAccess(tx, a); err != nil {
			return err
		}
		return tx.AccessChanged(a.ID)
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusCreated, map[string]string{"token": a.Token})
}

// parseNewAccess validates a creation body against the caller's rights.
func (s *Server) parseNewAccess(c *call, body map[string]json.RawMessage) (*model.Access, error) {
	ignored := []string{"id", "created", "createdBy", "modified", "modifiedBy", "lastUsed", "expires"}
	if err := bodyOnly(body, ignored, "token", "type", "name", "deviceName", "permissions", "expireAfter"); err != nil {
		return nil, err
	}
	typ, ok, err := bodyString(body, "type", false)
	if err != nil {
		return nil, err
	}
	if !ok {
		typ = model.AccessShared
	}
	switch typ {
	case model.AccessShared, model.AccessApp:
	case model.AccessPersonal:
		return nil, model.Errorf(model.ErrForbidden, "personal accesses are not created through the accesses API (use admin/get-app-token)")
	default:
		return nil, model.FieldError("type", "must be shared or app")
	}
	if !c.actor.Scope.IsPersonal() && typ != model.AccessShared {
		return nil, model.Errorf(model.ErrForbidden, "an app access may only create shared accesses")
	}
	now := s.now()
	a := &model.Access{
		ID: model.NewID(), Type: typ, Created: now, CreatedBy: c.actor.AccessID, Modified: now,
		ModifiedBy: c.actor.AccessID, Version: 1, Key: model.NewSecret(),
	}
	if a.Name, err = bodyName(body, "name", true); err != nil {
		return nil, err
	}
	if a.DeviceName, err = deviceName(body, typ); err != nil {
		return nil, err
	}
	raw, ok := body["permissions"]
	if !ok {
		return nil, model.FieldError("permissions", "is required")
	}
	if a.Permissions, err = decodePermissions(raw, "permissions"); err != nil {
		return nil, err
	}
	if ok, err := s.covers(c, a.Permissions); err != nil {
		return nil, err
	} else if !ok {
		return nil, model.Errorf(model.ErrForbidden, "the permissions exceed those of the calling access")
	}
	a.Token = model.NewToken()
	if raw, ok := body["token"]; ok {
		var t string
		if json.Unmarshal(raw, &t) != nil {
			return nil, model.FieldError("token", "must be a string")
		}
		if a.Token, err = model.ItemID(t); err != nil {
			return nil, err
		}
	}
	if raw, ok := body["expireAfter"]; ok {
		var secs float64
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, &secs) != nil || secs < 0 || math.IsInf(secs, 0) {
			return nil, model.FieldError("expireAfter", "must be a number of seconds >= 0")
		}
		exp := now + secs
		a.Expires = &exp
	}
	return a, nil
}

// deviceName decodes the optional deviceName, which only app accesses have.
func deviceName(body map[string]json.RawMessage, typ string) (string, error) {
	d, ok, err := bodyString(body, "deviceName", false)
	if err != nil || !ok {
		return "", err
	}
	if typ != model.AccessApp {
		return "", model.FieldError("deviceName", "is for app accesses only")
	}
	d = strings.TrimSpace(d)
	if len([]rune(d)) > 1000 {
		return "", model.FieldError("deviceName", "must be at most 1000 characters")
	}
	return d, nil
}

// decodePermissions decodes permissions strictly: an unknown key in an entry
// (a misspelt "folderPermissions" would silently widen a grant to the whole
// channel) is refused, as is defaultName where nothing could be created.
func decodePermissions(raw json.RawMessage, field string) ([]model.Permission, error) {
	var perms []model.Permission
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || dec.Decode(&perms) != nil {
		return nil, model.FieldError(field, "must be an array of permission objects with known fields")
	}
	if err := model.ValidatePermissions(perms); err != nil {
		return nil, err
	}
	for i := range perms {
		p := &perms[i]
		p.DefaultName = strings.TrimSpace(p.DefaultName)
		if p.ChannelID == "*" && p.DefaultName != "" {
			return nil, model.FieldError(field, "entry %d: \"*\" takes no defaultName", i)
		}
		for j := range p.FolderPermissions {
			fp := &p.FolderPermissions[j]
			fp.DefaultName = strings.TrimSpace(fp.DefaultName)
			if fp.DefaultName != "" && (p.ChannelID == "*" || fp.FolderID == nil) {
				return nil, model.FieldError(field, "entry %d folder %d: defaultName needs a folderId in a named channel", i, j)
			}
		}
	}
	return perms, nil
}

// withoutDefaultNames returns a copy of perms without defaultName: it is a
// creation request, not part of the stored grant.
func withoutDefaultNames(perms []model.Permission) []model.Permission {
	out := make([]model.Permission, len(perms))
	for i, p := range perms {
		p.DefaultName = ""
		if p.FolderPermissions != nil {
			fps := make([]model.FolderPermission, len(p.FolderPermissions))
			copy(fps, p.FolderPermissions)
			for j := range fps {
				fps[j].DefaultName = ""
			}
			p.FolderPermissions = fps
		}
		out[i] = p
	}
	return out
}

// permissionsKey is a canonical form of perms for comparison: entry order,
// folder order and tag order do not matter, nor does defaultName.
func permissionsKey(perms []model.Permission) string {
	keys := make([]string, len(perms))
	for i, p := range withoutDefaultNames(perms) {
		sort.Slice(p.FolderPermissions, func(a, b int) bool {
			fa, fb := p.FolderPermissions[a], p.FolderPermissions[b]
			ka, kb := "", ""
			if fa.FolderID != nil {
				ka = "/" + *fa.FolderID
			}
			if fb.FolderID != nil {
				kb = "/" + *fb.FolderID
			}
			if ka != kb {
				return ka < kb
			}
			return fa.Level < fb.Level
		})
		if p.Tags != nil {
			p.Tags = append([]string(nil), p.Tags...)
			sort.Strings(p.Tags)
		}
		keys[i] = string(jsonRaw(p))
	}
	sort.Strings(keys)
	return strings.Join(keys, "\n")
}

// accessNameClash refuses a second shared access of the same name, or a
// second app access of the same name and device (case-insensitively).
// Personal accesses are one per appId (getAppToken).
func accessNameClash(tx *store.Tx, a *model.Access) error {
	if a.Type == model.AccessPersonal {
		return nil
	}
	return store.ScanJSON(tx, store.KeyAccessPrefix(tx.User()), func(_ string, o *storedAccess) (bool, error) {
		if o.ID != a.ID && o.Type == a.Type && strings.EqualFold(o.Name, a.Name) &&
			(a.Type != model.AccessApp || strings.EqualFold(o.DeviceName, a.DeviceName)) {
			what := "a shared access"
			if a.Type == model.AccessApp {
				what = "an app access for this device"
			}
			return false, model.Errorf(model.ErrItemNameAlreadyExists, "%s named %q already exists", what, a.Name).
				WithData(map[string]any{"field": "name"})
		}
		return true, nil
	})
}

// ensureDefaultItems creates the channels and folders that permissions
// name with a defaultName and that do not exist, and restores trashed
// ones, through ApplyChange in the caller's transaction.
func (s *Server) ensureDefaultItems(tx *store.Tx, actor *Actor, perms []model.Permission) error {
	for _, p := range perms {
		if p.ChannelID != "*" && p.DefaultName != "" {
			if err := s.ensureItem(tx, actor, model.KindChannel, p.ChannelID, "", p.DefaultName); err != nil {
				return err
			}
		}
		for _, fp := range p.FolderPermissions {
			if fp.FolderID != nil && fp.DefaultName != "" {
				if err := s.ensureItem(tx, actor, model.KindFolder, *fp.FolderID, p.ChannelID, fp.DefaultName); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ensureItem makes the channel (or the root folder of channel) id exist and
// not be trashed; a missing one is created with name.
func (s *Server) ensureItem(tx *store.Tx, actor *Actor, kind model.Kind, id, channel, name string) error {
	r, ok, err := tx.Item(kind, id)
	if err != nil {
		return err
	}
	if ok && model.Exists(r.Doc) {
		if kind == model.KindFolder && model.StringField(r.Doc, "channelId") != channel {
			return model.Errorf(model.ErrItemIDAlreadyExists, "the folder %q belongs to another channel", id)
		}
		if !model.BoolField(r.Doc, "trashed") {
			return nil
		}
		p := &model.Patch{Kind: kind}
		p.Set("trashed", model.JSONBool(false))
		_, err := ApplyChange(tx, actor, s.patchChange(kind, id, p, r.Doc, false), s.clock)
		return err
	}
	p := &model.Patch{Kind: kind}
	p.Set("name", model.JSONString(name))
	if kind == model.KindFolder {
		p.Set("channelId", model.JSONString(channel))
		p.Set("parentId", []byte("null"))
	}
	_, err = ApplyChange(tx, actor, s.patchChange(kind, id, p, crdt.Doc{}, true), s.clock)
	return err
}

// updateAccess serves PUT /accesses/{token}: name, deviceName (app) and
// permissions change; read-only fields only if sent back unchanged.
func (s *Server) updateAccess(c *call, token string) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if _, ok := body["expireAfter"]; ok {
		s.fail(c.w, c.r, model.FieldError("expireAfter", "is accepted on creation only"))
		return
	}
	if err := bodyOnly(body, nil, append([]string{"name", "deviceName", "permissions"}, accessReadOnly...)...); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	_, setName := body["name"]
	name, err := bodyName(body, "name", false)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	var perms []model.Permission
	if raw, ok := body["permissions"]; ok {
		if perms, err = decodePermissions(raw, "permissions"); err != nil {
			s.fail(c.w, c.r, err)
			return
		}
		perms = withoutDefaultNames(perms)
		if ok, err := s.covers(c, perms); err != nil || !ok {
			if err == nil {
				err = model.Errorf(model.ErrForbidden, "the permissions exceed those of the calling access")
			}
			s.fail(c.w, c.r, err)
			return
		}
	}
	now := s.now()
	var out *model.Access
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		cur, err := accessByToken(tx, c.user, token)
		if err != nil {
			return err
		}
		if cur == nil || !manages(c.actor, cur, txTree{tx}) {
			return errUnknownAccess()
		}
		if err := sameReadOnly(body, publicAccess(cur), accessReadOnly); err != nil {
			return err
		}
		next := *cur
		if _, ok := body["deviceName"]; ok {
			if next.DeviceName, err = deviceName(body, cur.Type); err != nil {
				return err
			}
		}
		if setName {
			next.Name = name
		}
		if next.Name != cur.Name || next.DeviceName != cur.DeviceName {
			if err := accessNameClash(tx, &next); err != nil {
				return err
			}
		}
		changed := perms != nil && permissionsKey(perms) != permissionsKey(cur.Permissions)
		if perms != nil {
			next.Permissions = perms
		}
		if changed {
			next.Version++
		}
		next.Modified, next.ModifiedBy = now, c.actor.AccessID
		if err := saveAccess(tx, &next); err != nil {
			return err
		}
		out = publicAccess(&next)
		if changed {
			// Live sync sessions of this access re-check their scope.
			return tx.AccessChanged(next.ID)
		}
		return nil
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, out)
}

// deleteAccessCall serves DELETE /accesses/{token}: the token stops working
// at once, live sessions are told (deleteAccess), the app profile goes.
func (s *Server) deleteAccessCall(c *call, token string) {
	var id string
	err := s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		a, err := accessByToken(tx, c.user, token)
		if err != nil {
			return err
		}
		if a == nil || !manages(c.actor, a, txTree{tx}) {
			return errUnknownAccess()
		}
		id = a.ID
		tx.Delete(store.KeyProfile(c.user, a.ID))
		return deleteAccess(tx, a)
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"accessDeletion": map[string]string{"id": id}})
}

// checkApp serves POST /admin/accesses/check-app {requestingAppId,
// deviceName?, requestedPermissions}: {matchingAccessToken} when an app
// access of that name and device has the same permissions, else
// {checkedPermissions, mismatchingAccessToken?, error?}.
func (s *Server) checkApp(c *call) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if err := bodyOnly(body, nil, "requestingAppId", "deviceName", "requestedPermissions"); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	appID, err := bodyName(body, "requestingAppId", true)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	device, err := deviceName(body, model.AccessApp)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	raw, ok := body["requestedPermissions"]
	if !ok {
		s.fail(c.w, c.r, model.FieldError("requestedPermissions", "is required"))
		return
	}
	perms, err := decodePermissions(raw, "requestedPermissions")
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	out := map[string]any{}
	err = s.st.View(c.user, func(tx *store.Tx) error {
		var found *model.Access
		err := store.ScanJSON(tx, store.KeyAccessPrefix(c.user), func(_ string, sa *storedAccess) (bool, error) {
			if sa.Type == model.AccessApp && strings.EqualFold(sa.Name, appID) && strings.EqualFold(sa.DeviceName, device) {
				found = sa.model()
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if found != nil && permissionsKey(found.Permissions) == permissionsKey(perms) {
			out["matchingAccessToken"] = found.Token
			return nil
		}
		checked, clashes, err := checkedPermissions(tx, perms)
		if err != nil {
			return err
		}
		out["checkedPermissions"] = checked
		if found != nil {
			out["mismatchingAccessToken"] = found.Token
		}
		if len(clashes) > 0 {
			out["error"] = model.Errorf(model.ErrItemNameAlreadyExists,
				"some default names are taken by other items; alternatives are proposed").
				WithData(map[string]any{"defaultNames": clashes})
		}
		return nil
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, out)
}

// checkedPermissions echoes perms with each defaultName replaced by the
// real name of the existing channel or folder; for a missing item whose
// defaultName is taken by another item, it proposes "<name> (2)"… and lists
// the clashing names.
func checkedPermissions(tx *store.Tx, perms []model.Permission) ([]model.Permission, []string, error) {
	// Live channel names, and root folder names per channel, lower-cased.
	taken := map[string]map[string]bool{"": {}}
	err := tx.Items(model.KindChannel, func(_ string, r *store.Record) (bool, error) {
		if model.Exists(r.Doc) {
			taken[""][strings.ToLower(model.StringField(r.Doc, "name"))] = true
		}
		return true, nil
	})
	if err == nil {
		err = tx.Items(model.KindFolder, func(_ string, r *store.Record) (bool, error) {
			if f := model.FolderFactsOf(r.Doc); model.Exists(r.Doc) && f.Parent == "" {
				if taken["/"+f.Channel] == nil {
					taken["/"+f.Channel] = map[string]bool{}
				}
				taken["/"+f.Channel][strings.ToLower(f.Name)] = true
			}
			return true, nil
		})
	}
	if err != nil {
		return nil, nil, err
	}
	var clashes []string
	resolve := func(kind model.Kind, id, channel, name string) (string, error) {
		r, ok, err := tx.Item(kind, id)
		if err != nil {
			return "", err
		}
		if ok && model.Exists(r.Doc) && (kind == model.KindChannel || model.StringField(r.Doc, "channelId") == channel) {
			return model.StringField(r.Doc, "name"), nil
		}
		set := taken[""]
		if kind == model.KindFolder {
			if taken["/"+channel] == nil {
				taken["/"+channel] = map[string]bool{}
			}
			set = taken["/"+channel]
		}
		proposed := name
		for i := 2; set[strings.ToLower(proposed)]; i++ {
			proposed = fmt.Sprintf("%s (%d)", name, i)
		}
		if proposed != name {
			clashes = append(clashes, name)
		}
		set[strings.ToLower(proposed)] = true
		return proposed, nil
	}
	out := make([]model.Permission, len(perms))
	for i, p := range perms {
		if p.ChannelID != "*" && p.DefaultName != "" {
			if p.DefaultName, err = resolve(model.KindChannel, p.ChannelID, "", p.DefaultName); err != nil {
				return nil, nil, err
			}
		}
		if p.FolderPermissions != nil {
			fps := make([]model.FolderPermission, len(p.FolderPermissions))
			copy(fps, p.FolderPermissions)
			for j, fp := range fps {
				if fp.FolderID != nil && fp.DefaultName != "" {
					if fps[j].DefaultName, err = resolve(model.KindFolder, *fp.FolderID, p.ChannelID, fp.DefaultName); err != nil {
						return nil, nil, err
					}
				}
			}
			p.FolderPermissions = fps
		}
		out[i] = p
	}
	return out, clashes, nil
}
