package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// shareToken creates a shared access over the API and returns its token.
func shareToken(t *testing.T, e *env, s *seeded, name string, perm map[string]any) string {
	t.Helper()
	var created struct {
		Token string `json:"token"`
	}
	e.must("POST", "/"+owner+"/accesses", s.token, map[string]any{
		"name": name, "type": "shared", "permissions": []map[string]any{perm},
	}, 201, &created)
	return created.Token
}

// openShare opens the share link and waits for the timeline and the live socket.
func openShare(v *tab, e *env, token string) {
	v.t.Helper()
	v.run(15*time.Second, "open the share link", chromedp.Navigate(e.URL+"/app/#/"+owner+"/"+token))
	v.waitJS(10*time.Second, "shared timeline",
		`document.querySelector('#timeline') && document.querySelector('#timeline').getAttribute('aria-busy') === 'false' && !document.getElementById('add-note').hidden`,
		`document.body.innerText.slice(0, 500)`)
	v.waitJS(10*time.Second, "live status", `document.getElementById('live-status').dataset.state === 'live'`,
		`document.getElementById('live-status').dataset.state`)
}

// waitNoteOrError waits until the note with value note is in the timeline or
// the app shows an error, and returns the error text ("" if none).
func waitNoteOrError(v *tab, note string) string {
	v.t.Helper()
	v.waitJS(10*time.Second, "the note or an error",
		`document.getElementById('error').innerText.trim() !== '' || [...document.querySelectorAll('#timeline .event .event-value')].some(x => x.textContent === `+jsString(note)+`)`,
		`document.getElementById('timeline-status').textContent`)
	var errText string
	v.eval(`document.getElementById('error').innerText.trim()`, &errText)
	return errText
}

// A contribute share limited to a time frame that has ended (a typical
// "my notes of last week" share): the note form's time starts at the
// frame's end, so the visitor's note is accepted and stored in the share's
// scope.
func TestVisitorOnATimeFramedShareAddsANoteInTheFrame(t *testing.T) {
	requireChromium(t)
	e := startServer(t)
	s := seed(t, e)
	now := float64(time.Now().Unix())
	token := shareToken(t, e, s, "Last hour but one", map[string]any{
		"channelId": "diary", "level": "contribute",
		"timeFrame": map[string]any{"from": now - 7200, "to": now - 3000},
	})
	v := newTab(t, "visitor")
	defer v.checkHealthy()
	openShare(v, e, token)

	note := "Forgot to note this one"
	v.run(10*time.Second, "add a note",
		chromedp.SendKeys("#note-value", note, chromedp.ByQuery),
		chromedp.Click("#note-submit", chromedp.ByQuery))
	if errText := waitNoteOrError(v, note); errText != "" {
		t.Errorf("a contribute visitor of a time-framed share adds a note through the offered form; the app shows: %q", errText)
	}
	var list []event
	e.must("GET", "/"+owner+"/diary/events?fromTime=0&toTime="+fmt.Sprintf("%.0f", now+60), token, nil, 200, &list)
	found := false
	for _, ev := range list {
		found = found || ev.Value == note
	}
	if !found {
		t.Errorf("the note is not stored in the share's scope")
	}
}

// Attaching an ordinary file whose name no attachment key may hold
// ("budget 100%.txt"): the app derives a usable key and keeps the file's
// name, so the note is created with its attachment.
func TestVisitorAttachesAFileWhoseNameNoKeyMayHold(t *testing.T) {
	requireChromium(t)
	e := startServer(t)
	s := seed(t, e)
	token := shareToken(t, e, s, "Family diary", map[string]any{"channelId": "diary", "level": "contribute"})
	file := filepath.Join(t.TempDir(), "budget 100%.txt")
	if err := os.WriteFile(file, []byte("rent 100%\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := newTab(t, "visitor")
	defer v.checkHealthy()
	openShare(v, e, token)

	note := "Budget for the month"
	v.run(10*time.Second, "add a note with a file",
		chromedp.SendKeys("#note-value", note, chromedp.ByQuery),
		chromedp.SetUploadFiles("#note-file", []string{file}, chromedp.ByQuery),
		chromedp.Click("#note-submit", chromedp.ByQuery))
	if errText := waitNoteOrError(v, note); errText != "" {
		t.Errorf("adding a note with the file %q: the app shows %q", filepath.Base(file), errText)
	}
	var list []struct {
		Value       any `json:"value"`
		Attachments map[string]struct {
			FileName string `json:"fileName"`
		} `json:"attachments"`
	}
	e.must("GET", "/"+owner+"/diary/events", token, nil, 200, &list)
	ok := false
	for _, ev := range list {
		if ev.Value != note {
			continue
		}
		for _, a := range ev.Attachments {
			ok = ok || a.FileName == "budget 100%.txt"
		}
	}
	if !ok {
		t.Errorf("no stored note with the attachment budget 100%%.txt")
	}
}

// With a folder filter on (Home), the visitor picks another folder (Work) in
// the note form; a live foldersChanged (the owner adds a folder) redraws the
// form and keeps the visitor's choice, so the note is filed in Work.
func TestNoteFormKeepsTheChosenFolderThroughLiveUpdates(t *testing.T) {
	requireChromium(t)
	e := startServer(t)
	s := seed(t, e)
	token := shareToken(t, e, s, "Family diary", map[string]any{"channelId": "diary", "level": "contribute"})
	v := newTab(t, "visitor")
	defer v.checkHealthy()
	openShare(v, e, token)

	v.click(`#folders [data-folder-id="f2"]`)
	v.waitJS(10*time.Second, "note form follows the filter", `document.getElementById('note-folder').value === 'f2'`,
		`document.getElementById('note-folder').value`)
	note := "Call the plumber about the office sink"
	v.run(10*time.Second, "choose Work and type a note",
		chromedp.SetValue("#note-folder", "f1", chromedp.ByQuery),
		chromedp.SendKeys("#note-value", note, chromedp.ByQuery))

	// The owner adds a folder meanwhile: the visitor's page shows it live.
	var res struct {
		ID string `json:"id"`
	}
	e.must("POST", "/"+owner+"/diary/folders", s.token, map[string]any{"name": "Garden"}, 201, &res)
	v.waitJS(10*time.Second, "the new folder, live", `!!document.querySelector('#folders [data-folder-id=`+jsString(res.ID)+`]')`,
		`document.getElementById('folders').innerText`)

	var chosen string
	v.eval(`document.getElementById('note-folder').value`, &chosen)
	if chosen != "f1" {
		t.Errorf("after a live update the note form's folder is %q; the visitor chose f1 (Work)", chosen)
	}
	v.click("#note-submit")
	// The note may be outside the Home filter: look for it in the API.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var errText string
		v.eval(`document.getElementById('error').innerText.trim()`, &errText)
		if errText != "" {
			t.Fatalf("adding the note: %q", errText)
		}
		var list []event
		e.must("GET", "/"+owner+"/diary/events", s.token, nil, 200, &list)
		for _, ev := range list {
			if ev.Value != note {
				continue
			}
			if ev.FolderID == nil || *ev.FolderID != "f1" {
				got := "null"
				if ev.FolderID != nil {
					got = *ev.FolderID
				}
				t.Errorf("the note is stored in folder %s; the visitor chose f1 (Work)", got)
			}
			return
		}
	}
	t.Errorf("the note is not stored after 10 s")
}
