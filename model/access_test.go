package model_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

func TestUsernameIsValidatedAndLowerCased(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Alice2024", "alice2024"},
		{"ABCDE", "abcde"},
		{strings.Repeat("z", 21), strings.Repeat("z", 21)},
		{"systems", "systems"},
		{"metrics1", "metrics1"},
	} {
		got, err := model.Username(c.in)
		if err != nil {
			t.Fatalf("Username(%q): %v", c.in, err)
		}
		if want := c.want; got != want {
			t.Fatalf("Username(%q): got %q, want %q", c.in, got, want)
		}
	}
}

func TestUsernameRefusesMalformedAndReservedNames(t *testing.T) {
	for _, in := range []string{
		"", "abcd", strings.Repeat("z", 22), "ali-ce", "ali_ce", "ali ce", "alicé", " alice", "alice\n",
		"system", "System", "SYSTEM", "healthz", "readyz", "metrics", "Metrics",
	} {
		_, err := model.Username(in)
		if got, want := errID(err), model.ErrInvalidParametersFormat; got != want {
			t.Fatalf("Username(%q): got %q, want %q", in, got, want)
		}
		if got, want := errField(err), "username"; got != want {
			t.Fatalf("Username(%q): field: got %q, want %q", in, got, want)
		}
	}
}

func TestPasswordRules(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"secret", true},
		{"pass word", true},
		{"éééééé", true}, // six characters, twelve bytes
		{strings.Repeat("p", 99), true},
		{strings.Repeat("é", 99), true},
		{"", false},
		{"short", false},
		{"ééééé", false},
		{strings.Repeat("p", 100), false},
		{" secret", false},
		{"secret ", false},
		{"\tsecret", false},
	} {
		err := model.Password("newPassword", c.in)
		if c.ok {
			if err != nil {
				t.Fatalf("Password(%q): %v", c.in, err)
			}
			continue
		}
		if got, want := errID(err), model.ErrInvalidParametersFormat; got != want {
			t.Fatalf("Password(%q): got %q, want %q", c.in, got, want)
		}
		if got, want := errField(err), "newPassword"; got != want {
			t.Fatalf("Password(%q): field: got %q, want %q", c.in, got, want)
		}
		if c.in != "" && strings.Contains(err.Error(), c.in) {
			t.Fatalf("Password(%q): the message echoes the password: %v", c.in, err)
		}
	}
}

func TestEmailRules(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"alice@example.com", true},
		{"a@b", true},
		{"first.last+tag@sub.example.org", true},
		{"", false},
		{"alice", false},
		{"@example.com", false},
		{"alice@", false},
		{"ali ce@example.com", false},
		{"alice@example.com\n", false},
		{strings.Repeat("a", 250) + "@b.ch", false},
	} {
		err := model.Email(c.in)
		if got, want := err == nil, c.ok; got != want {
			t.Fatalf("Email(%q): got %v, want ok=%v", c.in, err, want)
		}
		if !c.ok {
			if got, want := errField(err), "email"; got != want {
				t.Fatalf("Email(%q): field: got %q, want %q", c.in, got, want)
			}
		}
	}
}

func TestLanguageRules(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"en", true},
		{"fr", true},
		{"", false},
		{"e", false},
		{"eng", false},
		{"EN", false},
		{"en-US", false},
		{"e1", false},
	} {
		err := model.Language(c.in)
		if got, want := err == nil, c.ok; got != want {
			t.Fatalf("Language(%q): got %v, want ok=%v", c.in, err, want)
		}
		if !c.ok {
			if got, want := errField(err), "language"; got != want {
				t.Fatalf("Language(%q): field: got %q, want %q", c.in, got, want)
			}
		}
	}
}

