package loadgen

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
)

const foldersPerChannel = 20

// tagPool is the 10 tags events draw 0–3 of.
var tagPool = [10]string{"sleep", "run", "mood", "work", "meal", "walk", "read", "code", "rest", "call"}

var words = strings.Fields(`slept well after a long walk by the river then wrote notes about the
	morning run felt tired but calm ate lunch with friends read two chapters coded the sync loop
	called home rested in the park measured heart rate and mood before dinner`)

// eventGen makes events of the workloads' shape for one channel: one of 20
// folders, an increasing time, type note/txt, an ~80-character value and
// 0–3 of 10 tags. Safe for concurrent use.
type eventGen struct {
	channel string
	folders []string

	mu  sync.Mutex
	rng *rand.Rand
	t   float64
}

func newEventGen(channel string, folders []string, seed int64) *eventGen {
	return &eventGen{channel: channel, folders: folders, rng: rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)), t: 1_700_000_000}
}

type eventShape struct {
	folder string
	time   float64
	value  string
	tags   []string
}

func (g *eventGen) next() eventShape {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.t += 1 + float64(g.rng.IntN(600))
	s := eventShape{time: g.t}
	if len(g.folders) > 0 {
		s.folder = g.folders[g.rng.IntN(len(g.folders))]
	}
	var b strings.Builder
	for b.Len() < 80 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[g.rng.IntN(len(words))])
	}
	s.value = b.String()[:80]
	for _, i := range g.rng.Perm(len(tagPool))[:g.rng.IntN(4)] {
		s.tags = append(s.tags, tagPool[i])
	}
	return s
}

var noteTxt = json.RawMessage(`{"class":"note","format":"txt"}`)

// body returns the next event as an API body (for Replica.CreateEvent and
// HTTP creates).
func (g *eventGen) body() map[string]json.RawMessage {
	s := g.next()
	b := map[string]json.RawMessage{
		"channelId": model.JSONString(g.channel),
		"time":      model.JSONNumber(s.time),
		"type":      noteTxt,
		"value":     model.JSONString(s.value),
	}
	if s.folder != "" {
		b["folderId"] = model.JSONString(s.folder)
	}
	if len(s.tags) > 0 {
		raw, _ := json.Marshal(s.tags)
		b["tags"] = raw
	}
	return b
}

// doc returns the next event as a creation delta stamped with v, as a
// replica would push it.
func (g *eventGen) doc(v crdt.Version, by string) crdt.Doc {
	s := g.next()
	d := crdt.Doc{Fields: map[string]crdt.Field{
		"channelId": {V: v, Val: model.JSONString(g.channel)},
		"folderId":  {V: v, Val: []byte("null")},
		"time":      {V: v, Val: model.JSONNumber(s.time)},
		"type":      {V: v, Val: noteTxt},
		"value":     {V: v, Val: model.JSONString(s.value)},
	}}
	if s.folder != "" {
		d.Fields["folderId"] = crdt.Field{V: v, Val: model.JSONString(s.folder)}
	}
	if len(s.tags) > 0 {
		d.Tags = make(map[string]crdt.Elem, len(s.tags))
		for _, t := range s.tags {
			d.Tags[t] = crdt.Elem{V: v, Present: true}
		}
	}
	model.Stamp(&d, v, float64(v.Time)/1000, by, true)
	return d
}
