package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
)

const replicaUsage = `usage: pryvsync replica <command> --dir DIR [flags] [args]

commands:
  init --server URL --username U --token T
  sync                         one round: push, then pull until caught up
  watch [--json]               live sync until interrupted
  status [--json]
  events add|list|update|get|delete
  channels list|add|update|delete
  folders list|add|update|delete
  rejections [--json] [--discard ID]
`

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func runReplica(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{replicaUsage}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "init":
		return replicaInit(rest, stdout, stderr)
	case "sync":
		return replicaSync(ctx, rest, stderr)
	case "watch":
		return replicaWatch(ctx, rest, stdout, stderr)
	case "status":
		return replicaStatus(rest, stdout, stderr)
	case "rejections":
		return replicaRejections(rest, stdout, stderr)
	case "events", "channels", "folders":
		if len(rest) == 0 {
			return usageError{fmt.Sprintf("replica %s needs a subcommand\n%s", cmd, replicaUsage)}
		}
		sub := cmd + " " + rest[0]
		if fn, ok := itemCommands[sub]; ok {
			return fn(rest[1:], stdout, stderr)
		}
		return usageError{fmt.Sprintf("unknown command %q\n%s", "replica "+sub, replicaUsage)}
	case "attachment":
		if len(rest) == 0 || rest[0] != "get" {
			return usageError{"usage: pryvsync replica attachment get --dir DIR --out FILE EVENT_ID KEY"}
		}
		return attachmentGet(ctx, rest[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, replicaUsage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q\n%s", "replica "+cmd, replicaUsage)}
}

var itemCommands map[string]func(args []string, stdout, stderr io.Writer) error

func init() {
	itemCommands = map[string]func([]string, io.Writer, io.Writer) error{
		"events add": eventsAdd, "events list": eventsList, "events update": eventsUpdate,
		"events get": eventsGet, "events delete": eventsDelete,
		"channels list": channelsList, "channels add": channelsAdd, "channels update": channelsUpdate,
		"channels delete": channelsDelete,
		"folders list":    foldersList, "folders add": foldersAdd, "folders update": foldersUpdate,
		"folders delete": foldersDelete,
	}
}

// replicaFlags starts a flag set with --dir.
func replicaFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := newFlags("replica "+name, stderr)
	dir := fs.String("dir", "", "replica directory")
	return fs, dir
}

// parseReplica parses flags and checks --dir and the number of positional
// arguments.
func parseReplica(fs *flag.FlagSet, dir *string, args []string, nargs int) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{fs.Name() + ": --dir is required"}
	}
	if fs.NArg() != nargs {
		return usageError{fmt.Sprintf("%s: expected %d argument(s), got %d (flags come before arguments)", fs.Name(), nargs, fs.NArg())}
	}
	return nil
}

func withReplica(dir string, fn func(r *replica.Replica) error) error {
	r, err := replica.Open(dir, replica.Options{})
	if err != nil {
		return err
	}
	err = fn(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func replicaInit(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("init", stderr)
	server := fs.String("server", "", "server root URL (http:// or https://)")
	username := fs.String("username", "", "username")
	token := fs.String("token", "", "access token")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	if *server == "" || *username == "" || *token == "" {
		return usageError{"replica init: --server, --username and --token are required"}
	}
	if !strings.HasPrefix(*server, "http://") && !strings.HasPrefix(*server, "https://") {
		return usageError{"replica init: --server must start with http:// or https://"}
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		if err := r.Configure(*server, *username, *token); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replica %s initialised for %s at %s\n", *dir, *username, *server)
		return nil
	})
}

func replicaSync(ctx context.Context, args []string, stderr io.Writer) error {
	fs, dir := replicaFlags("sync", stderr)
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		stop := showSyncProgress(r, stderr)
		res, err := r.Sync(ctx)
		stop(res.Applied)
		if err != nil {
			return err
		}
		if n := res.Rejected + res.Conflicts; n > 0 {
			fmt.Fprintf(stderr, "pryvsync: sync completed; %d change(s) rejected and %d conflict(s): see `pryvsync replica rejections`\n", res.Rejected, res.Conflicts)
		}
		return nil
	})
}

func replicaWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("watch", stderr)
	asJSON := fs.Bool("json", false, "JSON lines")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		sub := r.Subscribe()
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var runErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			runErr = r.Run(ctx)
		}()
		for {
			select {
			case <-ctx.Done():
				wg.Wait()
				return runErr
			case c := <-sub:
				if c.Source != "server" {
					continue
				}
				if *asJSON {
					_ = printJSON(stdout, c)
				} else {
					what := "updated"
					if c.Removed {
						what = "removed"
					}
					fmt.Fprintf(stdout, "%s %s %s\n", c.Kind, c.ID, what)
				}
			}
		}
	})
}

