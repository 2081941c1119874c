package model_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
)

// object decodes a JSON object body, failing the test if it is not one.
func object(tb testing.TB, body string) map[string]json.RawMessage {
	tb.Helper()
	m, err := model.DecodeObject([]byte(body))
	if err != nil {
		tb.Fatalf("DecodeObject(%s): %v", body, err)
	}
	return m
}

// mustPatch parses a body that must be valid.
func mustPatch(tb testing.TB, kind model.Kind, body string, create bool, cur map[string]json.RawMessage) *model.Patch {
	tb.Helper()
	p, err := model.ParsePatch(kind, object(tb, body), create, cur)
	if err != nil {
		tb.Fatalf("ParsePatch(%s, %s): %v", kind, body, err)
	}
	return p
}

const noteType = `"type": {"class": "note", "format": "txt"}`

func TestParsePatchRequiresNameOrTypeOnCreate(t *testing.T) {
	for _, c := range []struct {
		kind  model.Kind
		body  string
		field string
	}{
		{model.KindChannel, `{}`, "name"},
		{model.KindChannel, `{"enforceNoEventsOverlap": true}`, "name"},
		{model.KindChannel, `{"name": "   "}`, "name"},
		{model.KindChannel, `{"name": ""}`, "name"},
		{model.KindFolder, `{}`, "name"},
		{model.KindFolder, `{"parentId": "work"}`, "name"},
		{model.KindFolder, `{"name": "\t"}`, "name"},
		{model.KindEvent, `{}`, "type"},
		{model.KindEvent, `{"time": 1, "value": 2}`, "type"},
	} {
		_, err := model.ParsePatch(c.kind, object(t, c.body), true, nil)
		if got, want := errID(err), model.ErrInvalidParametersFormat; got != want {
			t.Fatalf("%s %s: got %q (%v), want %q", c.kind, c.body, got, err, want)
		}
		if got, want := errField(err), c.field; got != want {
			t.Fatalf("%s %s: field: got %q, want %q", c.kind, c.body, got, want)
		}
	}
}

func TestParsePatchDoesNotRequireNameOrTypeOnUpdate(t *testing.T) {
	for _, c := range []struct {
		kind model.Kind
		body string
	}{
		{model.KindChannel, `{}`},
		{model.KindChannel, `{"trashed": true}`},
		{model.KindFolder, `{"hidden": true}`},
		{model.KindEvent, `{"time": 5}`},
	} {
		mustPatch(t, c.kind, c.body, false, nil)
	}
}

func TestParsePatchStoresCanonicalValues(t *testing.T) {
	for _, c := range []struct {
		kind   model.Kind
		body   string
		field  string
		want   string // "" = unset (nil value)
		create bool
	}{
		{model.KindChannel, `{"name": "  My Diary "}`, "name", `"My Diary"`, true},
		{model.KindChannel, `{"name": "D", "enforceNoEventsOverlap": true}`, "enforceNoEventsOverlap", `true`, true},
		{model.KindChannel, `{"trashed": false}`, "trashed", `false`, false},
		{model.KindFolder, `{"name": "F", "parentId": "work"}`, "parentId", `"work"`, true},
		{model.KindFolder, `{"parentId": null}`, "parentId", `null`, false},
		{model.KindFolder, `{"parentId": ""}`, "parentId", `null`, false},
		{model.KindFolder, `{"hidden": true}`, "hidden", `true`, false},
		{model.KindEvent, `{` + noteType + `}`, "type", `{"class":"note","format":"txt"}`, true},
		{model.KindEvent, `{"type": {"format": "kg", "class": "mass"}}`, "type", `{"class":"mass","format":"kg"}`, false},
		{model.KindEvent, `{"type": {"class": "count-2", "format": "x-y"}}`, "type", `{"class":"count-2","format":"x-y"}`, false},
		{model.KindEvent, `{"time": 1700000000.25}`, "time", `1700000000.25`, false},
		{model.KindEvent, `{"time": 0}`, "time", `0`, false},
		{model.KindEvent, `{"time": -5}`, "time", `-5`, false},
		{model.KindEvent, `{"duration": 0}`, "duration", `0`, false},
		{model.KindEvent, `{"duration": 3600.5}`, "duration", `3600.5`, false},
		{model.KindEvent, `{"duration": null}`, "duration", `null`, false},
		{model.KindEvent, `{"folderId": "work"}`, "folderId", `"work"`, false},
		{model.KindEvent, `{"folderId": null}`, "folderId", `null`, false},
		{model.KindEvent, `{"channelId": "health"}`, "channelId", `"health"`, false},
		{model.KindEvent, `{"description": "hello"}`, "description", `"hello"`, false},
		{model.KindEvent, `{"description": ""}`, "description", `""`, false},
		{model.KindEvent, `{"description": null}`, "description", "", false},
		{model.KindEvent, `{"value": {"b": 1, "a": [1.50, "x"]}}`, "value", `{"a":[1.50,"x"],"b":1}`, false},
		{model.KindEvent, `{"value": null}`, "value", `null`, false},
		{model.KindEvent, `{"value": 12345678901234567890}`, "value", `12345678901234567890`, false},
		{model.KindEvent, `{"trashed": true}`, "trashed", `true`, false},
	} {
		p := mustPatch(t, c.kind, c.body, c.create, nil)
		val, ok := p.Fields[c.field]
		if !ok {
			t.Fatalf("%s %s: field %s not set: %v", c.kind, c.body, c.field, p.Fields)
		}
		if got, want := string(val), c.want; got != want {
			t.Fatalf("%s %s: %s: got %s, want %s", c.kind, c.body, c.field, got, want)
		}
	}
}

