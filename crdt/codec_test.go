package crdt_test

import (
	"bytes"
	"math"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/internal/mp"
)

// plainDoc has Doc's msgpack tags but not its hand codec: msgpack encodes
// and decodes it by reflection, the reference the hand codec must match.
type plainDoc struct {
	Fields  map[string]crdt.Field `msgpack:"f,omitempty"`
	Tags    map[string]crdt.Elem  `msgpack:"g,omitempty"`
	Data    map[string]crdt.Field `msgpack:"d,omitempty"`
	Files   map[string]crdt.Field `msgpack:"a,omitempty"`
	Deleted crdt.Version          `msgpack:"del,omitempty"`
}

// genWideDoc draws Docs over the whole range of every encoded width: map
// headers of 16+ entries, long strings and values, extreme integers.
func genWideDoc() *rapid.Generator[crdt.Doc] {
	version := rapid.Custom(func(t *rapid.T) crdt.Version {
		return crdt.Version{
			Time:    rapid.OneOf(rapid.Int64(), rapid.Int64Range(-40, 300), rapid.SampledFrom([]int64{math.MinInt64, math.MaxInt64, -129, -32769, 1 << 40})).Draw(t, "time"),
			Counter: rapid.OneOf(rapid.Uint32(), rapid.Uint32Range(0, 300)).Draw(t, "counter"),
			Node:    rapid.StringN(0, 300, -1).Draw(t, "node"),
		}
	})
	field := rapid.Custom(func(t *rapid.T) crdt.Field {
		return crdt.Field{V: version.Draw(t, "v"), Val: rapid.OneOf(rapid.SliceOfN(rapid.Byte(), 0, 40), rapid.SliceOfN(rapid.Byte(), 250, 70000)).Draw(t, "val")}
	})
	key := rapid.StringN(0, 40, -1)
	return rapid.Custom(func(t *rapid.T) crdt.Doc {
		d := crdt.Doc{
			Fields: rapid.MapOfN(key, field, 0, 20).Draw(t, "fields"),
			Tags: rapid.MapOfN(key, rapid.Custom(func(t *rapid.T) crdt.Elem {
				return crdt.Elem{V: version.Draw(t, "v"), Present: rapid.Bool().Draw(t, "p")}
			}), 0, 20).Draw(t, "tags"),
			Data:  rapid.MapOfN(key, field, 0, 3).Draw(t, "data"),
			Files: rapid.MapOfN(key, field, 0, 2).Draw(t, "files"),
		}
		if rapid.Bool().Draw(t, "deleted") {
			d.Deleted = version.Draw(t, "del")
		}
		return d
	})
}

// normal maps what the encoding cannot tell apart (empty and nil maps,
// empty and nil values) to one form.
func normal(d crdt.Doc) crdt.Doc {
	fields := func(m map[string]crdt.Field) map[string]crdt.Field {
		if len(m) == 0 {
			return nil
		}
		out := map[string]crdt.Field{}
		for k, f := range m {
			if len(f.Val) == 0 {
				f.Val = nil
			}
			out[k] = f
		}
		return out
	}
	out := crdt.Doc{Fields: fields(d.Fields), Data: fields(d.Data), Files: fields(d.Files), Deleted: d.Deleted}
	if len(d.Tags) > 0 {
		out.Tags = d.Tags
	}
	return out
}

