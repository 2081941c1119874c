package e2e

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	owner    = "aliceowner"
	password = "correct horse battery"
)

// seeded is what seed created.
type seeded struct {
	sessionID, token string // owner's session and personal token (API side)
	// values of the events by where they are
	f1Values, f2Values, noFolderValues, otherValues []string
	f1IDs                                           []string // default-state events of f1 and its subfolder
	trashedF1Value                                  string
	allDiaryIDs                                     []string // default-state events of the channel
}

// seed creates the owner's account and data over the HTTP API: channel
// "diary" with folders f1 (with a subfolder f1a) and f2, events in each, one
// without folder and one trashed in f1; and a second channel with one event.
func seed(t *testing.T, e *env) *seeded {
	t.Helper()
	e.must("POST", "/system/users", adminKey, map[string]any{
		"username": owner, "password": password, "email": owner + "@example.com",
	}, 201, nil)
	var login struct {
		SessionID string `json:"sessionID"`
	}
	e.must("POST", "/"+owner+"/admin/login", "", map[string]any{
		"username": owner, "password": password, "appId": "e2e-seed",
	}, 200, &login)
	var app struct {
		ID string `json:"id"`
	}
	e.must("POST", "/"+owner+"/admin/get-app-token", login.SessionID, map[string]any{"appId": "e2e-seed"}, 200, &app)
	s := &seeded{sessionID: login.SessionID, token: app.ID}
	tok := s.token

	e.must("POST", "/"+owner+"/channels", tok, map[string]any{"id": "diary", "name": "Diary"}, 201, nil)
	e.must("POST", "/"+owner+"/channels", tok, map[string]any{"id": "other", "name": "Zoo notes"}, 201, nil)
	e.must("POST", "/"+owner+"/diary/folders", tok, map[string]any{"id": "f1", "name": "Work"}, 201, nil)
	e.must("POST", "/"+owner+"/diary/folders", tok, map[string]any{"id": "f1a", "name": "Meetings", "parentId": "f1"}, 201, nil)
	e.must("POST", "/"+owner+"/diary/folders", tok, map[string]any{"id": "f2", "name": "Home"}, 201, nil)

	now := float64(time.Now().Unix())
	n := 0
	add := func(cid string, folder any, value string, tags ...string) string {
		n++
		var res struct {
			ID string `json:"id"`
		}
		ev := map[string]any{
			"type": map[string]string{"class": "note", "format": "txt"}, "value": value,
			"time": now - float64(n)*600, "tags": tags,
		}
		if folder != nil {
			ev["folderId"] = folder
		}
		e.must("POST", "/"+owner+"/"+cid+"/events", tok, ev, 201, &res)
		return res.ID
	}
	for _, v := range []string{"Work: quarterly report sent", "Work: call with the accountant"} {
		s.f1IDs = append(s.f1IDs, add("diary", "f1", v, "work"))
		s.f1Values = append(s.f1Values, v)
	}
	s.f1IDs = append(s.f1IDs, add("diary", "f1a", "Meetings: weekly stand-up", "work", "meeting"))
	s.f1Values = append(s.f1Values, "Meetings: weekly stand-up")
	for _, v := range []string{"Home: watered the plants", "Home: paid the rent"} {
		add("diary", "f2", v, "home")
		s.f2Values = append(s.f2Values, v)
	}
	add("diary", nil, "Loose thought without a folder")
	s.noFolderValues = []string{"Loose thought without a folder"}
	add("other", nil, "Zoo: fed the penguins")
	s.otherValues = []string{"Zoo: fed the penguins"}
	s.trashedF1Value = "Work: draft thrown away"
	trashed := add("diary", "f1", s.trashedF1Value)
	e.must("DELETE", "/"+owner+"/diary/events/"+trashed, tok, nil, 200, nil)

	slices.Sort(s.f1IDs)
	s.allDiaryIDs = e.eventIDs(owner, "diary", tok, nil)
	if len(s.allDiaryIDs) != 6 {
		t.Fatalf("seed: %d default-state events in diary, want 6: %v", len(s.allDiaryIDs), s.allDiaryIDs)
	}
	return s
}

