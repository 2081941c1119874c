package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/server"
)

const cliAdminKey = "cli-admin-key"

// startUserServer runs an in-memory server on a loopback listener.
func startUserServer(t *testing.T) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.AdminKey = cliAdminKey
	cfg.PasswordCost = 4
	srv, err := server.Open(cfg, "")
	if err != nil {
		t.Fatalf("open server: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return ts.URL
}

// runUserCLI runs the command line with stdin and returns the error and outputs.
func runUserCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

func cliAccessType(t *testing.T, base, user, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/"+user+"/access-info", nil)
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		Type string `json:"type"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	return info.Type
}

func TestUserCreateThenLoginPrintsAPersonalToken(t *testing.T) {
	base := startUserServer(t)
	out, errOut, err := runUserCLI(t, "s3cret-pass\n", "user", "create", "--server", base+"/", "--admin-key", cliAdminKey,
		"--email", "alice@example.com", "--password-stdin", "Alice01")
	if err != nil {
		t.Fatalf("user create: %v (stderr %q)", err, errOut)
	}
	if got, want := out, "alice01\n"; got != want {
		t.Fatalf("user create printed %q, want %q", got, want)
	}
	out, errOut, err = runUserCLI(t, "s3cret-pass\n", "login", "--server", base, "--username", "alice01", "--password-stdin")
	if err != nil {
		t.Fatalf("login: %v (stderr %q)", err, errOut)
	}
	token := strings.TrimSpace(out)
	if token == "" || strings.Contains(token, "\n") {
		t.Fatalf("login printed %q, want one token", out)
	}
	if got := cliAccessType(t, base, "alice01", token); got != "personal" {
		t.Fatalf("printed token is a %q access, want personal", got)
	}
	// Without --password-stdin, a stdin that is not a terminal is read too;
	// the same app id gets the same token.
	out2, _, err := runUserCLI(t, "s3cret-pass\n", "login", "--server", base, "--username", "ALICE01")
	if err != nil || strings.TrimSpace(out2) != token {
		t.Fatalf("second login: err %v, token %q, want %q", err, out2, token)
	}
	out3, _, err := runUserCLI(t, "s3cret-pass\n", "login", "--server", base, "--username", "alice01", "--app-id", "other-app")
	if err != nil || strings.TrimSpace(out3) == token {
		t.Fatalf("another app id: err %v, token %q (must differ)", err, out3)
	}
	if strings.Contains(errOut, "s3cret-pass") || strings.Contains(out, "s3cret-pass") {
		t.Fatalf("the password was echoed")
	}
}

func TestUserCreateReadsFlagsFromTheEnvironment(t *testing.T) {
	base := startUserServer(t)
	t.Setenv("PRYVSYNC_SERVER", base)
	t.Setenv("PRYVSYNC_ADMIN_KEY", cliAdminKey)
	t.Setenv("PRYVSYNC_EMAIL", "bob@example.com")
	if _, errOut, err := runUserCLI(t, "s3cret-pass\n", "user", "create", "bobby01"); err != nil {
		t.Fatalf("user create: %v (stderr %q)", err, errOut)
	}
	t.Setenv("PRYVSYNC_USERNAME", "bobby01")
	if out, _, err := runUserCLI(t, "s3cret-pass\n", "login"); err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("login from the environment: %v", err)
	}
}

func TestLoginFailureExitsOneWithTheAPIError(t *testing.T) {
	base := startUserServer(t)
	if _, _, err := runUserCLI(t, "s3cret-pass\n", "user", "create", "--server", base, "--admin-key", cliAdminKey, "--email", "a@example.com", "alice01"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runUserCLI(t, "wrong-pass\n", "login", "--server", base, "--username", "alice01", "--password-stdin")
	var stderr bytes.Buffer
	if code := exitCode(err, &stderr); code != 1 {
		t.Fatalf("exit code %d, want 1 (err %v)", code, err)
	}
	msg := stderr.String()
	if !strings.Contains(msg, "invalid-credentials") || strings.Count(msg, "\n") != 1 {
		t.Fatalf("stderr %q: want one line naming invalid-credentials", msg)
	}
	if out != "" || strings.Contains(msg, "wrong-pass") {
		t.Fatalf("failure printed %q / %q", out, msg)
	}
}

func TestUserCreateFailuresExitOneWithTheAPIError(t *testing.T) {
	base := startUserServer(t)
	cases := []struct {
		name, key, user, password, id string
	}{
		{"wrong admin key", "nope", "alice01", "s3cret-pass", "invalid-access-token"},
		{"reserved username", cliAdminKey, "system", "s3cret-pass", "invalid-parameters-format"},
		{"short password", cliAdminKey, "alice01", "abc", "invalid-parameters-format"},
	}
	for _, tc := range cases {
		_, _, err := runUserCLI(t, tc.password+"\n", "user", "create", "--server", base, "--admin-key", tc.key, "--email", "a@example.com", tc.user)
		var stderr bytes.Buffer
		if code := exitCode(err, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.id) {
			t.Fatalf("%s: exit %d, stderr %q; want 1 and %s", tc.name, code, stderr.String(), tc.id)
		}
	}
	if _, _, err := runUserCLI(t, "s3cret-pass\n", "user", "create", "--server", base, "--admin-key", cliAdminKey, "--email", "a@example.com", "alice01"); err != nil {
		t.Fatal(err)
	}
	_, _, err := runUserCLI(t, "s3cret-pass\n", "user", "create", "--server", base, "--admin-key", cliAdminKey, "--email", "a@example.com", "alice01")
	if err == nil || !strings.Contains(err.Error(), "item-id-already-exists") {
		t.Fatalf("taken username: got %v", err)
	}
}

func TestUserAndLoginUsageErrorsExitTwo(t *testing.T) {
	t.Setenv("PRYVSYNC_SERVER", "")
	cases := [][]string{
		{"user"},
		{"user", "delete", "alice01"},
		{"user", "create", "--admin-key", "k", "--email", "a@b.c", "alice01"},
		{"user", "create", "--server", "http://127.0.0.1:1", "--email", "a@b.c", "alice01"},
		{"user", "create", "--server", "http://127.0.0.1:1", "--admin-key", "k", "alice01"},
		{"user", "create", "--server", "http://127.0.0.1:1", "--admin-key", "k", "--email", "a@b.c"},
		{"user", "create", "--server", "127.0.0.1:1", "--admin-key", "k", "--email", "a@b.c", "alice01"},
		{"user", "create", "--bogus", "alice01"},
		{"login", "--server", "http://127.0.0.1:1"},
		{"login", "--server", "ftp://host", "--username", "alice01"},
		{"login", "--server", "http://127.0.0.1:1", "--username", "alice01", "extra"},
	}
	for _, args := range cases {
		_, _, err := runUserCLI(t, "s3cret-pass\n", args...)
		var ue usageError
		if !errors.As(err, &ue) || exitCode(err, &bytes.Buffer{}) != 2 {
			t.Fatalf("%v: got %v, want a usage error (exit 2)", args, err)
		}
	}
}

func TestLoginWithoutAPasswordOnStdinFails(t *testing.T) {
	base := startUserServer(t)
	_, _, err := runUserCLI(t, "", "login", "--server", base, "--username", "alice01", "--password-stdin")
	if err == nil || exitCode(err, &bytes.Buffer{}) != 1 {
		t.Fatalf("empty stdin: got %v, want a failure", err)
	}
}
