package sim

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// HealAndCheck heals every partition, syncs every replica until a whole
// pass pushes nothing, then checks every invariant.
func (s *Sim) HealAndCheck() {
	s.stats.Checks++
	s.Tracef("-- heal and quiesce")
	for _, rep := range s.Reps {
		rep.EP.Heal()
		rep.EP.Arm(nil)
	}
	quiet := false
	for pass := 0; pass < maxQuiescePass && !quiet; pass++ {
		quiet = true
		for _, rep := range s.Reps {
			if rep.Revoked && rep.Purged {
				continue
			}
			res, err := s.SyncStep(rep, nil)
			if err != nil {
				continue
			}
			if res.Pushed+res.Rejected > 0 {
				quiet = false
			}
		}
	}
	if !quiet {
		s.Fail("no-quiescence", "replicas still pushed after %d passes", maxQuiescePass)
	}
	s.CheckInvariants()
}

// CheckInvariants checks a quiet world: convergence within scope, purged
// revoked replicas, acknowledged writes kept, rejections listed, feed
// integrity and replica high-water marks.
func (s *Sim) CheckInvariants() {
	st := s.snapshot()
	epoch := s.W.Server().Store().Epoch()
	for _, rep := range s.Reps {
		if rep.Revoked {
			if rep.Purged {
				s.checkPurged(rep)
			}
			continue
		}
		status, err := rep.R.Status()
		if err != nil {
			s.Fail("status-error", "%s: %v", rep.Name, err)
			continue
		}
		if status.Pending != 0 {
			s.Fail("pending-after-quiesce", "%s: %d changes still pending", rep.Name, status.Pending)
		}
		if status.Cursor == nil || status.Cursor.Epoch != epoch || status.Cursor.Seq != st.Head {
			s.Fail("cursor-not-at-head", "%s: cursor %+v, server head %d epoch %s", rep.Name, status.Cursor, st.Head, epoch)
		}
		s.checkConverged(rep, st)
		s.checkHTTPScope(rep, st)
	}
	s.checkPushes(st)
	s.checkFeed()
	s.checkTree(st)
	for _, k := range s.httpCreated {
		if _, ok := st.Docs[k]; !ok {
			s.Fail("http-write-lost", "%s was created over HTTP (201) and is not on the server", k)
		}
	}
}