func TestDecodePermissionsNormalisesIDsAndTags(t *testing.T) {
	perms, err := model.DecodePermissions(json.RawMessage(`[
		{"channelId": "My Diary", "level": "contribute",
		 "folderPermissions": [{"folderId": "Work Stuff", "level": "manage"}, {"folderId": null, "level": "read"}],
		 "tags": [" run ", "", "run", "swim"],
		 "timeFrame": {"from": 1, "to": 2}},
		{"channelId": "*", "level": "read"}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(perms), 2; got != want {
		t.Fatalf("len: got %d, want %d", got, want)
	}
	p := perms[0]
	if got, want := p.ChannelID, "my-diary"; got != want {
		t.Fatalf("channelId: got %q, want %q", got, want)
	}
	if got, want := *p.FolderPermissions[0].FolderID, "work-stuff"; got != want {
		t.Fatalf("folderId: got %q, want %q", got, want)
	}
	if got := p.FolderPermissions[1].FolderID; got != nil {
		t.Fatalf("null folderId: got %q, want nil", *got)
	}
	if got, want := strings.Join(p.Tags, ","), "run,swim"; got != want {
		t.Fatalf("tags: got %q, want %q", got, want)
	}
	if got, want := perms[1].ChannelID, "*"; got != want {
		t.Fatalf("star: got %q, want %q", got, want)
	}
}

func TestDecodePermissionsRefusesBadEntries(t *testing.T) {
	for _, c := range []struct {
		name, json string
		field      string
	}{
		{"not an array", `{"channelId": "diary", "level": "read"}`, "permissions"},
		{"entry not an object", `["diary"]`, "permissions"},
		{"no channel", `[{"level": "read"}]`, "permissions"},
		{"unknown level", `[{"channelId": "diary", "level": "admin"}]`, "permissions"},
		{"personal level", `[{"channelId": "diary", "level": "personal"}]`, "permissions"},
		{"reserved channel id", `[{"channelId": "accesses", "level": "read"}]`, "permissions"},
		{"null channel id", `[{"channelId": "null", "level": "read"}]`, "permissions"},
		{"unknown folder level", `[{"channelId": "diary", "level": "read", "folderPermissions": [{"folderId": "f", "level": "x"}]}]`, "permissions"},
		{"reserved folder id", `[{"channelId": "diary", "level": "read", "folderPermissions": [{"folderId": "sync", "level": "read"}]}]`, "permissions"},
		{"reversed time frame", `[{"channelId": "diary", "level": "read", "timeFrame": {"from": 2, "to": 1}}]`, "permissions"},
		{"tag too long", `[{"channelId": "diary", "level": "read", "tags": ["` + strings.Repeat("t", 501) + `"]}]`, "tags"},
	} {
		_, err := model.DecodePermissions(json.RawMessage(c.json))
		if got, want := errID(err), model.ErrInvalidParametersFormat; got != want {
			t.Fatalf("%s: got %q (%v), want %q", c.name, got, err, want)
		}
		if got, want := errField(err), c.field; got != want {
			t.Fatalf("%s: field: got %q, want %q", c.name, got, want)
		}
	}
}

func TestTimeFrameBoundsAreOpenWhenNil(t *testing.T) {
	var none *model.TimeFrame
	from, to := none.Bounds()
	if !math.IsInf(from, -1) || !math.IsInf(to, 1) {
		t.Fatalf("nil frame: got [%v, %v], want [-Inf, +Inf]", from, to)
	}
	from, to = frame(ptr(3.0), nil).Bounds()
	if from != 3 || !math.IsInf(to, 1) {
		t.Fatalf("from only: got [%v, %v], want [3, +Inf]", from, to)
	}
}

func TestAccessExpiredAtItsExpiryTime(t *testing.T) {
	for _, c := range []struct {
		name    string
		expires *float64
		now     float64
		want    bool
	}{
		{"no expiry", nil, 1e12, false},
		{"before expiry", ptr(100.0), 99.9, false},
		{"at expiry", ptr(100.0), 100, true},
		{"after expiry", ptr(100.0), 101, true},
	} {
		a := &model.Access{Expires: c.expires}
		if got, want := a.Expired(c.now), c.want; got != want {
			t.Fatalf("%s, now %v: got %v, want %v", c.name, c.now, got, want)
		}
	}
}
