package store_test

import (
	"os"
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/server/store"
)

func TestRemoveFileLeavesContentAnUploadInFlightWillReference(t *testing.T) {
	s, err := store.Open(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	digest, _, err := s.SaveFile("alice01", strings.NewReader("hello"), 100)
	if err != nil {
		t.Fatal(err)
	}
	// A deletion that dropped the last reference races with the upload.
	s.RemoveFile("alice01", digest)
	if _, err := os.Stat(s.FilePath("alice01", digest)); err != nil {
		t.Fatalf("content removed while an upload was about to reference it: %v", err)
	}
	s.ReleaseFile("alice01", digest)
	s.RemoveFile("alice01", digest)
	if _, err := os.Stat(s.FilePath("alice01", digest)); !os.IsNotExist(err) {
		t.Fatalf("unreferenced content kept after the upload gave up: %v", err)
	}
}
