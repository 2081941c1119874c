package model

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/pryvsync/pryvsync/crdt"
)

// Patch is a validated change to one item: what a create or update sets.
// It becomes a crdt delta with Delta, stamped with one version.
type Patch struct {
	Kind Kind
	// Fields maps field names to canonical JSON values; a nil value unsets
	// the field (for example an update with "description": null).
	Fields map[string][]byte
	// Tags, when non-nil, replaces the whole tag set.
	Tags       []string
	AddTags    []string
	RemoveTags []string
	// Data holds clientData keys to set (nil value: remove the key).
	Data map[string][]byte
}

// Set sets a field to a canonical JSON value.
func (p *Patch) Set(field string, val []byte) {
	if p.Fields == nil {
		p.Fields = map[string][]byte{}
	}
	p.Fields[field] = val
}

// IsEmpty reports whether the patch changes nothing.
func (p *Patch) IsEmpty() bool {
	return len(p.Fields) == 0 && p.Tags == nil && len(p.AddTags) == 0 && len(p.RemoveTags) == 0 && len(p.Data) == 0
}

// Delta turns the patch into a crdt delta against cur, every entry stamped
// with v. Replacing the tag set removes the present tags it does not name.
func (p *Patch) Delta(cur crdt.Doc, v crdt.Version) crdt.Doc {
	var d crdt.Doc
	if len(p.Fields) > 0 {
		d.Fields = make(map[string]crdt.Field, len(p.Fields))
		for k, val := range p.Fields {
			d.Fields[k] = crdt.Field{V: v, Val: val}
		}
	}
	setTag := func(t string, present bool) {
		if d.Tags == nil {
			d.Tags = map[string]crdt.Elem{}
		}
		d.Tags[t] = crdt.Elem{V: v, Present: present}
	}
	if p.Tags != nil {
		keep := make(map[string]bool, len(p.Tags))
		for _, t := range p.Tags {
			keep[t] = true
			setTag(t, true)
		}
		for _, t := range cur.TagList() {
			if !keep[t] {
				setTag(t, false)
			}
		}
	}
	for _, t := range p.AddTags {
		setTag(t, true)
	}
	for _, t := range p.RemoveTags {
		setTag(t, false)
	}
	if len(p.Data) > 0 {
		d.Data = make(map[string]crdt.Field, len(p.Data))
		for k, val := range p.Data {
			d.Data[k] = crdt.Field{V: v, Val: val}
		}
	}
	return d
}

// Stamp adds the server-maintained fields to a delta: modified and
// modifiedBy always, created and createdBy on creation.
func Stamp(d *crdt.Doc, v crdt.Version, now float64, by string, create bool) {
	if d.Fields == nil {
		d.Fields = map[string]crdt.Field{}
	}
	// Values are never changed in place: the two stamps share theirs.
	when, who := JSONNumber(now), JSONString(by)
	d.Fields[FieldModified] = crdt.Field{V: v, Val: when}
	d.Fields[FieldModifiedBy] = crdt.Field{V: v, Val: who}
	if create {
		d.Fields[FieldCreated] = crdt.Field{V: v, Val: when}
		d.Fields[FieldCreatedBy] = crdt.Field{V: v, Val: who}
	}
}

type fieldType int

const (
	tString fieldType = iota
	tStringOrNull
	tBool
	tNumber
	tDuration
	tType
	tAny
	tTags
	tClientData
	tReadOnly
	tFixed // settable on create (from the URL), refused on update unless equal
)

var schemas = map[Kind]map[string]fieldType{
	KindChannel: {
		"name": tString, "enforceNoEventsOverlap": tBool, "clientData": tClientData, "trashed": tBool,
	},
	KindFolder: {
		"name": tString, "parentId": tStringOrNull, "hidden": tBool, "clientData": tClientData,
		"trashed": tBool, "channelId": tFixed, "children": tReadOnly,
	},
	KindEvent: {
		"channelId": tString, "folderId": tStringOrNull, "time": tNumber, "duration": tDuration,
		"type": tType, "value": tAny, "tags": tTags, "description": tStringOrNull,
		"clientData": tClientData, "trashed": tBool, "attachments": tReadOnly,
	},
}

var commonReadOnly = []string{"id", FieldCreated, FieldCreatedBy, FieldModified, FieldModifiedBy}

var typeRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// MaxTagLength is the longest tag accepted (SPEC §1.3).
const MaxTagLength = 500

// NormalizeTags trims tags, drops empty ones and duplicates, and refuses
// tags longer than MaxTagLength.
func NormalizeTags(tags []string) ([]string, error) {
	out := make([]string, 0, len(tags))
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		t = strings.TrimSpace(t)
		if t == "" || seen[t] {
			continue
		}
		if len([]rune(t)) > MaxTagLength {
			return nil, FieldError("tags", "a tag is longer than %d characters", MaxTagLength)
		}
		seen[t] = true
		out = append(out, t)
	}
	return out, nil
}

// ParsePatch validates a JSON body for an item of kind: on create, or on
// update of the item whose current API rendering is cur (used to accept a
// read-only field sent back unchanged). The id is not part of the patch.
func ParsePatch(kind Kind, body map[string]json.RawMessage, create bool, cur map[string]json.RawMessage) (*Patch, error) {
	schema := schemas[kind]
	p := &Patch{Kind: kind}
	for name, raw := range body {
		ft, known := schema[name]
		if !known {
			for _, ro := range commonReadOnly {
				if ro == name {
					ft, known = tReadOnly, true
				}
			}
		}
		if !known {
			return nil, FieldError(name, "unknown field")
		}
		if ft == tReadOnly || (ft == tFixed && !create) {
			if create || name == "id" && create {
				continue // ignored on create
			}
			if curVal, ok := cur[name]; ok && jsonEqual(curVal, raw) {
				continue
			}
			return nil, FieldError(name, "is read-only")
		}
		if ft == tFixed { // create: the handler sets it from the URL
			continue
		}
		if err := p.parseField(name, ft, raw); err != nil {
			return nil, err
		}
	}
	if create {
		switch kind {
		case KindChannel, KindFolder:
			if _, ok := p.Fields["name"]; !ok {
				return nil, FieldError("name", "is required")
			}
		case KindEvent:
			if _, ok := p.Fields["type"]; !ok {
				return nil, FieldError("type", "is required")
			}
		}
	}
	return p, nil
}

