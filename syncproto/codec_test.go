package syncproto_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/syncproto"
)

func TestEncodeDecodeRoundTripsEveryMessage(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			frame, err := syncproto.Encode(c.msg)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := syncproto.Decode(frame)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, c.msg) {
				t.Errorf("round trip differs\n got %#v\nwant %#v", got, c.msg)
			}
		})
	}
}

// TestEncodeReturnsAFreshSlice guards the encoder pool: a frame must stay
// intact after later Encode calls reuse the buffer.
func TestEncodeReturnsAFreshSlice(t *testing.T) {
	cases := goldenCases()
	first, err := syncproto.Encode(cases[0].msg)
	if err != nil {
		t.Fatal(err)
	}
	keep := bytes.Clone(first)
	for _, c := range cases[1:] {
		if _, err := syncproto.Encode(c.msg); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(first, keep) {
		t.Fatal("a later Encode overwrote an earlier frame")
	}
}

func mustEncode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRejects(t *testing.T) {
	changes := make([]syncproto.Change, syncproto.MaxPushChanges+1)
	for i := range changes {
		changes[i] = syncproto.Change{RSeq: uint64(i + 1), Kind: "event", ID: gEvent}
	}
	tooManyChanges, err := syncproto.Encode(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: changes}})
	if err != nil {
		t.Fatal(err)
	}
	bigChunk, err := syncproto.Encode(&syncproto.Message{T: syncproto.TypeAttachmentPut, AttachmentPut: &syncproto.AttachmentPut{
		Digest: gDigest, Data: make([]byte, syncproto.MaxChunkBytes+1),
	}})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		frame []byte
		why   string // a substring of the error
	}{
		{"unknown type", mustEncode(t, map[string]any{"t": "bogus", "bogus": map[string]any{}}), `unknown message type "bogus"`},
		{"no type", mustEncode(t, map[string]any{"hello": map[string]any{"version": 1}}), `unknown message type ""`},
		{"body of another type", mustEncode(t, map[string]any{"t": "hello", "ack": map[string]any{}}), `message "hello" without its body`},
		{"nil body", mustEncode(t, map[string]any{"t": "push", "push": nil}), `message "push" without its body`},
		{"push over 1000 changes", tooManyChanges, "too many changes"},
		{"attachmentPut chunk over 1 MiB", bigChunk, "attachment chunk over 1 MiB"},
		{"hostile array length", hostileArray, "array32 declares 50000000 elements"},
		{"hostile changes length", []byte{0x82, 0xa1, 't', 0xa4, 'p', 'u', 's', 'h', 0xa4, 'p', 'u', 's', 'h',
			0x81, 0xa7, 'c', 'h', 'a', 'n', 'g', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}, "array32 declares 4294967295 elements"},
		{"hostile bin length", []byte{0x82, 0xa1, 't', 0xa3, 'a', 'c', 'k', 0xa3, 'a', 'c', 'k',
			0x81, 0xa1, 'x', 0xc6, 0x7f, 0xff, 0xff, 0xff}, "bin32 declares 2147483647 bytes"},
		{"hostile map length", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, "map32 declares"},
		{"empty frame", nil, "empty frame"},
		{"truncated", tooManyChanges[:len(tooManyChanges)-1], "truncated"},
		{"trailing bytes", append(mustEncode(t, map[string]any{"t": "ack", "ack": map[string]any{}}), 0xc0), "trailing bytes"},
		{"not a map", mustEncode(t, "hello"), ""},
		{"wrong key type", mustEncode(t, map[string]any{"t": 5}), ""},
		{"wrong body type", mustEncode(t, map[string]any{"t": "ack", "ack": "x"}), ""},
	}
	for _, typ := range []string{
		syncproto.TypeHello, syncproto.TypeWelcome, syncproto.TypePush, syncproto.TypePushResult,
		syncproto.TypeChanges, syncproto.TypeAck, syncproto.TypeScope, syncproto.TypeAttachmentGet,
		syncproto.TypeAttachmentData, syncproto.TypeAttachmentPut, syncproto.TypeError,
	} {
		tests = append(tests, struct {
			name  string
			frame []byte
			why   string
		}{typ + " without body", mustEncode(t, map[string]any{"t": typ}), "without its body"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := syncproto.Decode(tt.frame)
			if err == nil {
				t.Fatalf("accepted: %#v", m)
			}
			if !errors.Is(err, syncproto.ErrMalformed) {
				t.Errorf("error does not wrap ErrMalformed: %v", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("error %q does not say %q", err, tt.why)
			}
		})
	}
}

func TestDecodeAcceptsTheLimitsThemselves(t *testing.T) {
	changes := make([]syncproto.Change, syncproto.MaxPushChanges)
	for i := range changes {
		changes[i] = syncproto.Change{RSeq: uint64(i + 1), Kind: "event", ID: gEvent}
	}
	for _, m := range []*syncproto.Message{
		{T: syncproto.TypePush, Push: &syncproto.Push{Changes: changes}},
		{T: syncproto.TypeAttachmentPut, AttachmentPut: &syncproto.AttachmentPut{Digest: gDigest, Data: make([]byte, syncproto.MaxChunkBytes)}},
	} {
		frame, err := syncproto.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(frame) > syncproto.MaxFrameBytes {
			t.Errorf("%s at its limit takes %d bytes, over the frame limit", m.T, len(frame))
		}
		if _, err := syncproto.Decode(frame); err != nil {
			t.Errorf("%s at its limit rejected: %v", m.T, err)
		}
	}
}

