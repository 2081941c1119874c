package server

import (
	"math"
	"net/http"

	"github.com/pryvsync/pryvsync/model"
)

var negInf, posInf = math.Inf(-1), math.Inf(1)

func (s *Server) notYet(c *call) {
	s.fail(c.w, c.r, model.Errorf(model.ErrInvalidOperation, "not implemented yet"))
}
func (s *Server) routeAdmin(c *call)                             { s.notYet(c) }
func (s *Server) accessInfo(c *call)                             { s.notYet(c) }
func (s *Server) routeAccesses(c *call)                          { s.notYet(c) }
func (s *Server) routeProfile(c *call)                           { s.notYet(c) }
func (s *Server) routeEvents(c *call, ch string, rest []string)  { s.notYet(c) }
func (s *Server) routeFolders(c *call, ch string, rest []string) { s.notYet(c) }

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	writeError(w, model.Errorf(model.ErrInvalidOperation, "not implemented yet"))
}