func replicaStatus(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("status", stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		st, err := r.Status()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, st)
		}
		cursor, last := "none", "never"
		if st.Cursor != nil {
			cursor = fmt.Sprintf("%s:%d", st.Cursor.Epoch, st.Cursor.Seq)
		}
		if st.LastSync != nil {
			last = strconv.FormatFloat(*st.LastSync, 'f', 3, 64)
		}
		fmt.Fprintf(stdout, "server:     %s\nusername:   %s\npending:    %d\nrejections: %d\ncursor:     %s\nlastSync:   %s\n",
			st.Server, st.Username, st.Pending, st.Rejections, cursor, last)
		return nil
	})
}

func replicaRejections(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("rejections", stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	discard := fs.String("discard", "", "remove this rejection from the list")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		if *discard != "" {
			return r.DiscardRejection(*discard)
		}
		l, err := r.Rejections()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, l)
		}
		for _, rj := range l {
			fmt.Fprintf(stdout, "%s %s %s %s: %s\n", rj.ID, rj.Kind, rj.ItemID, rj.Error.ID, rj.Error.Message)
		}
		return nil
	})
}

// jsonArg checks a flag value is one JSON value.
func jsonArg(name, v string) (json.RawMessage, error) {
	if _, err := model.Canonical([]byte(v)); err != nil {
		return nil, usageError{fmt.Sprintf("--%s must be a JSON value: %v", name, err)}
	}
	return json.RawMessage(v), nil
}

func numberArg(name, v string) (json.RawMessage, error) {
	if v == "null" {
		return json.RawMessage("null"), nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--%s must be a number", name)}
	}
	return json.RawMessage(model.JSONNumber(f)), nil
}

func strJSON(s string) json.RawMessage { return json.RawMessage(model.JSONString(s)) }

func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

func eventsAdd(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("events add", stderr)
	channel := fs.String("channel", "", "channel id")
	folder := fs.String("folder", "", "folder id")
	typ := fs.String("type", "", "class/format")
	value := fs.String("value", "", "value (JSON)")
	var tags, attach listFlag
	fs.Var(&tags, "tag", "tag (repeatable)")
	tm := fs.String("time", "", "time (unix seconds)")
	dur := fs.String("duration", "", "duration in seconds, or null for a running period")
	desc := fs.String("description", "", "description")
	fs.Var(&attach, "attach", "attach a file (repeatable)")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	if *channel == "" || *typ == "" {
		return usageError{"replica events add: --channel and --type are required"}
	}
	class, format, ok := strings.Cut(*typ, "/")
	if !ok {
		return usageError{"replica events add: --type must be class/format"}
	}
	for _, path := range attach {
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			return fmt.Errorf("replica events add: --attach %s: not a readable file", path)
		}
	}
	set := setFlags(fs)
	b := map[string]json.RawMessage{
		"channelId": strJSON(*channel),
		"type":      json.RawMessage(fmt.Sprintf(`{"class":%s,"format":%s}`, model.JSONString(class), model.JSONString(format))),
	}
	var err error
	if set["folder"] {
		b["folderId"] = strJSON(*folder)
	}
	if set["value"] {
		if b["value"], err = jsonArg("value", *value); err != nil {
			return err
		}
	}
	if len(tags) > 0 {
		raw, _ := json.Marshal([]string(tags))
		b["tags"] = raw
	}
	if set["time"] {
		if b["time"], err = numberArg("time", *tm); err != nil {
			return err
		}
	}
	if set["duration"] {
		if b["duration"], err = numberArg("duration", *dur); err != nil {
			return err
		}
	}
	if set["description"] {
		b["description"] = strJSON(*desc)
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		id, err := r.CreateEvent(b)
		if err != nil {
			return err
		}
		for _, path := range attach {
			if err := attachFile(r, id, path); err != nil {
				return fmt.Errorf("replica events add: event %s created, but attaching %s failed: %w", id, path, err)
			}
		}
		if *asJSON {
			return printJSON(stdout, map[string]string{"id": id})
		}
		fmt.Fprintln(stdout, id)
		return nil
	})
}

func parseTime(name, v string) (*float64, error) {
	if v == "" {
		return nil, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--%s must be a number (unix seconds)", name)}
	}
	return &f, nil
}

