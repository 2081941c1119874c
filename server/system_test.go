package server_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

func systemUserBody(name string) map[string]any {
	return map[string]any{"username": name, "password": "secret-pw", "email": name + "@example.com"}
}

// errDataField returns data.field of an error answer.
func errDataField(v any) string {
	m, _ := v.(map[string]any)
	d, _ := m["data"].(map[string]any)
	f, _ := d["field"].(string)
	return f
}

func mustAPIError(t *testing.T, what string, st int, v any, status int, id string) {
	t.Helper()
	mustStatus(t, what, st, v, status)
	if got := errID(v); got != id {
		t.Fatalf("%s: error id %q, want %q (answer %v)", what, got, id, v)
	}
}

func TestCreateUserAnswers201WithLowerCaseUsername(t *testing.T) {
	e := newEnv(t)
	st, v := e.doJSON("POST", "/system/users", testAdminKey, systemUserBody("Alice01"))
	mustStatus(t, "create", st, v, 201)
	if got, want := v.(map[string]any)["username"], "alice01"; got != want {
		t.Fatalf("username: got %v, want %v", got, want)
	}
	st, v = e.doJSON("POST", "/ALICE01/admin/login", "", map[string]any{"username": "alice01", "password": "secret-pw", "appId": "test"})
	mustStatus(t, "login", st, v, 200)
}

func TestCreateUserWithWrongOrMissingAdminKeyIsInvalidAccessToken(t *testing.T) {
	e := newEnv(t)
	for _, key := range []string{"", "wrong-key", testAdminKey + "x"} {
		st, v := e.doJSON("POST", "/system/users", key, systemUserBody("alice01"))
		mustAPIError(t, "key "+key, st, v, 401, "invalid-access-token")
	}
	st, v := e.doJSON("GET", "/alice01/channels", "x", nil)
	mustAPIError(t, "user must not exist", st, v, 404, "unknown-user")
}

func TestSystemAPIIsOffWithoutAdminKey(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.AdminKey = "" })
	st, v := e.doJSON("POST", "/system/users", "", systemUserBody("alice01"))
	mustStatus(t, "create", st, v, 404)
	st, v = e.doJSON("POST", "/system/users", testAdminKey, systemUserBody("alice01"))
	mustStatus(t, "create with a key", st, v, 404)
}

func TestCreateUserRefusesReservedAndMalformedUsernames(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"system", "Healthz", "metrics", "abcd", "has-dash", "waytoolongusername1234", "spa ce1"} {
		st, v := e.doJSON("POST", "/system/users", testAdminKey, systemUserBody(name))
		mustAPIError(t, name, st, v, 400, "invalid-parameters-format")
		if got := errDataField(v); got != "username" {
			t.Fatalf("%s: data.field %q, want username", name, got)
		}
	}
}

func TestCreateUserRefusesTakenUsernameCaseInsensitively(t *testing.T) {
	e := newEnv(t)
	st, v := e.doJSON("POST", "/system/users", testAdminKey, systemUserBody("alice01"))
	mustStatus(t, "first", st, v, 201)
	st, v = e.doJSON("POST", "/system/users", testAdminKey, systemUserBody("ALICE01"))
	mustAPIError(t, "second", st, v, 400, "item-id-already-exists")
}

func TestCreateUserValidatesEveryField(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"missing password", func(m map[string]any) { delete(m, "password") }, "password"},
		{"short password", func(m map[string]any) { m["password"] = "12345" }, "password"},
		{"long password", func(m map[string]any) { m["password"] = strings.Repeat("p", 100) }, "password"},
		{"padded password", func(m map[string]any) { m["password"] = " secret-pw" }, "password"},
		{"missing email", func(m map[string]any) { delete(m, "email") }, "email"},
		{"bad email", func(m map[string]any) { m["email"] = "nope" }, "email"},
		{"email not a string", func(m map[string]any) { m["email"] = 12 }, "email"},
		{"bad language", func(m map[string]any) { m["language"] = "english" }, "language"},
		{"missing username", func(m map[string]any) { delete(m, "username") }, "username"},
		{"unknown field", func(m map[string]any) { m["admin"] = true }, "admin"},
	}
	for _, tc := range cases {
		b := systemUserBody("alice01")
		tc.edit(b)
		st, v := e.doJSON("POST", "/system/users", testAdminKey, b)
		mustAPIError(t, tc.name, st, v, 400, "invalid-parameters-format")
		if got := errDataField(v); got != tc.field {
			t.Fatalf("%s: data.field %q, want %q", tc.name, got, tc.field)
		}
	}
	st, b, _ := e.do("POST", "/system/users", testAdminKey, []byte(`{"username": "alice01",`))
	var v any
	_ = json.Unmarshal(b, &v)
	mustAPIError(t, "malformed JSON", st, v, 400, "invalid-request-structure")
	st, v = e.doJSON("GET", "/alice01/channels", "x", nil)
	mustAPIError(t, "nothing was created", st, v, 404, "unknown-user")
}

func TestCreateUserStoresOnlyASlowHashOfThePassword(t *testing.T) {
	e := newEnv(t)
	body := systemUserBody("alice01")
	body["password"] = "Very-Secret-42"
	st, v := e.doJSON("POST", "/system/users", testAdminKey, body)
	mustStatus(t, "create", st, v, 201)
	var raw []byte
	err := e.srv.Store().View("alice01", func(tx *store.Tx) error {
		var err error
		raw, _, err = tx.GetRaw(store.KeyUserRecord("alice01"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("Very-Secret-42")) {
		t.Fatalf("the stored user record holds the password")
	}
	var rec struct {
		PasswordHash []byte `json:"passwordHash"`
		Language     string `json:"language"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(rec.PasswordHash, []byte("$2")) {
		t.Fatalf("passwordHash is not a bcrypt hash: %q", rec.PasswordHash)
	}
	if got, want := rec.Language, "en"; got != want {
		t.Fatalf("default language: got %q, want %q", got, want)
	}
	st, v = e.doJSON("GET", "/alice01/admin/user-info", mustAdminLogin(t, e, "alice01", "Very-Secret-42"), nil)
	mustStatus(t, "user-info", st, v, 200)
	if _, ok := v.(map[string]any)["passwordHash"]; ok {
		t.Fatalf("user-info shows the hash: %v", v)
	}
}

// bcrypt reads at most 72 bytes: a 99-character password must still count
// in full.
func TestNinetyNineCharacterPasswordCountsInFull(t *testing.T) {
	e := newEnv(t)
	pw := strings.Repeat("é", 98) + "a"
	body := systemUserBody("alice01")
	body["password"] = pw
	st, v := e.doJSON("POST", "/system/users", testAdminKey, body)
	mustStatus(t, "create", st, v, 201)
	mustAdminLogin(t, e, "alice01", pw)
	st, v = e.doJSON("POST", "/alice01/admin/login", "", map[string]any{"username": "alice01", "password": strings.Repeat("é", 98) + "b", "appId": "t"})
	mustAPIError(t, "same first 72 bytes", st, v, 401, "invalid-credentials")
}
