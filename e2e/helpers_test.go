package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pryvsync/pryvsync/server"
)

// chromiumPath is where Debian's chromium package installs its launcher.
const chromiumPath = "/usr/bin/chromium"

const adminKey = "e2e-admin-key"

// TestMain stops the test cluster (PRYVSYNC_TEST_STORE=jetstream), if
// one was started, and removes its directory.
func TestMain(m *testing.M) {
	code := m.Run()
	server.StopTestCluster()
	os.Exit(code)
}

// requireChromium skips the test when Chromium is missing, except under CI,
// which must have it.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing: CI must install Debian's chromium package (apt-get install -y chromium)", chromiumPath)
	}
	t.Skipf("%s is missing: install Debian's chromium package (apt-get install -y chromium) to run the browser tests", chromiumPath)
}

// screenshotDir is $PRYVSYNC_SCREENSHOTS (created if needed), else a
// directory removed with the test.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PRYVSYNC_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot directory: %v", err)
	}
	return dir
}

// ------------------------------------------------------------------ server

// env is a real server on loopback.
type env struct {
	t   *testing.T
	URL string // http://127.0.0.1:PORT
	srv *server.Server
}

func startServer(t *testing.T) *env {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.AdminKey = adminKey
	cfg.PasswordCost = 4
	cleanup, err := server.ConfigForTest(&cfg)
	if err != nil {
		t.Fatalf("cluster for the test: %v", err)
	}
	t.Cleanup(cleanup)
	srv, err := server.Open(cfg, "")
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
	})
	return &env{t: t, URL: ts.URL, srv: srv}
}

// apiResult is one API answer.
type apiResult struct {
	Status int
	Body   []byte
}

func (r apiResult) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

// call makes one API request; p is the path after the host ("/alice/channels").
func (e *env) call(method, p, token string, body any) (apiResult, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return apiResult{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.URL+p, rd)
	if err != nil {
		return apiResult{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return apiResult{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return apiResult{Status: res.StatusCode, Body: b}, err
}

// must makes a request that has to answer want, and decodes the answer into out (if not nil).
func (e *env) must(method, p, token string, body any, want int, out any) {
	e.t.Helper()
	res, err := e.call(method, p, token, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, p, err)
	}
	if res.Status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, p, res.Status, want, res.Body)
	}
	if out != nil {
		res.decode(e.t, out)
	}
}

// event is the part of an API event the tests look at.
type event struct {
	ID        string  `json:"id"`
	ChannelID string  `json:"channelId"`
	FolderID  *string `json:"folderId"`
	Value     any     `json:"value"`
	CreatedBy string  `json:"createdBy"`
	Trashed   bool    `json:"trashed"`
}

// eventIDs reads GET /{user}/{cid}/events with query q and returns the sorted ids.
func (e *env) eventIDs(user, cid, token string, q url.Values) []string {
	e.t.Helper()
	var list []event
	p := "/" + user + "/" + cid + "/events"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	e.must("GET", p, token, nil, 200, &list)
	ids := make([]string, 0, len(list))
	for _, ev := range list {
		ids = append(ids, ev.ID)
	}
	sort.Strings(ids)
	return ids
}

// ------------------------------------------------------------------ browser

// tab is one page in its own Chromium process (own profile), so two tabs
// share no storage, cookies or cache.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu         sync.Mutex
	exceptions []string
	console    []string
}