// TestShareScenario is the scenario: the owner logs in, creates a
// folder-restricted contribute share and copies its link; a fresh browser
// opens the link and sees exactly that folder's events; it adds a note,
// which appears live in the owner's page; the owner revokes the share and
// the shared page says so within seconds.
func TestShareScenario(t *testing.T) {
	requireChromium(t)
	start := time.Now()
	shots := screenshotDir(t)
	e := startServer(t)
	s := seed(t, e)

	// Two browsers, each with its own profile: nothing is shared between them.
	tabs := newTabs(t, "owner", "visitor")
	a, b := tabs[0], tabs[1]
	defer a.checkHealthy()
	defer b.checkHealthy()

	// ---- the owner logs in
	a.grantClipboard(e.URL)
	a.run(15*time.Second, "open the app",
		chromedp.Navigate(e.URL+"/app/"),
		chromedp.WaitVisible("#login-username", chromedp.ByQuery))
	var hash string
	a.eval(`location.hash`, &hash)
	if hash != "#/login" {
		t.Errorf("a fresh visit to /app/ goes to %q, want #/login", hash)
	}
	a.run(10*time.Second, "fill the login form",
		chromedp.SendKeys("#login-username", owner, chromedp.ByQuery),
		chromedp.SendKeys("#login-password", password, chromedp.ByQuery))
	a.screenshot(shots, "01-login", "")
	a.run(10*time.Second, "log in", chromedp.Click("#login-submit", chromedp.ByQuery))
	a.waitJS(15*time.Second, "owner view after login",
		`location.hash === '#/owner' && document.querySelectorAll('#timeline .event').length === 6 && document.querySelector('#timeline').getAttribute('aria-busy') === 'false'`,
		`location.hash + ' ' + document.querySelectorAll('#timeline .event').length + ' ' + document.body.innerText.slice(0, 300)`)
	// The owner sees the whole channel: compare with the API.
	if got := a.ids(); !slices.Equal(got, s.allDiaryIDs) {
		t.Errorf("owner's timeline: %s", diffIDs(got, s.allDiaryIDs))
	}
	var pwLeft string
	a.eval(`sessionStorage.getItem('pryvsync.owner') || ''`, &pwLeft)
	if strings.Contains(pwLeft, password) {
		t.Errorf("the password is kept in sessionStorage")
	}
	a.waitJS(10*time.Second, "live status", `document.getElementById('live-status').dataset.state === 'live'`,
		`document.getElementById('live-status').dataset.state`)
	a.noError("owner view")
	a.screenshot(shots, "02-owner-view", "")

	// ---- the owner creates a contribute share restricted to folder f1
	a.waitJS(10*time.Second, "share form ready",
		`document.querySelector('#share-channel option[value="diary"]') && document.querySelector('#share-folders input[data-folder-id="f1"]')`,
		`document.getElementById('share-form') && document.getElementById('share-form').innerText`)
	const shareName = "For my accountant (Work only)"
	var channel string
	a.eval(`document.getElementById('share-channel').value`, &channel)
	if channel != "diary" {
		t.Errorf("the share form offers channel %q first, want diary", channel)
	}
	a.click(`#share-folders input[data-folder-id="f1"]`)
	a.waitJS(5*time.Second, "folder f1 checked",
		`[...document.querySelectorAll('#share-folders input:checked')].map(i => i.dataset.folderId).join() === 'f1'`,
		`[...document.querySelectorAll('#share-folders input:checked')].map(i => i.dataset.folderId).join()`)
	a.run(10*time.Second, "fill the share form",
		chromedp.SetValue("#share-level", "contribute", chromedp.ByQuery),
		chromedp.SendKeys("#share-name", shareName, chromedp.ByQuery),
		chromedp.Click("#share-submit", chromedp.ByQuery))
	a.waitJS(10*time.Second, "share link shown",
		`document.querySelector('#share-link') && document.querySelector('#share-link').value !== ''`,
		`document.getElementById('error').innerText`)
	var link, token string
	a.eval(`document.querySelector('#share-link').value`, &link)
	a.eval(`document.querySelector('#share-link').dataset.token`, &token)
	if want := e.URL + "/app/#/" + owner + "/" + token; token == "" || link != want {
		t.Fatalf("share link %q, want %q", link, want)
	}
	// Copy it, as a person would, and read it back from the clipboard.
	a.run(10*time.Second, "copy the link", chromedp.Click("#share-copy", chromedp.ByQuery))
	a.waitJS(5*time.Second, "copy status", `document.getElementById('share-copy-status').textContent !== ''`, "")
	var copyStatus, clip string
	a.eval(`document.getElementById('share-copy-status').textContent`, &copyStatus)
	if copyStatus != "Link copied." {
		t.Errorf("copy status %q, want %q", copyStatus, "Link copied.")
	}
	a.eval(`navigator.clipboard.readText()`, &clip)
	if clip != link {
		t.Errorf("clipboard holds %q, want the link %q", clip, link)
	}
	a.waitJS(10*time.Second, "share listed",
		`document.querySelector('#shares-list .share[data-token=`+jsString(token)+`]')`,
		`document.getElementById('shares-list').innerText`)
	a.noError("share created")
	// The access the app created is the one asked for.
	var accesses []struct {
		ID          string `json:"id"`
		Token       string `json:"token"`
		Name        string `json:"name"`
		Type        string `json:"type"`
		Permissions []struct {
			ChannelID         string `json:"channelId"`
			Level             string `json:"level"`
			FolderPermissions []struct {
				FolderID *string `json:"folderId"`
				Level    string  `json:"level"`
			} `json:"folderPermissions"`
		} `json:"permissions"`
	}
	e.must("GET", "/"+owner+"/accesses", s.token, nil, 200, &accesses)
	var accessID string
	for _, ac := range accesses {
		if ac.Token != token {
			continue
		}
		accessID = ac.ID
		got := fmt.Sprintf("%s %s %+v", ac.Type, ac.Name, ac.Permissions)
		p := ac.Permissions
		if ac.Type != "shared" || ac.Name != shareName || len(p) != 1 || p[0].ChannelID != "diary" || p[0].Level != "contribute" ||
			len(p[0].FolderPermissions) != 1 || p[0].FolderPermissions[0].FolderID == nil || *p[0].FolderPermissions[0].FolderID != "f1" {
			t.Errorf("created access: %s; want a shared contribute access to diary, folder f1 only", got)
		}
	}
	if accessID == "" {
		t.Fatalf("the new share's token is not among GET /accesses")
	}
	a.screenshot(shots, "03-share-created", "main > section:has(#section-sharing)")

	// ---- a fresh browser opens the link and sees exactly folder f1 (with its subfolder)
	q := url.Values{"onlyFolders[]": {"f1"}}
	apiF1 := e.eventIDs(owner, "diary", token, q)
	if !slices.Equal(apiF1, s.f1IDs) {
		t.Errorf("API, shared token, onlyFolders[]=f1: %s", diffIDs(apiF1, s.f1IDs))
	}
	if all := e.eventIDs(owner, "diary", token, nil); !slices.Equal(all, s.f1IDs) {
		t.Errorf("API, shared token, no filter (scope): %s", diffIDs(all, s.f1IDs))
	}
	b.run(15*time.Second, "open the share link", chromedp.Navigate(link))
	b.waitJS(10*time.Second, "shared timeline",
		`document.querySelector('#timeline') && document.querySelector('#timeline').getAttribute('aria-busy') === 'false' && document.querySelectorAll('#timeline .event').length === `+fmt.Sprint(len(apiF1)),
		`document.body.innerText.slice(0, 500)`)
	if got := b.ids(); !slices.Equal(got, apiF1) {
		t.Errorf("shared timeline vs API onlyFolders[]=f1: %s", diffIDs(got, apiF1))
	}
	var pageText string
	b.eval(`document.body.innerText`, &pageText)
	for _, v := range s.f1Values {
		if !strings.Contains(pageText, v) {
			t.Errorf("shared page lacks the f1 event %q", v)
		}
	}
	for _, v := range slices.Concat(s.f2Values, s.noFolderValues, s.otherValues, []string{s.trashedF1Value, "Home", "Zoo notes"}) {
		if strings.Contains(pageText, v) {
			t.Errorf("shared page shows %q, which is outside the share", v)
		}
	}
	var channels, folders []string
	b.eval(`[...document.querySelectorAll('#channels [data-channel-id]')].map(e => e.dataset.channelId)`, &channels)
	b.eval(`[...document.querySelectorAll('#folders [data-folder-id]')].map(e => e.dataset.folderId).sort()`, &folders)
	if !slices.Equal(channels, []string{"diary"}) {
		t.Errorf("shared page lists channels %v, want [diary]", channels)
	}
	if !slices.Equal(folders, []string{"f1", "f1a"}) {
		t.Errorf("shared page lists folders %v, want [f1 f1a]", folders)
	}
	var tokenInStorage bool
	b.eval(`JSON.stringify(Object.assign({}, localStorage, sessionStorage)).includes(`+jsString(token)+`)`, &tokenInStorage)
	if tokenInStorage {
		t.Errorf("the shared page keeps the token in web storage")
	}
	b.waitJS(10*time.Second, "live status", `document.getElementById('live-status').dataset.state === 'live'`,
		`document.getElementById('live-status').dataset.state`)
	b.noError("shared view")
	b.screenshot(shots, "04-shared-view", "")

	// The owner's list tells when the share was last used.
	shareCard := `document.querySelector('#shares-list .share[data-token=` + jsString(token) + `]')`
	a.click("#shares-refresh")
	a.waitJS(5*time.Second, "last use of the share",
		`(() => { const c = `+shareCard+`; if (!c) return false; const dts = [...c.querySelectorAll('dt')]; const i = dts.findIndex(d => d.textContent === 'Last used'); return i >= 0 && dts[i].nextElementSibling.textContent !== 'never'; })()`,
		shareCard+` && `+shareCard+`.innerText`)

	// ---- the visitor adds a note; the owner's page shows it without reload
	a.eval(`window.__e2eNoReload = 'still here', true`, new(bool))
	note := fmt.Sprintf("Invoice checked by the accountant at %s", time.Now().Format("15:04:05.000"))
	b.waitJS(5*time.Second, "note form", `!document.getElementById('add-note').hidden && document.querySelector('#note-folder option[value="f1"]')`,
		`[...document.querySelectorAll('#note-folder option')].map(o => o.value)`)
	var noteFolders []string
	b.eval(`[...document.querySelectorAll('#note-folder option')].map(o => o.value).sort()`, &noteFolders)
	if !slices.Equal(noteFolders, []string{"f1", "f1a"}) {
		t.Errorf("the visitor may add notes to %q, want [f1 f1a]", noteFolders)
	}
	b.run(10*time.Second, "add a note",
		chromedp.SetValue("#note-folder", "f1", chromedp.ByQuery),
		chromedp.SendKeys("#note-value", note, chromedp.ByQuery),
		chromedp.Click("#note-submit", chromedp.ByQuery))
	noteSel := `[...document.querySelectorAll('#timeline .event .event-value')].find(v => v.textContent === ` + jsString(note) + `)`
	b.waitJS(10*time.Second, "the note in the visitor's timeline", noteSel, `document.getElementById('error').innerText`)
	var created []event
	e.must("GET", "/"+owner+"/diary/events?onlyFolders[]=f1", s.token, nil, 200, &created)
	var noteID string
	for _, ev := range created {
		if ev.Value == note {
			noteID = ev.ID
			if ev.FolderID == nil || *ev.FolderID != "f1" || ev.CreatedBy != accessID {
				t.Errorf("the note: folder %v, createdBy %q; want f1 and the share's access %q", ev.FolderID, ev.CreatedBy, accessID)
			}
		}
	}
	if noteID == "" {
		t.Fatalf("the visitor's note is not in the API's f1 events")
	}
	took := a.waitJS(10*time.Second, "the note in the owner's page",
		`document.querySelector('#timeline .event[data-id=`+jsString(noteID)+`] .event-value') && document.querySelector('#timeline .event[data-id=`+jsString(noteID)+`] .event-value').textContent === `+jsString(note),
		`[...document.querySelectorAll('#timeline .event')].map(e => e.dataset.id)`)
	t.Logf("the note reached the owner's page %v after it was shown to the visitor", took.Round(time.Millisecond))
	var marker string
	a.eval(`window.__e2eNoReload || ''`, &marker)
	if marker != "still here" {
		t.Errorf("the owner's page was reloaded")
	}
	if got, want := b.ids(), e.eventIDs(owner, "diary", token, q); !slices.Equal(got, want) {
		t.Errorf("shared timeline after the note vs API: %s", diffIDs(got, want))
	}
	b.noError("note added")
	a.noError("note received")
	a.screenshot(shots, "05-owner-sees-note", "main > section:has(#section-data)")

	// ---- the owner revokes the share; the visitor's page says so within 5 s
	a.click(`#shares-list .share[data-token="` + token + `"] .share-revoke`)
	revokedAt := time.Now()
	b.waitJS(5*time.Second-time.Since(revokedAt), "revoked message on the shared page",
		`(() => { const m = document.getElementById('revoked-message'); return m && m.getClientRects().length > 0 && m.innerText.includes('revoked') && document.querySelectorAll('.event').length === 0; })()`,
		`document.body.innerText.slice(0, 300)`)
	t.Logf("the shared page showed the revocation %v after the click", time.Since(revokedAt).Round(time.Millisecond))
	a.waitJS(10*time.Second, "share gone from the owner's list",
		`!`+shareCard+` && document.getElementById('shares-status').textContent.includes('revoked')`,
		`document.getElementById('shares-status').textContent + ' / ' + document.getElementById('error').innerText`)
	b.eval(`document.body.innerText`, &pageText)
	for _, v := range slices.Concat(s.f1Values, []string{note}) {
		if strings.Contains(pageText, v) {
			t.Errorf("after revocation the shared page still shows %q", v)
		}
	}
	if res, err := e.call("GET", "/"+owner+"/access-info", token, nil); err != nil || res.Status != 401 {
		t.Errorf("access-info with the revoked token: %v %d %s, want 401", err, res.Status, res.Body)
	}
	a.noError("after revoke")
	b.screenshot(shots, "06-after-revoke", "")
	a.screenshot(shots, "07-owner-after-revoke", "main > section:has(#section-sharing)")

	t.Logf("screenshots in %s; scenario took %v", shots, time.Since(start).Round(time.Millisecond))
}

