package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// prefixUploaded held markers of content the server held: u/<digest>.
// No longer written (content is uploaded in each session that pushes a
// change naming it); an older replica's markers are dropped with the
// prefixes a reset or a re-push clears.
const prefixUploaded = "u/"

// MaxAttachmentBytes is the largest attachment the replica stores (the
// server's default limit).
const MaxAttachmentBytes = 100 << 20

func (r *Replica) filesDir() string              { return filepath.Join(r.dir, "files") }
func (r *Replica) filePath(digest string) string { return filepath.Join(r.filesDir(), digest) }

// saveContent copies src into the local content store and returns its
// digest and size.
func (r *Replica) saveContent(src io.Reader) (string, int64, error) {
	if err := os.MkdirAll(r.filesDir(), 0o700); err != nil {
		return "", 0, err
	}
	tmp, err := os.CreateTemp(r.filesDir(), "tmp-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(src, MaxAttachmentBytes+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	if n > MaxAttachmentBytes {
		return "", 0, model.Errorf(model.ErrPayloadTooLarge, "an attachment is at most %d bytes", MaxAttachmentBytes)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), r.filePath(digest)); err != nil {
		return "", 0, err
	}
	return digest, n, nil
}

// AddAttachment stores src locally and attaches it to the event under key;
// it is uploaded on the next sync, before the change that names it. Works
// offline. contentType defaults to application/octet-stream and fileName
// to key.
func (r *Replica) AddAttachment(eventID, key, fileName, contentType string, src io.Reader) (model.Attachment, error) {
	if err := model.CheckAttachmentKey(key); err != nil {
		return model.Attachment{}, err
	}
	if fileName == "" {
		fileName = key
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	digest, size, err := r.saveContent(src)
	if err != nil {
		return model.Attachment{}, err
	}
	att := model.Attachment{FileName: fileName, Type: contentType, Size: size, Digest: digest}
	meta, _ := json.Marshal(att)
	err = r.update(func(txn *badger.Txn) error {
		cur, found, err := loadItem(txn, model.KindEvent, eventID)
		if err != nil {
			return err
		}
		if !found || !model.Exists(cur) {
			return unknown(model.KindEvent, eventID)
		}
		if _, dup := cur.FileMap()[key]; dup {
			return model.Errorf(model.ErrItemIDAlreadyExists, "the event already has an attachment %q", key)
		}
		sc, perms, known, err := scopeOf(txn)
		if err != nil {
			return err
		}
		if known {
			fs, err := loadView(txn, model.KindFolder)
			if err != nil {
				return err
			}
			if sc.EventLevel(model.EventFactsOf(cur), tree{fs, true}) < model.LevelContribute {
				return forbidden("adding attachments needs contribute rights on the event")
			}
		}
		v, err := r.clock().Now()
		if err != nil {
			return err
		}
		delta := crdt.Doc{Files: map[string]crdt.Field{key: {V: v, Val: meta}}}
		by := ""
		if perms != nil {
			by = perms.AccessID
		}
		model.Stamp(&delta, v, float64(v.Time)/1000, by, false)
		rseq, err := nextRSeq(txn)
		if err != nil {
			return err
		}
		if err := putEntry(txn, &entry{RSeq: rseq, Kind: string(model.KindEvent), ID: eventID, Delta: delta}); err != nil {
			return err
		}
		return r.saveClock(txn)
	})
	if err != nil {
		return model.Attachment{}, err
	}
	r.notify(Change{Kind: string(model.KindEvent), ID: eventID, Source: "local"})
	r.signal()
	return att, nil
}

// OpenAttachment returns the content of an event's attachment, from the
// local content store or, when it is not there, downloaded from the server
// (which checks the token's scope) and kept.
func (r *Replica) OpenAttachment(ctx context.Context, eventID, key string) (io.ReadCloser, model.Attachment, error) {
	ev, err := r.GetEvent(eventID)
	if err != nil {
		return nil, model.Attachment{}, err
	}
	att, ok := ev.Attachments[key]
	if !ok {
		return nil, model.Attachment{}, model.Errorf(model.ErrUnknownAttachment, "the event has no attachment %q", key)
	}
	if f, err := os.Open(r.filePath(att.Digest)); err == nil {
		return f, att, nil
	}
	st, err := r.Settings()
	if err != nil {
		return nil, att, err
	}
	if st.Server == "" {
		return nil, att, ErrNotConfigured
	}
	u := st.Server + "/" + url.PathEscape(st.Username) + "/" + url.PathEscape(ev.ChannelID) + "/events/" +
		url.PathEscape(eventID) + "/" + url.PathEscape(key)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, att, err
	}
	req.Header.Set("Authorization", st.Token)
	client := r.opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, att, fmt.Errorf("replica: download attachment: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e model.Error
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e) == nil && e.ID != "" {
			return nil, att, &e
		}
		return nil, att, fmt.Errorf("replica: download attachment: HTTP %d", resp.StatusCode)
	}
	digest, _, err := r.saveContent(resp.Body)
	if err != nil {
		return nil, att, err
	}
	if digest != att.Digest {
		os.Remove(r.filePath(digest))
		return nil, att, fmt.Errorf("replica: downloaded content does not match its digest")
	}
	f, err := os.Open(r.filePath(digest))
	return f, att, err
}

// pendingUploads lists the digests that changes name and this session has
// not uploaded yet, in order. The server lets a push name only content its
// session uploaded (or content an event the token sees already names), so
// content is sent again in each session that pushes a change naming it.
func (s *sessionState) pendingUploads(changes []syncproto.Change) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range changes {
		for _, f := range c.Delta.Files {
			var a model.Attachment
			if f.Val == nil || json.Unmarshal(f.Val, &a) != nil || seen[a.Digest] {
				continue
			}
			seen[a.Digest] = true
			if !s.uploaded[a.Digest] {
				out = append(out, a.Digest)
			}
		}
	}
	return out
}

// markUploaded records that the server holds digest (or refused it: the
// change naming it will then be rejected with the reason, not retried).
func (s *sessionState) markUploaded(digest string) {
	if s.uploaded == nil {
		s.uploaded = map[string]bool{}
	}
	s.uploaded[digest] = true
}

// upload sends one content in chunks; the server answers the final chunk.
func (s *sessionState) upload(ctx context.Context, digest string) error {
	f, err := os.Open(s.r.filePath(digest))
	if err != nil {
		// The content is gone locally: let the server reject the change.
		s.markUploaded(digest)
		return nil
	}
	defer f.Close()
	buf := make([]byte, syncproto.MaxChunkBytes)
	var off int64
	for {
		n, err := io.ReadFull(f, buf)
		final := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !final {
			return err
		}
		put := &syncproto.AttachmentPut{Digest: digest, Offset: off, Data: buf[:n], Final: final}
		if err := s.send(ctx, &syncproto.Message{T: syncproto.TypeAttachmentPut, AttachmentPut: put}); err != nil {
			return err
		}
		off += int64(n)
		if final {
			s.uploading = digest
			return nil
		}
	}
}