func TestParsePatchRefusesWrongJSONTypes(t *testing.T) {
	for _, c := range []struct {
		kind  model.Kind
		field string
		value string
	}{
		{model.KindChannel, "name", `1`},
		{model.KindChannel, "name", `null`},
		{model.KindChannel, "name", `["a"]`},
		{model.KindChannel, "enforceNoEventsOverlap", `"yes"`},
		{model.KindChannel, "enforceNoEventsOverlap", `1`},
		{model.KindChannel, "enforceNoEventsOverlap", `null`},
		{model.KindChannel, "trashed", `"true"`},
		{model.KindChannel, "trashed", `null`},
		{model.KindChannel, "clientData", `[]`},
		{model.KindChannel, "clientData", `"x"`},
		{model.KindChannel, "clientData", `null`},
		{model.KindFolder, "name", `{}`},
		{model.KindFolder, "parentId", `5`},
		{model.KindFolder, "parentId", `{}`},
		{model.KindFolder, "hidden", `"true"`},
		{model.KindFolder, "hidden", `null`},
		{model.KindEvent, "channelId", `5`},
		{model.KindEvent, "channelId", `null`},
		{model.KindEvent, "folderId", `true`},
		{model.KindEvent, "time", `"now"`},
		{model.KindEvent, "time", `null`},
		{model.KindEvent, "time", `[1]`},
		{model.KindEvent, "time", `1e400`},
		{model.KindEvent, "duration", `"60"`},
		{model.KindEvent, "duration", `-1`},
		{model.KindEvent, "duration", `-0.001`},
		{model.KindEvent, "duration", `true`},
		{model.KindEvent, "type", `"note/txt"`},
		{model.KindEvent, "type", `null`},
		{model.KindEvent, "type", `{}`},
		{model.KindEvent, "type", `{"class": "note"}`},
		{model.KindEvent, "type", `{"format": "txt"}`},
		{model.KindEvent, "type", `{"class": "Note", "format": "txt"}`},
		{model.KindEvent, "type", `{"class": "note", "format": "t_x"}`},
		{model.KindEvent, "type", `{"class": "no te", "format": "txt"}`},
		{model.KindEvent, "type", `{"class": "", "format": "txt"}`},
		{model.KindEvent, "type", `{"class": "note", "format": 1}`},
		{model.KindEvent, "type", `{"class": "note", "format": "txt", "unit": "kg"}`},
		{model.KindEvent, "type", `{"class": "note\n", "format": "txt"}`},
		{model.KindEvent, "tags", `"run"`},
		{model.KindEvent, "tags", `[1]`},
		{model.KindEvent, "tags", `{"run": true}`},
		{model.KindEvent, "description", `3`},
		{model.KindEvent, "description", `["x"]`},
		{model.KindEvent, "trashed", `0`},
		{model.KindEvent, "trashed", `null`},
		{model.KindEvent, "clientData", `true`},
	} {
		for _, create := range []bool{true, false} {
			body := `{"` + c.field + `": ` + c.value + `}`
			_, err := model.ParsePatch(c.kind, object(t, body), create, nil)
			if got, want := errID(err), model.ErrInvalidParametersFormat; got != want {
				t.Fatalf("%s %s (create %v): got %q (%v), want %q", c.kind, body, create, got, err, want)
			}
			if got, want := errField(err), c.field; got != want {
				t.Fatalf("%s %s (create %v): field: got %q (%v), want %q", c.kind, body, create, got, err, want)
			}
		}
	}
}