// TestLoginErrorAndDeadLink checks the two ways in that must not open any
// data: a wrong password stays on the login page with an error, and a share
// link whose token the server does not know says so plainly.
func TestLoginErrorAndDeadLink(t *testing.T) {
	requireChromium(t)
	shots := screenshotDir(t)
	e := startServer(t)
	seed(t, e)
	c := newTab(t, "stranger")
	defer c.checkHealthy()

	c.run(15*time.Second, "open the login page",
		chromedp.Navigate(e.URL+"/app/#/login"),
		chromedp.WaitVisible("#login-username", chromedp.ByQuery),
		chromedp.SendKeys("#login-username", owner, chromedp.ByQuery),
		chromedp.SendKeys("#login-password", "not the password", chromedp.ByQuery),
		chromedp.Click("#login-submit", chromedp.ByQuery))
	c.waitJS(10*time.Second, "login error",
		`document.getElementById('error').innerText.includes('invalid-credentials')`,
		`document.getElementById('error').innerText`)
	var state struct {
		Hash    string `json:"hash"`
		Session string `json:"session"`
		Events  int    `json:"events"`
	}
	c.eval(`({hash: location.hash, session: sessionStorage.getItem('pryvsync.owner') || '', events: document.querySelectorAll('.event').length})`, &state)
	if state.Hash != "#/login" || state.Session != "" || state.Events != 0 {
		t.Errorf("after a wrong password: %+v; want to stay on #/login with no session and no data", state)
	}
	c.screenshot(shots, "08-login-error", "")

	c.run(15*time.Second, "open a dead link", chromedp.Navigate(e.URL+"/app/#/"+owner+"/no-such-token-0123456789"))
	c.waitJS(10*time.Second, "dead link message",
		`(() => { const m = document.getElementById('revoked-message'); return m && m.getClientRects().length > 0; })()`,
		`document.body.innerText.slice(0, 300)`)
	c.eval(`({hash: location.hash, events: document.querySelectorAll('.event').length})`, &state)
	if state.Events != 0 {
		t.Errorf("a dead link shows %d events", state.Events)
	}
	c.screenshot(shots, "09-dead-link", "")
}