func eventsList(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("events list", stderr)
	var f replica.Filter
	fs.StringVar(&f.Channel, "channel", "", "channel id")
	fs.StringVar(&f.Folder, "folder", "", "folder id")
	var tags listFlag
	fs.Var(&tags, "tag", "tag the events must carry (repeatable: all of them)")
	from := fs.String("from", "", "from time")
	to := fs.String("to", "", "to time")
	fs.StringVar(&f.State, "state", "default", "default, trashed or all")
	fs.IntVar(&f.Limit, "limit", 0, "at most N events")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	switch f.State {
	case "default", "trashed", "all":
	default:
		return usageError{"replica events list: --state must be default, trashed or all"}
	}
	if setFlags(fs)["limit"] && f.Limit < 1 {
		return usageError{"replica events list: --limit must be >= 1"}
	}
	f.Tags = tags
	var err error
	if f.From, err = parseTime("from", *from); err != nil {
		return err
	}
	if f.To, err = parseTime("to", *to); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		evs, err := r.ListEvents(f)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, evs)
		}
		for _, e := range evs {
			fmt.Fprintf(stdout, "%s %s %s %s %s %s\n", e.ID, strconv.FormatFloat(e.Time, 'f', -1, 64), e.ChannelID, e.Type, orDash(e.Value), strings.Join(e.Tags, ","))
		}
		return nil
	})
}

func orDash(v json.RawMessage) string {
	if len(v) == 0 {
		return "-"
	}
	return string(v)
}

func eventsUpdate(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("events update", stderr)
	value := fs.String("value", "", "value (JSON)")
	var tags, add, remove listFlag
	fs.Var(&tags, "tag", "replace the tag set (repeatable)")
	fs.Var(&add, "add-tag", "add a tag (repeatable)")
	fs.Var(&remove, "remove-tag", "remove a tag (repeatable)")
	folder := fs.String("folder", "", "folder id (empty: no folder)")
	desc := fs.String("description", "", "description")
	tm := fs.String("time", "", "time")
	if err := parseReplica(fs, dir, args, 1); err != nil {
		return err
	}
	set := setFlags(fs)
	u := replica.EventUpdate{Body: map[string]json.RawMessage{}, AddTags: add, RemoveTags: remove}
	var err error
	if set["value"] {
		if u.Body["value"], err = jsonArg("value", *value); err != nil {
			return err
		}
	}
	if set["tag"] {
		raw, _ := json.Marshal([]string(tags))
		u.Body["tags"] = raw
	}
	if set["folder"] {
		if *folder == "" {
			u.Body["folderId"] = json.RawMessage("null")
		} else {
			u.Body["folderId"] = strJSON(*folder)
		}
	}
	if set["description"] {
		u.Body["description"] = strJSON(*desc)
	}
	if set["time"] {
		if u.Body["time"], err = numberArg("time", *tm); err != nil {
			return err
		}
	}
	return withReplica(*dir, func(r *replica.Replica) error { return r.UpdateEvent(fs.Arg(0), u) })
}

func eventsGet(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("events get", stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseReplica(fs, dir, args, 1); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		e, err := r.GetEvent(fs.Arg(0))
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, e)
		}
		raw, _ := json.MarshalIndent(e, "", "  ")
		fmt.Fprintln(stdout, string(raw))
		return nil
	})
}

func eventsDelete(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("events delete", stderr)
	if err := parseReplica(fs, dir, args, 1); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error { return r.DeleteEvent(fs.Arg(0)) })
}

func channelsList(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("channels list", stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		l, err := r.ListChannels()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, l)
		}
		for _, c := range l {
			fmt.Fprintf(stdout, "%s %s%s\n", c.ID, c.Name, trashedMark(c.Trashed))
		}
		return nil
	})
}

func trashedMark(t bool) string {
	if t {
		return " (trashed)"
	}
	return ""
}

func printID(stdout io.Writer, asJSON bool, id string) error {
	if asJSON {
		return printJSON(stdout, map[string]string{"id": id})
	}
	fmt.Fprintln(stdout, id)
	return nil
}

func channelsAdd(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("channels add", stderr)
	name := fs.String("name", "", "name")
	id := fs.String("id", "", "id (default: from the name)")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	b := map[string]json.RawMessage{"name": strJSON(*name)}
	if *id != "" {
		b["id"] = strJSON(*id)
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		cid, err := r.CreateChannel(b)
		if err != nil {
			return err
		}
		return printID(stdout, *asJSON, cid)
	})
}

func channelsUpdate(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("channels update", stderr)
	name := fs.String("name", "", "name")
	trashed := fs.String("trashed", "", "true or false")
	if err := parseReplica(fs, dir, args, 1); err != nil {
		return err
	}
	set := setFlags(fs)
	b := map[string]json.RawMessage{}
	if set["name"] {
		b["name"] = strJSON(*name)
	}
	if set["trashed"] {
		b["trashed"] = json.RawMessage(*trashed)
	}
	return withReplica(*dir, func(r *replica.Replica) error { return r.UpdateChannel(fs.Arg(0), b) })
}

