package webapp

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(Files, name)
	if err != nil {
		t.Fatalf("embedded %s: %v", name, err)
	}
	return string(b)
}

func jsFiles(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(Files, "*.js")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestEmbeddedFiles(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "api.js", "live.js", "views.js", "owner.js", "dom.js", "format.js", "rights.js", "style.css"} {
		readFile(t, name)
	}
}

// Every asset of the page is local and referenced relatively, so the app
// works under /app/ and loads nothing from a third party.
func TestIndexLoadsOnlyLocalAssets(t *testing.T) {
	html := readFile(t, "index.html")
	refs := regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(html, -1)
	if len(refs) == 0 {
		t.Fatal("no src/href found in index.html")
	}
	for _, m := range refs {
		u := m[1]
		if !(strings.HasPrefix(u, "./") || u == "data:,") {
			t.Errorf("index.html references %q: assets must be relative (./...)", u)
		}
	}
	if !strings.Contains(html, `<script type="module" src="./app.js">`) {
		t.Error("index.html must load ./app.js as a module")
	}
	if !strings.Contains(html, "script-src 'self'") {
		t.Error("index.html must restrict scripts to 'self' in its Content-Security-Policy")
	}
	if strings.Contains(html, "<script>") || strings.Contains(html, "style=") {
		t.Error("index.html must not hold inline scripts or styles (blocked by its CSP)")
	}
}

// JS modules import only each other, never a remote URL.
func TestModulesImportOnlyLocalFiles(t *testing.T) {
	imp := regexp.MustCompile(`(?m)^\s*import\b[^'"]*['"]([^'"]+)['"]`)
	dyn := regexp.MustCompile(`(?:^|[^{\w.])import\s*\(`) // not JSDoc {import(...)}
	for _, name := range jsFiles(t) {
		src := readFile(t, name)
		for _, m := range imp.FindAllStringSubmatch(src, -1) {
			if !strings.HasPrefix(m[1], "./") {
				t.Errorf("%s imports %q: only ./ modules are allowed", name, m[1])
			}
		}
		if dyn.MatchString(src) {
			t.Errorf("%s uses a dynamic import", name)
		}
	}
}

// Data from the API is inserted as text, and tokens never go to storage that
// outlives the tab nor into URLs other than the websocket's.
func TestNoUnsafeSinksAndTokenPlacement(t *testing.T) {
	forbidden := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage"}
	for _, name := range jsFiles(t) {
		src := readFile(t, name)
		for _, f := range forbidden {
			if strings.Contains(src, f) {
				t.Errorf("%s uses %s", name, f)
			}
		}
		if name != "live.js" && strings.Contains(src, "'auth'") {
			t.Errorf("%s puts a token in a URL parameter; only live.js (websocket) may", name)
		}
	}
	if !strings.Contains(readFile(t, "api.js"), "headers.Authorization = this.token") {
		t.Error("api.js must send the token in the Authorization header")
	}
}