// checkConverged compares the replica's items with the server's state
// restricted to the replica's scope, item by item, as rendered JSON.
func (s *Sim) checkConverged(rep *Rep, st *State) {
	want := st.Visible(rep.Perms)
	got := map[Key]any{}
	chs, err1 := rep.R.ListChannels()
	fs, err2 := rep.R.ListFolders("")
	evs, err3 := rep.R.ListEvents(replica.Filter{State: "all"})
	if err1 != nil || err2 != nil || err3 != nil {
		s.Fail("local-read-error", "%s: %v %v %v", rep.Name, err1, err2, err3)
		return
	}
	for _, c := range chs {
		got[Key{model.KindChannel, c.ID}] = c
	}
	for _, f := range fs {
		got[Key{model.KindFolder, f.ID}] = f
	}
	for _, e := range evs {
		got[Key{model.KindEvent, e.ID}] = e
	}
	var missing, extra, differ []string
	for k := range want {
		g, ok := got[k]
		if !ok {
			missing = append(missing, k.String()+" "+docString(st.Docs[k]))
			continue
		}
		a, _ := json.Marshal(g)
		exp := model.Render(k.Kind, k.ID, st.Docs[k])
		// A folder whose parent the token cannot see shows no parent (the
		// parent's id never reaches the token), as the HTTP tree does.
		// A replica that wrote the current parent itself (it made or moved
		// the folder) keeps showing it: that reveals nothing new, and the
		// wire check proves the id never came from the server.
		if f, ok := exp.(*model.Folder); ok && f.ParentID != nil && !want[Key{model.KindFolder, *f.ParentID}] {
			if gf, ok := g.(*model.Folder); !ok || gf.ParentID == nil || *gf.ParentID != *f.ParentID {
				f.ParentID = nil
			}
		}
		b, _ := json.Marshal(exp)
		if string(a) != string(b) {
			differ = append(differ, fmt.Sprintf("%s: replica %s, server %s", k, a, b))
		}
	}
	for k := range got {
		if !want[k] {
			d, known := st.Docs[k]
			why := "unknown to the server"
			if known {
				why = "server: " + docString(d)
			}
			extra = append(extra, k.String()+" ("+why+")")
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	sort.Strings(differ)
	if len(missing) > 0 {
		s.Fail("converge-missing", "%s (%s) lacks %d items in its scope: %s", rep.Name, permString(rep.Perms), len(missing), strings.Join(first(missing, 4), "; "))
	}
	if len(extra) > 0 {
		s.Fail("converge-extra", "%s (%s) holds %d items outside its scope: %s", rep.Name, permString(rep.Perms), len(extra), strings.Join(first(extra, 4), "; "))
	}
	if len(differ) > 0 {
		s.Fail("converge-differ", "%s: %d items differ from the server: %s", rep.Name, len(differ), strings.Join(first(differ, 2), "; "))
	}
}

func first(l []string, n int) []string {
	if len(l) > n {
		return append(l[:n:n], fmt.Sprintf("… and %d more", len(l)-n))
	}
	return l
}

// checkHTTPScope reads through the HTTP API with the replica's token and
// compares the ids it sees with the oracle's scope: sync and HTTP must
// agree on what a token sees.
func (s *Sim) checkHTTPScope(rep *Rep, st *State) {
	want := st.Visible(rep.Perms)
	got := map[Key]bool{}
	get := func(path string, v any) bool {
		code, b, err := s.W.Do("GET", path, rep.Token, nil)
		if err != nil || code != 200 {
			s.Fail("http-read", "%s: GET %s: %d %v %s", rep.Name, path, code, err, b)
			return false
		}
		if err := json.Unmarshal(b, v); err != nil {
			s.Fail("http-read", "%s: GET %s: %v", rep.Name, path, err)
			return false
		}
		return true
	}
	var chs []model.Channel
	if !get("/channels?state=all", &chs) {
		return
	}
	for _, c := range chs {
		got[Key{model.KindChannel, c.ID}] = true
		var fs []*model.Folder
		if get("/"+url.PathEscape(c.ID)+"/folders?state=all&includeHidden=true", &fs) {
			var walk func([]*model.Folder)
			walk = func(l []*model.Folder) {
				for _, f := range l {
					got[Key{model.KindFolder, f.ID}] = true
					walk(f.Children)
				}
			}
			walk(fs)
		}
		var evs []model.Event
		if get("/"+url.PathEscape(c.ID)+"/events?state=all&limit=100000", &evs) {
			for _, e := range evs {
				got[Key{model.KindEvent, e.ID}] = true
			}
		}
	}
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k.String()+" "+docString(st.Docs[k]))
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k.String()+" "+docString(st.Docs[k]))
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		s.Fail("http-scope-missing", "%s (%s): HTTP hides %d items the scope includes: %s", rep.Name, permString(rep.Perms), len(missing), strings.Join(first(missing, 4), "; "))
	}
	if len(extra) > 0 {
		s.Fail("http-scope-extra", "%s (%s): HTTP shows %d items outside the scope: %s", rep.Name, permString(rep.Perms), len(extra), strings.Join(first(extra, 4), "; "))
	}
}