// TestDecodeIgnoresUnknownKeys pins forward compatibility: a newer peer may
// add keys, which this version skips.
func TestDecodeIgnoresUnknownKeys(t *testing.T) {
	frame := mustEncode(t, map[string]any{"t": "ack", "ack": map[string]any{"cursor": map[string]any{"epoch": "e", "seq": 3}, "future": []int{1}}, "extra": true})
	m, err := syncproto.Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if want := (syncproto.Cursor{Epoch: "e", Seq: 3}); m.Ack == nil || m.Ack.Cursor != want {
		t.Fatalf("got %#v", m.Ack)
	}
}

func TestBlindID(t *testing.T) {
	key := []byte("key-one")
	a := syncproto.BlindID(key, "event", gEvent)
	if len(a) != 16 {
		t.Fatalf("BlindID is %d bytes, want 16", len(a))
	}
	if b := syncproto.BlindID(bytes.Clone(key), "event", gEvent); !bytes.Equal(a, b) {
		t.Error("BlindID is not deterministic")
	}
	if b := syncproto.BlindID([]byte("key-two"), "event", gEvent); bytes.Equal(a, b) {
		t.Error("BlindID does not depend on the key")
	}
	if b := syncproto.BlindID(key, "folder", gEvent); bytes.Equal(a, b) {
		t.Error("BlindID does not depend on the kind")
	}
	if b := syncproto.BlindID(key, "event", gEvent2); bytes.Equal(a, b) {
		t.Error("BlindID does not depend on the id")
	}
	// The documented construction: HMAC-SHA256(key, kind ":" id), first 16 bytes.
	h := hmac.New(sha256.New, key)
	h.Write([]byte("event:" + gEvent))
	if want := h.Sum(nil)[:16]; !bytes.Equal(a, want) {
		t.Errorf("BlindID = %x, want %x", a, want)
	}
	// A fixed vector for other implementations.
	if got, want := syncproto.BlindID(gKey, "folder", "work"), golden16(t); !bytes.Equal(got, want) {
		t.Errorf("BlindID(gKey, folder, work) = %x, want %x", got, want)
	}
}

// golden16 is BlindID("0123456789abcdef0123456789abcdef", "folder", "work"),
// the second removal of testdata/golden/changes.msgpack.
func golden16(t *testing.T) []byte {
	t.Helper()
	h := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	h.Write([]byte("folder:work"))
	return h.Sum(nil)[:16]
}

// sameFrames reports whether two frames decode to equal generic values.
// Comparing generic values makes map order irrelevant; floats compare by
// their bits, so that a NaN equals itself.
func sameFrames(t *testing.T, a, b []byte) bool {
	t.Helper()
	return sameValue(reflect.ValueOf(generic(t, a)), reflect.ValueOf(generic(t, b)))
}

func sameValue(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Kind() == reflect.Interface && !a.IsNil() {
		a = a.Elem()
	}
	if b.Kind() == reflect.Interface && !b.IsNil() {
		b = b.Elem()
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		it := a.MapRange()
		for it.Next() {
			v := b.MapIndex(it.Key())
			if !v.IsValid() || !sameValue(it.Value(), v) {
				return false
			}
		}
		return true
	case reflect.Interface:
		return a.IsNil() && b.IsNil()
	}
	return a.Interface() == b.Interface()
}

// FuzzDecode checks that Decode never panics, that its errors wrap
// ErrMalformed, and that a message it accepts re-encodes into a frame that
// Decode accepts and that decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, c := range goldenCases() {
		frame, err := syncproto.Encode(c.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	f.Add(hostileArray)
	f.Add(mustEncode(f, map[string]any{"t": "push", "push": map[string]any{"changes": []any{map[string]any{"delta": map[string]any{"f": map[string]any{"a": map[string]any{"v": map[string]any{"t": -1}}}}}}}}))
	f.Add(mustEncode(f, map[string]any{"t": "pushResult", "pushResult": map[string]any{"results": []any{map[string]any{"error": map[string]any{"data": map[any]any{1: 2.5, "k": []any{nil}}}}}}}))

	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := syncproto.Decode(frame)
		if err != nil {
			if !errors.Is(err, syncproto.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		again, err := syncproto.Encode(m)
		if err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
		m2, err := syncproto.Decode(again)
		if err != nil {
			t.Fatalf("re-encoded message rejected: %v\n%#v", err, m)
		}
		again2, err := syncproto.Encode(m2)
		if err != nil {
			t.Fatalf("re-decoded message does not encode: %v", err)
		}
		if !sameFrames(t, again, again2) {
			t.Fatalf("re-decoded message differs\nfirst  %#v\nsecond %#v", m, m2)
		}
	})
}

func TestDecodeRejectsAMessageWithTwoBodies(t *testing.T) {
	frame, err := syncproto.Encode(&syncproto.Message{T: syncproto.TypeHello,
		Hello: &syncproto.Hello{Version: 1, Replica: "r"}, Ack: &syncproto.Ack{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := syncproto.Decode(frame); !errors.Is(err, syncproto.ErrMalformed) {
		t.Fatalf("Decode of hello with an ack body: got %v, want ErrMalformed", err)
	}
}