// TestVisitorWorksWithEvents drives the rest of what a contribute share lets
// a visitor do (SPEC §6a), checking each step against the API: attach an
// image to a new note and see it, edit an event, trash and restore one, and
// filter the timeline by folder and by tag.
func TestVisitorWorksWithEvents(t *testing.T) {
	requireChromium(t)
	shots := screenshotDir(t)
	e := startServer(t)
	s := seed(t, e)
	var created struct {
		Token string `json:"token"`
	}
	e.must("POST", "/"+owner+"/accesses", s.token, map[string]any{
		"name": "Family diary", "type": "shared",
		"permissions": []map[string]any{{"channelId": "diary", "level": "contribute"}},
	}, 201, &created)
	token := created.Token
	v := newTab(t, "visitor")
	defer v.checkHealthy()

	v.run(15*time.Second, "open the share link", chromedp.Navigate(e.URL+"/app/#/"+owner+"/"+token))
	v.waitJS(10*time.Second, "shared timeline",
		`document.querySelector('#timeline') && document.querySelector('#timeline').getAttribute('aria-busy') === 'false' && document.querySelectorAll('#timeline .event').length === 6`,
		`document.body.innerText.slice(0, 500)`)
	if got := v.ids(); !slices.Equal(got, s.allDiaryIDs) {
		t.Errorf("whole-channel share: %s", diffIDs(got, s.allDiaryIDs))
	}

	// A note with an image attached: the image is shown from a blob: URL.
	img := filepath.Join(t.TempDir(), "receipt.png")
	writePNG(t, img)
	note := "Receipt for the new lamp"
	v.run(10*time.Second, "add a note with a file",
		chromedp.SetValue("#note-folder", "f2", chromedp.ByQuery),
		chromedp.SendKeys("#note-value", note, chromedp.ByQuery),
		chromedp.SendKeys("#note-tags", "home, receipt", chromedp.ByQuery),
		chromedp.SetUploadFiles("#note-file", []string{img}, chromedp.ByQuery),
		chromedp.Click("#note-submit", chromedp.ByQuery))
	v.waitJS(10*time.Second, "the note with its image",
		`[...document.querySelectorAll('#timeline .event')].some(ev => ev.querySelector('.event-value').textContent === `+jsString(note)+
			` && ev.querySelector('img.attachment-image') && ev.querySelector('img.attachment-image').src.startsWith('blob:') && ev.querySelector('img.attachment-image').complete && ev.querySelector('img.attachment-image').naturalWidth === 160)`,
		`document.getElementById('error').innerText + ' / ' + document.getElementById('timeline').innerText.slice(0, 300)`)
	var inF2 []struct {
		event
		Attachments map[string]struct {
			FileName string `json:"fileName"`
			Type     string `json:"type"`
			Size     int64  `json:"size"`
		} `json:"attachments"`
		Tags []string `json:"tags"`
	}
	e.must("GET", "/"+owner+"/diary/events?onlyFolders[]=f2", token, nil, 200, &inF2)
	var noteID string
	for _, ev := range inF2 {
		if ev.Value != note {
			continue
		}
		noteID = ev.ID
		ok := len(ev.Attachments) == 1 && slices.Equal(ev.Tags, []string{"home", "receipt"})
		for _, a := range ev.Attachments {
			ok = ok && a.FileName == "receipt.png" && a.Type == "image/png" && a.Size > 0
		}
		if !ok {
			t.Errorf("the note as stored: tags %v, attachments %+v; want tags [home receipt] and receipt.png (image/png)", ev.Tags, ev.Attachments)
		}
	}
	if noteID == "" {
		t.Fatalf("the note is not in the API's f2 events")
	}
	var form struct {
		Value string `json:"value"`
		Tags  string `json:"tags"`
		Files int    `json:"files"`
	}
	v.eval(`({value: document.getElementById('note-value').value, tags: document.getElementById('note-tags').value, files: document.getElementById('note-file').files.length})`, &form)
	if form.Value != "" || form.Tags != "" || form.Files != 0 {
		t.Errorf("the note form after adding a note: %+v; want it empty for the next note", form)
	}
	v.noError("note with a file")
	v.retryReplaced("scroll to the note", func(ctx context.Context) error {
		return chromedp.Run(ctx, chromedp.ScrollIntoView(`#timeline .event[data-id="`+noteID+`"]`, chromedp.ByQuery))
	})
	v.screenshot(shots, "10-visitor-attachment", `#timeline .event[data-id="`+noteID+`"]`)

	// Edit an event's text.
	target := s.f1IDs[0]
	sel := `#timeline .event[data-id="` + target + `"]`
	const edited = "Work: quarterly report sent (and acknowledged)"
	v.click(sel + ` .event-edit`)
	v.run(10*time.Second, "edit an event",
		chromedp.WaitVisible(sel+` .edit-value`, chromedp.ByQuery),
		chromedp.SetValue(sel+` .edit-value`, edited, chromedp.ByQuery))
	v.click(sel + ` .edit-save`)
	v.waitJS(10*time.Second, "the edited text", `document.querySelector(`+jsString(sel+` .event-value`)+`) && document.querySelector(`+jsString(sel+` .event-value`)+`).textContent === `+jsString(edited),
		`document.getElementById('error').innerText`)
	var one event
	e.must("GET", "/"+owner+"/diary/events/"+target, s.token, nil, 200, &one)
	if one.Value != edited {
		t.Errorf("after the edit the API has %q, want %q", one.Value, edited)
	}

	// Trash it, find it in the trash, restore it.
	v.click(sel + ` .event-trash`)
	v.waitJS(10*time.Second, "the event leaves the timeline", `!document.querySelector(`+jsString(sel)+`)`, `document.getElementById('error').innerText`)
	e.must("GET", "/"+owner+"/diary/events/"+target, s.token, nil, 200, &one)
	if !one.Trashed {
		t.Errorf("the trashed event is not trashed in the API")
	}
	v.run(10*time.Second, "show the trash",
		chromedp.SetValue("#filter-state", "trashed", chromedp.ByQuery),
		chromedp.Click("#filter-apply", chromedp.ByQuery))
	trashQ := url.Values{"state": {"trashed"}}
	wantTrash := e.eventIDs(owner, "diary", token, trashQ)
	v.waitJS(10*time.Second, "the trash", `document.querySelector(`+jsString(sel+` .event-restore`)+`) && document.querySelectorAll('#timeline .event').length === `+fmt.Sprint(len(wantTrash)),
		`document.getElementById('timeline-status').textContent`)
	if got := v.ids(); !slices.Equal(got, wantTrash) {
		t.Errorf("trash view vs API state=trashed: %s", diffIDs(got, wantTrash))
	}
	v.click(sel + ` .event-restore`)
	v.waitJS(10*time.Second, "the event leaves the trash", `!document.querySelector(`+jsString(sel)+`)`, `document.getElementById('error').innerText`)
	e.must("GET", "/"+owner+"/diary/events/"+target, s.token, nil, 200, &one)
	if one.Trashed {
		t.Errorf("the restored event is still trashed in the API")
	}

	// Filter by folder, then by tag.
	v.run(10*time.Second, "back to current events",
		chromedp.Click("#filter-clear", chromedp.ByQuery))

	// A double click on Trash trashes the event once: a second request
	// would delete the trashed event for good.
	v.waitJS(10*time.Second, "the restored event in the timeline", `!!document.querySelector(`+jsString(sel+` .event-trash`)+`)`, `document.getElementById('timeline-status').textContent`)
	v.eval(`(() => { const b = document.querySelector(`+jsString(sel+` .event-trash`)+`); b.click(); b.click(); return true; })()`, nil)
	v.waitJS(15*time.Second, "the double-clicked event leaves the timeline", `!document.querySelector(`+jsString(sel)+`)`, `document.getElementById('error').innerText`)
	one = event{}
	e.must("GET", "/"+owner+"/diary/events/"+target, s.token, nil, 200, &one)
	if !one.Trashed || one.ID != target {
		t.Errorf("after a double click on Trash the API has %+v, want the event trashed (not deleted)", one)
	}
	e.must("PUT", "/"+owner+"/diary/events/"+target, s.token, map[string]any{"trashed": false}, 200, nil)
	v.waitJS(15*time.Second, "the event back in the timeline", `!!document.querySelector(`+jsString(sel)+`)`, `document.getElementById('error').innerText`)
	v.click(`#folders [data-folder-id="f2"]`)
	wantF2 := e.eventIDs(owner, "diary", token, url.Values{"onlyFolders[]": {"f2"}})
	v.waitJS(10*time.Second, "folder filter", `document.querySelectorAll('#timeline .event').length === `+fmt.Sprint(len(wantF2))+
		` && document.getElementById('timeline-status').textContent.includes('in Home')`,
		`document.getElementById('timeline-status').textContent`)
	if got := v.ids(); !slices.Equal(got, wantF2) {
		t.Errorf("folder filter vs API onlyFolders[]=f2: %s", diffIDs(got, wantF2))
	}
	v.click(`#timeline .event[data-id="` + noteID + `"] .tag[data-key$=":receipt"]`)
	wantTag := e.eventIDs(owner, "diary", token, url.Values{"onlyFolders[]": {"f2"}, "tags[]": {"receipt"}})
	v.waitJS(10*time.Second, "tag filter", `document.getElementById('timeline-status').textContent.includes('tagged receipt') && document.querySelectorAll('#timeline .event').length === `+fmt.Sprint(len(wantTag)),
		`document.getElementById('timeline-status').textContent`)
	if got := v.ids(); !slices.Equal(got, wantTag) || !slices.Equal(wantTag, []string{noteID}) {
		t.Errorf("tag filter: page %v, API %v, want only the note %s", got, wantTag, noteID)
	}
	v.noError("filters")
	v.screenshot(shots, "11-visitor-filters", "")

	// On a phone-sized screen nothing sticks out sideways.
	var overflow []string
	v.run(10*time.Second, "phone-sized screen",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Sleep(200*time.Millisecond), // one layout
		chromedp.Evaluate(`[...document.querySelectorAll('body *')].filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.right > document.documentElement.clientWidth + 1; }).slice(0, 5).map(el => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className)`, &overflow))
	if len(overflow) > 0 {
		t.Errorf("at 390 px wide these elements stick out of the page: %v", overflow)
	}
	v.screenshot(shots, "12-visitor-phone", "")
}

// writePNG writes a 160×100 gradient.
func writePNG(t *testing.T, p string) {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, 160, 100))
	for y := range 100 {
		for x := range 160 {
			m.Set(x, y, color.RGBA{R: uint8(x * 255 / 159), G: uint8(y * 255 / 99), B: 160, A: 255})
		}
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, m); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