func newTab(t *testing.T, name string) *tab {
	t.Helper()
	tb, err := startTab(t, name)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// newTabs starts one tab per name, in parallel (it saves a second or two).
func newTabs(t *testing.T, names ...string) []*tab {
	t.Helper()
	tabs := make([]*tab, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { tabs[i], errs[i] = startTab(t, name) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return tabs
}

// startTab starts Chromium with a fresh profile; safe to call from any goroutine.
func startTab(t *testing.T, name string) (*tab, error) {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(cdpErrorf))
	tb := &tab{t: t, name: name, ctx: ctx}
	t.Cleanup(func() {
		// Close the browser politely, then kill it if it does not answer.
		done := make(chan struct{})
		go func() {
			_ = chromedp.Cancel(ctx)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		cancel()
		acancel() // kills the process if still there, and waits for it
	})
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += ": " + d.Exception.Description
			}
			tb.mu.Lock()
			tb.exceptions = append(tb.exceptions, msg)
			tb.mu.Unlock()
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.APITypeError && ev.Type != runtime.APITypeWarning {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, string(a.Value))
				}
			}
			tb.mu.Lock()
			tb.console = append(tb.console, string(ev.Type)+": "+strings.Join(parts, " "))
			tb.mu.Unlock()
		}
	})
	start := time.Now()
	// The first Run starts the browser, which lives as long as the context
	// given to that Run: so no WithTimeout here, but a timer.
	timer := time.AfterFunc(30*time.Second, cancel)
	defer timer.Stop()
	if err := chromedp.Run(ctx); err != nil {
		return nil, fmt.Errorf("%s: starting %s: %w", name, chromiumPath, err)
	}
	t.Logf("%s: Chromium started in %v", name, time.Since(start).Round(time.Millisecond))
	return tb, nil
}

// cdpErrorf logs chromedp's errors, except the ones about event fields that
// this Chromium sends and cdproto does not know (such as the "Loopback"
// IPAddressSpace of network events): the tests do not read those events.
func cdpErrorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "could not unmarshal event") && strings.Contains(msg, "IPAddressSpace") {
		return
	}
	log.Print(msg)
}

// run runs actions with a deadline and fails the test on error.
func (tb *tab) run(timeout time.Duration, what string, actions ...chromedp.Action) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// click clicks the element sel like a person would (mouse events at its
// place). Live updates redraw parts of the page at any time: when the
// element is replaced between finding it and clicking it, the click is
// tried again on the new one; and when the mouse events reached nothing (the
// page moved under them), which the page records with a capture listener,
// the click is made again (logged). A click that reached the element is
// never repeated, so no request is sent twice.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	flag := fmt.Sprintf("__clicked%d", time.Now().UnixNano())
	tb.eval(`(() => { window.`+flag+` = false; const f = (e) => { if (e.target.closest && e.target.closest(`+jsString(sel)+`)) window.`+flag+` = true; };`+
		` window.`+flag+`_f = f; document.addEventListener('click', f, true); return true; })()`, nil)
	defer tb.eval(`(() => { document.removeEventListener('click', window.`+flag+`_f, true); return true; })()`, nil)
	for try := 1; ; try++ {
		tb.retryReplaced("click "+sel, func(ctx context.Context) error {
			return chromedp.Run(ctx, chromedp.Click(sel, chromedp.ByQuery, chromedp.NodeVisible))
		})
		var reached bool
		tb.eval(`!!window.`+flag, &reached)
		if reached {
			return
		}
		if try == 5 {
			tb.t.Fatalf("%s: click %s: the mouse events reached nothing, 5 times", tb.name, sel)
		}
		tb.t.Logf("%s: the click on %s reached nothing; clicking again", tb.name, sel)
	}
}

