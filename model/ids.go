package model

import (
	"crypto/rand"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// ReservedIDs are refused as channel and folder ids: they would clash with
// the path words of the HTTP API.
var ReservedIDs = map[string]bool{
	"null": true, "*": true, "channels": true, "admin": true, "accesses": true,
	"access-info": true, "profile": true, "sync": true, "socket": true,
	"system": true, "bookmarks": true,
}

// Slugify lower-cases s, strips accents, turns every run of characters other
// than [a-z0-9] into one "-", and drops leading and trailing "-".
func Slugify(s string) string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	plain, _, err := transform.String(t, s)
	if err != nil {
		plain = s
	}
	plain = strings.ToLower(plain)
	var b strings.Builder
	dash := false
	for _, r := range plain {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	return b.String()
}

// ItemID validates and normalises a client-supplied channel or folder id.
func ItemID(raw string) (string, error) {
	if ReservedIDs[strings.ToLower(raw)] {
		return "", Errorf(ErrInvalidItemID, "%q is a reserved id", raw)
	}
	id := Slugify(raw)
	if id == "" || ReservedIDs[id] {
		return "", Errorf(ErrInvalidItemID, "%q is not a valid id", raw)
	}
	if len(id) > 256 {
		return "", Errorf(ErrInvalidItemID, "id longer than 256 characters")
	}
	return id, nil
}

// IsCuid reports whether id has the form of an event id: "c" and 24
// characters [a-z0-9] (^c[a-z0-9]{24}$, checked by hand: a push checks
// every change's id).
func IsCuid(id string) bool {
	if len(id) != 25 || id[0] != 'c' {
		return false
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// EventID validates a client-supplied event id.
func EventID(raw string) (string, error) {
	if !IsCuid(raw) {
		return "", Errorf(ErrInvalidItemID, "event ids are \"c\" followed by 24 characters [a-z0-9]")
	}
	return raw, nil
}

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

func randomBase36(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	for i, b := range buf {
		// 252 = 7*36: reject the tail to keep the distribution uniform.
		for b >= 252 {
			var one [1]byte
			if _, err := rand.Read(one[:]); err != nil {
				panic("crypto/rand: " + err.Error())
			}
			b = one[0]
		}
		buf[i] = base36[b%36]
	}
	return string(buf)
}

// NewID returns a fresh id in cuid form ("c" + 24 [a-z0-9], about 124 bits of
// randomness), valid for every kind of item.
func NewID() string { return "c" + randomBase36(24) }

// NewToken returns a fresh access token: 26 characters [a-z0-9], about 134
// bits, URL-safe and already a slug.
func NewToken() string { return randomBase36(26) }

// NewSecret returns 32 random bytes (per-access blinding keys, session ids).
func NewSecret() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return b
}
