package loadgen

// The physical baselines of research/go-stack.md §5, measured again on the
// machine that runs the workloads: docs/PERFORMANCE.md divides each
// workload figure by the baseline it is bound by.

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"
)

// BenchmarkBaselineBadgerWriteBatch writes 100k pre-encoded ~221-byte
// values with 26-byte keys through a WriteBatch into a fresh on-disk DB with
// SyncWrites (Set…Flush timed, not Open or Close).
func BenchmarkBaselineBadgerWriteBatch(b *testing.B) {
	const n = 100_000
	val := make([]byte, 221)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	keys := make([][]byte, n)
	for i := range keys {
		k := []byte("log/team-42/notes/")
		keys[i] = binary.BigEndian.AppendUint64(k, uint64(i))
	}
	for b.Loop() {
		b.StopTimer()
		db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithLogger(nil).WithSyncWrites(true).WithNumCompactors(2))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		wb := db.NewWriteBatch()
		for _, k := range keys {
			if err := wb.Set(k, val); err != nil {
				b.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

type baselineChange struct {
	Kind    string    `msgpack:"kind"`
	ID      string    `msgpack:"id"`
	Channel string    `msgpack:"channel"`
	Seq     uint64    `msgpack:"seq"`
	RSeq    uint64    `msgpack:"rseq"`
	Payload []byte    `msgpack:"payload"`
	At      time.Time `msgpack:"at"`
}

// BenchmarkBaselineMsgpackRoundTrip marshals and unmarshals a ~221-byte
// struct (two strings, ids, two uint64s, a 96-byte payload, a time).
func BenchmarkBaselineMsgpackRoundTrip(b *testing.B) {
	c := baselineChange{Kind: "event", ID: "cksjd83jd93kd0d9d3kd93kd0", Channel: "notes", Seq: 1 << 40, RSeq: 77,
		Payload: []byte(strings.Repeat("p", 96)), At: time.Unix(1_700_000_000, 0)}
	b.ReportAllocs()
	for b.Loop() {
		raw, err := msgpack.Marshal(&c)
		if err != nil {
			b.Fatal(err)
		}
		var out baselineChange
		if err := msgpack.Unmarshal(raw, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineWebsocketLoopback writes 64 KiB binary frames over a
// loopback websocket to a server that drains them (≈327 messages of 200
// bytes per frame).
func BenchmarkBaselineWebsocketLoopback(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			_, rd, err := c.Reader(context.Background())
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 64<<10)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := c.Write(ctx, websocket.MessageBinary, frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)*float64(len(frame))/200/b.Elapsed().Seconds(), "msgs200B/s")
}
