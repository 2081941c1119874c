package replica_test

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

func asModelError(err error, target **model.Error) bool { return errors.As(err, target) }

func httpDo(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
