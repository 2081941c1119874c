package crdt

import (
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/internal/mp"
)

// A Doc is encoded and decoded by hand (AppendDoc, ReadDoc): the same msgpack
// map that reflection makes of the struct tags, with compact integers and the
// same omitempty rules, without reflection and with far fewer allocations.
// EncodeMsgpack and DecodeMsgpack plug the hand codec into msgpack, so every
// message or record holding a Doc uses it.

// AppendDoc appends d's msgpack encoding to b.
func AppendDoc(b []byte, d *Doc) []byte {
	n := 0
	for _, l := range [4]int{len(d.Fields), len(d.Tags), len(d.Data), len(d.Files)} {
		if l > 0 {
			n++
		}
	}
	if !d.Deleted.IsZero() {
		n++
	}
	b = append(b, 0x80|byte(n))
	if len(d.Fields) > 0 {
		b = append(b, 0xa1, 'f')
		b = appendFields(b, d.Fields)
	}
	if len(d.Tags) > 0 {
		b = append(b, 0xa1, 'g')
		b = mp.AppendMapLen(b, len(d.Tags))
		for k, e := range d.Tags {
			b = mp.AppendStr(b, k)
			b = append(b, 0x82, 0xa1, 'v')
			b = appendVersion(b, e.V)
			b = append(b, 0xa1, 'p')
			b = mp.AppendBool(b, e.Present)
		}
	}
	if len(d.Data) > 0 {
		b = append(b, 0xa1, 'd')
		b = appendFields(b, d.Data)
	}
	if len(d.Files) > 0 {
		b = append(b, 0xa1, 'a')
		b = appendFields(b, d.Files)
	}
	if !d.Deleted.IsZero() {
		b = append(b, 0xa3, 'd', 'e', 'l')
		b = appendVersion(b, d.Deleted)
	}
	return b
}

func appendFields(b []byte, m map[string]Field) []byte {
	b = mp.AppendMapLen(b, len(m))
	for k, f := range m {
		b = mp.AppendStr(b, k)
		if len(f.Val) > 0 {
			b = append(b, 0x82, 0xa1, 'v')
			b = appendVersion(b, f.V)
			b = append(b, 0xa1, 'x')
			b = mp.AppendBin(b, f.Val)
		} else {
			b = append(b, 0x81, 0xa1, 'v')
			b = appendVersion(b, f.V)
		}
	}
	return b
}

// appendVersion appends v's msgpack encoding to b.
func appendVersion(b []byte, v Version) []byte {
	b = append(b, 0x83, 0xa1, 't')
	b = mp.AppendInt(b, v.Time)
	b = append(b, 0xa1, 'c')
	b = mp.AppendUint(b, uint64(v.Counter))
	b = append(b, 0xa1, 'n')
	return mp.AppendStr(b, v.Node)
}

// ReadDoc reads one Doc. Field values alias r's input (never mutate them).
// Unknown keys are skipped; nil reads as the empty Doc.
func ReadDoc(r *mp.Reader) (Doc, error) {
	var d Doc
	err := r.Map(func(k []byte) (err error) {
		switch string(k) {
		case "f":
			d.Fields, err = readFields(r)
		case "g":
			d.Tags, err = readTags(r)
		case "d":
			d.Data, err = readFields(r)
		case "a":
			d.Files, err = readFields(r)
		case "del":
			d.Deleted, err = readVersion(r)
		default:
			err = r.Skip()
		}
		return err
	})
	return d, err
}

func readFields(r *mp.Reader) (map[string]Field, error) {
	n, err := r.MapLen()
	if err != nil || n == 0 {
		return nil, err
	}
	// Sized from the header (bounded by the frame's length, which the
	// validation gate checked), so the map never grows while it is read.
	m := make(map[string]Field, min(n, r.Len()/2))
	for i := 0; i < n; i++ {
		k, err := r.Bytes()
		if err != nil {
			return m, err
		}
		name := mp.Intern(k)
		var f Field
		err = r.Map(func(fk []byte) (err error) {
			switch string(fk) {
			case "v":
				f.V, err = readVersion(r)
			case "x":
				f.Val, err = r.Bytes()
			default:
				err = r.Skip()
			}
			return err
		})
		m[name] = f
		if err != nil {
			return m, err
		}
	}
	return m, nil
}

func readTags(r *mp.Reader) (map[string]Elem, error) {
	var m map[string]Elem
	err := r.Map(func(k []byte) error {
		tag := string(k)
		var e Elem
		err := r.Map(func(ek []byte) (err error) {
			switch string(ek) {
			case "v":
				e.V, err = readVersion(r)
			case "p":
				e.Present, err = r.Bool()
			default:
				err = r.Skip()
			}
			return err
		})
		if m == nil {
			m = make(map[string]Elem, 4)
		}
		m[tag] = e
		return err
	})
	return m, err
}

// readVersion reads one Version (nil reads as the zero Version).
func readVersion(r *mp.Reader) (Version, error) {
	var v Version
	err := r.Map(func(k []byte) (err error) {
		switch string(k) {
		case "t":
			v.Time, err = r.Int()
		case "c":
			var c uint64
			c, err = r.Uint()
			v.Counter = uint32(c)
		case "n":
			v.Node, err = r.Name()
		default:
			err = r.Skip()
		}
		return err
	})
	return v, err
}

var docBuf = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// EncodeMsgpack implements msgpack.CustomEncoder with AppendDoc.
func (d Doc) EncodeMsgpack(enc *msgpack.Encoder) error {
	bp := docBuf.Get().(*[]byte)
	b := AppendDoc((*bp)[:0], &d)
	_, err := enc.Writer().Write(b)
	if cap(b) <= 1<<16 {
		*bp = b
		docBuf.Put(bp)
	}
	return err
}

// DecodeMsgpack implements msgpack.CustomDecoder with ReadDoc.
func (d *Doc) DecodeMsgpack(dec *msgpack.Decoder) error {
	raw, err := dec.DecodeRaw()
	if err != nil {
		return err
	}
	r := mp.NewReader(raw)
	if *d, err = ReadDoc(r); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after a document", mp.ErrMalformed, r.Len())
	}
	return nil
}

// DocInfo is what ScanDoc learns of an encoded Doc without building it.
type DocInfo struct {
	Max      Version // Doc.MaxVersion
	Deleted  bool    // Doc.IsDeleted
	HasField bool    // Doc.Has of the field ScanDoc was asked about
}

// ScanDoc reads past one encoded Doc and reports its DocInfo, allocating
// nothing for the Doc itself.
func ScanDoc(r *mp.Reader, field string) (DocInfo, error) {
	var info DocInfo
	version := func() error {
		v, err := readVersion(r)
		info.Max = Max(info.Max, v)
		return err
	}
	err := r.Map(func(k []byte) error {
		switch part := string(k); part {
		case "f", "d", "a", "g":
			// A map of names to versioned values (fields, clientData,
			// attachments) or to versioned presences (tags).
			return r.Map(func(name []byte) error {
				return r.Map(func(vk []byte) error {
					switch string(vk) {
					case "v":
						return version()
					case "x":
						val, err := r.Bytes()
						if part == "f" && val != nil && string(name) == field {
							info.HasField = true
						}
						return err
					}
					return r.Skip()
				})
			})
		case "del":
			v, err := readVersion(r)
			info.Deleted = !v.IsZero()
			info.Max = Max(info.Max, v)
			return err
		}
		return r.Skip()
	})
	return info, err
}
