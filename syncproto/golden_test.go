package syncproto_test

// Golden frames for clients in other languages (PROTOCOL.md). Every message
// type has at least one fixed Message value below; its frame, as Encode
// writes it, is stored in ../testdata/golden/<name>.msgpack, and a readable
// twin in <name>.json: the frame decoded into a generic value (interface{})
// and written as indented JSON, with bin values as base64 strings.
//
// Regenerate with: go test ./syncproto/ -run TestGolden -update
//
// Map order. msgpack writes a struct's keys in declaration order, but a Go
// map's in random order (Encode does not sort). A case whose value holds no
// Go map with more than one key (exact: true) must encode to exactly the
// stored bytes; the test checks that such a case really holds no multi-key
// map. The other cases (realistic crdt.Docs with several fields) are compared
// by decoding: the generic decoded values of the fresh and the stored frame
// must be reflect.DeepEqual (key order does not matter, but every key, type
// and integer width does), and so must the decoded Messages.

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const goldenDir = "../testdata/golden"

type goldenCase struct {
	name  string
	exact bool // no multi-key Go map: the encoding is byte-for-byte stable
	msg   *syncproto.Message
}

// Fixed values used across the cases.
const (
	gEpoch   = "01JGZ3Q4S8E2M5W7X9Y0A1B2C3"
	gReplica = "r-7f3a9c"
	gEvent   = "ckx2v9q8z0000abcdefghijkl"
	gEvent2  = "ckx2v9q8z0001abcdefghijkl"
	gDigest  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" // sha256("test")
	gT0      = int64(1767225600000)                                               // 2026-01-01T00:00:00Z, ms
)

func ver(dt int64, c uint32, node string) crdt.Version {
	return crdt.Version{Time: gT0 + dt, Counter: c, Node: node}
}

func fld(v crdt.Version, jsonVal string) crdt.Field {
	return crdt.Field{V: v, Val: []byte(jsonVal)}
}

func strp(s string) *string   { return &s }
func f64p(f float64) *float64 { return &f }

// gKey is the access's removal-blinding key sent in welcome.
var gKey = []byte("0123456789abcdef0123456789abcdef")

