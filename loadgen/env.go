package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/pryvsync/pryvsync/cluster"
	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

// env is the server a workload runs against, and the scratch directory of
// its replicas.
type env struct {
	cfg      Config
	url      string
	adminKey string
	srv      *server.Server // in-process server; nil for an external one
	hs       *http.Server
	dir      string
	hc       *http.Client

	// Cluster mode: the NATS servers, node B and its URL (urlB is url
	// otherwise), and each node's connection to the cluster.
	nats  *cluster.NATS
	srvB  *server.Server
	hsB   *http.Server
	urlB  string
	links []*cluster.Log
}

// newEnv starts an in-process server (or uses cfg.Server) for one workload.
func newEnv(ctx context.Context, cfg Config) (*env, error) {
	dir, err := os.MkdirTemp(cfg.Dir, "pryvsync-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, dir: dir, url: cfg.Server, adminKey: cfg.AdminKey, hc: newHTTPClient()}
	if cfg.Server != "" {
		if e.adminKey == "" {
			os.RemoveAll(dir)
			return nil, errors.New("loadgen: an external server needs its admin key (--admin-key) to create bench users")
		}
		e.urlB = e.url
		return e, nil
	}
	e.adminKey = model.NewToken()
	if cfg.Cluster {
		if err := e.startCluster(ctx); err != nil {
			e.close()
			return nil, err
		}
		return e, nil
	}
	srv, url, hs, err := startServer(filepath.Join(dir, "server"), e.adminKey, "127.0.0.1:0", nil, nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e.srv, e.url, e.hs, e.urlB = srv, url, hs, url
	return e, nil
}

// startCluster starts three NATS servers and two nodes over them.
func (e *env) startCluster(ctx context.Context) error {
	nc, err := cluster.StartNATS(filepath.Join(e.dir, "nats"), 3)
	if err != nil {
		return err
	}
	e.nats = nc
	for i, name := range []string{"node-a", "node-b"} {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		link, err := cluster.Connect(cctx, nc.URLs(), cluster.Options{Name: name})
		cancel()
		if err != nil {
			return err
		}
		e.links = append(e.links, link)
		srv, url, hs, err := startServer(filepath.Join(e.dir, name), e.adminKey, "127.0.0.1:0", nil, link)
		if err != nil {
			return err
		}
		if i == 0 {
			e.srv, e.url, e.hs = srv, url, hs
		} else {
			e.srvB, e.urlB, e.hsB = srv, url, hs
		}
	}
	return nil
}

// startServer opens a server on an on-disk store (SyncWrites on) and serves
// it on listen. Bench settings: cheap bcrypt, and connections per user
// bounded only by the open-file limit.
func startServer(dir, adminKey, listen string, ln net.Listener, link *cluster.Log) (*server.Server, string, *http.Server, error) {
	cfg := server.DefaultConfig()
	cfg.AdminKey = adminKey
	cfg.PasswordCost = 4
	cfg.MaxConnsPerUser = 1 << 20
	if link != nil {
		cfg.Log, cfg.Blobs = link, link
	}
	srv, err := server.Open(cfg, dir)
	if err != nil {
		return nil, "", nil, err
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", listen); err != nil {
			srv.Close()
			return nil, "", nil, err
		}
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return srv, "http://" + ln.Addr().String(), hs, nil
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
		e.hs.Close()
	}
	if e.srvB != nil {
		e.srvB.Close()
		e.hsB.Close()
	}
	for _, l := range e.links {
		l.Close()
	}
	if e.nats != nil {
		e.nats.Close()
	}
	e.hc.CloseIdleConnections()
	os.RemoveAll(e.dir)
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
	}
}

// tempDir returns a new directory for a replica.
func (e *env) tempDir(prefix string) (string, error) { return os.MkdirTemp(e.dir, prefix) }

// apiError is an API error answer.
type apiError struct {
	Status  int
	Method  string
	Path    string
	ID      string `json:"id"`
	Message string `json:"message"`
}

func (a *apiError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d %s %s", a.Method, a.Path, a.Status, a.ID, a.Message)
}