func jsonEqual(a, b []byte) bool {
	ca, err1 := Canonical(a)
	cb, err2 := Canonical(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

func isNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }

func (p *Patch) parseField(name string, ft fieldType, raw json.RawMessage) error {
	switch ft {
	case tString:
		if simpleString(raw) && len(raw) > 2 && (name != "name" || raw[1] != ' ' && raw[len(raw)-2] != ' ') {
			p.Set(name, bytes.Clone(raw))
			return nil
		}
		var s string
		// json.Unmarshal accepts null for a string, leaving it unchanged.
		if isNull(raw) || json.Unmarshal(raw, &s) != nil {
			return FieldError(name, "must be a string")
		}
		if name == "name" {
			s = strings.TrimSpace(s)
			if s == "" {
				return FieldError(name, "must not be empty")
			}
		}
		p.Set(name, JSONString(s))
	case tStringOrNull:
		if isNull(raw) {
			if name == "description" {
				p.Set(name, nil)
			} else {
				p.Set(name, []byte("null"))
			}
			return nil
		}
		if simpleString(raw) && len(raw) > 2 {
			p.Set(name, bytes.Clone(raw))
			return nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return FieldError(name, "must be a string or null")
		}
		if name != "description" && s == "" {
			p.Set(name, []byte("null"))
			return nil
		}
		p.Set(name, JSONString(s))
	case tBool:
		var b bool
		if isNull(raw) || json.Unmarshal(raw, &b) != nil {
			return FieldError(name, "must be a boolean")
		}
		p.Set(name, JSONBool(b))
	case tNumber:
		if f, ok := simpleFloat(raw); ok {
			p.Set(name, JSONNumber(f))
			return nil
		}
		var f float64
		if isNull(raw) || json.Unmarshal(raw, &f) != nil {
			return FieldError(name, "must be a number")
		}
		p.Set(name, JSONNumber(f))
	case tDuration:
		if isNull(raw) {
			p.Set(name, []byte("null"))
			return nil
		}
		if f, ok := simpleFloat(raw); ok && f >= 0 {
			p.Set(name, JSONNumber(f))
			return nil
		}
		var f float64
		if json.Unmarshal(raw, &f) != nil || f < 0 {
			return FieldError(name, "must be a number >= 0 or null")
		}
		p.Set(name, JSONNumber(f))
	case tType:
		if simpleType(raw) {
			p.Set(name, bytes.Clone(raw))
			return nil
		}
		var t struct {
			Class  *string `json:"class"`
			Format *string `json:"format"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if dec.Decode(&t) != nil || t.Class == nil || t.Format == nil ||
			!typeRE.MatchString(*t.Class) || !typeRE.MatchString(*t.Format) {
			return FieldError(name, `must be {"class": "...", "format": "..."} matching [a-z0-9-]+`)
		}
		p.Set(name, mustJSON(map[string]string{"class": *t.Class, "format": *t.Format}))
	case tAny:
		c, err := Canonical(raw)
		if err != nil {
			return FieldError(name, "must be a JSON value")
		}
		p.Set(name, c)
	case tTags:
		var tags []string
		if isNull(raw) {
			tags = []string{}
		} else if json.Unmarshal(raw, &tags) != nil {
			return FieldError(name, "must be an array of strings")
		}
		norm, err := NormalizeTags(tags)
		if err != nil {
			return err
		}
		p.Tags = norm
	case tClientData:
		var m map[string]json.RawMessage
		if isNull(raw) || json.Unmarshal(raw, &m) != nil {
			return FieldError(name, "must be an object")
		}
		p.Data = make(map[string][]byte, len(m))
		for k, v := range m {
			if isNull(v) {
				p.Data[k] = nil
				continue
			}
			c, err := Canonical(v)
			if err != nil {
				return FieldError(name, "must be an object")
			}
			p.Data[k] = c
		}
	}
	return nil
}

// DecodeObject decodes a body that must be exactly one JSON object.
func DecodeObject(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		if len(bytes.TrimSpace(body)) > 0 && bytes.TrimSpace(body)[0] == '{' {
			return nil, Errorf(ErrInvalidRequestStructure, "malformed JSON: %v", err)
		}
		if _, ok := err.(*json.UnmarshalTypeError); ok {
			return nil, Errorf(ErrInvalidParametersFormat, "the body must be a JSON object")
		}
		return nil, Errorf(ErrInvalidRequestStructure, "malformed JSON: %v", err)
	}
	if m == nil {
		return nil, Errorf(ErrInvalidParametersFormat, "the body must be a JSON object")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil || dec.More() {
		return nil, Errorf(ErrInvalidRequestStructure, "trailing data after the JSON value")
	} else if err.Error() != "EOF" {
		return nil, Errorf(ErrInvalidRequestStructure, "trailing data after the JSON value")
	}
	return m, nil
}

// StringFromPatch returns a string field the patch sets ("" otherwise).
func StringFromPatch(p *Patch, name string) string {
	var s string
	if raw := p.Fields[name]; raw != nil {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}
