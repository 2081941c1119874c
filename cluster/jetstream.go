package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pryvsync/pryvsync/server/store"
)

const (
	// StreamName is the JetStream stream holding every user's change log
	// (subjects pryvsync.u.<user>) and the cluster's epoch (subject
	// pryvsync.epoch, whose first message wins).
	StreamName = "PRYVSYNC"
	// retryPause is the pause between attempts while the cluster elects a
	// leader or the connection moves to another server.
	retryPause = 50 * time.Millisecond
	// attemptTimeout bounds one request to the cluster.
	attemptTimeout = 2 * time.Second
)

// Options configure Connect.
type Options struct {
	// Replicas is the stream's replica count when Connect creates it
	// (default 3).
	Replicas int
	// Name names the connection in the servers' monitoring.
	Name string
	// Namespace, when set, keeps this pryvsync cluster apart from others
	// on the same NATS servers (tests share one NATS cluster): its stream,
	// subjects and bucket take it as a suffix. Letters and digits only.
	Namespace string
	// Memory keeps the stream and the bucket in the servers' memory
	// instead of files (tests only: nothing survives a restart).
	Memory bool
}

// Log is the store.Log of a pryvsync cluster, kept in a JetStream stream:
// one subject per user, file storage, replicated by the NATS servers' Raft.
type Log struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	files  jetstream.ObjectStore
	// The stream's subjects (users' entries are userPrefix+<user>) and
	// the object store's bucket.
	userPrefix, userSubjects, epochSubject, bucket string
}

var (
	_ store.Log   = (*Log)(nil)
	_ store.Blobs = (*Log)(nil)
)

// FilesBucket is the object store holding attachment content.
const FilesBucket = "pryvsync-files"

// names returns the stream, subject root and bucket of a namespace.
func names(ns string) (stream, root, bucket string) {
	if ns == "" {
		return StreamName, "pryvsync", FilesBucket
	}
	return StreamName + "_" + ns, "pryvsync-" + ns, FilesBucket + "-" + ns
}

// Connect connects to the NATS servers at urls (comma-separated) and
// creates the stream if it does not exist. It waits up to ctx for the
// cluster to be able to take it.
func Connect(ctx context.Context, urls string, o Options) (*Log, error) {
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	nc, err := nats.Connect(urls, nats.Name(o.Name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(-1))
	if err != nil {
		// nats's error may quote a URL whole, credentials included.
		return nil, fmt.Errorf("cluster: cannot connect to %s (check the URLs and that a server answers)", Redact(urls))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	for nc.MaxPayload() == 0 && ctx.Err() == nil {
		time.Sleep(retryPause) // not connected yet (RetryOnFailedConnect)
	}
	if ctx.Err() != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: no NATS server reachable at %s: %w", Redact(urls), ctx.Err())
	}
	if p := nc.MaxPayload(); p < MinPayload {
		nc.Close()
		return nil, fmt.Errorf("cluster: the NATS servers allow messages of %d bytes; pryvsync needs max_payload of at least %d (8MB)", p, MinPayload)
	}
	streamName, root, bucket := names(o.Namespace)
	l := &Log{nc: nc, js: js, userPrefix: root + ".u.", epochSubject: root + ".epoch", bucket: bucket}
	l.userSubjects = l.userPrefix + "*"
	storage := jetstream.FileStorage
	if o.Memory {
		storage = jetstream.MemoryStorage
	}
	cfg := jetstream.StreamConfig{
		Name:       streamName,
		Subjects:   []string{l.userSubjects, l.epochSubject},
		Storage:    storage,
		Replicas:   o.Replicas,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardNew,
		Duplicates: 2 * time.Minute,
	}
	err = until(ctx, func(actx context.Context) (err error) {
		l.stream, err = js.Stream(actx, streamName)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			l.stream, err = js.CreateStream(actx, cfg)
		}
		return err
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: stream %s: %w", streamName, err)
	}
	err = until(ctx, func(actx context.Context) (err error) {
		l.files, err = js.ObjectStore(actx, bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			l.files, err = js.CreateObjectStore(actx, jetstream.ObjectStoreConfig{Bucket: bucket, Storage: storage, Replicas: o.Replicas})
		}
		return err
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: object store %s: %w", bucket, err)
	}
	return l, nil
}

// until calls attempt, each time with its own deadline (while the cluster
// elects a leader a request can go unanswered), until it succeeds or ctx
// ends; then it returns ctx's error and the last attempt's.
func until(ctx context.Context, attempt func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		if perr := pause(ctx); perr != nil {
			return fmt.Errorf("%w (last attempt: %v)", perr, err)
		}
	}
}

// Put implements store.Blobs.
func (l *Log) Put(ctx context.Context, name string, r io.Reader) error {
	_, err := l.files.Put(ctx, jetstream.ObjectMeta{Name: name}, r)
	return err
}

// Has implements store.Blobs.
func (l *Log) Has(ctx context.Context, name string) (bool, error) {
	_, err := l.files.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Delete implements store.Blobs.
func (l *Log) Delete(ctx context.Context, name string) error {
	err := l.files.Delete(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return store.ErrBlobNotFound
	}
	return err
}

// Get implements store.Blobs.
func (l *Log) Get(ctx context.Context, name string, w io.Writer) error {
	res, err := l.files.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return store.ErrBlobNotFound
	}
	if err != nil {
		return err
	}
	defer res.Close()
	_, err = io.Copy(w, res)
	return err
}

// MinPayload is the smallest max_payload Connect accepts from the NATS
// servers: one log entry holds a whole push (a frame of up to 2 MiB, its
// items written twice, indexes and results), and NATS's default of 1 MiB
// would refuse it.
const MinPayload = 8 << 20

// MaxEntry implements store.Log: the servers' max_payload, less room for
// headers.
func (l *Log) MaxEntry() int { return int(l.nc.MaxPayload()) - 64<<10 }

// Destroy deletes the stream and the bucket, then closes the connection
// (tests, with a Namespace).
func (l *Log) Destroy(ctx context.Context) error {
	err := errors.Join(l.js.DeleteStream(ctx, l.stream.CachedInfo().Config.Name), l.js.DeleteObjectStore(ctx, l.bucket))
	l.nc.Close()
	return err
}

// Close closes the connection.
func (l *Log) Close() { l.nc.Close() }

func (l *Log) subject(user string) string { return l.userPrefix + user }

// Redact returns urls (comma-separated) without their credentials, for logs.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "nats://" + p // nats.go takes host:port alone too
		}
		if u, err := url.Parse(p); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		} else if err != nil {
			parts[i] = "(unparsable URL)"
		}
	}
	return strings.Join(parts, ",")
}