func TestParsePatchRefusesUnknownFields(t *testing.T) {
	for _, c := range []struct {
		kind  model.Kind
		field string
	}{
		{model.KindChannel, "colour"},
		{model.KindChannel, "parentId"},
		{model.KindChannel, "Name"},
		{model.KindFolder, "enforceNoEventsOverlap"},
		{model.KindFolder, "tags"},
		{model.KindEvent, "name"},
		{model.KindEvent, "hidden"},
		{model.KindEvent, "children"},
	} {
		for _, create := range []bool{true, false} {
			body := `{"` + c.field + `": 1}`
			_, err := model.ParsePatch(c.kind, object(t, body), create, nil)
			if got, want := errID(err), model.ErrInvalidParametersFormat; got != want {
				t.Fatalf("%s %s (create %v): got %q (%v), want %q", c.kind, body, create, got, err, want)
			}
			if got, want := errField(err), c.field; got != want {
				t.Fatalf("%s %s (create %v): field: got %q, want %q", c.kind, body, create, got, want)
			}
		}
	}
}

func TestParsePatchNormalisesTags(t *testing.T) {
	long := strings.Repeat("t", model.MaxTagLength)
	longRunes := strings.Repeat("é", model.MaxTagLength) // 1000 bytes, 500 characters
	for _, c := range []struct {
		tags string
		want []string
	}{
		{`["run", "swim"]`, []string{"run", "swim"}},
		{`[" run ", "\tswim\n"]`, []string{"run", "swim"}},
		{`["", "  ", "run"]`, []string{"run"}},
		{`["run", "run", " run"]`, []string{"run"}},
		{`["Run", "run"]`, []string{"Run", "run"}},
		{`["b", "a"]`, []string{"b", "a"}},
		{`[]`, []string{}},
		{`null`, []string{}},
		{`["` + long + `"]`, []string{long}},
		{`["  ` + long + `  "]`, []string{long}},
		{`["` + longRunes + `"]`, []string{longRunes}},
	} {
		p := mustPatch(t, model.KindEvent, `{"tags": `+c.tags+`}`, false, nil)
		if p.Tags == nil {
			t.Fatalf("tags %s: Tags is nil, want a replacement set", c.tags)
		}
		if got, want := p.Tags, c.want; !slices.Equal(got, want) {
			t.Fatalf("tags %s: got %q, want %q", c.tags, got, want)
		}
	}
	if p := mustPatch(t, model.KindEvent, `{"time": 1}`, false, nil); p.Tags != nil {
		t.Fatalf("no tags in body: Tags = %q, want nil (unchanged)", p.Tags)
	}
}

func TestParsePatchRefusesTagsLongerThan500Characters(t *testing.T) {
	for _, tags := range []string{
		`["` + strings.Repeat("t", model.MaxTagLength+1) + `"]`,
		`["ok", "` + strings.Repeat("é", model.MaxTagLength+1) + `"]`,
	} {
		_, err := model.ParsePatch(model.KindEvent, object(t, `{"tags": `+tags+`}`), false, nil)
		if got, want := errID(err), model.ErrInvalidParametersFormat; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		if got, want := errField(err), "tags"; got != want {
			t.Fatalf("field: got %q, want %q", got, want)
		}
	}
}

func TestNormalizeTags(t *testing.T) {
	got, err := model.NormalizeTags([]string{" a", "b ", "", "a", "c", " "})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, err := model.NormalizeTags(nil); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("nil: got %q, %v, want an empty non-nil slice", got, err)
	}
}

