package e2e

import (
	"math"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// shareWith creates a shared access with several permission entries.
// shareWith creates a shared access with perms over the API and returns
// its token.
func shareWith(t *testing.T, e *env, s *seeded, name string, perms ...map[string]any) string {
	t.Helper()
	var created struct {
		Token string `json:"token"`
	}
	e.must("POST", "/"+owner+"/accesses", s.token, map[string]any{
		"name": name, "type": "shared", "permissions": perms,
	}, 201, &created)
	return created.Token
}

// waitNoteStored polls the API (owner token) for the note in channel cid;
// it fails on an app error. Returns the stored time.
// waitNoteStored waits until the note is stored in channel cid and returns
// its time, or returns the error the app shows.
func waitNoteStored(t *testing.T, v *tab, e *env, s *seeded, cid, note string) (float64, string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var errText string
		v.eval(`document.getElementById('error').innerText.trim()`, &errText)
		if errText != "" {
			return 0, errText
		}
		var list []struct {
			Value any     `json:"value"`
			Time  float64 `json:"time"`
		}
		e.must("GET", "/"+owner+"/"+cid+"/events?fromTime=0", s.token, nil, 200, &list)
		for _, ev := range list {
			if ev.Value == note {
				return ev.Time, ""
			}
		}
	}
	t.Fatalf("the note is not stored after 10 s, and the app shows no error")
	return 0, ""
}

// Two channels shared with two different ended time frames. The form's time
// starts inside the first channel's frame; after switching to the second
// channel, a note must be dated inside that channel's frame.
// The note form's time, filled at one channel's frame, follows a switch to
// another channel with another frame: the note lands in that frame.
func TestNoteTimeFollowsTheChannelSwitch(t *testing.T) {
	requireChromium(t)
	e := startServer(t)
	s := seed(t, e)
	now := float64(time.Now().Unix())
	token := shareWith(t, e, s, "Two frames",
		map[string]any{"channelId": "diary", "level": "contribute", "timeFrame": map[string]any{"from": now - 7200, "to": now - 3000}},
		map[string]any{"channelId": "other", "level": "contribute", "timeFrame": map[string]any{"from": now - 3*86400, "to": now - 2*86400}},
	)
	v := newTab(t, "visitor")
	defer v.checkHealthy()
	openShare(v, e, token)
	v.waitJS(10*time.Second, "diary's frame in the time field", `document.getElementById('note-time').value !== ''`,
		`document.getElementById('note-time').value`)
	var diaryTime string
	v.eval(`document.getElementById('note-time').value`, &diaryTime)

	v.click(`#channels [data-channel-id="other"]`)
	v.waitJS(10*time.Second, "the other channel shown",
		`document.querySelector('#channels [data-channel-id="other"]').getAttribute('aria-pressed') === 'true' && document.getElementById('timeline').getAttribute('aria-busy') === 'false' && !document.getElementById('add-note').hidden`,
		`document.body.innerText.slice(0, 300)`)
	time.Sleep(500 * time.Millisecond) // folders loaded, form redrawn
	var otherTime string
	v.eval(`document.getElementById('note-time').value`, &otherTime)
	t.Logf("time field: %q in diary, %q after switching to other", diaryTime, otherTime)

	note := "Zoo: note for the earlier days"
	v.run(10*time.Second, "add a note",
		chromedp.SendKeys("#note-value", note, chromedp.ByQuery),
		chromedp.Click("#note-submit", chromedp.ByQuery))
	at, errText := waitNoteStored(t, v, e, s, "other", note)
	if errText != "" {
		t.Fatalf("adding a note in the other channel (frame %.0f–%.0f) with the form's time %q: the app shows %q",
			now-3*86400, now-2*86400, otherTime, errText)
	}
	if at < now-3*86400 || at > now-2*86400 {
		t.Errorf("stored at %.0f, outside the other channel's frame", at)
	}
}

// A share that reads every channel of last month ('*', read, time frame)
// and contributes to the diary without a time frame: a note added now must
// be dated now (the form says "now when empty"), not at the end of the
// read-only frame.
// A frame on an entry that only reads does not fill the note form's time:
// the visitor may write now, and the note is stored now.
func TestNoteTimeIgnoresAReadOnlyFrame(t *testing.T) {
	requireChromium(t)
	e := startServer(t)
	s := seed(t, e)
	now := float64(time.Now().Unix())
	token := shareWith(t, e, s, "Read last month, write the diary",
		map[string]any{"channelId": "*", "level": "read", "timeFrame": map[string]any{"from": now - 40*86400, "to": now - 30*86400}},
		map[string]any{"channelId": "diary", "level": "contribute"},
	)
	v := newTab(t, "visitor")
	defer v.checkHealthy()
	openShare(v, e, token)
	time.Sleep(500 * time.Millisecond)
	var shown string
	v.eval(`document.getElementById('note-time').value`, &shown)
	note := "Written right now"
	v.run(10*time.Second, "add a note",
		chromedp.SendKeys("#note-value", note, chromedp.ByQuery),
		chromedp.Click("#note-submit", chromedp.ByQuery))
	at, errText := waitNoteStored(t, v, e, s, "diary", note)
	if errText != "" {
		t.Fatalf("the app shows %q", errText)
	}
	if math.Abs(at-now) > 300 {
		t.Errorf("the note is stored at %.0f, %.1f days before now (time field prefilled %q from the read-only frame); want now",
			at, (now-at)/86400, shown)
	}
}
