package model

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/pryvsync/pryvsync/crdt"
)

// Kind names the three kinds of synced items.
type Kind string

// The kinds of items.
const (
	KindChannel Kind = "channel"
	KindFolder  Kind = "folder"
	KindEvent   Kind = "event"
)

// Valid reports whether k is one of the item kinds.
func (k Kind) Valid() bool { return k == KindChannel || k == KindFolder || k == KindEvent }

// MaxItemSize bounds an item's encoded size (without attachment content), so
// any item fits one sync batch (SPEC §7).
const MaxItemSize = 256 << 10

// Server-maintained fields, set by whoever applies a change (never by the
// client's body).
const (
	FieldCreated    = "created"
	FieldCreatedBy  = "createdBy"
	FieldModified   = "modified"
	FieldModifiedBy = "modifiedBy"
)

// Canonical returns the canonical JSON encoding of raw (object keys sorted,
// numbers kept as written), or an error if raw is not exactly one JSON value.
func Canonical(raw []byte) ([]byte, error) {
	// A plain string or number, true, false and null are their own
	// canonical form (json.Number is written as it is read).
	if simpleString(raw) || simpleNumber(raw) || fastPaths && (string(raw) == "true" || string(raw) == "false" || string(raw) == "null") {
		return bytes.Clone(raw), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	// Only white space may follow: a second value, or a stray "]" or "}"
	// (which Decode reports as a syntax error, not as a value), is refused.
	var tail json.RawMessage
	if err := dec.Decode(&tail); err != io.EOF {
		return nil, Errorf(ErrInvalidRequestStructure, "trailing data after JSON value")
	}
	return json.Marshal(v)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// JSONString returns the JSON encoding of s, as encoding/json writes it.
func JSONString(s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return mustJSON(s) // escapes, or bytes to check as UTF-8
		}
	}
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// JSONNumber returns the JSON encoding of f, as encoding/json writes it
// (its float64 encoder: shortest form, exponent only below 1e-6 or from
// 1e21 on, written without a leading zero).
func JSONNumber(f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return mustJSON(f) // json.Marshal refuses them: mustJSON panics
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b := strconv.AppendFloat(make([]byte, 0, 24), f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// JSONBool returns the JSON encoding of b.
func JSONBool(b bool) []byte {
	if b {
		return []byte("true")
	}
	return []byte("false")
}

// StringField decodes a string field of d ("" when absent or not a string).
func StringField(d crdt.Doc, name string) string {
	raw := d.Get(name)
	if raw == nil {
		return ""
	}
	if simpleString(raw) {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// NumberField decodes a number field of d.
func NumberField(d crdt.Doc, name string) (float64, bool) {
	raw := d.Get(name)
	if raw == nil || string(raw) == "null" {
		return 0, false
	}
	if f, ok := simpleFloat(raw); ok {
		return f, true
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false
	}
	return f, true
}

// BoolField decodes a bool field of d (false when absent).
func BoolField(d crdt.Doc, name string) bool {
	return string(d.Get(name)) == "true"
}

// Exists reports whether d is a live item: created (it has fields) and not
// deleted.
func Exists(d crdt.Doc) bool { return !d.IsDeleted() && d.Has(FieldCreated) }

// EventFacts are what scope and period rules need to know about an event.
type EventFacts struct {
	Channel  string
	Folder   string // "" = no folder
	Time     float64
	Duration float64 // meaningful when Period
	Period   bool    // duration present (a number or running)
	Running  bool    // duration null
	Tags     []string
	Trashed  bool
}

// End returns the end of the event's span: Time for a mark, +Inf when running.
func (e EventFacts) End() float64 {
	switch {
	case e.Running:
		return math.Inf(1)
	case e.Period:
		return e.Time + e.Duration
	}
	return e.Time
}

// Meets reports whether the event's span meets [from, to] (inclusive).
func (e EventFacts) Meets(from, to float64) bool { return e.Time <= to && e.End() >= from }

// HasTag reports whether the event carries tag.
func (e EventFacts) HasTag(tag string) bool {
	for _, t := range e.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// EventFactsOf extracts the facts of an event Doc.
func EventFactsOf(d crdt.Doc) EventFacts {
	e := EventFacts{
		Channel: StringField(d, "channelId"),
		Folder:  StringField(d, "folderId"),
		Tags:    d.TagList(),
		Trashed: BoolField(d, "trashed"),
	}
	e.Time, _ = NumberField(d, "time")
	if raw := d.Get("duration"); raw != nil {
		e.Period = true
		if string(raw) == "null" {
			e.Running = true
		} else {
			e.Duration, _ = NumberField(d, "duration")
		}
	}
	return e
}

// FolderFacts are what the folder tree and scope need about a folder.
type FolderFacts struct {
	Channel string
	Parent  string // "" = root
	Name    string
	Hidden  bool
	Trashed bool
}

// FolderFactsOf extracts the facts of a folder Doc.
func FolderFactsOf(d crdt.Doc) FolderFacts {
	return FolderFacts{
		Channel: StringField(d, "channelId"),
		Parent:  StringField(d, "parentId"),
		Name:    StringField(d, "name"),
		Hidden:  BoolField(d, "hidden"),
		Trashed: BoolField(d, "trashed"),
	}
}

// Meta holds the server-maintained fields of every item.
type Meta struct {
	Created    float64 `json:"created"`
	CreatedBy  string  `json:"createdBy"`
	Modified   float64 `json:"modified"`
	ModifiedBy string  `json:"modifiedBy"`
}

func metaOf(d crdt.Doc) Meta {
	m := Meta{CreatedBy: StringField(d, FieldCreatedBy), ModifiedBy: StringField(d, FieldModifiedBy)}
	m.Created, _ = NumberField(d, FieldCreated)
	m.Modified, _ = NumberField(d, FieldModified)
	return m
}

// Channel is a channel as the API shows it.
type Channel struct {
	ID                     string                     `json:"id"`
	Name                   string                     `json:"name"`
	EnforceNoEventsOverlap bool                       `json:"enforceNoEventsOverlap"`
	ClientData             map[string]json.RawMessage `json:"clientData,omitempty"`
	Trashed                bool                       `json:"trashed"`
	Meta
}

// Folder is a folder as the API shows it.
type Folder struct {
	ID         string                     `json:"id"`
	ChannelID  string                     `json:"channelId"`
	Name       string                     `json:"name"`
	ParentID   *string                    `json:"parentId"`
	Hidden     bool                       `json:"hidden"`
	ClientData map[string]json.RawMessage `json:"clientData,omitempty"`
	Trashed    bool                       `json:"trashed"`
	Children   []*Folder                  `json:"children,omitempty"`
	Meta
}

// Attachment is the metadata of one file attached to an event.
type Attachment struct {
	FileName string `json:"fileName"`
	Type     string `json:"type"`
	Size     int64  `json:"size"`
	Digest   string `json:"digest"`
}

// Event is an event as the API shows it.
type Event struct {
	ID          string                     `json:"id"`
	ChannelID   string                     `json:"channelId"`
	FolderID    *string                    `json:"folderId"`
	Time        float64                    `json:"time"`
	Duration    json.RawMessage            `json:"duration,omitempty"`
	Type        json.RawMessage            `json:"type"`
	Value       json.RawMessage            `json:"value,omitempty"`
	Tags        []string                   `json:"tags"`
	Description *string                    `json:"description,omitempty"`
	ClientData  map[string]json.RawMessage `json:"clientData,omitempty"`
	Attachments map[string]Attachment      `json:"attachments,omitempty"`
	Trashed     bool                       `json:"trashed"`
	Meta
}

func rawMap(m map[string][]byte) map[string]json.RawMessage {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func optString(d crdt.Doc, name string) *string {
	if raw := d.Get(name); raw != nil && string(raw) != "null" {
		s := StringField(d, name)
		return &s
	}
	return nil
}

// RenderChannel shows a channel Doc.
func RenderChannel(id string, d crdt.Doc) *Channel {
	return &Channel{
		ID: id, Name: StringField(d, "name"), EnforceNoEventsOverlap: BoolField(d, "enforceNoEventsOverlap"),
		ClientData: rawMap(d.DataMap()), Trashed: BoolField(d, "trashed"), Meta: metaOf(d),
	}
}

// RenderFolder shows a folder Doc (without children).
func RenderFolder(id string, d crdt.Doc) *Folder {
	return &Folder{
		ID: id, ChannelID: StringField(d, "channelId"), Name: StringField(d, "name"),
		ParentID: optString(d, "parentId"), Hidden: BoolField(d, "hidden"),
		ClientData: rawMap(d.DataMap()), Trashed: BoolField(d, "trashed"), Meta: metaOf(d),
	}
}

// RenderEvent shows an event Doc.
func RenderEvent(id string, d crdt.Doc) *Event {
	e := &Event{
		ID: id, ChannelID: StringField(d, "channelId"), FolderID: optString(d, "folderId"),
		Duration: d.Get("duration"), Type: d.Get("type"), Value: d.Get("value"),
		Tags: d.TagList(), Description: optString(d, "description"),
		ClientData: rawMap(d.DataMap()), Trashed: BoolField(d, "trashed"), Meta: metaOf(d),
	}
	e.Time, _ = NumberField(d, "time")
	if files := d.FileMap(); len(files) > 0 {
		e.Attachments = make(map[string]Attachment, len(files))
		for k, raw := range files {
			var a Attachment
			if json.Unmarshal(raw, &a) == nil {
				e.Attachments[k] = a
			}
		}
	}
	return e
}

// Render shows any item Doc as its API value.
func Render(kind Kind, id string, d crdt.Doc) any {
	switch kind {
	case KindChannel:
		return RenderChannel(id, d)
	case KindFolder:
		return RenderFolder(id, d)
	default:
		return RenderEvent(id, d)
	}
}

// SortByName sorts names case-insensitively, ties by id (SPEC §7).
func SortByName[T any](items []T, name, id func(T) string) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := strings.ToLower(name(items[i])), strings.ToLower(name(items[j]))
		if a != b {
			return a < b
		}
		return id(items[i]) < id(items[j])
	})
}
