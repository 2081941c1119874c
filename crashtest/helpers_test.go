package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

const (
	user    = "crash01"
	channel = "diary"

	envSeed = "PRYVSYNC_CRASH_SEED"
	// Child process parameters.
	envMode  = "PRYVSYNC_CRASH_MODE" // "server", "download" or "writes"
	envDir   = "PRYVSYNC_CRASH_DATA"
	envAddr  = "PRYVSYNC_CRASH_ADDR"
	envURL   = "PRYVSYNC_CRASH_URL"
	envToken = "PRYVSYNC_CRASH_TOKEN"
)

// newRNG returns the test's random source, seeded from PRYVSYNC_CRASH_SEED
// or the clock, and logs the seed.
func newRNG(t *testing.T) *rand.Rand {
	t.Helper()
	seed := time.Now().UnixNano()
	if v := os.Getenv(envSeed); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", envSeed, v, err)
		}
	}
	t.Logf("seed %d (set %s=%d to replay)", seed, envSeed, seed)
	return rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
}

// sized picks the full size, or the small one under the race detector or -short.
func sized(full, small int) int {
	if raceEnabled || testing.Short() {
		return small
	}
	return full
}

func serverConfig() server.Config {
	cfg := server.DefaultConfig()
	cfg.PasswordCost = 4
	cfg.CompactEvery = -1
	return cfg
}

func body(t *testing.T, s string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("body %s: %v", s, err)
	}
	return m
}

// fixture is a server running in this process, used to prepare data (and,
// in the replica tests, to serve it).
type fixture struct {
	t     *testing.T
	srv   *server.Server
	ts    *httptest.Server
	token string
}

// openFixture opens a server on dir ("" in memory) with the user, a
// personal token and a channel.
func openFixture(t *testing.T, dir string) *fixture {
	t.Helper()
	srv, err := server.Open(serverConfig(), dir)
	if err != nil {
		t.Fatalf("open server: %v", err)
	}
	f := &fixture{t: t, srv: srv, ts: httptest.NewServer(srv)}
	t.Cleanup(f.close)
	err = srv.Store().Update(context.Background(), user, func(tx *store.Tx) error {
		return tx.PutJSON(store.KeyUserRecord(user), &model.User{Username: user, Email: "c@example.com", Language: "en"})
	})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	f.token, err = server.CreateAccessForTest(srv, user, &model.Access{Type: model.AccessPersonal, Name: "personal"})
	if err != nil {
		t.Fatalf("create access: %v", err)
	}
	owner := openReplica(t, t.TempDir(), f.ts.URL, f.token)
	if _, err := owner.CreateChannel(body(t, `{"id":"`+channel+`","name":"Diary"}`)); err != nil {
		t.Fatalf("create channel: %v", err)
	}
	mustSync(t, owner)
	owner.Close()
	return f
}

// close stops the server (idempotent); its data stays in its directory.
func (f *fixture) close() {
	if f.ts != nil {
		f.ts.CloseClientConnections()
		f.ts.Close()
		f.ts = nil
	}
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
}

