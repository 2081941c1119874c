package store_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

func openDisk(t testing.TB, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return s
}

// saveAttached stores content for user and references it from event.
func saveAttached(t testing.TB, s *store.Store, event, content string) string {
	t.Helper()
	digest, _, err := s.SaveFile(user, strings.NewReader(content), 1<<20)
	if err != nil {
		t.Fatalf("save file: %v", err)
	}
	err = s.Update(context.Background(), user, func(tx *store.Tx) error {
		tx.AddRef(digest, event)
		return nil
	})
	if err != nil {
		t.Fatalf("add ref: %v", err)
	}
	return digest
}

func TestBackupRestoreRoundTripGetsNewEpoch(t *testing.T) {
	src := openDisk(t, t.TempDir())
	defer src.Close()
	put(t, src, model.KindChannel, "diary", channelDoc("Diary"))
	put(t, src, model.KindEvent, "before", eventDoc("diary", 1, nil))
	digest := saveAttached(t, src, "before", "hello attachment")
	orphan, _, err := src.SaveFile(user, strings.NewReader("nobody references me"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	headAtBackup := head(t, src)

	var buf bytes.Buffer
	if err := src.Backup(&buf); err != nil {
		t.Fatalf("backup: %v", err)
	}
	put(t, src, model.KindEvent, "after", eventDoc("diary", 2, nil))

	dst := filepath.Join(t.TempDir(), "restored")
	if err := store.Restore(dst, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	r := openDisk(t, dst)
	defer r.Close()
	if _, ok := getItem(t, r, model.KindEvent, "before"); !ok {
		t.Fatal("restored store lacks an item written before the backup")
	}
	if _, ok := getItem(t, r, model.KindEvent, "after"); ok {
		t.Fatal("restored store holds an item written after the backup")
	}
	if got := head(t, r); got != headAtBackup {
		t.Fatalf("restored head = %d, want %d", got, headAtBackup)
	}
	if r.Epoch() == src.Epoch() || r.Epoch() == "" {
		t.Fatalf("restored epoch %q, source epoch %q: want a new one", r.Epoch(), src.Epoch())
	}
	f, err := r.OpenFile(user, digest)
	if err != nil {
		t.Fatalf("restored attachment: %v", err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "hello attachment" {
		t.Fatalf("restored attachment content %q", b)
	}
	if r.HasFile(user, orphan) {
		t.Fatal("unreferenced content was backed up")
	}
	// The restored store keeps working: writes get the next sequence.
	if seq := put(t, r, model.KindEvent, "again", eventDoc("diary", 3, nil)); seq != headAtBackup+1 {
		t.Fatalf("first write after restore got seq %d, want %d", seq, headAtBackup+1)
	}
}

func TestBackupFormatIsDocumentedTar(t *testing.T) {
	s := openMem(t)
	put(t, s, model.KindEvent, "e1", eventDoc("ch", 1, nil))
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if len(names) < 3 || names[0] != "pryvsync-backup.json" || names[1] != "badger/00000001" || names[len(names)-1] != "pryvsync-backup-end.json" {
		t.Fatalf("entries %v: want header, badger chunks, files, trailer", names)
	}
}

func TestRestoreRefusesNonEmptyDirectory(t *testing.T) {
	s := openMem(t)
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := store.Restore(dir, &buf)
	if !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty dir: %v, want ErrNotEmpty", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "precious")); err != nil || string(b) != "x" {
		t.Fatal("restore touched a non-empty directory")
	}
}

func TestRestoreRefusesTruncatedBackupAndLeavesDirEmpty(t *testing.T) {
	s := openMem(t)
	for i := range 50 {
		put(t, s, model.KindEvent, "e"+string(rune('a'+i%26))+string(rune('a'+i/26)), eventDoc("ch", float64(i), nil))
	}
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	// The archive ends with the trailer's header and data block, then two
	// zero blocks: cutting inside the trailer's header loses the trailer.
	for _, cut := range []int{0, 100, buf.Len() / 2, buf.Len() - 1024 - 512 - 400} {
		dir := filepath.Join(t.TempDir(), "r")
		err := store.Restore(dir, bytes.NewReader(buf.Bytes()[:cut]))
		if !errors.Is(err, store.ErrBadBackup) {
			t.Fatalf("cut at %d of %d: %v, want ErrBadBackup", cut, buf.Len(), err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("cut at %d: failed restore left %d entries", cut, len(ents))
		}
	}
	if err := store.Restore(filepath.Join(t.TempDir(), "ok"), bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("whole backup: %v", err)
	}
}

func TestRestoreRefusesTamperedAttachment(t *testing.T) {
	s := openMem(t)
	saveAttached(t, s, "e1", "original")
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(buf.Bytes(), []byte("original"), []byte("Original"), 1)
	err := store.Restore(filepath.Join(t.TempDir(), "r"), bytes.NewReader(tampered))
	if !errors.Is(err, store.ErrBadBackup) {
		t.Fatalf("tampered content: %v, want ErrBadBackup", err)
	}
}

// TestBackupIsConsistentUnderWrites backs up while writers commit pairs of
// items in one request: a restored store holds both items of a pair or
// neither, and every write acknowledged before the backup started.
func TestBackupIsConsistentUnderWrites(t *testing.T) {
	s := openDisk(t, t.TempDir())
	defer s.Close()
	var (
		acked atomic.Int64
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	pair := func(n int64) (string, string) {
		return "a" + itoa(n), "b" + itoa(n)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := int64(1); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			a, b := pair(n)
			err := s.Update(context.Background(), user, func(tx *store.Tx) error {
				if _, err := tx.PutItem(model.KindEvent, a, eventDoc("ch", float64(n), nil)); err != nil {
					return err
				}
				_, err := tx.PutItem(model.KindEvent, b, eventDoc("other", float64(n), nil))
				return err
			})
			if err != nil {
				t.Errorf("write: %v", err)
				return
			}
			acked.Store(n)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	before := acked.Load()
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()

	dir := filepath.Join(t.TempDir(), "r")
	if err := store.Restore(dir, &buf); err != nil {
		t.Fatal(err)
	}
	r := openDisk(t, dir)
	defer r.Close()
	last := int64(0)
	for n := int64(1); n <= acked.Load(); n++ {
		a, b := pair(n)
		_, okA := getItem(t, r, model.KindEvent, a)
		_, okB := getItem(t, r, model.KindEvent, b)
		if okA != okB {
			t.Fatalf("pair %d half restored (a %v, b %v)", n, okA, okB)
		}
		if okA {
			if n != last+1 {
				t.Fatalf("pair %d restored but %d missing", n, last+1)
			}
			last = n
		}
	}
	if last < before {
		t.Fatalf("restored %d pairs, but %d were acknowledged before the backup", last, before)
	}
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
