package server

import (
	"context"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pryvsync/pryvsync/cluster"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// CreateAccessForTest stores an access for user directly, bypassing the
// API's rules (tests and tools only). It fills id, token and key.
func CreateAccessForTest(s *Server, user string, a *model.Access) (string, error) {
	if a.ID == "" {
		a.ID = model.NewID()
	}
	if a.Token == "" {
		a.Token = model.NewToken()
	}
	if a.Key == nil {
		a.Key = model.NewSecret()
	}
	a.Created, a.Modified = s.now(), s.now()
	a.Version++
	err := s.st.Update(context.Background(), user, func(tx *store.Tx) error {
		if err := saveAccess(tx, a); err != nil {
			return err
		}
		return tx.AccessChanged(a.ID)
	})
	return a.Token, err
}

// TestStoreEnv names the environment variable with which the tests of the
// server, the replica and the browser run their servers as cluster nodes:
// PRYVSYNC_TEST_STORE=log over an in-memory log (store.MemLog), =jetstream
// over a NATS cluster of three servers started once for the test process
// (each server its own stream, in memory). `make test` runs them both
// ways, so the same API, protocol and guarantees hold on either store.
const TestStoreEnv = "PRYVSYNC_TEST_STORE"

var testNATS struct {
	once sync.Once
	c    *cluster.NATS
	dir  string
	err  error
}

// StopTestCluster stops the NATS servers ConfigForTest started, if any
// (a test binary's TestMain, before it looks for leaked goroutines).
func StopTestCluster() {
	if testNATS.c != nil {
		testNATS.c.Close()
	}
	if testNATS.dir != "" {
		os.RemoveAll(testNATS.dir)
	}
}

// ConfigForTest makes c a cluster node when TestStoreEnv asks for it
// (tests only). cleanup, to run after the server is closed, removes what
// it made.
func ConfigForTest(c *Config) (cleanup func(), err error) {
	switch os.Getenv(TestStoreEnv) {
	case "log":
		c.Log = store.NewMemLog()
	case "jetstream":
		testNATS.once.Do(func() {
			dir, err := os.MkdirTemp("", "pryvsync-test-nats-")
			if err != nil {
				testNATS.err = err
				return
			}
			testNATS.dir = dir
			testNATS.c, testNATS.err = cluster.StartNATS(dir, 3)
		})
		if testNATS.err != nil {
			return nil, testNATS.err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		l, err := cluster.Connect(ctx, testNATS.c.URLs(), cluster.Options{Namespace: strings.ToLower(model.NewID()), Memory: true})
		if err != nil {
			return nil, err
		}
		c.Log, c.Blobs = l, l
		return func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = l.Destroy(ctx)
		}, nil
	}
	return func() {}, nil
}