func TestParsePatchClientDataNullRemovesKey(t *testing.T) {
	p := mustPatch(t, model.KindChannel, `{"clientData": {"keep": {"b": 2, "a": 1}, "gone": null, "n": 1.0}}`, false, nil)
	if got, want := len(p.Data), 3; got != want {
		t.Fatalf("len(Data): got %d, want %d", got, want)
	}
	if got, want := string(p.Data["keep"]), `{"a":1,"b":2}`; got != want {
		t.Fatalf("keep: got %s, want %s", got, want)
	}
	if got, want := string(p.Data["n"]), `1.0`; got != want {
		t.Fatalf("n: got %s, want %s", got, want)
	}
	if v, ok := p.Data["gone"]; !ok || v != nil {
		t.Fatalf("gone: got %q, present %v, want a nil value (removal)", v, ok)
	}
	if p := mustPatch(t, model.KindEvent, `{"clientData": {}}`, false, nil); !p.IsEmpty() {
		t.Fatalf("empty clientData: patch is not empty: %+v", p)
	}
}

func TestParsePatchIgnoresReadOnlyFieldsOnCreate(t *testing.T) {
	for _, c := range []struct {
		kind model.Kind
		body string
		want []string // the fields the patch sets
	}{
		{model.KindChannel, `{"name": "D", "id": "x", "created": 1, "createdBy": "a", "modified": 2, "modifiedBy": "b"}`, []string{"name"}},
		{model.KindFolder, `{"name": "F", "id": "x", "channelId": "other", "children": [], "created": 1, "modified": 2}`, []string{"name"}},
		{model.KindEvent, `{` + noteType + `, "id": "x", "attachments": {"a": {}}, "created": 1, "createdBy": "a", "modified": 2, "modifiedBy": "b"}`, []string{"type"}},
	} {
		p := mustPatch(t, c.kind, c.body, true, nil)
		var got []string
		for k := range p.Fields {
			got = append(got, k)
		}
		slices.Sort(got)
		if want := c.want; !slices.Equal(got, want) {
			t.Fatalf("%s %s: fields: got %v, want %v", c.kind, c.body, got, want)
		}
	}
}

func TestParsePatchRefusesChangedReadOnlyFieldsOnUpdate(t *testing.T) {
	curEvent := map[string]json.RawMessage{
		"id":          json.RawMessage(`"cabcdefghijklmnopqrstuvwx"`),
		"created":     json.RawMessage(`1700000000.5`),
		"createdBy":   json.RawMessage(`"acc"`),
		"modified":    json.RawMessage(`1700000001`),
		"modifiedBy":  json.RawMessage(`"acc"`),
		"attachments": json.RawMessage(`{"photo":{"fileName":"p.jpg","size":3}}`),
	}
	curFolder := map[string]json.RawMessage{
		"channelId": json.RawMessage(`"diary"`),
		"children":  json.RawMessage(`[]`),
	}
	for _, c := range []struct {
		kind  model.Kind
		cur   map[string]json.RawMessage
		body  string
		field string // "" = accepted
	}{
		{model.KindEvent, curEvent, `{"id": "cabcdefghijklmnopqrstuvwx"}`, ""},
		{model.KindEvent, curEvent, `{"id": "czzzzzzzzzzzzzzzzzzzzzzzz"}`, "id"},
		{model.KindEvent, curEvent, `{"created": 1700000000.5}`, ""},
		{model.KindEvent, curEvent, `{"created": 1700000000.6}`, "created"},
		{model.KindEvent, curEvent, `{"createdBy": "acc"}`, ""},
		{model.KindEvent, curEvent, `{"createdBy": "other"}`, "createdBy"},
		{model.KindEvent, curEvent, `{"modified": 1700000001}`, ""},
		{model.KindEvent, curEvent, `{"modified": 2}`, "modified"},
		{model.KindEvent, curEvent, `{"modifiedBy": "x"}`, "modifiedBy"},
		{model.KindEvent, curEvent, `{"attachments": {"photo": {"size": 3, "fileName": "p.jpg"}}}`, ""},
		{model.KindEvent, curEvent, `{"attachments": {}}`, "attachments"},
		{model.KindEvent, nil, `{"created": 1}`, "created"},
		{model.KindEvent, nil, `{"attachments": {}}`, "attachments"},
		{model.KindFolder, curFolder, `{"channelId": "diary"}`, ""},
		{model.KindFolder, curFolder, `{"channelId": "health"}`, "channelId"},
		{model.KindFolder, curFolder, `{"children": []}`, ""},
		{model.KindFolder, curFolder, `{"children": [{"id": "x"}]}`, "children"},
		{model.KindFolder, nil, `{"channelId": "diary"}`, "channelId"},
		{model.KindChannel, nil, `{"modified": 1}`, "modified"},
	} {
		p, err := model.ParsePatch(c.kind, object(t, c.body), false, c.cur)
		if c.field == "" {
			if err != nil {
				t.Fatalf("%s %s: %v", c.kind, c.body, err)
			}
			if !p.IsEmpty() {
				t.Fatalf("%s %s: an unchanged read-only field changed something: %+v", c.kind, c.body, p)
			}
			continue
		}
		if got, want := errID(err), model.ErrInvalidParametersFormat; got != want {
			t.Fatalf("%s %s: got %q (%v), want %q", c.kind, c.body, got, err, want)
		}
		if got, want := errField(err), c.field; got != want {
			t.Fatalf("%s %s: field: got %q, want %q", c.kind, c.body, got, want)
		}
	}
}

