package server

import (
	"context"

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
