package syncproto_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/syncproto"
)

// TestAckDecodesAsByReflection: Decode's hand path for acks reads every ack,
// in the shape Encode writes or another one, exactly as msgpack.Unmarshal
// reads it into a Message.
func TestAckDecodesAsByReflection(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := syncproto.Cursor{Epoch: rapid.StringN(0, 40, -1).Draw(t, "epoch"), Seq: rapid.Uint64().Draw(t, "seq")}
		var frame []byte
		var err error
		switch rapid.IntRange(0, 3).Draw(t, "shape") {
		case 0:
			frame, err = syncproto.Encode(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: c}})
		case 1: // seq first
			frame, err = msgpack.Marshal(map[string]any{"t": "ack", "ack": map[string]any{"cursor": map[string]any{"seq": c.Seq, "epoch": c.Epoch}}})
		case 2: // an extra key, a signed seq
			frame, err = msgpack.Marshal(map[string]any{"t": "ack", "ack": map[string]any{"cursor": map[string]any{"epoch": c.Epoch, "seq": int64(c.Seq >> 1), "x": 1}}})
		case 3: // the body first
			frame, err = msgpack.Marshal(map[string]any{"ack": map[string]any{"cursor": map[string]any{"epoch": c.Epoch, "seq": c.Seq}}, "t": "ack"})
		}
		if err != nil {
			t.Fatal(err)
		}
		var want syncproto.Message
		if err := msgpack.Unmarshal(frame, &want); err != nil {
			t.Fatal(err)
		}
		got, err := syncproto.Decode(frame)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("got %+v, want %+v", got.Ack, want.Ack)
		}
	})
}

// TestAckDecodeRefusesMalformedAcks: acks the hand path does not take are
// refused by the general path, with the error of a malformed message.
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
