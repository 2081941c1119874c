package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

// seedStore makes an on-disk server store with one user and returns its epoch.
func seedStore(t *testing.T, dir string) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.PasswordCost = 4
	srv, err := server.Open(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	err = srv.Store().Update(context.Background(), "alice01", func(tx *store.Tx) error {
		return tx.PutJSON(store.KeyUserRecord("alice01"), &model.User{Username: "alice01", Email: "a@example.com", Language: "en"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv.Store().Epoch()
}

func runOpsCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

func TestBackupThenRestoreOffline(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	epoch := seedStore(t, src)
	file := filepath.Join(t.TempDir(), "b.tar")
	out, errOut, err := runOpsCLI(t, "backup", "--data", src, "--out", file)
	if err != nil {
		t.Fatalf("backup: %v (stderr %q)", err, errOut)
	}
	if out != "" || errOut != "" {
		t.Fatalf("backup not on a terminal printed %q / %q, want nothing", out, errOut)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	if _, errOut, err := runOpsCLI(t, "restore", "--data", dst, "--in", file); err != nil {
		t.Fatalf("restore: %v (stderr %q)", err, errOut)
	}
	st, err := store.Open(store.Options{Dir: dst})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var u model.User
	ok := false
	_ = st.View("alice01", func(tx *store.Tx) error {
		ok, err = tx.GetJSON(store.KeyUserRecord("alice01"), &u)
		return err
	})
	if !ok || u.Email != "a@example.com" {
		t.Fatalf("restored user: %+v, %v, %v", u, ok, err)
	}
	if st.Epoch() == epoch {
		t.Fatal("restored store kept the old epoch")
	}
}

func TestBackupToStandardOutput(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	seedStore(t, src)
	out, _, err := runOpsCLI(t, "backup", "--data", src, "--out", "-")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Restore(filepath.Join(t.TempDir(), "r"), strings.NewReader(out)); err != nil {
		t.Fatalf("restore of the stdout backup: %v", err)
	}
}

func TestBackupOfARunningServerPointsToTheOnlineBackup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv, err := server.Open(server.DefaultConfig(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, _, err = runOpsCLI(t, "backup", "--data", dir, "--out", filepath.Join(t.TempDir(), "b.tar"))
	if err == nil || !strings.Contains(err.Error(), "/system/backup") || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("backup beside a live server: %v; want a pointer to the online backup", err)
	}
	if code := exitCode(err, io.Discard); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
}

func TestRestoreRefusesANonEmptyDirectory(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	seedStore(t, src)
	file := filepath.Join(t.TempDir(), "b.tar")
	if _, _, err := runOpsCLI(t, "backup", "--data", src, "--out", file); err != nil {
		t.Fatal(err)
	}
	_, _, err := runOpsCLI(t, "restore", "--data", src, "--in", file)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore over a live data dir: %v; want a refusal", err)
	}
}

func TestBackupAndRestoreUsage(t *testing.T) {
	for _, args := range [][]string{
		{"backup", "--data", "x"},
		{"restore", "--data", "x"},
		{"backup", "--out", "f", "extra"},
		{"backup", "--nope"},
	} {
		_, _, err := runOpsCLI(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("%v: %v, want a usage error (exit 2)", args, err)
		}
	}
	_, _, err := runOpsCLI(t, "backup", "--data", filepath.Join(t.TempDir(), "none"), "--out", filepath.Join(t.TempDir(), "b"))
	if err == nil || !strings.Contains(err.Error(), "no pryvsync store") {
		t.Fatalf("backup of a missing store: %v", err)
	}
}

func TestProgressShowsOnlyOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "backup", 100)
	p.add(50)
	p.done()
	p.printf("summary\n")
	if buf.Len() != 0 {
		t.Fatalf("progress wrote %q to a non-terminal", buf.String())
	}
	// Forced onto a writer: the line carries the count and the percentage.
	p = &progress{out: &buf, what: "restore", total: 4 << 20, start: time.Now()}
	p.add(1 << 20)
	if got := buf.String(); !strings.Contains(got, "restore: 1.0 MiB of 4.0 MiB (25%)") {
		t.Fatalf("progress line %q", got)
	}
}

// syncBuffer is a bytes.Buffer safe for a server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `pryvsync serve` with args and returns the addresses it
// logged (key: "listening", "metrics listening").
func startServe(t *testing.T, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	args = append([]string{"serve", "--data", filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0"}, args...)
	go func() { done <- run(ctx, args, strings.NewReader(""), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	re := regexp.MustCompile(`\]\s+pryvsync: (listening|metrics listening): addr=(\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		found := map[string]string{}
		for _, m := range re.FindAllStringSubmatch(logs.String(), -1) {
			found[m[1]] = m[2]
		}
		if found["listening"] != "" {
			return found
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("serve did not start; logs:\n%s", logs.String())
	return nil
}

func get(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServeMetricsListenMovesMetrics(t *testing.T) {
	addrs := startServe(t, "--metrics-listen", "127.0.0.1:0")
	if addrs["metrics listening"] == "" {
		t.Fatal("no metrics listener logged")
	}
	c := http.DefaultClient
	if st := get(t, c, "http://"+addrs["metrics listening"]+"/metrics"); st != 200 {
		t.Fatalf("metrics listener: %d", st)
	}
	if st := get(t, c, "http://"+addrs["listening"]+"/metrics"); st != 404 {
		t.Fatalf("API listener still serves /metrics: %d", st)
	}
	if st := get(t, c, "http://"+addrs["listening"]+"/healthz"); st != 200 {
		t.Fatalf("API listener /healthz: %d", st)
	}
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	addrs := startServe(t, "--tls-cert", certFile, "--tls-key", keyFile)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if st := get(t, c, "https://"+addrs["listening"]+"/healthz"); st != 200 {
		t.Fatalf("https /healthz: %d", st)
	}
}

func TestServeRefusesBadLimits(t *testing.T) {
	for _, args := range [][]string{
		{"--tls-cert", "x.pem"},
		{"--max-body-bytes", "0"},
		{"--max-conns-per-user", "-1"},
		{"--max-frame-bytes", "1000"},
		{"--session-ttl", "0s"},
	} {
		err := run(context.Background(), append([]string{"serve", "--data", t.TempDir()}, args...), strings.NewReader(""), io.Discard, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("serve %v: %v, want a usage error", args, err)
		}
	}
}

func TestServeLimitsFromEnvironment(t *testing.T) {
	t.Setenv("PRYVSYNC_MAX_BODY_BYTES", "0")
	err := run(context.Background(), []string{"serve", "--data", t.TempDir()}, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--max-body-bytes") {
		t.Fatalf("PRYVSYNC_MAX_BODY_BYTES=0: %v, want the flag named in the refusal", err)
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
