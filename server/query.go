package server

import (
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// queryParams reads query parameters strictly: only the declared names (and
// the token's "auth") are allowed; a scalar appears once, in its plain form;
// an array accepts both repeated keys and the "key[]=" form (SPEC §3.3).
type queryParams struct {
	q url.Values
}

// newQueryParams refuses any parameter not in scalars or arrays, naming
// every offending one in data.fields.
func newQueryParams(q url.Values, scalars, arrays []string) (queryParams, error) {
	var unknown []string
	for k := range q {
		if k == "auth" || slices.Contains(scalars, k) || slices.Contains(arrays, k) ||
			strings.HasSuffix(k, "[]") && slices.Contains(arrays, strings.TrimSuffix(k, "[]")) {
			continue
		}
		unknown = append(unknown, k)
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return queryParams{}, model.Errorf(model.ErrInvalidParametersFormat, "unknown parameters: %s", strings.Join(unknown, ", ")).
			WithData(map[string]any{"field": unknown[0], "fields": unknown})
	}
	return queryParams{q: q}, nil
}

// scalar returns the one value of name; ok is false when absent.
func (p queryParams) scalar(name string) (string, bool, error) {
	vs, ok := p.q[name]
	if !ok {
		return "", false, nil
	}
	if len(vs) != 1 {
		return "", false, model.FieldError(name, "must be given once")
	}
	return vs[0], true, nil
}

// array returns every value of name, from "name" and "name[]" keys.
func (p queryParams) array(name string) ([]string, bool) {
	a, ok1 := p.q[name]
	b, ok2 := p.q[name+"[]"]
	return append(append([]string(nil), a...), b...), ok1 || ok2
}

// number parses a finite number parameter.
func (p queryParams) number(name string) (float64, bool, error) {
	s, ok, err := p.scalar(name)
	if err != nil || !ok {
		return 0, false, err
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, model.FieldError(name, "must be a number")
	}
	return f, true, nil
}

// boolean parses a boolean parameter ("true", "false", "1", "0").
func (p queryParams) boolean(name string) (bool, bool, error) {
	s, ok, err := p.scalar(name)
	if err != nil || !ok {
		return false, false, err
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, false, model.FieldError(name, "must be true or false")
	}
	return b, true, nil
}

// integer parses an integer parameter of at least min.
func (p queryParams) integer(name string, min int) (int, bool, error) {
	s, ok, err := p.scalar(name)
	if err != nil || !ok {
		return 0, false, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min {
		return 0, false, model.FieldError(name, "must be an integer >= %d", min)
	}
	return n, true, nil
}

// state parses state=default|trashed|all.
func (p queryParams) state() (string, error) {
	s, ok, err := p.scalar("state")
	if err != nil || !ok {
		return "default", err
	}
	switch s {
	case "default", "trashed", "all":
		return s, nil
	}
	return "", model.FieldError("state", "must be default, trashed or all")
}

// eventQuery is a parsed GET /{cid}/events query (SPEC §3.3).
type eventQuery struct {
	from, to         float64 // inclusive window; ±Inf when open
	folderIDs        []string
	noFolder         bool // onlyFolders holds null
	byFolder         bool // onlyFolders was given
	tags             []string
	state            string
	modifiedSince    float64
	hasModified      bool
	includeDeletions bool
	asc              bool
	skip             int
	limit            int // 0: no limit
}

// defaultEventLimit applies when no time bound is given.
const defaultEventLimit = 20

func parseEventQuery(q url.Values) (*eventQuery, error) {
	p, err := newQueryParams(q,
		[]string{"fromTime", "toTime", "state", "modifiedSince", "includeDeletions", "sortAscending", "skip", "limit"},
		[]string{"onlyFolders", "tags"})
	if err != nil {
		return nil, err
	}
	eq := &eventQuery{from: math.Inf(-1), to: math.Inf(1)}
	from, hasFrom, err := p.number("fromTime")
	if err != nil {
		return nil, err
	}
	to, hasTo, err := p.number("toTime")
	if err != nil {
		return nil, err
	}
	switch {
	case hasFrom && hasTo:
		eq.from, eq.to = from, to
	case hasFrom:
		eq.from = from
	case hasTo:
		eq.from, eq.to = to-24*3600, to
	default:
		eq.limit = defaultEventLimit
	}
	if ids, ok := p.array("onlyFolders"); ok {
		eq.byFolder = true
		for _, id := range ids {
			if id == "null" {
				eq.noFolder = true
			} else {
				eq.folderIDs = append(eq.folderIDs, id)
			}
		}
	}
	tags, _ := p.array("tags")
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" {
			eq.tags = append(eq.tags, t)
		}
	}
	if eq.state, err = p.state(); err != nil {
		return nil, err
	}
	if eq.modifiedSince, eq.hasModified, err = p.number("modifiedSince"); err != nil {
		return nil, err
	}
	if eq.includeDeletions, _, err = p.boolean("includeDeletions"); err != nil {
		return nil, err
	}
	if eq.includeDeletions && !eq.hasModified {
		return nil, model.FieldError("includeDeletions", "needs modifiedSince")
	}
	if eq.asc, _, err = p.boolean("sortAscending"); err != nil {
		return nil, err
	}
	if eq.skip, _, err = p.integer("skip", 0); err != nil {
		return nil, err
	}
	limit, hasLimit, err := p.integer("limit", 1)
	if err != nil {
		return nil, err
	}
	if hasLimit {
		eq.limit = limit
	}
	return eq, nil
}

