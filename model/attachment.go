package model

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"

	"github.com/pryvsync/pryvsync/crdt"
)

// CheckAttachmentKey refuses keys that could not be addressed as one path
// segment of GET /{cid}/events/{eid}/{key}.
func CheckAttachmentKey(k string) error {
	bad := k == "" || k == "." || k == ".." || len(k) > 255 || strings.ContainsAny(k, "/%\\") ||
		strings.ContainsFunc(k, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar })
	if bad {
		return FieldError("attachments", "%q is not a usable attachment key", k)
	}
	return nil
}

// ValidDigest reports whether d is a content digest: lower-case hex SHA-256.
func ValidDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ParseAttachment reads the metadata of the attachment stored under key, as
// an event's attachments hold it: a JSON object of fileName, type, size and
// digest, and nothing else. The server writes it from an upload; a
// replica's push must send the same shape.
func ParseAttachment(key string, raw []byte) (Attachment, error) {
	if err := CheckAttachmentKey(key); err != nil {
		return Attachment{}, err
	}
	var a Attachment
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil || dec.More() {
		return Attachment{}, FieldError("attachments", "attachment %q must be {fileName, type, size, digest}", key)
	}
	// No length caps on the name and type: the server writes whatever an
	// upload names, and a replica pushes it back after a restore
	// (MaxItemSize bounds the whole item).
	if !ValidDigest(a.Digest) || a.FileName == "" || a.Size < 0 {
		return Attachment{}, FieldError("attachments", "attachment %q needs a file name, a type, a size and a lower-case hex SHA-256 digest", key)
	}
	return a, nil
}

// MaxNodeLen bounds the node id of a version (a replica id is at most 64
// bytes; the server's own nodes are shorter, and a version sent back to a
// replica may carry a one-byte mark).
const MaxNodeLen = 128

// CheckNodes refuses a delta whose versions name a node id longer than
// MaxNodeLen: they are stored and sent with every field.
func CheckNodes(d crdt.Doc) error {
	long := func(v crdt.Version) bool { return len(v.Node) > MaxNodeLen }
	for _, m := range []map[string]crdt.Field{d.Fields, d.Data, d.Files} {
		for k, f := range m {
			if long(f.V) {
				return FieldError(k, "version node id over %d bytes", MaxNodeLen)
			}
		}
	}
	for k, e := range d.Tags {
		if long(e.V) {
			return FieldError("tags", "tag %q: version node id over %d bytes", k, MaxNodeLen)
		}
	}
	if long(d.Deleted) {
		return FieldError("del", "version node id over %d bytes", MaxNodeLen)
	}
	return nil
}

// ItemSize estimates an item's encoded size: keys, values and version node
// ids, with a fixed cost per entry. MaxItemSize bounds it.
func ItemSize(d crdt.Doc) int {
	n := len(d.Deleted.Node)
	for _, m := range []map[string]crdt.Field{d.Fields, d.Data, d.Files} {
		for k, f := range m {
			n += len(k) + len(f.Val) + len(f.V.Node) + 24
		}
	}
	for k, e := range d.Tags {
		n += len(k) + len(e.V.Node) + 24
	}
	return n
}