func channelsDelete(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("channels delete", stderr)
	if err := parseReplica(fs, dir, args, 1); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error { return r.DeleteChannel(fs.Arg(0)) })
}

func foldersList(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("folders list", stderr)
	channel := fs.String("channel", "", "channel id")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		l, err := r.ListFolders(*channel)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, l)
		}
		for _, f := range l {
			parent := "-"
			if f.ParentID != nil {
				parent = *f.ParentID
			}
			fmt.Fprintf(stdout, "%s %s %s %s%s\n", f.ID, f.ChannelID, parent, f.Name, trashedMark(f.Trashed))
		}
		return nil
	})
}

func foldersAdd(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("folders add", stderr)
	channel := fs.String("channel", "", "channel id")
	name := fs.String("name", "", "name")
	parent := fs.String("parent", "", "parent folder id")
	id := fs.String("id", "", "id (default: from the name)")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseReplica(fs, dir, args, 0); err != nil {
		return err
	}
	b := map[string]json.RawMessage{"channelId": strJSON(*channel), "name": strJSON(*name)}
	if *parent != "" {
		b["parentId"] = strJSON(*parent)
	}
	if *id != "" {
		b["id"] = strJSON(*id)
	}
	return withReplica(*dir, func(r *replica.Replica) error {
		fid, err := r.CreateFolder(b)
		if err != nil {
			return err
		}
		return printID(stdout, *asJSON, fid)
	})
}

func foldersUpdate(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("folders update", stderr)
	name := fs.String("name", "", "name")
	parent := fs.String("parent", "", "parent folder id (empty: root)")
	hidden := fs.String("hidden", "", "true or false")
	if err := parseReplica(fs, dir, args, 1); err != nil {
		return err
	}
	set := setFlags(fs)
	b := map[string]json.RawMessage{}
	if set["name"] {
		b["name"] = strJSON(*name)
	}
	if set["parent"] {
		if *parent == "" {
			b["parentId"] = json.RawMessage("null")
		} else {
			b["parentId"] = strJSON(*parent)
		}
	}
	if set["hidden"] {
		b["hidden"] = json.RawMessage(*hidden)
	}
	return withReplica(*dir, func(r *replica.Replica) error { return r.UpdateFolder(fs.Arg(0), b) })
}

func foldersDelete(args []string, stdout, stderr io.Writer) error {
	fs, dir := replicaFlags("folders delete", stderr)
	if err := parseReplica(fs, dir, args, 1); err != nil {
		return err
	}
	return withReplica(*dir, func(r *replica.Replica) error { return r.DeleteFolder(fs.Arg(0)) })
}

// showSyncProgress prints a live count of the items a round applies when
// stderr is a terminal (a long initial sync), and nothing otherwise. The
// returned function ends the display with the round's exact count.
func showSyncProgress(r *replica.Replica, stderr io.Writer) func(applied int) {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func(int) {}
	}
	changes := r.Subscribe()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		n := 0
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case c, ok := <-changes:
				if !ok {
					return
				}
				if c.Source == "server" {
					n++
				}
			case <-tick.C:
				if n > 0 {
					fmt.Fprintf(stderr, "\rsyncing: %d items applied", n)
				}
			case <-done:
				return
			}
		}
	}()
	return func(applied int) {
		close(done)
		<-finished
		if applied > 0 {
			fmt.Fprintf(stderr, "\rsyncing: %d items applied\n", applied)
		}
	}
}

// attachFile attaches a file under its base name as key (SPEC §7).
func attachFile(r *replica.Replica, eventID, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	name := filepath.Base(path)
	_, err = r.AddAttachment(eventID, name, name, mime.TypeByExtension(filepath.Ext(name)), f)
	return err
}

// attachmentGet writes an attachment's content to --out, downloading it
// from the server when the replica does not hold it yet.
func attachmentGet(ctx context.Context, args []string, stderr io.Writer) error {
	fs, dir := replicaFlags("attachment get", stderr)
	out := fs.String("out", "", "file to write")
	if err := parseReplica(fs, dir, args, 2); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"replica attachment get: --out is required"}
	}
	eventID, key := fs.Arg(0), fs.Arg(1)
	return withReplica(*dir, func(r *replica.Replica) error {
		rc, _, err := r.OpenAttachment(ctx, eventID, key)
		if err != nil {
			return err
		}
		defer rc.Close()
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, rc); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}