// call sends a JSON request to path (under the server root) and decodes a 2xx
// answer into out (when not nil).
func (e *env) call(ctx context.Context, method, path, auth string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		ae := &apiError{Status: resp.StatusCode, Method: method, Path: path}
		var wrap struct {
			Error *apiError `json:"error"`
		}
		if json.Unmarshal(raw, &wrap) == nil && wrap.Error != nil {
			ae.ID, ae.Message = wrap.Error.ID, wrap.Error.Message
		} else {
			_ = json.Unmarshal(raw, ae)
		}
		return ae
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// account is a bench user and its personal token.
type account struct {
	user     string
	personal string
}

// newAccount creates a user through the system API and logs in.
func (e *env) newAccount(ctx context.Context) (account, error) {
	user := "bench" + model.NewToken()[:12]
	password := model.NewToken()
	err := e.call(ctx, "POST", "/system/users", e.adminKey,
		map[string]string{"username": user, "password": password, "email": user + "@bench.invalid"}, nil)
	if err != nil {
		return account{}, fmt.Errorf("create user: %w", err)
	}
	root := "/" + user + "/admin/"
	var ses struct {
		SessionID string `json:"sessionID"`
	}
	if err := e.call(ctx, "POST", root+"login", "", map[string]string{"username": user, "password": password, "appId": "pryvsync-bench"}, &ses); err != nil {
		return account{}, fmt.Errorf("login: %w", err)
	}
	var tok struct {
		ID string `json:"id"`
	}
	if err := e.call(ctx, "POST", root+"get-app-token", ses.SessionID, map[string]string{"appId": "pryvsync-bench"}, &tok); err != nil {
		return account{}, fmt.Errorf("get-app-token: %w", err)
	}
	return account{user: user, personal: tok.ID}, nil
}

// addChannel creates a channel and its folders; it returns the folder ids.
// An in-process server gets them in one store transaction through the
// server's write rule, an external one over HTTP.
func (e *env) addChannel(ctx context.Context, a account, channel string, folders int) ([]string, error) {
	ids := make([]string, folders)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-f%02d", channel, i)
	}
	if e.srv != nil {
		return ids, e.addChannelInStore(ctx, a, channel, ids)
	}
	if err := e.call(ctx, "POST", "/"+a.user+"/channels", a.personal, map[string]string{"id": channel, "name": "Channel " + channel}, nil); err != nil {
		return nil, err
	}
	for i, id := range ids {
		body := map[string]string{"id": id, "name": fmt.Sprintf("Folder %d", i)}
		if err := e.call(ctx, "POST", "/"+a.user+"/"+url.PathEscape(channel)+"/folders", a.personal, body, nil); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func (e *env) addChannelInStore(ctx context.Context, a account, channel string, folders []string) error {
	clock := crdt.NewClock("bench-seed", nil, 0)
	actor := &server.Actor{AccessID: "bench-seed", Type: model.AccessPersonal, Scope: model.Personal()}
	change := func(kind model.Kind, id string, fields map[string][]byte) server.Change {
		v := clock.MustNow()
		d := crdt.Doc{Fields: map[string]crdt.Field{}}
		for k, val := range fields {
			d.Fields[k] = crdt.Field{V: v, Val: val}
		}
		return server.Change{Kind: kind, ID: id, Delta: d, Create: true}
	}
	changes := []server.Change{change(model.KindChannel, channel, map[string][]byte{"name": model.JSONString("Channel " + channel)})}
	for i, id := range folders {
		changes = append(changes, change(model.KindFolder, id, map[string][]byte{
			"name": model.JSONString(fmt.Sprintf("Folder %d", i)), "channelId": model.JSONString(channel), "parentId": []byte("null")}))
	}
	return e.srv.Store().Update(ctx, a.user, func(tx *store.Tx) error {
		for _, ch := range changes {
			if _, err := server.ApplyChange(tx, actor, ch, clock); err != nil {
				return fmt.Errorf("setup %s %s: %w", ch.Kind, ch.ID, err)
			}
		}
		return nil
	})
}

// setup creates an account with channels c0…c(k-1), 20 folders each.
func (e *env) setup(ctx context.Context, channels int) (account, []*eventGen, error) {
	a, err := e.newAccount(ctx)
	if err != nil {
		return a, nil, err
	}
	gens := make([]*eventGen, channels)
	for i := range gens {
		ch := fmt.Sprintf("c%d", i)
		fs, err := e.addChannel(ctx, a, ch, foldersPerChannel)
		if err != nil {
			return a, nil, err
		}
		gens[i] = newEventGen(ch, fs, int64(i+1))
	}
	return a, gens, nil
}

// shareChannel creates a shared access reading one channel; it returns its
// token.
func (e *env) shareChannel(ctx context.Context, a account, channel, level string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	body := map[string]any{"name": "bench " + model.NewToken()[:8], "type": "shared",
		"permissions": []map[string]string{{"channelId": channel, "level": level}}}
	if err := e.call(ctx, "POST", "/"+a.user+"/accesses", a.personal, body, &out); err != nil {
		return "", err
	}
	return out.Token, nil
}

// seed writes n events of g into a's account through the server's write
// rule: straight into the store for an in-process server, by sync pushes of
// 1000 otherwise.
func (e *env) seed(ctx context.Context, a account, g *eventGen, n int) error {
	if e.srv == nil {
		p, err := dialPusher(ctx, e.url, a.user, a.personal)
		if err != nil {
			return err
		}
		defer p.close()
		for done := 0; done < n; {
			k := min(1000, n-done)
			if _, err := p.push(ctx, g, k); err != nil {
				return err
			}
			done += k
		}
		return nil
	}
	clock := crdt.NewClock("bench-seed", nil, 0)
	actor := &server.Actor{AccessID: "bench-seed", Type: model.AccessPersonal, Scope: model.Personal()}
	for done := 0; done < n; {
		k := min(1000, n-done)
		changes := make([]server.Change, k)
		for i := range changes {
			v := clock.MustNow()
			changes[i] = server.Change{Kind: model.KindEvent, ID: model.NewID(), Delta: g.doc(v, actor.AccessID), Create: true}
		}
		err := e.srv.Store().Update(ctx, a.user, func(tx *store.Tx) error {
			for _, ch := range changes {
				if _, err := server.ApplyChange(tx, actor, ch, clock); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		done += k
	}
	return nil
}
