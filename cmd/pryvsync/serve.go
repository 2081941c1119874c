package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pryvsync/pryvsync/cluster"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/syncproto"
)

// newFlags returns a flag set whose flags also read PRYVSYNC_<FLAG> from the
// environment (applied by parseFlags).
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args after filling unset flags from the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.VisitAll(func(f *flag.Flag) {
		env := "PRYVSYNC_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			_ = f.Value.Set(v)
		}
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	return nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	data := fs.String("data", "./pryvsync-data", "data directory")
	listen := fs.String("listen", "127.0.0.1:3000", "listen address")
	adminKey := fs.String("admin-key", "", "admin key for the system API (empty: system API off)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	cfg := server.DefaultConfig()
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "largest JSON request body, in bytes (413 payload-too-large)")
	fs.Int64Var(&cfg.MaxAttachmentBytes, "max-attachment-bytes", cfg.MaxAttachmentBytes, "largest attachment, in bytes (413 payload-too-large)")
	fs.Int64Var(&cfg.MaxFrameBytes, "max-frame-bytes", cfg.MaxFrameBytes, "largest sync frame, in bytes (close 1009)")
	fs.IntVar(&cfg.MaxConnsPerUser, "max-conns-per-user", cfg.MaxConnsPerUser, "websocket connections per user (429 too-many-requests)")
	fs.IntVar(&cfg.LoginFailuresPerUser, "login-failures-per-user", cfg.LoginFailuresPerUser, "failed logins per user per minute before 429")
	fs.IntVar(&cfg.LoginFailuresPerAddr, "login-failures-per-addr", cfg.LoginFailuresPerAddr, "failed logins per client address per minute before 429")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", cfg.SessionTTL, "sliding lifetime of a login session")
	fs.DurationVar(&cfg.TombstoneHorizon, "tombstone-horizon", cfg.TombstoneHorizon, "how long deletions are kept for replicas (older cursors reset)")
	fs.DurationVar(&cfg.CompactEvery, "compact-every", cfg.CompactEvery, "how often compaction and value-log GC run (negative: never)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	tlsKey := fs.String("tls-key", "", "TLS private key file (PEM); with --tls-cert, serve HTTPS")
	metricsListen := fs.String("metrics-listen", "", "serve /metrics on this address instead of the API address")
	storeKind := fs.String("store", "badger", "badger (one node, embedded) or jetstream (a node of a cluster over --nats)")
	natsURLs := fs.String("nats", "", "with --store jetstream: NATS server URLs, comma-separated")
	natsReplicas := fs.Int("nats-replicas", 3, "with --store jetstream: replicas of the change-log stream when this node creates it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *storeKind != "badger" && *storeKind != "jetstream":
		return usageError{"--store is badger or jetstream"}
	case *storeKind == "jetstream" && *natsURLs == "":
		return usageError{"--store jetstream needs --nats URL[,URL]"}
	case *storeKind == "badger" && *natsURLs != "":
		return usageError{"--nats goes with --store jetstream"}
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usageError{"--tls-cert and --tls-key go together"}
	}
	if err := checkLimits(cfg); err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "pryvsync", Level: hclog.LevelFromString(*logLevel), JSONFormat: *logFormat == "json", Output: stderr,
	})
	cfg.AdminKey = *adminKey
	cfg.Logger = logger
	if *storeKind == "jetstream" {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		jl, err := cluster.Connect(cctx, *natsURLs, cluster.Options{Replicas: *natsReplicas, Name: "pryvsync " + *listen})
		cancel()
		if err != nil {
			return err
		}
		defer jl.Close()
		cfg.Log, cfg.Blobs = jl, jl
		logger.Info("cluster node", "nats", cluster.Redact(*natsURLs))
	}
	srv, err := server.Open(cfg, *data)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		srv.Close()
		return err
	}
	var handler http.Handler = srv
	var ms *http.Server
	errc := make(chan error, 2)
	if *metricsListen != "" {
		mln, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			ln.Close()
			srv.Close()
			return err
		}
		handler = srv.WithoutMetrics()
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		ms = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		logger.Info("metrics listening", "addr", mln.Addr().String())
		go func() { errc <- ms.Serve(mln) }()
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("listening", "addr", ln.Addr().String(), "data", *data, "tls", *tlsCert != "")
	go func() {
		if *tlsCert != "" {
			errc <- hs.ServeTLS(ln, *tlsCert, *tlsKey)
			return
		}
		errc <- hs.Serve(ln)
	}()
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if ms != nil {
		_ = ms.Shutdown(sctx)
	}
	if err := srv.Close(); serveErr == nil || errors.Is(serveErr, http.ErrServerClosed) {
		return err
	}
	return serveErr
}

// minFrameBytes is the smallest usable sync frame limit: a replica's push
// batch (up to half the protocol's frame size) plus framing.
const minFrameBytes = syncproto.MaxFrameBytes/2 + 64<<10

// checkLimits refuses limits that cannot work (zero or negative ones would
// silently fall back to the defaults).
func checkLimits(c server.Config) error {
	for _, l := range []struct {
		name string
		v    int64
	}{
		{"--max-body-bytes", c.MaxBodyBytes}, {"--max-attachment-bytes", c.MaxAttachmentBytes},
		{"--max-frame-bytes", c.MaxFrameBytes}, {"--max-conns-per-user", int64(c.MaxConnsPerUser)},
		{"--login-failures-per-user", int64(c.LoginFailuresPerUser)}, {"--login-failures-per-addr", int64(c.LoginFailuresPerAddr)},
		{"--session-ttl", int64(c.SessionTTL)}, {"--tombstone-horizon", int64(c.TombstoneHorizon)},
	} {
		if l.v <= 0 {
			return usageError{fmt.Sprintf("%s must be positive", l.name)}
		}
	}
	if c.MaxFrameBytes < minFrameBytes {
		return usageError{fmt.Sprintf("--max-frame-bytes must be at least %d: replicas push batches of up to %d bytes", minFrameBytes, syncproto.MaxFrameBytes/2)}
	}
	return nil
}