func TestParsePatchLetsEventChangeChannelOnUpdate(t *testing.T) {
	p := mustPatch(t, model.KindEvent, `{"channelId": "health"}`, false, map[string]json.RawMessage{"channelId": json.RawMessage(`"diary"`)})
	if got, want := string(p.Fields["channelId"]), `"health"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestDecodeObject(t *testing.T) {
	for _, c := range []struct {
		name, body string
		id         string // "" = accepted
	}{
		{"object", `{"a": 1}`, ""},
		{"empty object", `{}`, ""},
		{"surrounding space", " \n\t{\"a\": [1, {\"b\": null}]} \n", ""},
		{"empty body", ``, model.ErrInvalidRequestStructure},
		{"only space", "  \n", model.ErrInvalidRequestStructure},
		{"malformed", `{"a": }`, model.ErrInvalidRequestStructure},
		{"unterminated", `{"a": 1`, model.ErrInvalidRequestStructure},
		{"single quotes", `{'a': 1}`, model.ErrInvalidRequestStructure},
		{"trailing comma", `{"a": 1,}`, model.ErrInvalidRequestStructure},
		{"not JSON", `name=x`, model.ErrInvalidRequestStructure},
		{"garbage after object", `{}x`, model.ErrInvalidRequestStructure},
		{"second object", `{} {}`, model.ErrInvalidRequestStructure},
		{"second value", `{"a": 1} 2`, model.ErrInvalidRequestStructure},
		{"closing bracket after", `{}]`, model.ErrInvalidRequestStructure},
		{"closing brace after", `{}}`, model.ErrInvalidRequestStructure},
		{"unfinished second object", `{}{`, model.ErrInvalidRequestStructure},
		{"array", `[]`, model.ErrInvalidParametersFormat},
		{"array of objects", `[{"a": 1}]`, model.ErrInvalidParametersFormat},
		{"number", `42`, model.ErrInvalidParametersFormat},
		{"string", `"x"`, model.ErrInvalidParametersFormat},
		{"bool", `true`, model.ErrInvalidParametersFormat},
		{"null", `null`, model.ErrInvalidParametersFormat},
	} {
		m, err := model.DecodeObject([]byte(c.body))
		if got, want := errID(err), c.id; got != want {
			t.Fatalf("%s (%q): got %q (%v), want %q", c.name, c.body, got, err, want)
		}
		if c.id == "" && m == nil {
			t.Fatalf("%s: got a nil map", c.name)
		}
	}
}

func TestCanonicalSortsKeysAndRefusesAnythingButOneValue(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{`{"b": 1, "a": {"d": 2, "c": 3}}`, `{"a":{"c":3,"d":2},"b":1}`},
		{` [1.50, 1e3, -0] `, `[1.50,1e3,-0]`},
		{`"é\u00e9"`, `"éé"`},
		{`null`, `null`},
	} {
		got, err := model.Canonical([]byte(c.in))
		if err != nil {
			t.Fatalf("Canonical(%s): %v", c.in, err)
		}
		if want := c.want; string(got) != want {
			t.Fatalf("Canonical(%s): got %s, want %s", c.in, got, want)
		}
	}
	for _, in := range []string{``, `{`, `{}x`, `{} {}`, `1 2`, `{}]`, `{}}`, `[1]]`} {
		if _, err := model.Canonical([]byte(in)); err == nil {
			t.Fatalf("Canonical(%q): got no error, want one", in)
		}
	}
}

var (
	v1 = crdt.Version{Time: 1000, Node: "srv"}
	v2 = crdt.Version{Time: 2000, Node: "srv"}
	v3 = crdt.Version{Time: 3000, Node: "srv"}
)

// apply turns a patch into a stamped delta and merges it into cur.
func apply(tb testing.TB, cur crdt.Doc, p *model.Patch, v crdt.Version, now float64, create bool) crdt.Doc {
	tb.Helper()
	d := p.Delta(cur, v)
	model.Stamp(&d, v, now, "acc-"+v.String(), create)
	return crdt.Merge(cur, d)
}

func TestDeltaReplacingTagsRemovesPresentTagsNotNamed(t *testing.T) {
	cur := apply(t, crdt.Doc{}, mustPatch(t, model.KindEvent, `{`+noteType+`, "tags": ["a", "b"]}`, true, nil), v1, 1, true)
	if got, want := cur.TagList(), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("after create: got %q, want %q", got, want)
	}
	p := mustPatch(t, model.KindEvent, `{"tags": ["b", "c"]}`, false, nil)
	d := p.Delta(cur, v2)
	for tag, present := range map[string]bool{"a": false, "b": true, "c": true} {
		e, ok := d.Tags[tag]
		if !ok || e.Present != present || e.V != v2 {
			t.Fatalf("delta tag %s: got %+v (in delta %v), want present=%v at %v", tag, e, ok, present, v2)
		}
	}
	cur = crdt.Merge(cur, d)
	if got, want := cur.TagList(), []string{"b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("after replace: got %q, want %q", got, want)
	}
	cur = apply(t, cur, mustPatch(t, model.KindEvent, `{"tags": []}`, false, nil), v3, 3, false)
	if got := cur.TagList(); len(got) != 0 {
		t.Fatalf("after clearing: got %q, want none", got)
	}
}

func TestDeltaAddsAndRemovesSingleTags(t *testing.T) {
	cur := apply(t, crdt.Doc{}, mustPatch(t, model.KindEvent, `{`+noteType+`, "tags": ["a", "b"]}`, true, nil), v1, 1, true)
	p := &model.Patch{Kind: model.KindEvent, AddTags: []string{"c"}, RemoveTags: []string{"a", "absent"}}
	if p.IsEmpty() {
		t.Fatalf("a patch with tag changes is empty")
	}
	cur = crdt.Merge(cur, p.Delta(cur, v2))
	if got, want := cur.TagList(), []string{"b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestDeltaOfEmptyPatchIsEmpty(t *testing.T) {
	p := mustPatch(t, model.KindEvent, `{}`, false, nil)
	if !p.IsEmpty() {
		t.Fatalf("IsEmpty: got false, want true")
	}
	if d := p.Delta(crdt.Doc{}, v1); !d.IsEmpty() {
		t.Fatalf("Delta: got %+v, want an empty doc", d)
	}
}

func TestStampSetsCreatedOnlyOnCreate(t *testing.T) {
	var d crdt.Doc
	model.Stamp(&d, v1, 10, "acc", true)
	for _, f := range []string{model.FieldCreated, model.FieldCreatedBy, model.FieldModified, model.FieldModifiedBy} {
		if got := d.Fields[f]; got.V != v1 || got.Val == nil {
			t.Fatalf("create: %s: got %+v, want a value at %v", f, got, v1)
		}
	}
	var u crdt.Doc
	model.Stamp(&u, v2, 20, "other", false)
	if _, ok := u.Fields[model.FieldCreated]; ok {
		t.Fatalf("update: created is set")
	}
	if got, want := string(u.Get(model.FieldModifiedBy)), `"other"`; got != want {
		t.Fatalf("update: modifiedBy: got %s, want %s", got, want)
	}
}

func TestPatchedEventRendersAsExpected(t *testing.T) {
	create := mustPatch(t, model.KindEvent, `{
		"channelId": "diary", "time": 1700000000, "duration": null, `+noteType+`,
		"value": {"text": "hi"}, "tags": [" run ", "swim", "run"], "description": "morning",
		"clientData": {"app": {"v": 1}, "x": null}, "id": "ignored", "created": 5}`, true, nil)
	doc := apply(t, crdt.Doc{}, create, v1, 100, true)

	ev := model.RenderEvent("cabcdefghijklmnopqrstuvwx", doc)
	if !model.Exists(doc) {
		t.Fatalf("Exists: got false after create")
	}
	for _, c := range []struct{ name, got, want string }{
		{"id", ev.ID, "cabcdefghijklmnopqrstuvwx"},
		{"channelId", ev.ChannelID, "diary"},
		{"duration", string(ev.Duration), `null`},
		{"type", string(ev.Type), `{"class":"note","format":"txt"}`},
		{"value", string(ev.Value), `{"text":"hi"}`},
		{"tags", strings.Join(ev.Tags, ","), "run,swim"},
		{"description", *ev.Description, "morning"},
		{"clientData.app", string(ev.ClientData["app"]), `{"v":1}`},
		{"createdBy", ev.CreatedBy, "acc-" + v1.String()},
	} {
		if c.got != c.want {
			t.Fatalf("after create: %s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if ev.FolderID != nil {
		t.Fatalf("after create: folderId: got %q, want nil", *ev.FolderID)
	}
	if _, ok := ev.ClientData["x"]; ok {
		t.Fatalf("after create: clientData.x is present, want removed")
	}
	if got, want := ev.Time, 1700000000.0; got != want {
		t.Fatalf("after create: time: got %v, want %v", got, want)
	}
	if got, want := ev.Created, 100.0; got != want {
		t.Fatalf("after create: created: got %v, want %v (the body's created is ignored)", got, want)
	}
	facts := model.EventFactsOf(doc)
	if !facts.Period || !facts.Running || facts.Channel != "diary" || facts.Folder != "" || facts.Time != 1700000000 {
		t.Fatalf("after create: facts: got %+v, want a running period in diary without folder", facts)
	}

	update := mustPatch(t, model.KindEvent, `{"folderId": "work", "duration": 60, "description": null,
		"clientData": {"app": null, "more": true}, "tags": ["swim", "bike"], "created": 100}`, false,
		map[string]json.RawMessage{"created": json.RawMessage(`100`)})
	doc = apply(t, doc, update, v2, 200, false)

	ev = model.RenderEvent("cabcdefghijklmnopqrstuvwx", doc)
	if ev.FolderID == nil || *ev.FolderID != "work" {
		t.Fatalf("after update: folderId: got %v, want work", ev.FolderID)
	}
	if got, want := string(ev.Duration), `60`; got != want {
		t.Fatalf("after update: duration: got %s, want %s", got, want)
	}
	if ev.Description != nil {
		t.Fatalf("after update: description: got %q, want nil", *ev.Description)
	}
	if _, ok := ev.ClientData["app"]; ok {
		t.Fatalf("after update: clientData.app is present, want removed")
	}
	if got, want := string(ev.ClientData["more"]), `true`; got != want {
		t.Fatalf("after update: clientData.more: got %s, want %s", got, want)
	}
	if got, want := strings.Join(ev.Tags, ","), "bike,swim"; got != want {
		t.Fatalf("after update: tags: got %q, want %q", got, want)
	}
	if got, want := ev.Created, 100.0; got != want {
		t.Fatalf("after update: created: got %v, want %v", got, want)
	}
	if got, want := ev.Modified, 200.0; got != want {
		t.Fatalf("after update: modified: got %v, want %v", got, want)
	}
	if got, want := ev.ModifiedBy, "acc-"+v2.String(); got != want {
		t.Fatalf("after update: modifiedBy: got %q, want %q", got, want)
	}
	facts = model.EventFactsOf(doc)
	if !facts.Period || facts.Running || facts.Duration != 60 || facts.Folder != "work" || !slices.Equal(facts.Tags, []string{"bike", "swim"}) {
		t.Fatalf("after update: facts: got %+v", facts)
	}
	// An older concurrent write loses to the newer one field by field.
	stale := mustPatch(t, model.KindEvent, `{"folderId": "home", "value": 7}`, false, nil)
	doc = apply(t, doc, stale, crdt.Version{Time: 1500, Node: "r1"}, 150, false)
	ev = model.RenderEvent("cabcdefghijklmnopqrstuvwx", doc)
	if got, want := *ev.FolderID, "work"; got != want {
		t.Fatalf("after stale write: folderId: got %q, want %q", got, want)
	}
	if got, want := string(ev.Value), `7`; got != want {
		t.Fatalf("after stale write: value: got %s, want %s (no newer write to it)", got, want)
	}
}

func TestRenderedEventAlwaysHasFolderIDAndTags(t *testing.T) {
	doc := apply(t, crdt.Doc{}, mustPatch(t, model.KindEvent, `{"channelId": "diary", "time": 1, `+noteType+`}`, true, nil), v1, 1, true)
	raw, err := json.Marshal(model.Render(model.KindEvent, "cabcdefghijklmnopqrstuvwx", doc))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{"folderId": `null`, "tags": `[]`, "trashed": `false`, "time": `1`} {
		if got := string(m[field]); got != want {
			t.Fatalf("%s: got %s, want %s (in %s)", field, got, want, raw)
		}
	}
	for _, absent := range []string{"duration", "value", "description", "clientData", "attachments"} {
		if _, ok := m[absent]; ok {
			t.Fatalf("%s is present in a mark event without it: %s", absent, raw)
		}
	}
	if facts := model.EventFactsOf(doc); facts.Period || facts.Running {
		t.Fatalf("facts: got %+v, want a mark", facts)
	}
}

func TestPatchedFolderAndChannelRender(t *testing.T) {
	fdoc := apply(t, crdt.Doc{}, mustPatch(t, model.KindFolder, `{"name": " Meetings ", "parentId": "work", "hidden": true}`, true, nil), v1, 1, true)
	fdoc = crdt.Merge(fdoc, crdt.Doc{Fields: map[string]crdt.Field{"channelId": {V: v1, Val: model.JSONString("diary")}}})
	f := model.RenderFolder("meetings", fdoc)
	if f.Name != "Meetings" || f.ParentID == nil || *f.ParentID != "work" || !f.Hidden || f.ChannelID != "diary" {
		t.Fatalf("folder: got %+v", f)
	}
	if got, want := model.FolderFactsOf(fdoc), (model.FolderFacts{Channel: "diary", Parent: "work", Name: "Meetings", Hidden: true}); got != want {
		t.Fatalf("folder facts: got %+v, want %+v", got, want)
	}
	fdoc = apply(t, fdoc, mustPatch(t, model.KindFolder, `{"parentId": null}`, false, nil), v2, 2, false)
	if f := model.RenderFolder("meetings", fdoc); f.ParentID != nil {
		t.Fatalf("moved to root: parentId: got %q, want nil", *f.ParentID)
	}
	if got, want := model.FolderFactsOf(fdoc).Parent, ""; got != want {
		t.Fatalf("moved to root: facts parent: got %q, want %q", got, want)
	}

	cdoc := apply(t, crdt.Doc{}, mustPatch(t, model.KindChannel, `{"name": "Diary", "enforceNoEventsOverlap": true, "clientData": {"k": "v"}}`, true, nil), v1, 1, true)
	c := model.RenderChannel("diary", cdoc)
	if c.Name != "Diary" || !c.EnforceNoEventsOverlap || string(c.ClientData["k"]) != `"v"` || c.Trashed {
		t.Fatalf("channel: got %+v", c)
	}
	cdoc = apply(t, cdoc, mustPatch(t, model.KindChannel, `{"trashed": true, "clientData": {"k": null}}`, false, nil), v2, 2, false)
	c = model.RenderChannel("diary", cdoc)
	if !c.Trashed || c.ClientData != nil {
		t.Fatalf("channel after update: got %+v, want trashed without clientData", c)
	}
}

func TestExistsNeedsCreatedAndNoTombstone(t *testing.T) {
	var d crdt.Doc
	if model.Exists(d) {
		t.Fatalf("empty doc exists")
	}
	d = apply(t, d, mustPatch(t, model.KindChannel, `{"name": "D"}`, true, nil), v1, 1, true)
	if !model.Exists(d) {
		t.Fatalf("created doc does not exist")
	}
	d = crdt.Merge(d, crdt.Doc{Deleted: v2})
	if model.Exists(d) {
		t.Fatalf("deleted doc exists")
	}
}

func TestSortByNameIsCaseInsensitiveWithTiesByID(t *testing.T) {
	type item struct{ id, name string }
	items := []item{{"3", "beta"}, {"2", "Alpha"}, {"1", "alpha"}, {"0", "Beta"}, {"9", "_x"}}
	model.SortByName(items, func(i item) string { return i.name }, func(i item) string { return i.id })
	var got []string
	for _, i := range items {
		got = append(got, i.id)
	}
	if want := []string{"9", "1", "2", "0", "3"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestKindValid(t *testing.T) {
	for k, want := range map[model.Kind]bool{model.KindChannel: true, model.KindFolder: true, model.KindEvent: true, "user": false, "": false} {
		if got := k.Valid(); got != want {
			t.Fatalf("%q.Valid(): got %v, want %v", k, got, want)
		}
	}
}
