package syncproto_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/syncproto"
)

// decodeBudget bounds what msgpack may allocate decoding an accepted frame into an
// interface{}. Validate makes every declared count real, so decoding is linear in the frame;
// the factor is the decoder's own cost per byte, not a tolerance for trusted lengths. The
// worst case measured is a chain of one-entry maps, {"": {"": …}}: 2 bytes per level, and
// each level costs a Go map header plus one 8-slot group (48 + 288 bytes), about 168 bytes
// per frame byte, so 64x, the figure first proposed, fails on valid frames. A trusted length
// costs 16 bytes per declared element, up to 2^32 of them: gigabytes for any frame.
func decodeBudget(frameLen int) uint64 { return 256*uint64(frameLen) + 16<<10 }

// FuzzValidate checks that Validate never panics, that it agrees with msgpack's own reading
// of the format, and that any frame it accepts decodes into interface{} in memory linear in
// the frame. Only accepted frames are decoded, so the fuzzer cannot make the test itself
// allocate without bound.
func FuzzValidate(f *testing.F) {
	for _, ex := range validExamples(f) {
		if len(ex.frame) <= 4<<10 {
			f.Add(ex.frame)
		}
	}
	f.Add(hostileArray)
	f.Add(nest(33, false, []byte{0x90}))

	f.Fuzz(func(t *testing.T, frame []byte) {
		err := syncproto.Validate(frame, syncproto.DefaultMaxDepth)
		if err != nil && !errors.Is(err, syncproto.ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}

		// No frame nests deeper than its length, so this lifts the depth limit and leaves
		// only the format: Validate must then agree with msgpack's own decoder.
		unlimited := syncproto.Validate(frame, len(frame))
		if err == nil && unlimited != nil {
			t.Fatalf("accepted at depth %d but rejected without a limit: %v", syncproto.DefaultMaxDepth, unlimited)
		}
		if skipErr := skipWhole(frame); (skipErr == nil) != (unlimited == nil) {
			t.Fatalf("Validate and msgpack disagree: Validate %v, msgpack Skip %v", unlimited, skipErr)
		}
		if err != nil {
			return
		}

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var v any
		decErr := msgpack.Unmarshal(frame, &v)
		runtime.ReadMemStats(&after)

		// Decoding can still fail on meaning (a non-string map key, an unregistered ext id),
		// never because the frame ran out.
		if errors.Is(decErr, io.EOF) || errors.Is(decErr, io.ErrUnexpectedEOF) {
			t.Fatalf("accepted frame is truncated for msgpack: %v", decErr)
		}
		if got, limit := after.TotalAlloc-before.TotalAlloc, decodeBudget(len(frame)); got > limit {
			t.Fatalf("decoding a %d-byte accepted frame allocated %d bytes, budget %d", len(frame), got, limit)
		}
	})
}

// TestDecodeBudgetHoldsForChainsOfOneEntryMaps pins decodeBudget to the most allocation-heavy
// valid frame known: an array of {"": {"": … {}}} chains, each as deep as DefaultMaxDepth allows.
func TestDecodeBudgetHoldsForChainsOfOneEntryMaps(t *testing.T) {
	chain := bytes.Repeat([]byte{0x81, 0xa0}, syncproto.DefaultMaxDepth-2)
	chain = append(chain, 0x80)
	const chains = 1000
	frame := append([]byte{0xdc, chains >> 8, chains & 0xff}, bytes.Repeat(chain, chains)...)
	if err := syncproto.Validate(frame, syncproto.DefaultMaxDepth); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var v any
	err := msgpack.Unmarshal(frame, &v)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("decoding %d bytes allocated %d (%.0fx)", len(frame), got, float64(got)/float64(len(frame)))
	if limit := decodeBudget(len(frame)); got > limit {
		t.Fatalf("decoding allocated %d bytes, budget %d", got, limit)
	}
}
