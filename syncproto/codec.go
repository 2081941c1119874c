package syncproto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/internal/mp"
)

var encPool = sync.Pool{New: func() any {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	return &encoder{buf: &buf, enc: enc}
}}

type encoder struct {
	buf *bytes.Buffer
	enc *msgpack.Encoder
}

// Encode returns the frame of m.
func Encode(m *Message) ([]byte, error) {
	e := encPool.Get().(*encoder)
	defer encPool.Put(e)
	e.buf.Reset()
	if err := e.enc.Encode(m); err != nil {
		return nil, fmt.Errorf("syncproto: encode %s: %w", m.T, err)
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

// Decode validates and decodes one frame. Every error wraps ErrMalformed.
func Decode(frame []byte) (*Message, error) {
	if err := Validate(frame, DefaultMaxDepth); err != nil {
		return nil, err
	}
	var m Message
	if p, ok, err := decodePush(frame); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	} else if ok {
		m = Message{T: TypePush, Push: p}
	} else if err := msgpack.Unmarshal(frame, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// check enforces that the body matches the type and the counts are bounded.
func (m *Message) check() error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }
	ok := false
	switch m.T {
	case TypeHello:
		ok = m.Hello != nil
	case TypeWelcome:
		ok = m.Welcome != nil
	case TypePush:
		ok = m.Push != nil
		if ok && len(m.Push.Changes) > MaxPushChanges {
			return bad("too many changes in one push")
		}
	case TypePushResult:
		ok = m.PushResult != nil
	case TypeChanges:
		ok = m.Changes != nil
	case TypeAck:
		ok = m.Ack != nil
	case TypeScope:
		ok = m.Scope != nil
	case TypeAttachmentGet:
		ok = m.AttachmentGet != nil
	case TypeAttachmentData:
		ok = m.AttachmentData != nil
	case TypeAttachmentPut:
		ok = m.AttachmentPut != nil
		if ok && len(m.AttachmentPut.Data) > MaxChunkBytes {
			return bad("attachment chunk over 1 MiB")
		}
	case TypeError:
		ok = m.Error != nil
	default:
		return bad(fmt.Sprintf("unknown message type %q", m.T))
	}
	if !ok {
		return bad(fmt.Sprintf("message %q without its body", m.T))
	}
	if m.bodies() != 1 {
		return bad(fmt.Sprintf("message %q carries more than its own body", m.T))
	}
	return nil
}

// bodies counts the non-nil bodies of m.
func (m *Message) bodies() int {
	n := 0
	for _, present := range []bool{
		m.Hello != nil, m.Welcome != nil, m.Push != nil, m.PushResult != nil, m.Changes != nil, m.Ack != nil,
		m.Scope != nil, m.AttachmentGet != nil, m.AttachmentData != nil, m.AttachmentPut != nil, m.Error != nil,
	} {
		if present {
			n++
		}
	}
	return n
}

// BlindID is the removal id of an item for an access key: no id crosses the
// wire for an item the replica may never have held.
func BlindID(key []byte, kind, id string) []byte {
	b, _ := blinders.Get().(*blinder)
	if b == nil || !bytes.Equal(b.key, key) {
		b = &blinder{key: bytes.Clone(key), h: hmac.New(sha256.New, key)}
	} else {
		b.h.Reset()
	}
	b.buf = append(append(append(b.buf[:0], kind...), ':'), id...)
	b.h.Write(b.buf)
	b.buf = b.h.Sum(b.buf[:0])
	out := bytes.Clone(b.buf[:16])
	blinders.Put(b)
	return out
}

// blinders keeps HMAC states keyed for the key last used: an access uses
// one key, so BlindID rarely has to key a new one.
var blinders sync.Pool

type blinder struct {
	key []byte
	h   hash.Hash
	buf []byte
}

// decodePush decodes a push frame by hand (internal/mp), the hot path of a
// server taking writes: ok is false, and nothing is decoded, for any other
// type. It reads what msgpack.Unmarshal would into a Message of type push
// (other bodies are skipped; check ignores them for a push).
func decodePush(frame []byte) (p *Push, ok bool, err error) {
	r := mp.NewReader(frame)
	n, err := r.MapLen()
	if err != nil {
		return nil, false, err
	}
	// The type comes first in every frame this package encodes; a frame
	// that puts it later takes the general path.
	if n == 0 {
		return nil, false, nil
	}
	if k, err := r.Bytes(); err != nil || string(k) != "t" {
		return nil, false, nil
	}
	if t, err := r.Bytes(); err != nil || string(t) != TypePush {
		return nil, false, nil
	}
	for i := 1; i < n; i++ {
		k, err := r.Bytes()
		if err != nil {
			return nil, true, err
		}
		if string(k) != "push" {
			if err := r.Skip(); err != nil {
				return nil, true, err
			}
			continue
		}
		if r.Nil() {
			p = nil
			continue
		}
		p = &Push{}
		err = r.Map(func(k []byte) error {
			if string(k) != "changes" {
				return r.Skip()
			}
			cn, err := r.ArrayLen()
			if err != nil || cn == 0 {
				return err
			}
			if cn > MaxPushChanges {
				return fmt.Errorf("too many changes in one push")
			}
			p.Changes = make([]Change, cn)
			for j := range p.Changes {
				c := &p.Changes[j]
				err := r.Map(func(k []byte) (err error) {
					switch string(k) {
					case "rseq":
						c.RSeq, err = r.Uint()
					case "kind":
						c.Kind, err = r.Name()
					case "id":
						c.ID, err = r.String()
					case "create":
						c.Create, err = r.Bool()
					case "delta":
						c.Delta, err = crdt.ReadDoc(r)
					default:
						err = r.Skip()
					}
					return err
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, true, err
		}
	}
	if r.Len() != 0 {
		return nil, true, fmt.Errorf("%d bytes after the message", r.Len())
	}
	return p, true, nil
}
