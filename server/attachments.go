package server

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// maxFilesPerRequest bounds the file parts of one multipart request (an
// event's attachment metadata must also fit model.MaxItemSize).
const maxFilesPerRequest = 1000

// filePart is one uploaded file, its content already in the content store.
type filePart struct {
	key string
	att model.Attachment
}

func isMultipart(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.HasPrefix(mt, "multipart/")
}

// readUploads reads a multipart body part by part, storing each file as it
// streams in (SPEC §7: the attachment key is the part's field name; a file
// part without a file name takes its field name as fileName). With onEvent
// set, the part named "event" is the event's JSON, handed to onEvent when it
// is read so a bad event stops the upload early. A name used twice is
// invalid-request-structure. On error, content already stored and not
// referenced is removed.
func (s *Server) readUploads(c *call, onEvent func(raw []byte) error) (ups []filePart, err error) {
	defer func() {
		if err != nil {
			s.discardUploads(c.user, ups)
			ups = nil
		}
	}()
	mr, err := c.r.MultipartReader()
	if err != nil {
		return nil, model.Errorf(model.ErrInvalidRequestStructure, "expected a multipart/form-data body")
	}
	names := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return ups, nil
		}
		if err != nil {
			return ups, model.Errorf(model.ErrInvalidRequestStructure, "malformed multipart body")
		}
		name := part.FormName()
		if name == "" {
			return ups, model.Errorf(model.ErrInvalidRequestStructure, "every part needs a form-data field name")
		}
		if names[name] {
			return ups, model.Errorf(model.ErrInvalidRequestStructure, "the part name %q is used twice", name)
		}
		names[name] = true
		if onEvent != nil && name == "event" {
			raw, err := io.ReadAll(io.LimitReader(part, s.cfg.MaxBodyBytes+1))
			if err != nil {
				return ups, model.Errorf(model.ErrInvalidRequestStructure, "malformed multipart body")
			}
			if int64(len(raw)) > s.cfg.MaxBodyBytes {
				return ups, model.Errorf(model.ErrPayloadTooLarge, "the event part is over %d bytes", s.cfg.MaxBodyBytes)
			}
			if err := onEvent(raw); err != nil {
				return ups, err
			}
			continue
		}
		if err := model.CheckAttachmentKey(name); err != nil {
			return ups, err
		}
		if len(ups) >= maxFilesPerRequest {
			return ups, model.Errorf(model.ErrPayloadTooLarge, "at most %d files per request", maxFilesPerRequest)
		}
		up, err := s.saveUpload(c.user, name, part)
		if err != nil {
			return ups, err
		}
		ups = append(ups, up)
	}
}

// bodyReadErr remembers a read error of the client's body, to tell a broken
// upload (the client's fault) from a failing disk (ours).
type bodyReadErr struct {
	r   io.Reader
	err error
}

func (e *bodyReadErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

func (s *Server) saveUpload(user, key string, part *multipart.Part) (filePart, error) {
	src := &bodyReadErr{r: part}
	digest, size, err := s.st.SaveFile(user, src, s.cfg.MaxAttachmentBytes)
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, store.ErrTooLarge) || errors.As(src.err, &tooBig):
		return filePart{}, model.Errorf(model.ErrPayloadTooLarge, "the attachment %q is over %d bytes", key, s.cfg.MaxAttachmentBytes)
	case src.err != nil:
		return filePart{}, model.Errorf(model.ErrInvalidRequestStructure, "malformed multipart body")
	case err != nil:
		return filePart{}, err
	}
	name := part.FileName()
	if name == "" {
		name = key
	}
	return filePart{key: key, att: model.Attachment{FileName: name, Type: partType(part.Header), Size: size, Digest: digest}}, nil
}

// partType is the part's media type, normalised (it is sent back as a
// header on download), or application/octet-stream.
func partType(h textproto.MIMEHeader) string {
	mt, mtParams, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err == nil && mt != "" {
		if t := mime.FormatMediaType(mt, mtParams); t != "" {
			return t
		}
	}
	return "application/octet-stream"
}

// discardUploads removes the content of uploads that no event references
// (a request that stored files, then failed). It asks inside the committer,
// so a reference committed by another request is seen.
func (s *Server) discardUploads(user string, ups []filePart) {
	if len(ups) == 0 {
		return
	}
	s.releaseUploads(user, ups)
	var orphans []string
	err := s.commit(s.baseCtx, user, func(tx *store.Tx) error {
		orphans = orphans[:0]
		for _, u := range ups {
			// No event has the empty id: dropping its reference only
			// reports whether any other remains.
			left, err := tx.DropRef(u.att.Digest, "")
			if err != nil {
				return err
			}
			if !left {
				orphans = append(orphans, u.att.Digest)
			}
		}
		return nil
	})
	if err == nil {
		s.removeContent(user, orphans)
	}
}

// releaseUploads ends the protection of uploads against removal (their
// references are committed, or the request failed).
func (s *Server) releaseUploads(user string, ups []filePart) {
	for _, u := range ups {
		s.st.ReleaseFile(user, u.att.Digest)
	}
}

// filesDelta is the attachments part of a delta adding uploads.
func filesDelta(ups []filePart, v crdt.Version) map[string]crdt.Field {
	m := make(map[string]crdt.Field, len(ups))
	for _, u := range ups {
		m[u.key] = crdt.Field{V: v, Val: jsonRaw(u.att)}
	}
	return m
}