// Append implements store.Log: the entry is published with the expected
// last sequence of the user's subject and id as its message id, so a retry
// after an unknown outcome is answered with the first append's sequence.
func (l *Log) Append(ctx context.Context, user string, prev uint64, id string, data []byte) (uint64, error) {
	msg := &nats.Msg{Subject: l.subject(user), Data: data, Header: nats.Header{}}
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ack, err := l.js.PublishMsg(actx, msg, jetstream.WithExpectLastSequencePerSubject(prev), jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return ack.Sequence, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return 0, store.ErrLogConflict
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return 0, fmt.Errorf("cluster: append for %s: %w", user, err)
		}
		if err := pause(ctx); err != nil {
			return 0, fmt.Errorf("cluster: append for %s: %w", user, errors.Join(err, ctx.Err()))
		}
	}
}

// Read implements store.Log.
func (l *Log) Read(ctx context.Context, user string, after uint64) ([]store.LogEntry, error) {
	var out []store.LogEntry
	next := after + 1
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		m, err := l.stream.GetMsg(actx, next, jetstream.WithGetMsgSubject(l.subject(user)))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			if perr := pause(ctx); perr != nil {
				return nil, fmt.Errorf("cluster: read %s's log: %w", user, err)
			}
			continue
		}
		out = append(out, store.LogEntry{User: user, Seq: m.Sequence, Data: m.Data})
		next = m.Sequence + 1
	}
}

// Follow implements store.Log with an ordered consumer over every user's
// subject.
func (l *Log) Follow(ctx context.Context, from uint64, fn func(store.LogEntry)) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{l.userSubjects}}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := l.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		fn(store.LogEntry{User: strings.TrimPrefix(msg.Subject(), l.userPrefix), Seq: md.Sequence.Stream, Data: msg.Data()})
	}
}

// Last implements store.Log: the stream sequence of the last user entry.
func (l *Log) Last(ctx context.Context) (uint64, error) {
	var last uint64
	err := until(ctx, func(actx context.Context) error {
		m, err := l.stream.GetLastMsgForSubject(actx, l.userSubjects)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err == nil {
			last = m.Sequence
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cluster: last entry: %w", err)
	}
	return last, nil
}

// Epoch implements store.Log: the first node to publish an epoch sets it.
func (l *Log) Epoch(ctx context.Context, proposal string) (string, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		_, err := l.js.PublishMsg(actx, &nats.Msg{Subject: l.epochSubject, Data: []byte(proposal)}, jetstream.WithExpectLastSequencePerSubject(0))
		var apiErr *jetstream.APIError
		if err == nil {
			cancel()
			return proposal, nil
		}
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			m, err := l.stream.GetLastMsgForSubject(actx, l.epochSubject)
			if err == nil {
				cancel()
				return string(m.Data), nil
			}
		}
		cancel()
		if err := pause(ctx); err != nil {
			return "", err
		}
	}
}

func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(retryPause):
		return nil
	}
}