// retryReplaced runs f until it succeeds, trying again for up to 10 s when
// it failed because the element it found was replaced meanwhile.
func (tb *tab) retryReplaced(what string, f func(ctx context.Context) error) {
	tb.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		msg := err.Error()
		replaced := strings.Contains(msg, "Could not find node") || strings.Contains(msg, "No node with given id") ||
			strings.Contains(msg, "Node is detached") ||
			strings.Contains(msg, "with 0 width") || strings.Contains(msg, "with 0 height")
		if !replaced || time.Now().After(deadline) {
			tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eval evaluates a JavaScript expression (promises are awaited) into out.
func (tb *tab) eval(expr string, out any) {
	tb.t.Helper()
	tb.run(10*time.Second, "evaluate "+expr, chromedp.Evaluate(expr, out, awaitPromise))
}

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams {
	return p.WithAwaitPromise(true)
}

// waitJS polls a boolean JavaScript expression until it is true; on timeout
// it fails with the value of the diagnostic expression diag.
func (tb *tab) waitJS(timeout time.Duration, what, cond, diag string) time.Duration {
	tb.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		var ok bool
		ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.Evaluate("!!("+cond+")", &ok))
		cancel()
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			var d any
			if diag != "" {
				ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
				_ = chromedp.Run(ctx, chromedp.Evaluate(diag, &d))
				cancel()
			}
			tb.t.Fatalf("%s: %s: not done after %v (last error: %v; state: %v)", tb.name, what, timeout, err, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ids returns the sorted data-id of every event shown in the timeline.
func (tb *tab) ids() []string {
	tb.t.Helper()
	var ids []string
	tb.eval(`[...document.querySelectorAll('#timeline .event[data-id]')].map(e => e.dataset.id)`, &ids)
	sort.Strings(ids)
	return ids
}

// noError fails when the app shows an error in its #error region.
func (tb *tab) noError(when string) {
	tb.t.Helper()
	var text string
	tb.eval(`document.getElementById('error') ? document.getElementById('error').innerText.trim() : ''`, &text)
	if text != "" {
		tb.t.Errorf("%s: %s: the app shows an error: %q", tb.name, when, text)
	}
}

// checkHealthy fails on uncaught JavaScript exceptions and logs console errors.
func (tb *tab) checkHealthy() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, c := range tb.console {
		tb.t.Logf("%s: console %s", tb.name, c)
	}
	for _, e := range tb.exceptions {
		tb.t.Errorf("%s: uncaught JavaScript exception: %s", tb.name, e)
	}
}

// grantClipboard lets pages of origin use the clipboard without a prompt.
func (tb *tab) grantClipboard(origin string) {
	tb.t.Helper()
	tb.run(10*time.Second, "grant clipboard", chromedp.ActionFunc(func(ctx context.Context) error {
		c := chromedp.FromContext(ctx)
		return browser.GrantPermissions([]browser.PermissionType{
			browser.PermissionTypeClipboardReadWrite, browser.PermissionTypeClipboardSanitizedWrite,
		}).WithOrigin(origin).Do(cdp.WithExecutor(ctx, c.Browser))
	}))
}

// screenshot saves a PNG of the whole page (sel == "") or of the element
// sel as dir/name.png.
func (tb *tab) screenshot(dir, name, sel string) {
	tb.t.Helper()
	var buf []byte
	if sel == "" {
		// From the top, so that the sticky top bar is drawn where it belongs.
		tb.run(20*time.Second, "screenshot "+name,
			chromedp.Evaluate(`window.scrollTo(0, 0)`, nil),
			chromedp.FullScreenshot(&buf, 100))
	} else {
		// A viewport as tall as the page, so that nothing scrolls and the
		// sticky top bar does not land in the middle of the picture.
		// A live update may replace the element meanwhile: then try again.
		var height int64
		tb.retryReplaced("screenshot "+name, func(ctx context.Context) error {
			return chromedp.Run(ctx,
				chromedp.Evaluate(`window.scrollTo(0, 0), Math.ceil(document.documentElement.scrollHeight)`, &height),
				chromedp.EmulateViewport(1280, height),
				chromedp.Screenshot(sel, &buf, chromedp.ByQuery),
				emulation.ClearDeviceMetricsOverride())
		})
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		tb.t.Fatalf("writing %s: %v", p, err)
	}
	tb.t.Logf("screenshot %s", p)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func diffIDs(got, want []string) string {
	g := map[string]bool{}
	for _, id := range got {
		g[id] = true
	}
	w := map[string]bool{}
	for _, id := range want {
		w[id] = true
	}
	var extra, missing []string
	for _, id := range got {
		if !w[id] {
			extra = append(extra, id)
		}
	}
	for _, id := range want {
		if !g[id] {
			missing = append(missing, id)
		}
	}
	return fmt.Sprintf("extra %v, missing %v", extra, missing)
}