// uploadedSet is the set of the uploads' digests (Change.Uploaded).
func uploadedSet(ups []filePart) map[string]bool {
	m := make(map[string]bool, len(ups))
	for _, u := range ups {
		m[u.att.Digest] = true
	}
	return m
}

// createEventWithFiles creates an event from a multipart body: the part
// named "event" holds its JSON, every other part is an attachment.
func (s *Server) createEventWithFiles(c *call, cid string) {
	var ch Change
	have := false
	ups, err := s.readUploads(c, func(raw []byte) error {
		body, err := model.DecodeObject(raw)
		if err != nil {
			return err
		}
		ch, err = s.newEventChange(cid, body, false)
		have = err == nil
		return err
	})
	if err == nil && !have {
		s.discardUploads(c.user, ups)
		err = model.Errorf(model.ErrInvalidRequestStructure, "the multipart body has no part named \"event\"")
	}
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if len(ups) > 0 {
		ch.Delta.Files, ch.Uploaded = filesDelta(ups, s.clock.MustNow()), uploadedSet(ups)
	}
	out, err := s.applyOne(c, ch)
	if err != nil {
		s.discardUploads(c.user, ups)
		s.fail(c.w, c.r, err)
		return
	}
	s.releaseUploads(c.user, ups)
	writeJSON(c.w, http.StatusCreated, createdAnswer(ch.ID, out))
}

// addAttachments adds the files of a multipart body to an event, keeping
// the ones it has; a key it already has is item-id-already-exists.
func (s *Server) addAttachments(c *call, cid, eid string) {
	if _, _, err := s.eventAt(c, cid, eid); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if !isMultipart(c.r) {
		s.fail(c.w, c.r, model.Errorf(model.ErrInvalidRequestStructure, "adding attachments needs a multipart/form-data body"))
		return
	}
	ups, err := s.readUploads(c, nil)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if len(ups) == 0 {
		s.fail(c.w, c.r, model.Errorf(model.ErrInvalidRequestStructure, "the multipart body holds no file"))
		return
	}
	v := s.clock.MustNow()
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		r, ok, err := tx.Item(model.KindEvent, eid)
		if err != nil {
			return err
		}
		if ok && model.Exists(r.Doc) && visibleLevel(tx, c.actor, model.KindEvent, eid, r.Doc) > model.LevelNone {
			have := r.Doc.FileMap()
			for _, u := range ups {
				if _, dup := have[u.key]; dup {
					return model.Errorf(model.ErrItemIDAlreadyExists, "the event already has an attachment %q", u.key)
				}
			}
		}
		_, err = ApplyChange(tx, c.actor, Change{Kind: model.KindEvent, ID: eid, Delta: crdt.Doc{Files: filesDelta(ups, v)}, Uploaded: uploadedSet(ups), Local: true}, s.clock)
		return err
	})
	if err != nil {
		s.discardUploads(c.user, ups)
		s.fail(c.w, c.r, eventPathErr(err))
		return
	}
	s.releaseUploads(c.user, ups)
	s.answerItem(c, model.KindEvent, eid)
}

// attachmentOf returns the metadata of one attachment of an event in scope.
func (s *Server) attachmentOf(c *call, cid, eid, key string) (model.Attachment, error) {
	var att model.Attachment
	if _, err := newQueryParams(c.r.URL.Query(), nil, nil); err != nil {
		return att, err
	}
	doc, _, err := s.eventAt(c, cid, eid)
	if err != nil {
		return att, err
	}
	raw, ok := doc.FileMap()[key]
	if !ok || json.Unmarshal(raw, &att) != nil {
		return att, model.Errorf(model.ErrUnknownAttachment, "unknown attachment %q", key)
	}
	return att, nil
}

// getAttachment streams an attachment's content with its type, a
// Content-Disposition naming the file, and its SHA-256 in a Digest header.
func (s *Server) getAttachment(c *call, cid, eid, key string) {
	att, err := s.attachmentOf(c, cid, eid, key)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	f, err := s.st.OpenFile(c.user, att.Digest)
	if err != nil {
		// Content not (yet) in the store, e.g. a replica's push that named
		// a digest it has not uploaded.
		s.log.Warn("attachment content missing", "user", c.user, "digest", att.Digest)
		s.fail(c.w, c.r, model.Errorf(model.ErrUnknownAttachment, "the content of attachment %q is not available", key))
		return
	}
	defer f.Close()
	h := c.w.Header()
	ctype := att.Type
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": att.FileName})
	if disp == "" {
		disp = "attachment"
	}
	h.Set("Content-Disposition", disp)
	if sum, err := hex.DecodeString(att.Digest); err == nil {
		h.Set("Digest", "sha-256="+base64.StdEncoding.EncodeToString(sum))
	}
	h.Set("ETag", `"`+att.Digest+`"`)
	http.ServeContent(c.w, c.r, "", time.Time{}, f)
}

// deleteAttachment removes one attachment; its content goes when no event
// references it any more.
func (s *Server) deleteAttachment(c *call, cid, eid, key string) {
	if _, err := s.attachmentOf(c, cid, eid, key); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	delta := crdt.Doc{Files: map[string]crdt.Field{key: {V: s.clock.MustNow()}}}
	out, err := s.applyOne(c, Change{Kind: model.KindEvent, ID: eid, Delta: delta, Local: true})
	if err != nil {
		s.fail(c.w, c.r, eventPathErr(err))
		return
	}
	s.removeContent(c.user, out.Orphans)
	s.answerItem(c, model.KindEvent, eid)
}
