package server_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// scrape reads /metrics (Prometheus text format) into series → value, a
// series being written as in the exposition: name{label="v",…}.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", "/metrics", nil)
	rec := newRecorder()
	h.ServeHTTP(rec, req)
	if rec.status != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.status, rec.body.String())
	}
	if ct := rec.h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: content type %q, want the Prometheus text format", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(rec.body.Bytes()))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsCountersMove scrapes /metrics before and after HTTP calls and a
// sync session with a push, and checks each series of SPEC §3.4 moved.
func TestMetricsCountersMove(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	before := scrape(t, e.srv)

	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"id": "diary", "name": "Diary"})
	mustStatus(t, "create channel", st, v, 201)
	st, v = e.doJSON("GET", "/alice01/channels", "bad-token", nil)
	mustStatus(t, "bad token", st, v, 401)

	c, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatal(err)
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: "r1"}})
	c.recvType(syncproto.TypeWelcome)
	first := c.recvType(syncproto.TypeChanges)
	c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: first.Changes.Cursor}})
	during := scrape(t, e.srv)
	if got := during[`pryvsync_connections{kind="sync"}`]; got < 1 {
		t.Fatalf("connections{kind=sync} = %v during a session, want ≥ 1", got)
	}
	vv := crdt.Version{Time: time.Now().UnixMilli(), Node: "r1"}
	ev := model.NewID()
	c.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 1, Kind: "event", ID: ev, Create: true, Delta: crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": field(vv, `"diary"`), "time": field(vv, "1700000000"), "type": field(vv, `{"class":"note","format":"txt"}`)}}},
		{RSeq: 2, Kind: "event", ID: model.NewID(), Create: true, Delta: crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": field(vv, `"nowhere"`), "time": field(vv, "1700000000"), "type": field(vv, `{"class":"note","format":"txt"}`)}}},
	}}})
	res := c.recvType(syncproto.TypePushResult)
	if res.PushResult.Results[0].Status != syncproto.StatusOK || res.PushResult.Results[1].Status != syncproto.StatusRejected {
		t.Fatalf("push results %+v: want ok then rejected", res.PushResult.Results)
	}
	for !c.items[ev] {
		m := c.recvType(syncproto.TypeChanges)
		c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
	}
	after := scrape(t, e.srv)

	for _, series := range []string{
		`pryvsync_http_requests_total{route="/{user}/channels",status="201"}`,
		`pryvsync_http_requests_total{route="/{user}/channels",status="401"}`,
		`pryvsync_http_errors_total{error="invalid-access-token",route="/{user}/channels"}`,
		`pryvsync_sync_items_in_total`,
		`pryvsync_sync_items_out_total`,
		`pryvsync_rejected_writes_total`,
		`pryvsync_push_seconds_count`,
		`pryvsync_pull_batch_seconds_count`,
	} {
		if after[series] <= before[series] {
			t.Errorf("%s did not move: %v → %v", series, before[series], after[series])
		}
	}
	if got := after["pryvsync_sync_items_in_total"] - before["pryvsync_sync_items_in_total"]; got < 2 {
		t.Errorf("sync items in moved by %v, want at least the 2 pushed", got)
	}
	for _, part := range []string{"lsm", "vlog", "files"} {
		if _, ok := after[`pryvsync_store_bytes{part="`+part+`"}`]; !ok {
			t.Errorf("no pryvsync_store_bytes{part=%q} series", part)
		}
	}
	for name := range after {
		if strings.Contains(name, tok) || strings.Contains(name, ev) {
			t.Fatalf("a metric label carries a token or an item id: %s", name)
		}
	}
}

// TestMetricsFeedLagMoves checks the change-feed lag histogram: a change
// committed while a replica is connected reaches it, and the time from
// commit to send is observed.
func TestMetricsFeedLagMoves(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	c, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatal(err)
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: "r1"}})
	c.recvType(syncproto.TypeWelcome)
	first := c.recvType(syncproto.TypeChanges)
	c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: first.Changes.Cursor}})
	before := scrape(t, e.srv)
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"id": "live", "name": "Live"})
	mustStatus(t, "create channel", st, v, 201)
	for !c.items["live"] {
		m := c.recvType(syncproto.TypeChanges)
		c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
	}
	after := scrape(t, e.srv)
	if after["pryvsync_feed_lag_seconds_count"] <= before["pryvsync_feed_lag_seconds_count"] {
		t.Fatalf("pryvsync_feed_lag_seconds_count did not move (%v → %v) for a live change",
			before["pryvsync_feed_lag_seconds_count"], after["pryvsync_feed_lag_seconds_count"])
	}
}

// TestMetricsStoreSizeOnDisk checks the store size series of an on-disk
// store, attachment content included.
func TestMetricsStoreSizeOnDisk(t *testing.T) {
	cfg := server.DefaultConfig()
	srv, err := server.Open(cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, _, err := srv.Store().SaveFile("alice01", strings.NewReader(strings.Repeat("x", 10000)), 1<<20); err != nil {
		t.Fatal(err)
	}
	err = srv.Store().Update(context.Background(), "alice01", func(tx *store.Tx) error {
		return tx.PutJSON(store.KeyUserRecord("alice01"), &model.User{Username: "alice01"})
	})
	if err != nil {
		t.Fatal(err)
	}
	m := scrape(t, srv.MetricsHandler())
	if m[`pryvsync_store_bytes{part="vlog"}`] <= 0 || m[`pryvsync_store_bytes{part="files"}`] < 10000 {
		t.Fatalf("store size series: vlog %v, files %v; want both measured",
			m[`pryvsync_store_bytes{part="vlog"}`], m[`pryvsync_store_bytes{part="files"}`])
	}
}

// /metrics counts errors by route (SPEC §3.4) whichever path answered
// them: here an unknown user (404) and a method not allowed (405), which
// are not answered through Server.fail.
func TestMetricsCountEveryErrorAnswer(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"name": "Diary"})
	mustStatus(t, "create channel", st, v, 201)
	before := scrape(t, e.srv)
	st, _ = e.doJSON("GET", "/nosuch01/diary/events", tok, nil)
	if st != 404 {
		t.Fatalf("unknown user: %d", st)
	}
	st, _ = e.doJSON("PATCH", "/alice01/diary/events", tok, nil)
	if st != 405 {
		t.Fatalf("PATCH: %d", st)
	}
	after := scrape(t, e.srv)
	for _, series := range []string{
		`pryvsync_http_errors_total{error="unknown-user",route="/{user}/{channel}/events"}`,
		`pryvsync_http_errors_total{error="invalid-operation",route="/{user}/{channel}/events"}`,
	} {
		if after[series] <= before[series] {
			t.Errorf("%s did not move (%v → %v), though the request answered that error", series, before[series], after[series])
		}
	}
	for _, series := range []string{
		`pryvsync_http_requests_total{route="/{user}/{channel}/events",status="404"}`,
		`pryvsync_http_requests_total{route="/{user}/{channel}/events",status="405"}`,
	} {
		if after[series] <= before[series] {
			t.Errorf("%s did not move", series)
		}
	}
}
