package server

import (
	"context"
	"os"

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
// server, the replica and the browser run their servers as cluster nodes
// over an in-memory log (PRYVSYNC_TEST_STORE=log): `make test` runs them
// both ways, so the same API, protocol and guarantees hold on either
// store. The NATS log itself is tested in package cluster.
const TestStoreEnv = "PRYVSYNC_TEST_STORE"

// ConfigForTest makes c a cluster node over a new in-memory log when
// TestStoreEnv asks for it (tests only).
func ConfigForTest(c *Config) {
	if os.Getenv(TestStoreEnv) == "log" {
		c.Log = store.NewMemLog()
	}
}
