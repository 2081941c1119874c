package model_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

// benchTree is a folder tree: 20 root folders in channel c0, each with a
// child and a grandchild.
type benchTree map[string]string

func (t benchTree) FolderParent(f string) (string, bool) {
	p, ok := t[f]
	return p, ok
}

func newBenchTree() benchTree {
	t := benchTree{}
	for i := range 20 {
		root := fmt.Sprintf("c0-f%02d", i)
		t[root] = ""
		t[root+"-a"] = root
		t[root+"-a-b"] = root + "-a"
	}
	return t
}

// BenchmarkScopeEventLevel checks a shared access (a folder subtree and a
// tag filter in one channel, read on another) against an event deep in the
// tree: the check every feed entry and every push goes through.
func BenchmarkScopeEventLevel(b *testing.B) {
	f := "c0-f03"
	sc := model.Compile(model.AccessShared, []model.Permission{
		{ChannelID: "c0", Level: "contribute", FolderPermissions: []model.FolderPermission{{FolderID: &f, Level: "contribute"}}},
		{ChannelID: "c1", Level: "read", Tags: []string{"run"}},
	})
	t := newBenchTree()
	ev := model.EventFacts{Channel: "c0", Folder: "c0-f03-a-b", Time: 1_700_000_000, Tags: []string{"run", "mood"}}
	b.ReportAllocs()
	for b.Loop() {
		if sc.EventLevel(ev, t) != model.LevelContribute {
			b.Fatal("wrong level")
		}
	}
}

// BenchmarkScopeCompile compiles the permissions of a shared access.
func BenchmarkScopeCompile(b *testing.B) {
	f := "c0-f03"
	perms := []model.Permission{
		{ChannelID: "c0", Level: "contribute", FolderPermissions: []model.FolderPermission{{FolderID: &f, Level: "contribute"}}},
		{ChannelID: "c1", Level: "read", Tags: []string{"run"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = model.Compile(model.AccessShared, perms)
	}
}

// BenchmarkParsePatchEvent validates an event creation body (~200 bytes).
func BenchmarkParsePatchEvent(b *testing.B) {
	body := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(`{"channelId":"c0","folderId":"c0-f03","time":1700000000,"type":{"class":"note","format":"txt"},
		"value":"slept well after a long walk by the river then wrote notes about the morning ru","tags":["run","mood"]}`), &body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := model.ParsePatch(model.KindEvent, body, true, nil); err != nil {
			b.Fatal(err)
		}
	}
}
