package model

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"testing"

	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/crdt"
)

// rawJSON draws the inputs the fast paths see: plain and tricky strings,
// numbers in every JSON form and some that are not JSON, event types,
// literals, and arbitrary bytes.
func rawJSON() *rapid.Generator[[]byte] {
	return rapid.OneOf(
		rapid.Custom(func(t *rapid.T) []byte {
			b, _ := json.Marshal(rapid.String().Draw(t, "s"))
			return b
		}),
		rapid.Custom(func(t *rapid.T) []byte {
			return []byte(`"` + rapid.StringMatching(`[ -~]{0,30}`).Draw(t, "ascii") + `"`)
		}),
		rapid.Custom(func(t *rapid.T) []byte {
			return []byte(rapid.StringMatching(`-?(0|[1-9][0-9]{0,25})?(\.[0-9]{0,5})?([eE][+-]?[0-9]{0,4})?`).Draw(t, "num"))
		}),
		rapid.Custom(func(t *rapid.T) []byte {
			return strconv.AppendFloat(nil, rapid.Float64().Draw(t, "f"), rapid.SampledFrom([]byte("efgE")).Draw(t, "fmt"), -1, 64)
		}),
		rapid.Custom(func(t *rapid.T) []byte {
			return []byte(`{"class":"` + rapid.StringMatching(`[a-zA-Z0-9_-]{0,6}`).Draw(t, "c") + `","format":"` + rapid.StringMatching(`[a-z0-9 -]{0,6}`).Draw(t, "f") + `"}` + rapid.SampledFrom([]string{"", " ", "x"}).Draw(t, "tail"))
		}),
		rapid.SampledFrom([][]byte{[]byte("true"), []byte("false"), []byte("null"), []byte(" 1"), []byte("1 "), []byte("+1"), []byte("01"), []byte(".5"), []byte("5."), []byte("1e400"), []byte("-0"), []byte(`"\u003c"`), []byte(`" padded "`), []byte(`""`), []byte("0x10"), []byte("Infinity"), []byte("NaN")}),
		rapid.SliceOfN(rapid.Byte(), 0, 12),
	)
}

// TestFastPathsAnswerAsTheSlowPaths: for every field type, each input
// parses to the same value or the same refusal with the fast paths on and
// off, and Canonical likewise.
func TestFastPathsAnswerAsTheSlowPaths(t *testing.T) {
	defer func() { fastPaths = true }()
	fields := []field{{"name", tString}, {"other", tString}, {"description", tStringOrNull}, {"folderId", tStringOrNull},
		{"time", tNumber}, {"duration", tDuration}, {"type", tType}, {"value", tAny}, {"trashed", tBool}}
	rapid.Check(t, func(t *rapid.T) {
		// Fifty inputs a check: rapid's default hundred checks alone
		// would rarely draw the one byte that sets the paths apart.
		for range 50 {
			compare(t, rawJSON().Draw(t, "raw"), rapid.SampledFrom(fields).Draw(t, "field"))
		}
	})
}

type field struct {
	name string
	ft   fieldType
}

func compare(t *rapid.T, raw []byte, f field) {
	{
		run := func(fast bool) (Patch, string) {
			fastPaths = fast
			var p Patch
			err := p.parseField(f.name, f.ft, raw)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			return p, msg
		}
		fp, ferr := run(true)
		sp, serr := run(false)
		if ferr != serr || !reflect.DeepEqual(fp, sp) {
			t.Fatalf("%s %q: fast %q %v, slow %q %v", f.name, raw, fp.Fields, ferr, sp.Fields, serr)
		}
		fastPaths = true
		fc, ferrc := Canonical(raw)
		fastPaths = false
		sc, serrc := Canonical(raw)
		if (ferrc == nil) != (serrc == nil) || !bytes.Equal(fc, sc) {
			t.Fatalf("Canonical(%q): fast %q %v, slow %q %v", raw, fc, ferrc, sc, serrc)
		}
	}
}

// TestJSONNumberAndStringMatchEncodingJSON: the hand encoders of numbers and
// strings write what json.Marshal writes.
func TestJSONNumberAndStringMatchEncodingJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := rapid.OneOf(rapid.Float64(), rapid.Float64Range(-1e-5, 1e-5), rapid.Float64Range(1e20, 1e22),
			rapid.SampledFrom([]float64{0, math.Copysign(0, -1), 1e-6, 1e21, 1e-7, 123456789.125, 1.7976931348623157e308, 5e-324})).Draw(t, "f")
		want, _ := json.Marshal(f)
		if got := JSONNumber(f); string(got) != string(want) {
			t.Fatalf("JSONNumber(%v) = %s, json.Marshal %s", f, got, want)
		}
		s := rapid.OneOf(rapid.String(), rapid.StringMatching(`[ -~]{0,40}`)).Draw(t, "s")
		want, _ = json.Marshal(s)
		if got := JSONString(s); string(got) != string(want) {
			t.Fatalf("JSONString(%q) = %s, json.Marshal %s", s, got, want)
		}
	})
}

// TestFieldReadersAnswerAsTheSlowPaths: StringField and NumberField read
// every stored value as encoding/json does.
func TestFieldReadersAnswerAsTheSlowPaths(t *testing.T) {
	defer func() { fastPaths = true }()
	rapid.Check(t, func(t *rapid.T) {
		for range 50 {
			raw := rawJSON().Draw(t, "raw")
			d := crdt.Doc{Fields: map[string]crdt.Field{"f": {Val: raw}}}
			fastPaths = true
			s := StringField(d, "f")
			f, ok := NumberField(d, "f")
			fastPaths = false
			s2 := StringField(d, "f")
			f2, ok2 := NumberField(d, "f")
			fastPaths = true
			if s != s2 || ok != ok2 || f != f2 && !(math.IsNaN(f) && math.IsNaN(f2)) {
				t.Fatalf("%q: fast %q %v %v, slow %q %v %v", raw, s, f, ok, s2, f2, ok2)
			}
		}
	})
}