func goldenCases() []goldenCase {
	perms := []model.Permission{
		{ChannelID: "diary", Level: "contribute"},
		{
			ChannelID:         "health",
			Level:             "read",
			FolderPermissions: []model.FolderPermission{{FolderID: strp("sleep"), Level: "read"}},
			Tags:              []string{"shared"},
			TimeFrame:         &model.TimeFrame{From: f64p(1767225600), To: nil},
		},
	}
	eventDoc := crdt.Doc{
		Fields: map[string]crdt.Field{
			"channelId":  fld(ver(0, 0, gReplica), `"diary"`),
			"time":       fld(ver(0, 0, gReplica), `1767225600.5`),
			"type":       fld(ver(0, 0, gReplica), `"note/txt"`),
			"value":      fld(ver(0, 0, gReplica), `"Walked to the lake"`),
			"trashed":    fld(ver(0, 0, gReplica), `false`),
			"created":    fld(ver(120, 0, "server"), `1767225600.12`),
			"createdBy":  fld(ver(120, 0, "server"), `"acc-1"`),
			"modified":   fld(ver(120, 0, "server"), `1767225600.12`),
			"modifiedBy": fld(ver(120, 0, "server"), `"acc-1"`),
		},
		Tags:  map[string]crdt.Elem{"walk": {V: ver(0, 0, gReplica), Present: true}},
		Data:  map[string]crdt.Field{"mood": fld(ver(0, 1, gReplica), `{"score":4}`)},
		Files: map[string]crdt.Field{"a1": fld(ver(0, 2, gReplica), `{"digest":"`+gDigest+`","fileName":"test.txt","size":4,"type":"text/plain"}`)},
	}
	return []goldenCase{
		{name: "hello", exact: true, msg: &syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{
			Version: syncproto.ProtocolVersion, Replica: gReplica,
			Cursor:  &syncproto.Cursor{Epoch: gEpoch, Seq: 1042},
			Pending: 2, Clock: gT0 + 5000, PermVersion: 3,
		}}},
		{name: "hello-first", exact: true, msg: &syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{
			Version: syncproto.ProtocolVersion, Replica: gReplica, Clock: gT0,
		}}},
		{name: "welcome", exact: true, msg: &syncproto.Message{T: syncproto.TypeWelcome, Welcome: &syncproto.Welcome{
			ServerTime: gT0 + 5100, Epoch: gEpoch, AccessID: "acc-1", AccessType: model.AccessApp,
			Permissions: perms, PermVersion: 3, Key: gKey, Resume: 1042,
		}}},
		{name: "welcome-reset", exact: true, msg: &syncproto.Message{T: syncproto.TypeWelcome, Welcome: &syncproto.Welcome{
			ServerTime: gT0 + 5100, Epoch: gEpoch, AccessID: "acc-1", AccessType: model.AccessApp,
			Permissions: perms, PermVersion: 3, Key: gKey, Resume: 0, Reset: syncproto.ResetHorizon,
		}}},
		{name: "welcome-rescan", exact: true, msg: &syncproto.Message{T: syncproto.TypeWelcome, Welcome: &syncproto.Welcome{
			ServerTime: gT0 + 5100, Epoch: gEpoch, AccessID: "acc-1", AccessType: model.AccessApp,
			Permissions: perms[:1], PermVersion: 4, Key: gKey, Resume: 1042, Rescan: true,
		}}},
		{name: "push", msg: &syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
			{RSeq: 7, Kind: "event", ID: gEvent, Create: true, Delta: crdt.Doc{
				Fields: map[string]crdt.Field{
					"channelId": fld(ver(0, 0, gReplica), `"diary"`),
					"time":      fld(ver(0, 0, gReplica), `1767225600.5`),
					"type":      fld(ver(0, 0, gReplica), `"note/txt"`),
					"value":     fld(ver(0, 0, gReplica), `"Walked to the lake"`),
				},
				Tags: map[string]crdt.Elem{"walk": {V: ver(0, 0, gReplica), Present: true}},
				Data: map[string]crdt.Field{"mood": fld(ver(0, 1, gReplica), `{"score":4}`)},
			}},
			{RSeq: 8, Kind: "folder", ID: "sleep", Delta: crdt.Doc{
				Fields: map[string]crdt.Field{"name": fld(ver(1000, 0, gReplica), `"Sleep"`)},
			}},
			{RSeq: 9, Kind: "event", ID: gEvent2, Delta: crdt.Doc{
				Tags: map[string]crdt.Elem{"draft": {V: ver(2000, 0, gReplica), Present: false}},
				Data: map[string]crdt.Field{"tmp": {V: ver(2000, 0, gReplica)}}, // key removed: no "x"
			}},
			{RSeq: 10, Kind: "event", ID: "ckx2v9q8z0002abcdefghijkl", Delta: crdt.Doc{Deleted: ver(3000, 0, gReplica)}},
		}}}},
		{name: "pushResult-ok", exact: true, msg: &syncproto.Message{T: syncproto.TypePushResult, PushResult: &syncproto.PushResult{Results: []syncproto.Result{
			{RSeq: 7, Status: syncproto.StatusOK, Seq: 1043},
			{RSeq: 8, Status: syncproto.StatusOK, Seq: 1044, Renamed: "Sleep (2)", Current: &syncproto.Item{Kind: "folder", ID: "sleep", Doc: crdt.Doc{
				Fields: map[string]crdt.Field{"name": fld(ver(1000, 0, gReplica), `"Sleep (2)"`)},
			}}},
			{RSeq: 6, Status: syncproto.StatusDuplicate},
		}}}},
		{name: "pushResult-conflict", msg: &syncproto.Message{T: syncproto.TypePushResult, PushResult: &syncproto.PushResult{Results: []syncproto.Result{
			{RSeq: 11, Status: syncproto.StatusConflict, Seq: 1045, Lost: []string{"tags:walk", "value"},
				Current: &syncproto.Item{Kind: "event", ID: gEvent, Doc: eventDoc}},
		}}}},
		{name: "pushResult-rejected", exact: true, msg: &syncproto.Message{T: syncproto.TypePushResult, PushResult: &syncproto.PushResult{Results: []syncproto.Result{
			{RSeq: 12, Status: syncproto.StatusRejected,
				Error: &model.Error{ID: model.ErrInvalidOperation, Message: `the folder "sleep" is trashed`, Data: map[string]any{"trashed": true}},
				Current: &syncproto.Item{Kind: "folder", ID: "sleep", Doc: crdt.Doc{
					Fields: map[string]crdt.Field{"trashed": fld(ver(4000, 0, "server"), `true`)},
				}}},
			{RSeq: 13, Status: syncproto.StatusRejected,
				Error: &model.Error{ID: model.ErrUnknownFolder, Message: `unknown folder "gone"`}},
		}}}},
		{name: "changes", msg: &syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{
			Items: []syncproto.Item{
				{Kind: "event", ID: gEvent, Doc: eventDoc},
				{Kind: "folder", ID: "sleep", Doc: crdt.Doc{Fields: map[string]crdt.Field{
					"channelId":  fld(ver(-9000, 0, "server"), `"health"`),
					"name":       fld(ver(-9000, 0, "server"), `"Sleep"`),
					"parentId":   fld(ver(-9000, 0, "server"), `null`),
					"created":    fld(ver(-9000, 0, "server"), `1767225591`),
					"createdBy":  fld(ver(-9000, 0, "server"), `"acc-0"`),
					"modified":   fld(ver(-9000, 0, "server"), `1767225591`),
					"modifiedBy": fld(ver(-9000, 0, "server"), `"acc-0"`),
				}}},
			},
			Removals: [][]byte{
				syncproto.BlindID(gKey, "event", "ckx2v9q8z0004abcdefghijkl"),
				syncproto.BlindID(gKey, "folder", "work"),
			},
			Cursor:   syncproto.Cursor{Epoch: gEpoch, Seq: 1050},
			CaughtUp: true,
		}}},
		{name: "changes-empty", exact: true, msg: &syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{
			Cursor: syncproto.Cursor{Epoch: gEpoch, Seq: 1050}, CaughtUp: true,
		}}},
		{name: "ack", exact: true, msg: &syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{
			Cursor: syncproto.Cursor{Epoch: gEpoch, Seq: 1050},
		}}},
		{name: "scope", exact: true, msg: &syncproto.Message{T: syncproto.TypeScope, Scope: &syncproto.Scope{
			Permissions: perms[:1], PermVersion: 4,
		}}},
		{name: "attachmentGet", exact: true, msg: &syncproto.Message{T: syncproto.TypeAttachmentGet, AttachmentGet: &syncproto.AttachmentGet{
			EventID: gEvent, Digest: gDigest, Offset: 0,
		}}},
		{name: "attachmentData", exact: true, msg: &syncproto.Message{T: syncproto.TypeAttachmentData, AttachmentData: &syncproto.AttachmentData{
			Digest: gDigest, Offset: 0, Data: []byte("test"), EOF: true,
		}}},
		{name: "attachmentData-error", exact: true, msg: &syncproto.Message{T: syncproto.TypeAttachmentData, AttachmentData: &syncproto.AttachmentData{
			Digest: gDigest, EOF: true, Error: &model.Error{ID: model.ErrUnknownAttachment, Message: "unknown attachment"},
		}}},
		{name: "attachmentPut", exact: true, msg: &syncproto.Message{T: syncproto.TypeAttachmentPut, AttachmentPut: &syncproto.AttachmentPut{
			Digest: gDigest, Offset: 0, Data: []byte("test"), Final: true,
		}}},
		{name: "error", exact: true, msg: &syncproto.Message{T: syncproto.TypeError, Error: &syncproto.Error{
			Code: syncproto.CloseRevoked, ID: model.ErrInvalidAccessToken, Message: "access revoked",
		}}},
	}
}

