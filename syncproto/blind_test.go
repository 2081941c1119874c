package syncproto_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"sync"
	"testing"

	"github.com/pryvsync/pryvsync/syncproto"
)

// TestBlindIDIsTheTruncatedHMAC: whatever HMAC state BlindID reuses, with
// keys alternating across goroutines, it returns HMAC-SHA256(key,
// kind ":" id) cut to 16 bytes.
func TestBlindIDIsTheTruncatedHMAC(t *testing.T) {
	keys := [][]byte{[]byte("key-one"), []byte("key-two"), bytes.Repeat([]byte{7}, 100)}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				key := keys[(g+i)%len(keys)]
				id := string(rune('a'+i%26)) + "xyz"
				h := hmac.New(sha256.New, key)
				h.Write([]byte("event:" + id))
				want := h.Sum(nil)[:16]
				if got := syncproto.BlindID(key, "event", id); !bytes.Equal(got, want) {
					t.Errorf("BlindID(%q, event, %q) = %x, want %x", key, id, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