// checkPushes checks every pushed change that got a result: replays
// answered like the original, acknowledged changes kept on the server,
// rejections and conflicts listed on their replica, and every change of a
// live replica answered.
func (s *Sim) checkPushes(st *State) {
	current := map[string]*Rep{}
	for _, rep := range s.Reps {
		if !(rep.Revoked && rep.Purged) {
			current[rep.R.ID()] = rep
		}
	}
	rejs := map[*Rep]map[string]map[string]int{} // rep → item → kind → count
	for _, rep := range current {
		list, err := rep.R.Rejections()
		if err != nil {
			s.Fail("rejections-error", "%s: %v", rep.Name, err)
			continue
		}
		m := map[string]map[string]int{}
		for _, r := range list {
			if m[r.ItemID] == nil {
				m[r.ItemID] = map[string]int{}
			}
			m[r.ItemID][r.Kind]++
		}
		rejs[rep] = m
	}
	want := map[*Rep]map[string]map[string]int{}
	// Sequence numbers are gap-free and commit-ordered: two applied
	// changes never share one, and the changes of one push get increasing
	// ones, at most the head.
	seqOwner := map[uint64]string{}
	ids := make([]string, 0, len(s.pushes))
	for id := range s.pushes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, rid := range ids {
		var maxAnswered uint64
		for rseq, r := range s.pushes[rid] {
			if r.change == nil {
				continue
			}
			ch := r.change
			if len(r.results) == 0 {
				if rep := current[rid]; rep != nil && !r.void {
					s.Fail("push-unanswered", "%s: rseq %d (%s %s) was pushed and never answered", rep.Name, rseq, ch.Kind, ch.ID)
				}
				continue
			}
			maxAnswered = max(maxAnswered, rseq)
			var first *syncproto.Result
			for i := range r.results {
				res := &r.results[i]
				if first == nil {
					first = res
					continue
				}
				if res.Status != first.Status || res.Seq != first.Seq {
					s.Fail("replay-result-mismatch", "rseq %d of %s: answered %s/%d, then %s/%d on replay",
						rseq, rid, first.Status, first.Seq, res.Status, res.Seq)
				}
			}
			if first.Seq != 0 && (first.Status == syncproto.StatusOK || first.Status == syncproto.StatusConflict) {
				who := fmt.Sprintf("%s/%d", rid, rseq)
				if o, dup := seqOwner[first.Seq]; dup && o != who {
					s.Fail("seq-reused", "changes %s and %s were both applied at seq %d", o, who, first.Seq)
				}
				seqOwner[first.Seq] = who
				if first.Seq > st.Head {
					s.Fail("seq-beyond-head", "change %s applied at seq %d, beyond head %d", who, first.Seq, st.Head)
				}
			}
			status := s.finalStatus(r)
			var lost []string
			renamed := false
			for _, res := range r.results {
				lost = append(lost, res.Lost...)
				renamed = renamed || res.Renamed != ""
			}
			switch status {
			case syncproto.StatusOK, syncproto.StatusConflict, syncproto.StatusDuplicate:
				s.checkKept(r.rep, rseq, ch, lost, renamed, st)
			}
			rep := current[rid]
			if rep == nil || r.void {
				continue
			}
			if want[rep] == nil {
				want[rep] = map[string]map[string]int{}
			}
			if want[rep][ch.ID] == nil {
				want[rep][ch.ID] = map[string]int{}
			}
			switch {
			case status == syncproto.StatusRejected:
				want[rep][ch.ID]["rejected"]++
			case status == syncproto.StatusConflict && len(lost) > 0:
				want[rep][ch.ID]["conflict"]++
			}
		}
		var hw uint64
		_ = s.W.Server().Store().View(User, func(tx *store.Tx) error {
			var err error
			hw, err = tx.HighWater(rid)
			return err
		})
		if hw < maxAnswered {
			s.Fail("high-water-behind", "replica %s: high-water mark %d below answered rseq %d", rid, hw, maxAnswered)
		}
	}
	for rep, items := range want {
		for item, kinds := range items {
			for kind, n := range kinds {
				if got := rejs[rep][item][kind]; got < n {
					s.Fail("rejection-not-listed", "%s: %d %s results for %s on the wire, %d in its rejections list", rep.Name, n, kind, item, got)
				}
			}
		}
	}
}

// checkKept checks an acknowledged change is on the server: every entry it
// set that did not lose is there at a version at least as new (unless the
// item was deleted since).
func (s *Sim) checkKept(rep *Rep, rseq uint64, ch *syncproto.Change, lost []string, renamed bool, st *State) {
	k := Key{model.Kind(ch.Kind), ch.ID}
	d, ok := st.Docs[k]
	name := "?"
	if rep != nil {
		name = rep.Name
	}
	if !ok {
		s.Fail("ack-lost", "%s: acknowledged rseq %d (%s) is not on the server at all", name, rseq, k)
		return
	}
	if d.IsDeleted() {
		return
	}
	if ch.Delta.IsDeleted() {
		s.Fail("ack-lost", "%s: acknowledged deletion rseq %d of %s, but the server holds it live", name, rseq, k)
		return
	}
	isLost := map[string]bool{}
	for _, l := range lost {
		isLost[l] = true
	}
	for f, fv := range ch.Delta.Fields {
		switch f {
		case model.FieldCreated, model.FieldCreatedBy, model.FieldModified, model.FieldModifiedBy:
			continue
		}
		if isLost[f] {
			continue
		}
		sv := d.Fields[f]
		switch c := sv.V.Compare(fv.V); {
		case c < 0:
			s.Fail("ack-lost", "%s: acknowledged rseq %d set %s.%s=%s at %v; the server holds %s at older %v",
				name, rseq, k, f, fv.Val, fv.V, sv.Val, sv.V)
		case c == 0 && string(sv.Val) != string(fv.Val) && !(f == "name" && renamed):
			s.Fail("ack-lost", "%s: acknowledged rseq %d set %s.%s=%s; the server holds %s at the same version",
				name, rseq, k, f, fv.Val, sv.Val)
		}
	}
	for t, e := range ch.Delta.Tags {
		if isLost["tags:"+t] {
			continue
		}
		if d.Tags[t].V.Less(e.V) {
			s.Fail("ack-lost", "%s: acknowledged rseq %d set tag %q=%v on %s; the server's is older", name, rseq, t, e.Present, k)
		}
	}
	for key, f := range ch.Delta.Data {
		if isLost["clientData:"+key] {
			continue
		}
		if d.Data[key].V.Less(f.V) {
			s.Fail("ack-lost", "%s: acknowledged rseq %d set clientData %q on %s; the server's is older", name, rseq, key, k)
		}
	}
}

