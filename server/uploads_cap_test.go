package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// A session lets go of its older uploads at the cap of 4096 only once the
// pushes already queued, which may name them, are answered: the queued
// push naming content uploaded just before is applied, and its content read.
func TestUploadsPastTheCapKeepTheContentOfAQueuedPush(t *testing.T) {
	f := newActFixture(t)
	ch := f.channel("Diary")
	c := openSyncSession(t, f, f.tok, "r-cap")
	put := func(content []byte) {
		c.send(&syncproto.Message{T: syncproto.TypeAttachmentPut, AttachmentPut: &syncproto.AttachmentPut{Digest: hexSum(content), Data: content, Final: true}})
		if d := c.recvType(syncproto.TypeAttachmentData).AttachmentData; d.Error != nil {
			t.Fatalf("upload: %+v", d.Error)
		}
	}
	// 4096 uploads: the session's set is full.
	var last []byte
	for i := 0; i < 4096; i++ {
		last = []byte(fmt.Sprintf("content %d", i))
		put(last)
	}

	// Hold the committer, so that the next push stays queued.
	release := make(chan struct{})
	holding := make(chan struct{})
	go func() {
		_ = f.srv.Store().Update(context.Background(), f.user, func(tx *store.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding

	// The push naming the last uploaded content: queued behind the held request.
	ver := crdt.Version{Time: time.Now().UnixMilli(), Node: "r-cap"}
	meta := `{"digest":"` + hexSum(last) + `","fileName":"g.txt","size":` + fmt.Sprint(len(last)) + `,"type":"text/plain"}`
	ev := cuid("capev")
	c.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{{RSeq: 1, Kind: "event", ID: ev, Create: true, Delta: crdt.Doc{
		Fields: map[string]crdt.Field{"channelId": field(ver, `"`+ch+`"`), "time": field(ver, "1"),
			"type": field(ver, `{"class":"note","format":"txt"}`)},
		Files: map[string]crdt.Field{"g": field(ver, meta)}}}}}})
	// The replica uploads the content of its next change meanwhile: the
	// 4097th upload of the session.
	next := []byte("content of the next change")
	c.send(&syncproto.Message{T: syncproto.TypeAttachmentPut, AttachmentPut: &syncproto.AttachmentPut{Digest: hexSum(next), Data: next, Final: true}})
	if d := c.recvType(syncproto.TypeAttachmentData).AttachmentData; d.Error != nil {
		t.Fatalf("upload: %+v", d.Error)
	}
	close(release)
	res := c.recvType(syncproto.TypePushResult).PushResult.Results[0]
	if res.Status != syncproto.StatusOK {
		t.Fatalf("the push naming content its session uploaded just before is %s %+v: the 4097th upload "+
			"removed that content (releaseUploads at the cap) while the push was queued", res.Status, res.Error)
	}
	st, body, _ := f.do("GET", f.path("/"+ch+"/events/"+ev+"/g"), f.tok, nil)
	if st != 200 || string(body) != string(last) {
		t.Fatalf("reading the attachment back: %d %q", st, body)
	}
}
