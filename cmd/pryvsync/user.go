package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// runUser serves `pryvsync user create`.
func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError{"usage: pryvsync user create --server URL --admin-key KEY --email E [--password-stdin] USERNAME"}
	}
	fs := newFlags("user create", stderr)
	server := fs.String("server", "", "server root URL (http:// or https://)")
	adminKey := fs.String("admin-key", "", "the server's admin key")
	email := fs.String("email", "", "the account's e-mail address")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"user create: give exactly one USERNAME after the flags"}
	}
	base, err := serverURL(*server)
	if err != nil {
		return err
	}
	if *adminKey == "" {
		return usageError{"user create: --admin-key (or PRYVSYNC_ADMIN_KEY) is required"}
	}
	if *email == "" {
		return usageError{"user create: --email (or PRYVSYNC_EMAIL) is required: the server needs an e-mail address"}
	}
	username := fs.Arg(0)
	password, err := readPassword(stdin, stderr, *pwStdin, "Password for "+username+": ")
	if err != nil {
		return err
	}
	body := map[string]string{"username": username, "password": password, "email": *email}
	var out struct {
		Username string `json:"username"`
	}
	if err := apiCall(ctx, base+"/system/users", *adminKey, body, &out); err != nil {
		return fmt.Errorf("user create: %w", err)
	}
	fmt.Fprintln(stdout, out.Username)
	return nil
}

// runLogin serves `pryvsync login`: it opens a session, gets the personal
// token of the app id, closes the session and prints the token.
func runLogin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("login", stderr)
	server := fs.String("server", "", "server root URL (http:// or https://)")
	username := fs.String("username", "", "account username")
	appID := fs.String("app-id", "pryvsync-cli", "app id the personal token is for")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("login: unexpected argument %q", fs.Arg(0))}
	}
	base, err := serverURL(*server)
	if err != nil {
		return err
	}
	if *username == "" {
		return usageError{"login: --username (or PRYVSYNC_USERNAME) is required"}
	}
	if *appID == "" {
		return usageError{"login: --app-id must not be empty"}
	}
	password, err := readPassword(stdin, stderr, *pwStdin, "Password for "+*username+": ")
	if err != nil {
		return err
	}
	root := base + "/" + url.PathEscape(strings.ToLower(*username)) + "/admin/"
	var ses struct {
		SessionID string `json:"sessionID"`
	}
	err = apiCall(ctx, root+"login", "", map[string]string{"username": *username, "password": password, "appId": *appID}, &ses)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	var tok struct {
		ID string `json:"id"`
	}
	err = apiCall(ctx, root+"get-app-token", ses.SessionID, map[string]string{"appId": *appID}, &tok)
	// The session was only a means to the token: end it either way.
	_ = apiCall(ctx, root+"logout", ses.SessionID, map[string]string{}, nil)
	if err != nil {
		return fmt.Errorf("login: get-app-token: %w", err)
	}
	fmt.Fprintln(stdout, tok.ID)
	return nil
}

// serverURL checks --server and returns it without a trailing slash.
func serverURL(raw string) (string, error) {
	if raw == "" {
		return "", usageError{"--server (or PRYVSYNC_SERVER) is required"}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageError{fmt.Sprintf("--server %q: want the server's root URL, http:// or https://", raw)}
	}
	return strings.TrimRight(raw, "/"), nil
}

// readPassword reads a password: from the first line of stdin with
// --password-stdin, else from the terminal without echo when stdin is one,
// else from the first line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer, fromStdin bool, prompt string) (string, error) {
	if f, ok := stdin.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("read password: standard input holds no password")
	}
	return line, nil
}

// apiError is an API error answer, shown as one line: "<id>: <message>".
type apiError struct {
	Status  int
	ID      string `json:"id"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	msg := strings.Join(strings.Fields(e.Message), " ")
	if e.ID == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return e.ID + ": " + msg
}

var apiHTTPClient = &http.Client{Timeout: 30 * time.Second}

// apiCall POSTs body as JSON to u with an Authorization header (if auth is
// set) and decodes a 2xx answer into out (if not nil).
func apiCall(ctx context.Context, u, auth string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := apiHTTPClient.Do(req)
	if err != nil {
		// The URL holds no secret: tokens travel in headers only.
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, e)
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("unexpected answer from the server (HTTP %d)", resp.StatusCode)
	}
	return nil
}