// checkFeed checks the server's change feed: entries in strictly
// increasing sequence across channels, at most the head, each live entry
// the current entry of its item, and every item's entry present.
func (s *Sim) checkFeed() {
	type at struct {
		ch  string
		seq uint64
	}
	err := s.W.Server().Store().View(User, func(tx *store.Tx) error {
		head, err := tx.Head()
		if err != nil {
			return err
		}
		chs, err := tx.ChannelIDs()
		if err != nil {
			return err
		}
		// One change has one seq: an item that changes channel has its
		// entry in the new channel and an exit marker in the old one at
		// the same seq. Live entries have distinct, increasing seqs.
		var last, lastLive uint64
		seen := map[at]bool{}
		err = tx.ReadFeed(chs, 0, func(e store.FeedEntry) (bool, error) {
			if e.Seq < last || !e.Exit && e.Seq <= lastLive {
				s.Fail("feed-order", "feed entry %d (%s %s in %s, exit %v) after %d", e.Seq, e.Kind, e.ID, e.Channel, e.Exit, last)
			}
			if e.Seq > head {
				s.Fail("feed-beyond-head", "feed entry %d beyond head %d", e.Seq, head)
			}
			last = e.Seq
			if !e.Exit {
				lastLive = e.Seq
			}
			if e.Exit {
				return true, nil
			}
			seen[at{e.Channel, e.Seq}] = true
			r, ok, err := tx.Item(e.Kind, e.ID)
			if err != nil {
				return false, err
			}
			if !ok || r.Seq != e.Seq || r.Channel != e.Channel {
				s.Fail("feed-stale-entry", "feed entry %d in %s for %s/%s, but the item is at %v", e.Seq, e.Channel, e.Kind, e.ID, r)
			}
			// The record an entry carries is the item's record.
			if fr, fok, err := tx.FeedRecord(e); err != nil || !fok || ok && (fr.Seq != r.Seq || fr.Channel != r.Channel || !crdt.Equal(fr.Doc, r.Doc)) {
				s.Fail("feed-record", "feed entry %d for %s/%s carries %v (%v), the item is %v", e.Seq, e.Kind, e.ID, fr, err, r)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, kind := range []model.Kind{model.KindChannel, model.KindFolder, model.KindEvent} {
			err := tx.Items(kind, func(id string, r *store.Record) (bool, error) {
				if r.Seq != 0 && !seen[at{r.Channel, r.Seq}] {
					s.Fail("feed-missing-entry", "%s/%s is at seq %d in %s, which has no such feed entry", kind, id, r.Seq, r.Channel)
				}
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.Fail("feed-read", "%v", err)
	}
}

// checkTree checks the server's folder tree: no live folder is its own
// ancestor (concurrent moves could form a cycle), and a live parent is in
// the same channel.
func (s *Sim) checkTree(st *State) {
	for _, k := range st.Keys(model.KindFolder) {
		d := st.Docs[k]
		ch := model.StringField(d, "channelId")
		seen := map[string]bool{k.ID: true}
		for f := model.StringField(d, "parentId"); f != ""; {
			pd, ok := st.Docs[Key{model.KindFolder, f}]
			if !ok || !model.Exists(pd) {
				break
			}
			if model.StringField(pd, "channelId") != ch {
				s.Fail("folder-tree", "folder %s (channel %s) has an ancestor %s in channel %s", k.ID, ch, f, model.StringField(pd, "channelId"))
				break
			}
			if seen[f] {
				s.Fail("folder-cycle", "folder %s is its own ancestor (through %s)", k.ID, f)
				break
			}
			seen[f] = true
			f = model.StringField(pd, "parentId")
		}
	}
}