// seedEvents writes n events into the channel through the server's write
// rule, 1000 per transaction.
func (f *fixture) seedEvents(n int) {
	f.t.Helper()
	clock := crdt.NewClock("seed", nil, 0)
	actor := &server.Actor{AccessID: "seed", Type: model.AccessPersonal, Scope: model.Personal()}
	for done := 0; done < n; {
		k := min(1000, n-done)
		err := f.srv.Store().Update(context.Background(), user, func(tx *store.Tx) error {
			for i := range k {
				v := clock.MustNow()
				d := crdt.Doc{Fields: map[string]crdt.Field{
					"channelId": {V: v, Val: model.JSONString(channel)},
					"time":      {V: v, Val: model.JSONNumber(float64(1_700_000_000 + done + i))},
					"type":      {V: v, Val: []byte(`{"class":"note","format":"txt"}`)},
					"value":     {V: v, Val: model.JSONString(fmt.Sprintf("seed event %d, some eighty characters of text to give it weight", done+i))},
				}}
				if _, err := server.ApplyChange(tx, actor, server.Change{Kind: model.KindEvent, ID: model.NewID(), Delta: d, Create: true}, clock); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			f.t.Fatalf("seed: %v", err)
		}
		done += k
	}
}

// eventSeqs maps every event id the server holds to its feed sequence.
func (f *fixture) eventSeqs() map[string]uint64 {
	f.t.Helper()
	out := map[string]uint64{}
	err := f.srv.Store().View(user, func(tx *store.Tx) error {
		return tx.Items(model.KindEvent, func(id string, r *store.Record) (bool, error) {
			out[id] = r.Seq
			return true, nil
		})
	})
	if err != nil {
		f.t.Fatalf("read server events: %v", err)
	}
	return out
}

func openReplica(t *testing.T, dir, url, token string) *replica.Replica {
	t.Helper()
	r, err := replica.Open(dir, replica.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("open replica %s: %v", dir, err)
	}
	t.Cleanup(func() { r.Close() })
	if url != "" {
		if err := r.Configure(url, user, token); err != nil {
			t.Fatalf("configure replica: %v", err)
		}
	}
	return r
}

func mustSync(t *testing.T, r *replica.Replica) replica.RoundResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.Sync(ctx)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

// syncUntilClean syncs until the round succeeds with nothing pending and no
// rejections (the server may still be coming up).
func syncUntilClean(t *testing.T, r *replica.Replica) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := r.Sync(ctx)
		cancel()
		st, serr := r.Status()
		if serr != nil {
			t.Fatalf("status: %v", serr)
		}
		if err == nil && st.Pending == 0 {
			if st.Rejections != 0 {
				rej, _ := r.Rejections()
				t.Fatalf("replica has %d rejections: %+v", st.Rejections, rej)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync did not complete: last error %v, status %+v", err, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// localEvents returns the replica's events by id (every state), failing on
// a duplicated id.
func localEvents(t *testing.T, r *replica.Replica) map[string]string {
	t.Helper()
	evs, err := r.ListEvents(replica.Filter{State: "all"})
	if err != nil {
		t.Fatalf("list local events: %v", err)
	}
	out := make(map[string]string, len(evs))
	for _, ev := range evs {
		if _, dup := out[ev.ID]; dup {
			t.Fatalf("replica lists event %s twice", ev.ID)
		}
		out[ev.ID] = string(ev.Value)
	}
	return out
}

// serverEvents lists every event of the user over HTTP, failing on a
// duplicated id; it returns id → raw JSON value.
func serverEvents(t *testing.T, url, token string) map[string]string {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/"+user+"/"+channel+"/events?fromTime=-1e12&state=all&limit=10000000", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET events: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET events: %d %s", resp.StatusCode, raw)
	}
	var evs []struct {
		ID    string          `json:"id"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &evs); err != nil {
		t.Fatalf("GET events: %v", err)
	}
	m := make(map[string]string, len(evs))
	for _, ev := range evs {
		if _, dup := m[ev.ID]; dup {
			t.Fatalf("server lists event %s twice", ev.ID)
		}
		m[ev.ID] = string(ev.Value)
	}
	return m
}

// sameEvents fails unless got and want hold the same ids with the same values.
func sameEvents(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var missing, extra, differ []string
	for id, v := range want {
		g, ok := got[id]
		switch {
		case !ok:
			missing = append(missing, id)
		case g != v:
			differ = append(differ, fmt.Sprintf("%s: %s, want %s", id, g, v))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(extra)+len(differ) > 0 {
		t.Fatalf("%s: %d events, want %d; missing %d %v, extra %d %v, different %d %v", what,
			len(got), len(want), len(missing), head(missing), len(extra), head(extra), len(differ), head(differ))
	}
}

func head(s []string) []string {
	sort.Strings(s)
	return s[:min(len(s), 5)]
}

// child is a re-executed test binary running one TestHelper*Process.
type child struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	lines  chan string // stdout, closed at EOF
	stderr *lockedBuffer
	exited chan struct{}
	once   sync.Once
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChild re-executes the test binary running only helper, with env.
func startChild(t *testing.T, helper string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1", "-test.timeout=3m")
	cmd.Env = append(os.Environ(), env...)
	c := &child{t: t, name: helper, cmd: cmd, lines: make(chan string, 1<<16), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", helper, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		_ = cmd.Wait() // only after EOF: Wait closes the pipe
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.rest()
		if t.Failed() {
			if s := c.stderr.String(); s != "" {
				t.Logf("%s stderr:\n%s", helper, tail(s, 4000))
			}
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// kill sends SIGKILL (once).
func (c *child) kill() {
	c.once.Do(func() { _ = c.cmd.Process.Signal(syscall.SIGKILL) })
}

// await returns the first line starting with prefix, failing after timeout
// or if the child ends first. Lines before it are passed to skip (may be nil).
func (c *child) await(prefix string, timeout time.Duration, skip func(string)) string {
	c.t.Helper()
	guard := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("%s ended before printing %q; stderr:\n%s", c.name, prefix, tail(c.stderr.String(), 4000))
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
			if strings.HasPrefix(line, "FAIL ") {
				c.t.Fatalf("%s: %s", c.name, line)
			}
			if skip != nil {
				skip(line)
			}
		case <-guard:
			c.kill()
			c.t.Fatalf("%s did not print %q within %v", c.name, prefix, timeout)
		}
	}
}

// rest kills the child if needed and returns the lines not read yet.
func (c *child) rest() []string {
	c.kill()
	var out []string
	for line := range c.lines {
		out = append(out, line)
	}
	<-c.exited
	return out
}

// say writes one line to stdout in a single write(2), so that a kill never
// leaves half a line.
func say(format string, args ...any) {
	_, _ = os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n")
}

// fail reports a child's error to the parent and exits.
func fail(format string, args ...any) {
	say("FAIL "+format, args...)
	os.Exit(3)
}

// serverProc is a server running in a child process on an on-disk data
// directory.
type serverProc struct {
	*child
	addr string
	url  string
}

// startServer runs the server on dir in a child process, listening on addr
// ("" for any loopback port), and waits until it serves.
func startServer(t *testing.T, dir, addr string) *serverProc {
	t.Helper()
	c := startChild(t, "TestHelperServerProcess", envMode+"=server", envDir+"="+dir, envAddr+"="+addr)
	line := c.await("LISTEN ", time.Minute, nil)
	a := strings.TrimPrefix(line, "LISTEN ")
	return &serverProc{child: c, addr: a, url: "http://" + a}
}

// listenRetry listens on addr, retrying a while: after a kill the port of
// the previous server may take a moment to be free.
func listenRetry(addr string) (net.Listener, error) {
	var err error
	for range 100 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, err
}
