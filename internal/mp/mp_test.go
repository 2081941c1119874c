package mp_test

import (
	"bytes"
	"math"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/internal/mp"
)

func libEncode(t interface{ Fatal(...any) }, v any, compact bool) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(compact)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAppendMatchesTheLibraryAndReaderReadsIt(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		i := rapid.OneOf(rapid.Int64(), rapid.Int64Range(-300, 300)).Draw(t, "i")
		u := rapid.OneOf(rapid.Uint64(), rapid.Uint64Range(0, 70000)).Draw(t, "u")
		s := rapid.OneOf(rapid.StringN(0, 40, -1), rapid.StringN(250, 70000, -1)).Draw(t, "s")
		f := rapid.Float64().Draw(t, "f")
		n := rapid.IntRange(0, 70000).Draw(t, "n")

		check := func(name string, hand, lib []byte) {
			if !bytes.Equal(hand, lib) {
				t.Fatalf("%s: hand %x, library %x", name, hand[:min(len(hand), 16)], lib[:min(len(lib), 16)])
			}
		}
		check("int", mp.AppendInt(nil, i), libEncode(t, i, true))
		check("uint", mp.AppendUint(nil, u), libEncode(t, u, true))
		check("str", mp.AppendStr(nil, s), libEncode(t, s, true))
		check("bin", mp.AppendBin(nil, []byte(s)), libEncode(t, []byte(s), true))
		check("float", mp.AppendFloat64(nil, f), libEncode(t, f, true))

		// The reader takes compact and full-width integers alike.
		for _, compact := range []bool{true, false} {
			if got, err := mp.NewReader(libEncode(t, i, compact)).Int(); err != nil || got != i {
				t.Fatalf("Int: %d, %v; want %d", got, err, i)
			}
			if got, err := mp.NewReader(libEncode(t, u, compact)).Uint(); err != nil || got != u {
				t.Fatalf("Uint: %d, %v; want %d", got, err, u)
			}
			if got, err := mp.NewReader(libEncode(t, float32(f), compact)).Float(); err != nil || !(got == float64(float32(f)) || math.IsNaN(got)) {
				t.Fatalf("Float32: %v, %v", got, err)
			}
		}
		if got, err := mp.NewReader(libEncode(t, s, true)).String(); err != nil || got != s {
			t.Fatalf("String: %v", err)
		}
		if got, err := mp.NewReader(mp.AppendMapLen(make([]byte, 0, 2*n+5), n)).MapLen(); err == nil || (n == 0 && got != 0) {
			if n != 0 {
				t.Fatalf("a map header of %d entries with no entries was accepted", n)
			}
		}
		var hdr bytes.Buffer
		if err := msgpack.NewEncoder(&hdr).EncodeArrayLen(n); err != nil {
			t.Fatal(err)
		}
		check("array header", mp.AppendArrayLen(nil, n), hdr.Bytes())
		b := hdr.Bytes()
		b = append(b, bytes.Repeat([]byte{0x01}, n)...)
		r := mp.NewReader(b)
		if got, err := r.ArrayLen(); err != nil || got != n {
			t.Fatalf("ArrayLen: %d, %v; want %d", got, err, n)
		}
	})
}

func TestSkipPassesEveryLibraryValue(t *testing.T) {
	v := map[string]any{
		"a": []any{int64(-5), uint64(1 << 63), 1.5, float32(2.5), "s", []byte{1, 2}, nil, true, false},
		"b": map[string]any{"c": []any{map[string]any{}}, "d": bytes.Repeat([]byte{'x'}, 70000)},
		"e": msgpack.RawMessage{0xd4, 0x01, 0x02},
	}
	b := append(libEncode(t, v, false), 0x07)
	r := mp.NewReader(b)
	if err := r.Skip(); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Int(); err != nil || got != 7 || r.Len() != 0 {
		t.Fatalf("after Skip: %d, %v, %d bytes left", got, err, r.Len())
	}
}

func TestReaderRejectsHostileInput(t *testing.T) {
	cases := map[string]func(*mp.Reader) error{
		"\xdf\xff\xff\xff\xff":                 func(r *mp.Reader) error { _, err := r.MapLen(); return err },
		"\xdd\x00\x10\x00\x00\x01":             func(r *mp.Reader) error { _, err := r.ArrayLen(); return err },
		"\xdb\x7f\xff\xff\xffabc":              func(r *mp.Reader) error { _, err := r.Bytes(); return err },
		"\xcf\xff\xff\xff\xff\xff\xff\xff\xff": func(r *mp.Reader) error { _, err := r.Int(); return err },
		"\xff":                                 func(r *mp.Reader) error { _, err := r.Uint(); return err },
		"\xc9\xff\xff\xff\xff\x01":             func(r *mp.Reader) error { return r.Skip() },
		string(bytes.Repeat([]byte{0x91}, 20)): func(r *mp.Reader) error { return r.Skip() },
		"\xc1":                                 func(r *mp.Reader) error { return r.Skip() },
		"":                                     func(r *mp.Reader) error { _, err := r.Bool(); return err },
	}
	for in, read := range cases {
		if err := read(mp.NewReader([]byte(in))); err == nil {
			t.Errorf("%x: accepted", in)
		}
	}
}

func TestInternSharesRecurringStrings(t *testing.T) {
	a := mp.Intern([]byte("modifiedBy"))
	b := mp.Intern([]byte("modifiedBy"))
	if a != "modifiedBy" || b != a {
		t.Fatalf("Intern: %q %q", a, b)
	}
	if n := testing.AllocsPerRun(100, func() { mp.Intern([]byte("modifiedBy")) }); n != 0 {
		t.Fatalf("a recurring string allocated %v times", n)
	}
}
