package syncproto_test

import (
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/syncproto"
)

// TestAckDecodeRefusesMalformedAcks: a malformed ack is refused with the
// error of a malformed message.
func TestAckDecodeRefusesMalformedAcks(t *testing.T) {
	for name, m := range map[string]any{
		"no body":         map[string]any{"t": "ack"},
		"nil body":        map[string]any{"t": "ack", "ack": nil},
		"seq not a uint":  map[string]any{"t": "ack", "ack": map[string]any{"cursor": map[string]any{"epoch": "e", "seq": "x"}}},
		"two bodies":      map[string]any{"t": "ack", "ack": map[string]any{}, "push": map[string]any{}},
		"cursor a string": map[string]any{"t": "ack", "ack": map[string]any{"cursor": "x"}},
	} {
		frame, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := syncproto.Decode(frame); !errors.Is(err, syncproto.ErrMalformed) {
			t.Errorf("%s: Decode = %+v, %v; want ErrMalformed", name, got, err)
		}
	}
}
