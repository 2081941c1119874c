package server

import (
	"runtime"
	"sync"

	"github.com/pryvsync/pryvsync/internal/mp"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// pushCheck is what checking a pushed change found without the store: the
// reason it must be rejected, if any.
type pushCheck struct {
	// valid says the kind and id are well-formed, so a rejection may carry
	// the item's current state.
	valid bool
	err   error
}

// checkPushed checks each pushed change's kind, id and values (the rules of
// the HTTP API), which depend on nothing stored. It runs in the session's
// goroutine, before the changes reach the committer, spread over the
// processors when the push is big (the committer waits on it while the
// replica waits on the result); the committer turns a failed check into
// that change's rejection, in order.
func checkPushed(changes []syncproto.Change) []pushCheck {
	checks := make([]pushCheck, len(changes))
	workers := min(runtime.GOMAXPROCS(0), len(changes)/checkShare)
	if workers <= 1 {
		checkRange(changes, checks)
		return checks
	}
	per := (len(changes) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := per; lo < len(changes); lo += per {
		hi := min(lo+per, len(changes))
		wg.Go(func() { checkRange(changes[lo:hi], checks[lo:hi]) })
	}
	checkRange(changes[:per], checks[:per])
	wg.Wait()
	return checks
}

// checkShare is the fewest changes worth checking on another goroutine.
const checkShare = 128

func checkRange(changes []syncproto.Change, checks []pushCheck) {
	for i, ch := range changes {
		kind := model.Kind(ch.Kind)
		c := &checks[i]
		c.valid = kind.Valid() && validPushedID(kind, ch.ID)
		if !c.valid {
			c.err = model.Errorf(model.ErrInvalidItemID, "invalid item kind or id")
			continue
		}
		c.err = validateDelta(kind, ch.Delta)
	}
}

// encodeStoredResult encodes one change's result as it is stored for
// replays: a pushResult message holding that result alone, the bytes
// syncproto.Encode makes of it. A plain result (rseq, status and seq, the
// common case) is encoded here without reflection; any other through
// syncproto.
func encodeStoredResult(res syncproto.Result) ([]byte, error) {
	if res.Lost != nil || res.Error != nil || res.Current != nil || res.Renamed != "" || res.StoppedID != "" || len(res.Status) > 31 {
		return syncproto.Encode(&syncproto.Message{T: syncproto.TypePushResult, PushResult: &syncproto.PushResult{Results: []syncproto.Result{res}}})
	}
	b := make([]byte, 0, len(storedResultHead)+32+len(res.Status))
	b = append(b, storedResultHead...)
	n := byte(2)
	if res.Seq != 0 {
		n++
	}
	b = append(b, 0x80|n, 0xa4, 'r', 's', 'e', 'q')
	b = mp.AppendUint(b, res.RSeq)
	b = append(b, 0xa6, 's', 't', 'a', 't', 'u', 's', 0xa0|byte(len(res.Status)))
	b = append(b, res.Status...)
	if res.Seq != 0 {
		b = append(b, 0xa3, 's', 'e', 'q')
		b = mp.AppendUint(b, res.Seq)
	}
	return b, nil
}

// storedResultHead is the start of a stored result, up to the result's own
// map: {"t": "pushResult", "pushResult": {"results": [ (one element).
var storedResultHead = func() []byte {
	b := []byte{0x82, 0xa1, 't'}
	b = append(b, 0xa0|byte(len(syncproto.TypePushResult)))
	b = append(b, syncproto.TypePushResult...)
	b = append(b, 0xaa)
	b = append(b, "pushResult"...)
	b = append(b, 0x81, 0xa7)
	b = append(b, "results"...)
	return append(b, 0x91)
}()
