package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A share with two folder-level contribute grants in one channel: "Home"
// (f2) for a frame that has ended, "Work" (f1) for a frame that holds now.
// writeFrames merges both entries' frames for the whole channel, so "now is
// inside a frame" and the time field stays empty; a note the visitor adds
// in Home is dated now, outside Home's frame, and the server refuses it.
// The form must date a Home note inside Home's frame (or at least follow
// the folder choice).
// With folder grants of different time frames, the note form's time follows
// the chosen folder's grant: Home's frame has ended, so a note in Home is
// dated inside it and accepted.
func TestNoteTimeFollowsTheFolderGrantOfTheChosenFolder(t *testing.T) {
	requireChromium(t)
	e := startServer(t)
	s := seed(t, e)
	now := float64(time.Now().Unix())
	token := shareWith(t, e, s, "Home last hour, Work this week",
		map[string]any{"channelId": "diary", "level": "contribute",
			"folderPermissions": []map[string]any{{"folderId": "f2", "level": "contribute"}},
			"timeFrame":         map[string]any{"from": now - 7200, "to": now - 3000}},
		map[string]any{"channelId": "diary", "level": "contribute",
			"folderPermissions": []map[string]any{{"folderId": "f1", "level": "contribute"}},
			"timeFrame":         map[string]any{"from": now - 86400, "to": now + 86400}},
	)
	v := newTab(t, "visitor")
	defer v.checkHealthy()
	openShare(v, e, token)
	time.Sleep(500 * time.Millisecond)
	var options string
	v.eval(`[...document.getElementById('note-folder').options].map(o => o.value + '=' + o.text).join(', ')`, &options)
	// The visitor picks Home.
	var picked string
	v.eval(`(() => { const s = document.getElementById('note-folder'); s.value = 'f2'; s.dispatchEvent(new Event('change', {bubbles: true})); return s.value; })()`, &picked)
	time.Sleep(200 * time.Millisecond)
	var shown string
	v.eval(`document.getElementById('note-time').value`, &shown)
	t.Logf("folder options %q, picked %q, time field %q", options, picked, shown)
	if picked != "f2" {
		t.Fatalf("could not pick Home (f2): options %q", options)
	}
	note := "Home: note for the last hour"
	v.run(10*time.Second, "add a note",
		chromedp.SendKeys("#note-value", note, chromedp.ByQuery),
		chromedp.Click("#note-submit", chromedp.ByQuery))
	at, errText := waitNoteStored(t, v, e, s, "diary", note)
	if errText != "" {
		t.Fatalf("adding a note in Home (grant framed %.0f–%.0f, ended) with the form's time %q: the app shows %q",
			now-7200, now-3000, shown, errText)
	}
	if at < now-7200 || at > now-3000 {
		t.Errorf("stored at %.0f, outside Home's frame", at)
	}
}
