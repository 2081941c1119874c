package model_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

// errID returns the API error id of err, or "" when err is not a *model.Error.
func errID(err error) string {
	var e *model.Error
	if errors.As(err, &e) {
		return e.ID
	}
	return ""
}

// errField returns the field that an invalid-parameters-format error names.
func errField(err error) string {
	var e *model.Error
	if !errors.As(err, &e) {
		return ""
	}
	m, _ := e.Data.(map[string]any)
	f, _ := m["field"].(string)
	return f
}

func TestSlugify(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Pas encodé de bleu!", "pas-encode-de-bleu"},
		{"diary", "diary"},
		{"My Diary", "my-diary"},
		{"  leading and trailing  ", "leading-and-trailing"},
		{"--dashes--", "dashes"},
		{"a -- b __ c", "a-b-c"},
		{"a...b", "a-b"},
		{"ÉTÉ 2024", "ete-2024"},
		{"Ça va? Oui.", "ca-va-oui"},
		{"naïve façade", "naive-facade"},
		{"CamelCase42", "camelcase42"},
		{"already-a-slug", "already-a-slug"},
		{"!!!", ""},
		{"", ""},
		{"日本", ""},
		{"x日本y", "x-y"},
	} {
		if got, want := model.Slugify(c.in), c.want; got != want {
			t.Fatalf("Slugify(%q): got %q, want %q", c.in, got, want)
		}
	}
}

func TestItemIDSlugifiesClientIDs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"diary", "diary"},
		{"My Diary!", "my-diary"},
		{"Pas encodé de bleu!", "pas-encode-de-bleu"},
		{"channels-2", "channels-2"},
		{"my channels", "my-channels"},
		{"c" + strings.Repeat("a", 24), "c" + strings.Repeat("a", 24)},
	} {
		got, err := model.ItemID(c.in)
		if err != nil {
			t.Fatalf("ItemID(%q): %v", c.in, err)
		}
		if want := c.want; got != want {
			t.Fatalf("ItemID(%q): got %q, want %q", c.in, got, want)
		}
	}
}

func TestItemIDRefusesReservedAndEmptyIDs(t *testing.T) {
	for _, in := range []string{
		"null", "NULL", "*",
		"channels", "admin", "accesses", "access-info", "profile", "sync", "socket", "system", "bookmarks",
		"Channels", "ADMIN", " sync ", "Access Info", "access_info", "-profile-", "Sócket",
		"", "!!!", "---", "日本",
		strings.Repeat("a", 257),
	} {
		id, err := model.ItemID(in)
		if got, want := errID(err), model.ErrInvalidItemID; got != want {
			t.Fatalf("ItemID(%q): got %q (%v, id %q), want %q", in, got, err, id, want)
		}
	}
	for in := range model.ReservedIDs {
		if got, want := errID(firstErr(model.ItemID(in))), model.ErrInvalidItemID; got != want {
			t.Fatalf("ItemID(%q): got %q, want %q", in, got, want)
		}
	}
}

func firstErr(_ string, err error) error { return err }

func TestEventIDAcceptsOnlyCuids(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"c" + strings.Repeat("0", 24), true},
		{"cabcdefghijklmnopqrstuvwx", true},
		{"cz0123456789abcdefghijklm", true},
		{"c" + strings.Repeat("a", 23), false},
		{"c" + strings.Repeat("a", 25), false},
		{"d" + strings.Repeat("a", 24), false},
		{"C" + strings.Repeat("a", 24), false},
		{"c" + strings.Repeat("A", 24), false},
		{"c" + strings.Repeat("a", 23) + "-", false},
		{"c" + strings.Repeat("a", 23) + "é", false},
		{" c" + strings.Repeat("a", 24), false},
		{"c" + strings.Repeat("a", 24) + "\n", false},
		{"", false},
		{"my-event", false},
	} {
		got, err := model.EventID(c.in)
		if c.ok {
			if err != nil || got != c.in {
				t.Fatalf("EventID(%q): got %q, %v, want it unchanged", c.in, got, err)
			}
			if !model.IsCuid(c.in) {
				t.Fatalf("IsCuid(%q): got false, want true", c.in)
			}
			continue
		}
		if got, want := errID(err), model.ErrInvalidItemID; got != want {
			t.Fatalf("EventID(%q): got %q, want %q", c.in, got, want)
		}
		if model.IsCuid(c.in) {
			t.Fatalf("IsCuid(%q): got true, want false", c.in)
		}
	}
}

func TestNewIDIsAFreshCuid(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := model.NewID()
		if !model.IsCuid(id) {
			t.Fatalf("NewID: %q is not a cuid", id)
		}
		if _, err := model.EventID(id); err != nil {
			t.Fatalf("EventID(NewID() = %q): %v", id, err)
		}
		if got, err := model.ItemID(id); err != nil || got != id {
			t.Fatalf("ItemID(NewID() = %q): got %q, %v, want it unchanged", id, got, err)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}

var tokenRE = regexp.MustCompile(`^[a-z0-9]{26}$`)

func TestNewTokenIsURLSafeSlugAndUnique(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	used := map[rune]bool{}
	for range n {
		tok := model.NewToken()
		if !tokenRE.MatchString(tok) {
			t.Fatalf("NewToken: %q does not match %v", tok, tokenRE)
		}
		if got, want := model.Slugify(tok), tok; got != want {
			t.Fatalf("Slugify(NewToken()): got %q, want %q", got, want)
		}
		if seen[tok] {
			t.Fatalf("NewToken repeated %q after %d tokens", tok, len(seen))
		}
		seen[tok] = true
		for _, r := range tok {
			used[r] = true
		}
	}
	// 260k characters drawn: every one of the 36 must appear.
	if got, want := len(used), 36; got != want {
		t.Fatalf("characters used: got %d, want %d", got, want)
	}
}

func TestNewSecretIs32FreshBytes(t *testing.T) {
	a, b := model.NewSecret(), model.NewSecret()
	if got, want := len(a), 32; got != want {
		t.Fatalf("len: got %d, want %d", got, want)
	}
	if string(a) == string(b) {
		t.Fatalf("two secrets are equal")
	}
}

// IsCuid, checked by hand, agrees with the pattern it implements on random
// strings near the form (and on a few far from it).
func TestIsCuidMatchesItsPattern(t *testing.T) {
	re := regexp.MustCompile(`^c[a-z0-9]{24}$`)
	alphabet := "cabz09AZ-_é\n \x00"
	rng := uint64(1)
	next := func(n int) int { rng = rng*6364136223846793005 + 1442695040888963407; return int(rng>>33) % n }
	for range 200_000 {
		b := []byte("c" + strings.Repeat("a", 24))
		switch next(3) {
		case 0:
			b = b[:next(len(b)+1)]
		case 1:
			b = append(b, alphabet[next(len(alphabet))])
		}
		for range next(3) {
			if len(b) > 0 {
				b[next(len(b))] = alphabet[next(len(alphabet))]
			}
		}
		if got, want := model.IsCuid(string(b)), re.MatchString(string(b)); got != want {
			t.Fatalf("IsCuid(%q) = %v, the pattern says %v", b, got, want)
		}
	}
}