// maxMapLen returns the largest number of keys of any Go map reachable from v.
func maxMapLen(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return 0
		}
		return maxMapLen(v.Elem())
	case reflect.Struct:
		m := 0
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				m = max(m, maxMapLen(v.Field(i)))
			}
		}
		return m
	case reflect.Slice, reflect.Array:
		m := 0
		for i := range v.Len() {
			m = max(m, maxMapLen(v.Index(i)))
		}
		return m
	case reflect.Map:
		m := v.Len()
		it := v.MapRange()
		for it.Next() {
			m = max(m, maxMapLen(it.Value()))
		}
		return m
	}
	return 0
}

// generic decodes a frame into interface{}, as a client without the Go types
// would see it.
func generic(t *testing.T, frame []byte) any {
	t.Helper()
	var v any
	if err := msgpack.Unmarshal(frame, &v); err != nil {
		t.Fatalf("generic decode: %v", err)
	}
	return v
}

// twin returns the readable JSON twin of a frame.
func twin(t *testing.T, frame []byte) []byte {
	t.Helper()
	b, err := json.MarshalIndent(generic(t, frame), "", "  ")
	if err != nil {
		t.Fatalf("json twin: %v", err)
	}
	return append(b, '\n')
}

func TestGolden(t *testing.T) {
	cases := goldenCases()
	types := map[string]bool{}
	for _, c := range cases {
		types[c.msg.T] = true
	}
	for _, typ := range []string{
		syncproto.TypeHello, syncproto.TypeWelcome, syncproto.TypePush, syncproto.TypePushResult,
		syncproto.TypeChanges, syncproto.TypeAck, syncproto.TypeScope, syncproto.TypeAttachmentGet,
		syncproto.TypeAttachmentData, syncproto.TypeAttachmentPut, syncproto.TypeError,
	} {
		if !types[typ] {
			t.Errorf("no golden case for message type %q", typ)
		}
	}
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			binPath := filepath.Join(goldenDir, c.name+".msgpack")
			jsonPath := filepath.Join(goldenDir, c.name+".json")
			if c.exact {
				if n := maxMapLen(reflect.ValueOf(c.msg)); n > 1 {
					t.Fatalf("case marked exact holds a Go map with %d keys: its encoding order is random", n)
				}
			}
			got, err := syncproto.Encode(c.msg)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if *update {
				if err := os.WriteFile(binPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(jsonPath, twin(t, got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			stored, err := os.ReadFile(binPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}

			// Encoding the value gives the stored frame.
			if c.exact {
				if !bytes.Equal(got, stored) {
					t.Errorf("Encode differs from %s\n got %x\nwant %x", binPath, got, stored)
				}
			} else if g, s := generic(t, got), generic(t, stored); !reflect.DeepEqual(g, s) {
				t.Errorf("Encode differs from %s once decoded\n got %#v\nwant %#v", binPath, g, s)
			}

			// Decoding the stored frame gives the value back.
			dec, err := syncproto.Decode(stored)
			if err != nil {
				t.Fatalf("Decode(%s): %v", binPath, err)
			}
			if !reflect.DeepEqual(dec, c.msg) {
				t.Errorf("Decode(%s) differs from the value\n got %#v\nwant %#v", binPath, dec, c.msg)
			}

			// The JSON twin matches the stored frame.
			storedJSON, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if want := twin(t, stored); !bytes.Equal(storedJSON, want) {
				t.Errorf("%s does not match %s:\n%s", jsonPath, binPath, want)
			}
		})
	}
}