// folderNode is one live folder of a channel.
type folderNode struct {
	id       string
	doc      crdt.Doc
	facts    model.FolderFacts
	children []*folderNode // sorted by name, ties by id
}

// folderIndex is the folder tree of one channel, loaded once per request:
// the scope's model.Tree for that channel, and the answer to "is this
// folder, or an ancestor, trashed/hidden".
type folderIndex struct {
	nodes map[string]*folderNode
	roots []*folderNode
}

// loadFolders reads the live folders of channel.
func loadFolders(tx *store.Tx, channel string) (*folderIndex, error) {
	fx := &folderIndex{nodes: map[string]*folderNode{}}
	err := tx.Items(model.KindFolder, func(id string, r *store.Record) (bool, error) {
		if r.Channel == channel && model.Exists(r.Doc) {
			fx.nodes[id] = &folderNode{id: id, doc: r.Doc, facts: model.FolderFactsOf(r.Doc)}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, n := range fx.nodes {
		if p, ok := fx.nodes[n.facts.Parent]; ok && n.facts.Parent != n.id {
			p.children = append(p.children, n)
		} else {
			fx.roots = append(fx.roots, n)
		}
	}
	byName := func(list []*folderNode) {
		model.SortByName(list, func(n *folderNode) string { return n.facts.Name }, func(n *folderNode) string { return n.id })
	}
	byName(fx.roots)
	for _, n := range fx.nodes {
		byName(n.children)
	}
	return fx, nil
}

// FolderParent implements model.Tree.
func (fx *folderIndex) FolderParent(id string) (string, bool) {
	n, ok := fx.nodes[id]
	if !ok {
		return "", false
	}
	return n.facts.Parent, true
}

// upward reports whether pred holds for the folder or any ancestor.
func (fx *folderIndex) upward(id string, pred func(model.FolderFacts) bool) bool {
	for depth := 0; id != "" && depth < 1024; depth++ {
		n, ok := fx.nodes[id]
		if !ok {
			return false
		}
		if pred(n.facts) {
			return true
		}
		id = n.facts.Parent
	}
	return false
}

func folderTrashed(f model.FolderFacts) bool { return f.Trashed }
func folderHidden(f model.FolderFacts) bool  { return f.Hidden }

// trashed reports whether the folder or an ancestor is trashed.
func (fx *folderIndex) trashed(id string) bool { return fx.upward(id, folderTrashed) }

// subtree returns the folder and its descendants, deepest first (so a
// removal can go leaf to root and every check still sees the parents).
func (fx *folderIndex) subtree(id string) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(n *folderNode)
	walk = func(n *folderNode) {
		if seen[n.id] {
			return
		}
		seen[n.id] = true
		for _, c := range n.children {
			walk(c)
		}
		out = append(out, n.id)
	}
	if n, ok := fx.nodes[id]; ok {
		walk(n)
	}
	return out
}

// eventFilter decides which events of one channel a read returns.
type eventFilter struct {
	q              *eventQuery
	scope          model.Scope
	fx             *folderIndex
	channelTrashed bool
	folders        map[string]bool // expanded onlyFolders, nil: any
}

// newEventFilter resolves onlyFolders against the folders the scope sees:
// an id that is unknown, of another channel or out of scope is refused with
// unknown-folder, all such ids listed in data.unknownIds.
func newEventFilter(q *eventQuery, scope model.Scope, channel string, channelTrashed bool, fx *folderIndex) (*eventFilter, error) {
	f := &eventFilter{q: q, scope: scope, fx: fx, channelTrashed: channelTrashed}
	if !q.byFolder {
		return f, nil
	}
	f.folders = map[string]bool{}
	var unknown []string
	for _, id := range q.folderIDs {
		if _, ok := fx.nodes[id]; !ok || scope.FolderLevel(channel, id, fx) == model.LevelNone {
			unknown = append(unknown, id)
			continue
		}
		for _, d := range fx.subtree(id) {
			f.folders[d] = true
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, model.Errorf(model.ErrUnknownFolder, "unknown folders in onlyFolders").
			WithData(map[string]any{"unknownIds": unknown})
	}
	return f, nil
}

// keeps reports whether the event is in scope and matches the query.
func (f *eventFilter) keeps(ef model.EventFacts, d crdt.Doc) bool {
	if f.scope.EventLevel(ef, f.fx) == model.LevelNone {
		return false
	}
	if !stateKeeps(f.q.state, ef.Trashed || f.channelTrashed || f.fx.trashed(ef.Folder)) {
		return false
	}
	if f.folders != nil {
		if ef.Folder == "" {
			if !f.q.noFolder {
				return false
			}
		} else if !f.folders[ef.Folder] {
			return false
		}
	}
	for _, t := range f.q.tags {
		if !ef.HasTag(t) {
			return false
		}
	}
	if f.q.hasModified {
		if m, _ := model.NumberField(d, model.FieldModified); m <= f.q.modifiedSince {
			return false
		}
	}
	return true
}