func reflectEncode(t interface{ Fatal(...any) }, v any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDocCodecMatchesReflection(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := genWideDoc().Draw(t, "doc")
		want := normal(d)

		hand := crdt.AppendDoc(nil, &d)
		var p plainDoc
		if err := msgpack.Unmarshal(hand, &p); err != nil {
			t.Fatalf("reflection cannot read the hand encoding: %v", err)
		}
		if got := normal(crdt.Doc(p)); !reflect.DeepEqual(got, want) {
			t.Fatalf("hand encoding read by reflection:\n got %+v\nwant %+v", got, want)
		}

		refl := reflectEncode(t, plainDoc(d))
		r := mp.NewReader(refl)
		got, err := crdt.ReadDoc(r)
		if err != nil || r.Len() != 0 {
			t.Fatalf("ReadDoc of the reflection encoding: %v, %d bytes left", err, r.Len())
		}
		if !reflect.DeepEqual(normal(got), want) {
			t.Fatalf("reflection encoding read by hand:\n got %+v\nwant %+v", normal(got), want)
		}

		// With at most one key per map the order is fixed: same bytes.
		if len(d.Fields) <= 1 && len(d.Tags) <= 1 && len(d.Data) <= 1 && len(d.Files) <= 1 && !bytes.Equal(hand, refl) {
			t.Fatalf("encodings differ:\nhand %x\nrefl %x", hand, refl)
		}

		// Through msgpack (EncodeMsgpack/DecodeMsgpack), inside a struct.
		type holder struct {
			A   string   `msgpack:"a"`
			Doc crdt.Doc `msgpack:"doc"`
			Z   int      `msgpack:"z"`
		}
		in := holder{A: "x", Doc: d, Z: 7}
		var out holder
		if err := msgpack.Unmarshal(reflectEncode(t, &in), &out); err != nil {
			t.Fatal(err)
		}
		if out.A != "x" || out.Z != 7 || !reflect.DeepEqual(normal(out.Doc), want) {
			t.Fatalf("round trip through msgpack: %+v", out)
		}
	})
}

func TestReadDocRejectsHostileInput(t *testing.T) {
	cases := map[string][]byte{
		"truncated":                {0x81, 0xa1, 'f'},
		"map of 4 billion fields":  {0x81, 0xa1, 'f', 0xdf, 0xff, 0xff, 0xff, 0xff},
		"huge value length":        {0x81, 0xa1, 'f', 0x81, 0xa1, 'k', 0x81, 0xa1, 'x', 0xc6, 0x7f, 0xff, 0xff, 0xff},
		"array where a map goes":   {0x91, 0x01},
		"string where an int goes": {0x81, 0xa3, 'd', 'e', 'l', 0x81, 0xa1, 't', 0xa1, 'x'},
		"deep unknown key":         append([]byte{0x81, 0xa1, 'q'}, append(bytes.Repeat([]byte{0x91}, 40), 0x01)...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := crdt.ReadDoc(mp.NewReader(b)); err == nil {
				t.Fatalf("ReadDoc(%x) accepted hostile input", b)
			}
			var d crdt.Doc
			if err := msgpack.Unmarshal(b, &d); err == nil {
				t.Fatalf("Unmarshal(%x) accepted hostile input", b)
			}
		})
	}
}

func FuzzReadDoc(f *testing.F) {
	d := crdt.Doc{Fields: map[string]crdt.Field{"name": {V: crdt.Version{Time: 5, Counter: 1, Node: "r1"}, Val: []byte(`"x"`)}},
		Tags: map[string]crdt.Elem{"t": {V: crdt.Version{Time: -3, Node: "s"}, Present: true}}, Deleted: crdt.Version{Time: 9, Node: "n"}}
	f.Add(crdt.AppendDoc(nil, &d))
	f.Add([]byte{0xc0})
	f.Add([]byte{0x81, 0xa1, 'q', 0xc7, 0x01, 0x05, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := mp.NewReader(b)
		d, err := crdt.ReadDoc(r)
		if err != nil {
			return
		}
		again := crdt.AppendDoc(nil, &d)
		d2, err := crdt.ReadDoc(mp.NewReader(again))
		if err != nil || !reflect.DeepEqual(normal(d2), normal(d)) {
			t.Fatalf("re-encoded doc reads back differently: %v", err)
		}
	})
}

func TestScanDocAgreesWithTheDecodedDoc(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := rapid.OneOf(genDoc(), genWideDoc()).Draw(t, "doc")
		field := rapid.SampledFrom(append([]string{"", "absent"}, fieldNames...)).Draw(t, "field")
		b := crdt.AppendDoc(nil, &d)
		r := mp.NewReader(b)
		info, err := crdt.ScanDoc(r, field)
		if err != nil || r.Len() != 0 {
			t.Fatalf("ScanDoc: %v, %d bytes left", err, r.Len())
		}
		// Has sees a value of length 0 as present; the encoding cannot.
		has := len(d.Fields[field].Val) > 0
		want := crdt.DocInfo{Max: d.MaxVersion(), Deleted: d.IsDeleted(), HasField: has}
		if info != want {
			t.Fatalf("ScanDoc = %+v, want %+v", info, want)
		}
	})
}
