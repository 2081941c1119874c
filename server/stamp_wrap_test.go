package server_test

import (
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/syncproto"
)

// A device version exactly at the skew limit with Counter MaxUint32:
// stampPast wraps to limit+1 ms, and the second Restamp (limit) replaces it
// by the server clock's reading, which is older than the device version: the
// HTTP write loses. (Same millisecond as the limit: frozen clock.)
// An HTTP write past a device version at the skew limit whose counter is
// at its maximum (the stamp moves to the next millisecond) still wins: the
// limit re-stamp does not apply to the server's own stamps.
func TestHTTPWritePastAWrappedVersionAtTheSkewLimit(t *testing.T) {
	var nowMs atomic.Int64
	nowMs.Store(time.Now().UnixMilli())
	f := newActFixture(t, func(c *server.Config) { c.Now = func() time.Time { return time.UnixMilli(nowMs.Load()) } })
	cid := f.channel("Diary")
	e := f.event(cid, map[string]any{"time": 100})
	c := openSyncSession(t, f, f.tok, "r-ahead")
	at := crdt.Version{Time: nowMs.Load() + crdt.DefaultSkew.Milliseconds(), Counter: math.MaxUint32, Node: "r-ahead"}
	res := pushAndWait(c, syncproto.Change{RSeq: 1, Kind: "event", ID: e, Delta: crdt.Doc{
		Fields: map[string]crdt.Field{"description": field(at, `"device"`)}}})
	if res[0].Status != syncproto.StatusOK {
		t.Fatalf("push: %+v", res[0])
	}
	f.must(200, "PUT", "/"+cid+"/events/"+e, map[string]any{"description": "http"})
	ev := f.must(200, "GET", "/"+cid+"/events/"+e, nil).(map[string]any)
	if ev["description"] != "http" {
		t.Errorf("description %v after the HTTP write, want \"http\"", ev["description"])
	}
}
