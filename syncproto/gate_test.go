package syncproto_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/pryvsync/pryvsync/syncproto"
)

// validExample is one well-formed frame and the type byte it must start with, so that the
// table provably covers every msgpack format family.
type validExample struct {
	name  string
	frame []byte
	code  byte
}

// validExamples returns one frame per msgpack format (and a few composites). Frames come
// from the msgpack encoder; the 32-bit container headers with small counts are written by
// hand because no encoder emits them, and the tests check msgpack decodes them too.
func validExamples(tb testing.TB) []validExample {
	tb.Helper()
	enc := func(fn func(e *msgpack.Encoder) error) []byte {
		tb.Helper()
		var buf bytes.Buffer
		if err := fn(msgpack.NewEncoder(&buf)); err != nil {
			tb.Fatalf("encode: %v", err)
		}
		return buf.Bytes()
	}
	marshal := func(v any) []byte {
		tb.Helper()
		b, err := msgpack.Marshal(v)
		if err != nil {
			tb.Fatalf("marshal %T: %v", v, err)
		}
		return b
	}
	ext := func(id int8, payload []byte) []byte {
		return enc(func(e *msgpack.Encoder) error {
			if err := e.EncodeExtHeader(id, len(payload)); err != nil {
				return err
			}
			_, err := e.Writer().Write(payload)
			return err
		})
	}
	// nNils encodes a container header for n elements followed by n nils (maps use the
	// empty string as every key), the smallest body a count of n can have.
	nNils := func(isMap bool, n int) []byte {
		return enc(func(e *msgpack.Encoder) error {
			if isMap {
				if err := e.EncodeMapLen(n); err != nil {
					return err
				}
			} else if err := e.EncodeArrayLen(n); err != nil {
				return err
			}
			for range n {
				if isMap {
					if err := e.EncodeString(""); err != nil {
						return err
					}
				}
				if err := e.EncodeNil(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	ints := func(n int) []int8 {
		s := make([]int8, n)
		for i := range s {
			s[i] = int8(i % 100)
		}
		return s
	}
	keys := func(n int) map[string]int8 {
		m := make(map[string]int8, n)
		for i := range n {
			m[fmt.Sprint("k", i)] = int8(i % 100)
		}
		return m
	}
	type change struct {
		ID      string         `msgpack:"id"`
		Seq     uint64         `msgpack:"seq"`
		Type    string         `msgpack:"type"`
		Deleted bool           `msgpack:"deleted"`
		Time    float64        `msgpack:"time"`
		Tags    []string       `msgpack:"tags"`
		Content map[string]any `msgpack:"content"`
		Attach  []byte         `msgpack:"attach"`
		When    time.Time      `msgpack:"when"`
	}

	return []validExample{
		{"positive fixint", enc(func(e *msgpack.Encoder) error { return e.EncodeInt(5) }), 0x05},
		{"negative fixint", enc(func(e *msgpack.Encoder) error { return e.EncodeInt(-5) }), 0xfb},
		{"nil", marshal(nil), msgpcode.Nil},
		{"false", marshal(false), msgpcode.False},
		{"true", marshal(true), msgpcode.True},
		{"float32", marshal(float32(1.5)), msgpcode.Float},
		{"float64", marshal(2.25), msgpcode.Double},
		{"uint8", marshal(uint8(200)), msgpcode.Uint8},
		{"uint16", marshal(uint16(60000)), msgpcode.Uint16},
		{"uint32", marshal(uint32(4e9)), msgpcode.Uint32},
		{"uint64", marshal(uint64(1) << 63), msgpcode.Uint64},
		{"int8", marshal(int8(-100)), msgpcode.Int8},
		{"int16", marshal(int16(-30000)), msgpcode.Int16},
		{"int32", marshal(int32(-2e9)), msgpcode.Int32},
		{"int64", marshal(int64(-1) << 62), msgpcode.Int64},
		{"empty fixstr", marshal(""), 0xa0},
		{"fixstr", marshal(strings.Repeat("s", 31)), 0xbf},
		{"str8", marshal(strings.Repeat("s", 32)), msgpcode.Str8},
		{"str16", marshal(strings.Repeat("s", 256)), msgpcode.Str16},
		{"str32", marshal(strings.Repeat("s", 1<<16)), msgpcode.Str32},
		{"bin8", marshal([]byte{}), msgpcode.Bin8},
		{"bin16", marshal(make([]byte, 256)), msgpcode.Bin16},
		{"bin32", marshal(make([]byte, 1<<16)), msgpcode.Bin32},
		{"empty fixarray", marshal([]int8{}), 0x90},
		{"fixarray", marshal(ints(15)), 0x9f},
		{"array16", marshal(ints(16)), msgpcode.Array16},
		{"array32", nNils(false, 1<<16), msgpcode.Array32},
		{"array32 non-minimal", []byte{msgpcode.Array32, 0, 0, 0, 2, 0x01, 0x02}, msgpcode.Array32},
		{"empty fixmap", marshal(map[string]int8{}), 0x80},
		{"fixmap", marshal(keys(15)), 0x8f},
		{"map16", marshal(keys(16)), msgpcode.Map16},
		{"map32", nNils(true, 1<<16), msgpcode.Map32},
		{"map32 non-minimal", []byte{msgpcode.Map32, 0, 0, 0, 1, 0xa1, 'k', 0xc0}, msgpcode.Map32},
		{"map with non-string keys", []byte{0x82, 0x01, 0xc0, 0x91, 0x90, 0x80}, 0x82},
		{"fixext1", ext(7, []byte{1}), msgpcode.FixExt1},
		{"fixext2", ext(7, []byte{1, 2}), msgpcode.FixExt2},
		{"fixext4 (time)", marshal(time.Unix(1700000000, 0)), msgpcode.FixExt4},
		{"fixext8 (time)", marshal(time.Unix(1700000000, 5)), msgpcode.FixExt8},
		{"fixext16", ext(-7, make([]byte, 16)), msgpcode.FixExt16},
		{"ext8 empty", ext(7, nil), msgpcode.Ext8},
		{"ext8", ext(7, make([]byte, 3)), msgpcode.Ext8},
		{"ext16", ext(7, make([]byte, 256)), msgpcode.Ext16},
		{"ext32", ext(7, make([]byte, 1<<16)), msgpcode.Ext32},
		{"change", marshal(change{
			ID: "c1", Seq: 42, Type: "note/txt", Time: 1.7e9, Tags: []string{"a", "b"},
			Content: map[string]any{"text": "hello", "n": []any{1, "x", nil, map[string]any{}}},
			Attach:  []byte{1, 2, 3}, When: time.Unix(1700000000, 0).UTC(),
		}), 0x89},
	}
}

func TestValidateAcceptsEveryMsgpackType(t *testing.T) {
	for _, ex := range validExamples(t) {
		t.Run(ex.name, func(t *testing.T) {
			if got, want := ex.frame[0], ex.code; got != want {
				t.Fatalf("example starts with 0x%02x, want 0x%02x", got, want)
			}
			if err := syncproto.Validate(ex.frame, syncproto.DefaultMaxDepth); err != nil {
				t.Fatalf("Validate: got %v, want nil", err)
			}
			// The example must be valid for msgpack itself, not just for Validate.
			if err := skipWhole(ex.frame); err != nil {
				t.Fatalf("msgpack rejects the example: %v", err)
			}
		})
	}
}

func TestValidateDoesNotAllocateForAcceptedFrames(t *testing.T) {
	for _, ex := range validExamples(t) {
		allocs := testing.AllocsPerRun(10, func() {
			if err := syncproto.Validate(ex.frame, syncproto.DefaultMaxDepth); err != nil {
				t.Fatalf("%s: %v", ex.name, err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: got %v allocations, want 0", ex.name, allocs)
		}
	}
}

func TestValidateRejectsEveryTruncatedPrefix(t *testing.T) {
	for _, ex := range validExamples(t) {
		for i := range len(ex.frame) {
			if err := syncproto.Validate(ex.frame[:i], syncproto.DefaultMaxDepth); !errors.Is(err, syncproto.ErrMalformed) {
				t.Fatalf("%s: prefix of %d/%d bytes: got %v, want ErrMalformed", ex.name, i, len(ex.frame), err)
			}
		}
	}
}

// hostileArray is research/go-stack.md §0.1's 8-byte frame {"c": array32(50M)}: decoded into a
// struct with a []T field it made msgpack allocate 5.3 GB.
var hostileArray = []byte{0x81, 0xa1, 'c', msgpcode.Array32, 0x02, 0xfa, 0xf0, 0x80}

func TestValidateRejectsDeclaredLengthsBeyondFrame(t *testing.T) {
	tests := []struct {
		name   string
		frame  []byte
		reason string
	}{
		{"array32 of 50M in a map", hostileArray, "offset 3: array32 declares 50000000 elements, 0 bytes remain"},
		{"array32 of 2^32-1", []byte{msgpcode.Array32, 0xff, 0xff, 0xff, 0xff, 0xc0}, "array32 declares 4294967295 elements"},
		{"array16 beyond frame", []byte{msgpcode.Array16, 0x00, 0x03, 0xc0, 0xc0}, "array16 declares 3 elements, 2 bytes remain"},
		{"fixarray beyond frame", []byte{0x93, 0xc0, 0xc0}, "fixarray declares 3 elements"},
		{"map32 of 2^32-1", []byte{msgpcode.Map32, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xc0}, "map32 declares 8589934590 elements"},
		{"map32 needs two bytes per entry", []byte{msgpcode.Map32, 0, 0, 0, 2, 0xa0, 0xc0, 0xa0}, "map32 declares 4 elements, 3 bytes remain"},
		{"map16 beyond frame", []byte{msgpcode.Map16, 0x01, 0x00, 0xa0, 0xc0}, "map16 declares 512 elements"},
		{"fixmap beyond frame", []byte{0x82, 0xa0, 0xc0, 0xa0}, "fixmap declares 4 elements"},
		{"str32 beyond frame", []byte{msgpcode.Str32, 0x7f, 0xff, 0xff, 0xff, 's'}, "str32 declares 2147483647 bytes, 1 remain"},
		{"bin32 beyond frame", []byte{msgpcode.Bin32, 0xff, 0xff, 0xff, 0xff, 0}, "bin32 declares 4294967295 bytes, 1 remain"},
		{"ext32 beyond frame", []byte{msgpcode.Ext32, 0, 1, 0, 0, 7, 0}, "ext32 declares 65537 bytes, 2 remain"},
		{"str16 beyond frame", []byte{msgpcode.Str16, 0x01, 0x00, 's'}, "str16 needs 259 bytes, 4 remain"},
		{"bin16 beyond frame", []byte{msgpcode.Bin16, 0x01, 0x00, 0}, "bin16 needs 259 bytes"},
		{"ext16 beyond frame", []byte{msgpcode.Ext16, 0x01, 0x00, 7, 0}, "ext16 needs 260 bytes"},
		{"str8 beyond frame", []byte{msgpcode.Str8, 0xff, 's'}, "str8 needs 257 bytes"},
		{"bin8 beyond frame", []byte{msgpcode.Bin8, 0x02, 0}, "bin8 needs 4 bytes"},
		{"ext8 missing type byte", []byte{msgpcode.Ext8, 0x00}, "ext8 needs 3 bytes"},
		{"fixext16 short", []byte{msgpcode.FixExt16, 7, 0, 0}, "fixext16 needs 18 bytes, 4 remain"},
		{"fixstr beyond frame", []byte{0xa5, 's'}, "fixstr needs 6 bytes"},
		{"str32 header cut", []byte{msgpcode.Str32, 0, 0}, "truncated str32 header"},
		{"map32 header cut", []byte{msgpcode.Map32, 0, 0, 0}, "truncated map32 header"},
		{"element missing", []byte{0x92, 0xa1, 's'}, "offset 3: truncated: 1 more values expected"},
		{"map value missing", []byte{0x81, 0xa2, 'k', 'k'}, "offset 4: truncated: 1 more values expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := syncproto.Validate(tt.frame, syncproto.DefaultMaxDepth)
			if !errors.Is(err, syncproto.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("got %q, want it to contain %q", err, tt.reason)
			}
		})
	}
}

func TestValidateRejectsHostileArrayFastAndWithoutLargeAllocation(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	err := syncproto.Validate(hostileArray, syncproto.DefaultMaxDepth)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)

	if !errors.Is(err, syncproto.ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
	// msgpack took 9.6 s and 5.3 GB on this frame; the bounds are loose enough for a
	// loaded CI machine and still many orders of magnitude below that.
	if elapsed > 100*time.Millisecond {
		t.Errorf("rejection took %v, want < 100ms", elapsed)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<10 {
		t.Errorf("rejection allocated %d bytes, want < 4 KiB", got)
	}
}

// nest wraps leaf in depth single-element containers: arrays, or maps keyed by "k".
func nest(depth int, asMap bool, leaf []byte) []byte {
	var b []byte
	for range depth {
		if asMap {
			b = append(b, 0x81, 0xa1, 'k')
		} else {
			b = append(b, 0x91)
		}
	}
	return append(b, leaf...)
}

func TestValidateEnforcesMaxDepth(t *testing.T) {
	empty32, _ := msgpack.Marshal(nestedSlices(32))
	empty33, _ := msgpack.Marshal(nestedSlices(33))
	tests := []struct {
		name     string
		frame    []byte
		maxDepth int
		ok       bool
	}{
		{"32 nested arrays from msgpack.Marshal", empty32, syncproto.DefaultMaxDepth, true},
		{"33 nested arrays from msgpack.Marshal", empty33, syncproto.DefaultMaxDepth, false},
		{"32 arrays around a scalar", nest(32, false, []byte{0x01}), 32, true},
		{"33 arrays around a scalar", nest(33, false, []byte{0x01}), 32, false},
		{"32 maps around a scalar", nest(32, true, []byte{0x01}), 32, true},
		{"33 maps around a scalar", nest(33, true, []byte{0x01}), 32, false},
		{"empty map at depth 33", nest(32, false, []byte{0x80}), 32, false},
		{"container as map key at depth 33", nest(31, false, []byte{0x81, 0x91, 0x90, 0xc0}), 32, false},
		{"siblings do not add depth", []byte{0x93, 0x90, 0x90, 0x80}, 2, true},
		{"a closed sibling frees its level", []byte{0x92, 0x91, 0x90, 0x91, 0x90}, 3, true},
		{"a later sibling is checked too", []byte{0x92, 0x90, 0x91, 0x90}, 2, false},
		{"depth 0 admits a scalar", []byte{0x01}, 0, true},
		{"depth 0 rejects an empty array", []byte{0x90}, 0, false},
		{"negative depth acts as 0", []byte{0x80}, -1, false},
		{"negative depth admits a scalar", []byte{0xc0}, -1, true},
		{"deeper than the stack buffer", nest(100, false, []byte{0x90}), 101, true},
		{"deeper than the stack buffer, over limit", nest(100, false, []byte{0x90}), 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := syncproto.Validate(tt.frame, tt.maxDepth)
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("accepted = %v, want %v (err %v)", got, want, err)
			}
			if err != nil && !strings.Contains(err.Error(), "nesting deeper than") {
				t.Fatalf("got %q, want a nesting error", err)
			}
		})
	}
}

func nestedSlices(depth int) any {
	var v any = []any{}
	for range depth - 1 {
		v = []any{v}
	}
	return v
}

func TestValidateRejectsTrailingBytes(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"two scalars", []byte{0xc0, 0xc0}},
		{"map then a byte", []byte{0x81, 0xa1, 'k', 0x01, 0x00}},
		{"array then an array", []byte{0x91, 0x01, 0x91, 0x01}},
		{"string then garbage", []byte{0xa1, 's', 0xc1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := syncproto.Validate(tt.frame, syncproto.DefaultMaxDepth)
			if !errors.Is(err, syncproto.ErrMalformed) || !strings.Contains(err.Error(), "trailing bytes") {
				t.Fatalf("got %v, want ErrMalformed for trailing bytes", err)
			}
		})
	}
}

func TestValidateRejectsEmptyFrame(t *testing.T) {
	for _, frame := range [][]byte{nil, {}} {
		if err := syncproto.Validate(frame, syncproto.DefaultMaxDepth); !errors.Is(err, syncproto.ErrMalformed) {
			t.Fatalf("Validate(%#v): got %v, want ErrMalformed", frame, err)
		}
	}
}

func TestValidateRejectsReservedByte0xC1(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"alone", []byte{0xc1}},
		{"as an array element", []byte{0x92, 0x01, 0xc1}},
		{"as a map key", []byte{0x81, 0xc1, 0x01}},
		{"as a map value", []byte{0x81, 0xa1, 'k', 0xc1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := syncproto.Validate(tt.frame, syncproto.DefaultMaxDepth)
			if !errors.Is(err, syncproto.ErrMalformed) || !strings.Contains(err.Error(), "reserved byte 0xc1") {
				t.Fatalf("got %v, want ErrMalformed for the reserved byte", err)
			}
		})
	}
}

// skipWhole reports whether msgpack's own decoder reads frame as exactly one value.
func skipWhole(frame []byte) error {
	r := bytes.NewReader(frame)
	d := msgpack.NewDecoder(r)
	if err := d.Skip(); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d trailing bytes", r.Len())
	}
	return nil
}

// frame64KiB builds a realistic sync frame of about 64 KiB: an array of change maps with
// strings, numbers, tags, nested content and a timestamp, from a fixed seed.
func frame64KiB(tb testing.TB) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyz "
		b := make([]byte, 3+rng.IntN(40))
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	var changes []map[string]any
	for size := 0; size < 64<<10; {
		c := map[string]any{
			"id":      fmt.Sprintf("c%012d", len(changes)),
			"seq":     uint64(len(changes)),
			"type":    "note/txt",
			"deleted": rng.IntN(10) == 0,
			"time":    1.7e9 + rng.Float64(),
			"tags":    []string{word(), word()},
			"content": map[string]any{"text": word() + word(), "count": rng.IntN(1000), "ok": nil},
			"when":    time.Unix(1700000000+int64(rng.IntN(1e6)), 0),
		}
		b, err := msgpack.Marshal(c)
		if err != nil {
			tb.Fatal(err)
		}
		size += len(b)
		changes = append(changes, c)
	}
	b, err := msgpack.Marshal(changes)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func BenchmarkValidate64KiB(b *testing.B) {
	frame := frame64KiB(b)
	if err := syncproto.Validate(frame, syncproto.DefaultMaxDepth); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := syncproto.Validate(frame, syncproto.DefaultMaxDepth); err != nil {
			b.Fatal(err)
		}
	}
}
