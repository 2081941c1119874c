package model

import (
	"encoding/json"
	"math"
	"regexp"
	"strings"
)

// Access types.
const (
	AccessShared   = "shared"
	AccessApp      = "app"
	AccessPersonal = "personal"
)

// Level is a permission level; the zero Level grants nothing.
type Level int8

// Levels in order.
const (
	LevelNone Level = iota
	LevelRead
	LevelContribute
	LevelManage
)

// ParseLevel parses "read", "contribute" or "manage".
func ParseLevel(s string) (Level, bool) {
	switch s {
	case "read":
		return LevelRead, true
	case "contribute":
		return LevelContribute, true
	case "manage":
		return LevelManage, true
	}
	return LevelNone, false
}

func (l Level) String() string {
	switch l {
	case LevelRead:
		return "read"
	case LevelContribute:
		return "contribute"
	case LevelManage:
		return "manage"
	}
	return "none"
}

// TimeFrame limits an access to events whose span meets [From, To]; a nil
// bound is open.
type TimeFrame struct {
	From *float64 `json:"from" msgpack:"from"`
	To   *float64 `json:"to" msgpack:"to"`
}

// Bounds returns the frame as inclusive numbers (±Inf for open bounds).
func (t *TimeFrame) Bounds() (float64, float64) {
	from, to := math.Inf(-1), math.Inf(1)
	if t != nil && t.From != nil {
		from = *t.From
	}
	if t != nil && t.To != nil {
		to = *t.To
	}
	return from, to
}

// FolderPermission is one entry of a permission's folderPermissions.
type FolderPermission struct {
	FolderID    *string `json:"folderId" msgpack:"folderId"`
	Level       string  `json:"level" msgpack:"level"`
	DefaultName string  `json:"defaultName,omitempty" msgpack:"defaultName,omitempty"`
}

// Permission is one entry of an access's permissions (SPEC §1.4).
type Permission struct {
	ChannelID         string             `json:"channelId" msgpack:"channelId"`
	Level             string             `json:"level" msgpack:"level"`
	FolderPermissions []FolderPermission `json:"folderPermissions,omitempty" msgpack:"folderPermissions,omitempty"`
	Tags              []string           `json:"tags,omitempty" msgpack:"tags,omitempty"`
	TimeFrame         *TimeFrame         `json:"timeFrame,omitempty" msgpack:"timeFrame,omitempty"`
	DefaultName       string             `json:"defaultName,omitempty" msgpack:"defaultName,omitempty"`
}

// Access is a token and what it may do (SPEC §1.4).
type Access struct {
	ID          string       `json:"id"`
	Token       string       `json:"token"`
	Type        string       `json:"type"`
	Name        string       `json:"name"`
	DeviceName  string       `json:"deviceName,omitempty"`
	Permissions []Permission `json:"permissions"`
	Expires     *float64     `json:"expires,omitempty"`
	Created     float64      `json:"created"`
	CreatedBy   string       `json:"createdBy"`
	Modified    float64      `json:"modified"`
	ModifiedBy  string       `json:"modifiedBy"`
	LastUsed    float64      `json:"lastUsed,omitempty"`
	// AppID is set on personal accesses made by get-app-token.
	AppID string `json:"appId,omitempty"`
	// Version increases with every change of the permissions; sync sessions
	// compare it to tell a scope change.
	Version int64 `json:"-"`
	// Key is the secret that blinds removal ids for this access (SYNC-NOTES §1).
	Key []byte `json:"-"`
}

// Expired reports whether the access has expired at time now (Unix seconds).
func (a *Access) Expired(now float64) bool { return a.Expires != nil && *a.Expires <= now }

// ValidatePermissions checks the shape of permissions: known levels,
// channel and folder ids present.
func ValidatePermissions(perms []Permission) error {
	for i := range perms {
		p := &perms[i]
		if p.ChannelID == "" {
			return FieldError("permissions", "entry %d has no channelId", i)
		}
		if _, ok := ParseLevel(p.Level); !ok {
			return FieldError("permissions", "entry %d has an unknown level %q", i, p.Level)
		}
		if p.ChannelID != "*" {
			id, err := ItemID(p.ChannelID)
			if err != nil {
				return FieldError("permissions", "entry %d: %v", i, err)
			}
			p.ChannelID = id
		}
		for j, fp := range p.FolderPermissions {
			if _, ok := ParseLevel(fp.Level); !ok {
				return FieldError("permissions", "entry %d folder %d has an unknown level %q", i, j, fp.Level)
			}
			if fp.FolderID != nil {
				id, err := ItemID(*fp.FolderID)
				if err != nil {
					return FieldError("permissions", "entry %d folder %d: %v", i, j, err)
				}
				p.FolderPermissions[j].FolderID = &id
			}
		}
		if p.Tags != nil {
			tags, err := NormalizeTags(p.Tags)
			if err != nil {
				return err
			}
			p.Tags = tags
		}
		if p.TimeFrame != nil {
			if from, to := p.TimeFrame.Bounds(); from > to {
				return FieldError("permissions", "entry %d time frame ends before it starts", i)
			}
		}
	}
	return nil
}

// DecodePermissions decodes and validates a permissions JSON value.
func DecodePermissions(raw json.RawMessage) ([]Permission, error) {
	var perms []Permission
	if err := json.Unmarshal(raw, &perms); err != nil {
		return nil, FieldError("permissions", "must be an array of permission objects")
	}
	if err := ValidatePermissions(perms); err != nil {
		return nil, err
	}
	return perms, nil
}

// Bookmark is a sharing bookmark (SPEC §1.5).
type Bookmark struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	URL         string `json:"url"`
	AccessToken string `json:"accessToken"`
}

// User is an account.
type User struct {
	Username     string `json:"username"`
	Email        string `json:"email"`
	Language     string `json:"language"`
	PasswordHash []byte `json:"-"`
}

var usernameRE = regexp.MustCompile(`^[a-zA-Z0-9]{5,21}$`)

// ReservedUsernames equal system path words.
var ReservedUsernames = map[string]bool{"system": true, "healthz": true, "readyz": true, "metrics": true, "app": true}

// Username validates a username and returns it lower-cased.
func Username(s string) (string, error) {
	if !usernameRE.MatchString(s) {
		return "", FieldError("username", "must be 5 to 21 letters or digits")
	}
	u := strings.ToLower(s)
	if ReservedUsernames[u] {
		return "", FieldError("username", "%q is reserved", s)
	}
	return u, nil
}

// Password validates a password (6–99 characters, no leading or trailing
// space). The message never echoes the password.
func Password(field, s string) error {
	n := len([]rune(s))
	if n < 6 || n > 99 {
		return FieldError(field, "must be 6 to 99 characters")
	}
	if strings.TrimSpace(s) != s {
		return FieldError(field, "must not start or end with a space")
	}
	return nil
}

var languageRE = regexp.MustCompile(`^[a-z]{2}$`)

// Language validates an ISO 639-1 code.
func Language(s string) error {
	if !languageRE.MatchString(s) {
		return FieldError("language", "must be an ISO 639-1 code such as \"en\"")
	}
	return nil
}

// Email validates an e-mail address loosely (something@something).
func Email(s string) error {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 254 || strings.ContainsAny(s, " \t\r\n") {
		return FieldError("email", "must be an e-mail address")
	}
	return nil
}
