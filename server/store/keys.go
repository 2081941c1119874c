package store

import (
	"encoding/binary"
	"math"

	"github.com/pryvsync/pryvsync/model"
)

const keyEpoch = "meta/epoch"

// keyFormat records the store's layout version (store.go, storeFormat).
const keyFormat = "meta/format"

func keyUser(user string) string { return "u/" + user + "/" }

func kindByte(k model.Kind) string {
	switch k {
	case model.KindChannel:
		return "c"
	case model.KindFolder:
		return "f"
	}
	return "e"
}

func kindOf(b string) model.Kind {
	switch b {
	case "c":
		return model.KindChannel
	case "f":
		return model.KindFolder
	}
	return model.KindEvent
}

func keyItem(user string, k model.Kind, id string) string {
	return "u/" + user + "/i/" + kindByte(k) + "/" + id
}

func keyItemPrefix(user string, k model.Kind) string { return keyUser(user) + "i/" + kindByte(k) + "/" }

func keyFeedPrefix(user, channel string) string { return keyUser(user) + "f/" + channel + "/" }

func keyFeed(user, channel string, seq uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return "u/" + user + "/f/" + channel + "/" + string(b[:])
}

func keyExit(user, channel string, k model.Kind, id string) string {
	return "u/" + user + "/x/" + channel + "/" + kindByte(k) + "/" + id
}

func keyTimePrefix(user, channel string) string { return keyUser(user) + "t/" + channel + "/" }

// timeKey maps a float64 to 8 bytes whose byte order is the numeric order.
func timeKey(f float64) string {
	b := timeBytes(f)
	return string(b[:])
}

func timeBytes(f float64) [8]byte {
	u := math.Float64bits(f)
	if u&(1<<63) != 0 {
		u = ^u
	} else {
		u |= 1 << 63
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], u)
	return b
}

func timeFromKey(b []byte) float64 {
	u := binary.BigEndian.Uint64(b)
	if u&(1<<63) != 0 {
		u &^= 1 << 63
	} else {
		u = ^u
	}
	return math.Float64frombits(u)
}

func keyTime(user, channel string, t float64, id string) string {
	b := timeBytes(t)
	return "u/" + user + "/t/" + channel + "/" + string(b[:]) + "/" + id
}

// KeyHighWater is the replica's high-water mark key.
func KeyHighWater(user, replica string) string { return keyUser(user) + "hw/" + replica }

// KeyResults is the key of the stored results of one push: the rseq of
// its first applied change and how many it applied follow the prefix.
func KeyResults(user, replica string, first uint64, n int) string {
	var b [resultsSuffix]byte
	binary.BigEndian.PutUint64(b[:8], first)
	binary.BigEndian.PutUint32(b[8:], uint32(n))
	return KeyResultPrefix(user, replica) + string(b[:])
}

// resultsSuffix is the length of what follows a replica's result prefix in
// its own keys. Keys of a replica whose id extends this one's under "/"
// share the prefix, but are longer: "<rest>/" and a suffix.
const resultsSuffix = 12

// KeyResultPrefix is the prefix of a replica's stored results.
func KeyResultPrefix(user, replica string) string { return keyUser(user) + "r/" + replica + "/" }

// KeyAccess is an access record's key.
func KeyAccess(user, id string) string { return keyUser(user) + "a/" + id }

// KeyAccessPrefix is the prefix of a user's accesses.
func KeyAccessPrefix(user string) string { return keyUser(user) + "a/" }

// KeyToken maps a token to "<user>/<access id>".
func KeyToken(token string) string { return "tok/" + token }

// KeyBookmark is a bookmark's key.
func KeyBookmark(user, id string) string { return keyUser(user) + "b/" + id }

// KeyBookmarkPrefix is the prefix of a user's bookmarks.
func KeyBookmarkPrefix(user string) string { return keyUser(user) + "b/" }

// KeyProfile is an app profile's key.
func KeyProfile(user, accessID string) string { return keyUser(user) + "p/" + accessID }

// KeyUserRecord is the user record's key.
func KeyUserRecord(user string) string { return "usr/" + user }

// KeySession is a session's key.
func KeySession(id string) string { return "ses/" + id }

func keyRef(user, digest, event string) string { return keyUser(user) + "ref/" + digest + "/" + event }
