package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/internal/mp"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// probe is one write W5 waits for on every connection.
type probe struct {
	id   string
	t0   time.Time
	mu   sync.Mutex
	lat  latencies
	want int
	done chan struct{}
}

func (p *probe) hit(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lat = append(p.lat, at.Sub(p.t0))
	if len(p.lat) == p.want {
		close(p.done)
	}
}

// idleClient is a connected replica that only reads: it acks changes
// batches as a replica does and reports the probe's item when it arrives.
type idleClient struct {
	rc      *rawConn
	ready   chan struct{} // closed at the first caughtUp batch
	current *atomic.Pointer[probe]
}

// loop reads until the connection closes. It reads and writes without a
// context (a context costs a registration per call in the websocket
// library): the run ends it by closing the connection. Each frame is read
// into a pooled buffer.
func (ic *idleClient) loop() {
	ctx := context.Background()
	caught := false
	var ids [][]byte
	for {
		buf := framePool.Get().(*bytes.Buffer)
		buf.Reset()
		_, r, err := ic.rc.c.Reader(ctx)
		if err == nil {
			_, err = buf.ReadFrom(r)
		}
		// Received: the frame is in. What follows is the client's own work.
		at := time.Now()
		var (
			ch      bool
			cursor  syncproto.Cursor
			caughtU bool
		)
		if err == nil {
			ids, ch, cursor, caughtU, err = scanChanges(buf.Bytes(), ids[:0], true)
		}
		if p := ic.current.Load(); err == nil && ch && p != nil {
			for _, id := range ids {
				if string(id) == p.id {
					p.hit(at)
				}
			}
		}
		ids = ids[:0] // they alias buf
		if buf.Cap() <= 64<<10 {
			framePool.Put(buf)
		}
		if err != nil {
			if !caught {
				close(ic.ready)
			}
			return
		}
		if !ch {
			continue
		}
		if syncproto.NeedsAck(caughtU) {
			if err := ic.rc.ack(ctx, cursor); err != nil {
				return
			}
		}
		if caughtU && !caught {
			caught = true
			close(ic.ready)
		}
	}
}

// framePool holds the idle clients' read buffers: 10 000 connections
// need only as many as read at once.
var framePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// scanChanges reads what an idle client needs of a frame without decoding
// the documents: whether it is a changes batch, its items' ids (appended to
// ids, aliasing frame, when wantIDs), its cursor and caughtUp. At 10 000 connections the
// client shares the cores with the server it measures, so it keeps its
// per-frame work small. An error frame is decoded whole and returned as an
// error.
func scanChanges(frame []byte, ids [][]byte, wantIDs bool) (_ [][]byte, changes bool, cursor syncproto.Cursor, caughtUp bool, err error) {
	r := mp.NewReader(frame)
	serverErr := false
	err = r.Map(func(k []byte) (err error) {
		switch string(k) {
		case "t":
			var t []byte
			if t, err = r.Bytes(); err == nil && string(t) == syncproto.TypeError {
				serverErr = true
				return errStop
			}
		case "changes":
			if r.Nil() {
				return nil
			}
			changes = true
			ids, cursor, caughtUp, err = scanBatch(r, ids, wantIDs)
		default:
			err = r.Skip()
		}
		return err
	})
	if errors.Is(err, errStop) && !serverErr {
		err = nil // scanBatch had what it needed
	}
	if serverErr {
		var m lightMsg
		if err = msgpack.Unmarshal(frame, &m); err == nil && m.Error != nil {
			err = fmt.Errorf("loadgen: server error %s: %s", m.Error.ID, m.Error.Message)
		}
		return ids, false, cursor, false, err
	}
	return ids, changes, cursor, caughtUp, err
}

// errStop ends a scan early.
var errStop = errors.New("stop")

func scanBatch(r *mp.Reader, ids [][]byte, wantIDs bool) (_ [][]byte, cursor syncproto.Cursor, caughtUp bool, err error) {
	haveCursor, haveCaughtUp := false, false
	err = r.Map(func(k []byte) (err error) {
		switch string(k) {
		case "items", "removals":
			if !wantIDs {
				if haveCursor && haveCaughtUp {
					// The server writes cursor and caughtUp first
					// (syncproto.Changes): nothing else is needed.
					return errStop
				}
				return r.Skip()
			}
			if string(k) == "removals" {
				return r.Skip()
			}
			var items int
			items, err = r.ArrayLen()
			for j := 0; j < items && err == nil; j++ {
				err = r.Map(func(fk []byte) error {
					if string(fk) != "id" {
						return r.Skip()
					}
					id, err := r.Bytes()
					ids = append(ids, id)
					return err
				})
			}
		case "cursor":
			haveCursor = true
			err = r.Map(func(fk []byte) (err error) {
				switch string(fk) {
				case "epoch":
					cursor.Epoch, err = r.String()
				case "seq":
					cursor.Seq, err = r.Uint()
				default:
					err = r.Skip()
				}
				return err
			})
		case "caughtUp":
			haveCaughtUp = true
			caughtUp, err = r.Bool()
		default:
			err = r.Skip()
		}
		return err
	})
	return ids, cursor, caughtUp, err
}

// serverMem is what W5 reads of the server's memory.
type serverMem struct {
	rss                     float64 // VmRSS, when the pid is known
	heap, stack, goroutines float64 // from /metrics
}

// serverMemory reads the server's RSS (when its pid is known) and the Go
// memory and goroutines it reports on /metrics.
func (e *env) serverMemory(ctx context.Context, pid int) serverMem {
	var m serverMem
	if pid > 0 {
		if v, err := procStatus(pid, "VmRSS"); err == nil {
			m.rss = float64(v)
		}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", e.url+"/metrics", nil)
	if err != nil {
		return m
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			m.heap = v
		case "go_memstats_stack_inuse_bytes":
			m.stack = v
		case "go_goroutines":
			m.goroutines = v
		}
	}
	return m
}

// W5 is fan-out: W5Conns idle replicas of one user connected (raw sync
// clients that ack and wait), one writer; server memory per idle
// connection, and the latency from the start of an HTTP write until each
// connection has received it.
func W5(ctx context.Context, c Config) (*Result, error) {
	c = c.Defaults()
	if c.Cluster {
		return nil, errors.New("W5 runs its server in a child process, which is not a cluster node: run it without --cluster")
	}
	start := time.Now()
	limit := int(RaiseFileLimit())
	conns := c.W5Conns
	mode := "external server"
	switch {
	case c.Server != "":
	case len(c.Exec) > 0:
		mode = "server in a child process"
	default:
		mode = "server in this process"
		// Both ends of every connection are then in this process.
		conns = min(conns, (limit-256)/2)
	}
	conns = min(conns, limit-256)
	res := &Result{Workload: "W5", Title: fmt.Sprintf("%d idle connected replicas, %d writes", conns, c.W5Writes),
		Params: map[string]any{"connections": conns, "requested": c.W5Conns, "writes": c.W5Writes, "runs": c.Runs,
			"openFileLimit": limit, "server": mode}}
	if conns < c.W5Conns {
		res.note("the open-file limit (%d) allows %d of the %d connections asked for", limit, conns, c.W5Conns)
	}
	for run := 1; run <= c.Runs; run++ {
		if err := w5Run(ctx, c, res, run, conns); err != nil {
			return nil, err
		}
	}
	res.target("server memory per connection", "<=", 64)
	res.target("latency p99", "<=", 250)
	switch mode {
	case "server in this process":
		res.note("server memory per connection is this process's Go memory (client and server together), an upper bound")
	case "external server":
		if c.ServerPID == 0 {
			res.note("no --server-pid: server memory is the Go heap and stacks its /metrics reports")
		}
	}
	res.finish(start)
	return res, nil
}

func w5Run(ctx context.Context, c Config, res *Result, run, conns int) error {
	var (
		e   *env
		cs  *childServer
		pid int
		err error
	)
	switch {
	case c.Server != "":
		pid = c.ServerPID
		e, err = newEnv(ctx, c)
	case len(c.Exec) > 0:
		var dir string
		if dir, err = os.MkdirTemp(c.Dir, "pryvsync-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		heap := "" // profiles of the first run's server
		if c.ProfileDir != "" && run == 1 {
			heap = filepath.Join(c.ProfileDir, "W5-server")
		}
		if cs, err = startChildServer(ctx, c, dir, heap); err != nil {
			return err
		}
		defer cs.stop()
		pid = cs.pid()
		ec := c
		ec.Server, ec.AdminKey = cs.url, cs.admin
		e, err = newEnv(ctx, ec)
	default:
		e, err = newEnv(ctx, c)
	}
	if err != nil {
		return err
	}
	defer e.close()
	a, gens, err := e.setup(ctx, 1)
	if err != nil {
		return err
	}
	inProcess := e.srv != nil
	// Let the server go idle before reading its memory (shorter for the
	// tiny runs of the tests).
	pause := time.Second
	if conns < 1000 {
		pause = 100 * time.Millisecond
	}
	settle := func() {
		if inProcess {
			runtime.GC()
		}
		time.Sleep(pause)
	}
	settle()
	m0 := e.serverMemory(ctx, pid)
	if inProcess {
		m0.heap, m0.stack, m0.goroutines = goMemory()
	}

	cctx, cancel := context.WithCancel(context.Background())
	var current atomic.Pointer[probe]
	clients := make([]*idleClient, conns)
	var cmu sync.Mutex // guards clients while connections are made
	var wg sync.WaitGroup
	defer func() {
		cancel()
		cmu.Lock()
		for _, ic := range clients {
			if ic != nil {
				ic.rc.c.CloseNow()
			}
		}
		cmu.Unlock()
		wg.Wait()
	}()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	sem := make(chan struct{}, 16)
	var dialErr atomic.Pointer[error]
	for i := range clients {
		if i%500 == 0 {
			c.progress("W5: run %d/%d, %d/%d connected", run, c.Runs, i, conns)
		}
		sem <- struct{}{}
		if p := dialErr.Load(); p != nil {
			return fmt.Errorf("W5: connection %d: %w", i, *p)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := dialRaw(cctx, hc, e.url, a.user, a.personal, model.NewID())
			if err != nil {
				dialErr.CompareAndSwap(nil, &err)
				<-sem
				return
			}
			ic := &idleClient{rc: rc, ready: make(chan struct{}), current: &current}
			cmu.Lock()
			clients[i] = ic
			if cctx.Err() != nil {
				// The run ended while this one was dialing, after the
				// cleanup closed the others: the loop returns at once.
				rc.c.CloseNow()
			}
			cmu.Unlock()
			<-sem
			ic.loop()
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	if p := dialErr.Load(); p != nil {
		return fmt.Errorf("W5: %w", *p)
	}
	cmu.Lock()
	ready := clients
	cmu.Unlock()
	for _, ic := range ready {
		select {
		case <-ic.ready:
		case <-time.After(60 * time.Second):
			return fmt.Errorf("W5: a connection never caught up")
		}
	}
	settle()
	m1 := e.serverMemory(ctx, pid)
	if inProcess {
		m1.heap, m1.stack, m1.goroutines = goMemory()
	}
	per := func(a, b float64) float64 { return (b - a) / float64(conns) / 1024 }
	if pid > 0 {
		res.add("server memory per connection", "KiB", per(m0.rss, m1.rss))
	} else {
		res.add("server memory per connection", "KiB", per(m0.heap+m0.stack, m1.heap+m1.stack))
	}
	res.add("server Go heap per connection", "KiB", per(m0.heap, m1.heap))
	res.add("server goroutine stacks per connection", "KiB", per(m0.stack, m1.stack))
	res.add("server goroutines per connection", "", (m1.goroutines-m0.goroutines)/float64(conns))
	if cs != nil && c.ProfileDir != "" && run == 1 {
		cs.heapProfile()
	}
	if run == 1 {
		stop, err := profilePhase(c, "W5-writes")
		if err != nil {
			return err
		}
		defer stop()
	}

	var all latencies
	for w := 1; w <= c.W5Writes; w++ {
		c.progress("W5: run %d/%d, write %d/%d", run, c.Runs, w, c.W5Writes)
		b := gens[0].body()
		p := &probe{id: model.NewID(), want: conns, done: make(chan struct{})}
		b["id"] = model.JSONString(p.id)
		current.Store(p)
		p.t0 = time.Now()
		if err := e.call(ctx, "POST", "/"+a.user+"/c0/events", a.personal, b, nil); err != nil {
			return err
		}
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			p.mu.Lock()
			n := len(p.lat)
			p.mu.Unlock()
			return fmt.Errorf("W5: write %d reached %d of %d connections in 60 s", w, n, conns)
		}
		p.mu.Lock()
		all = append(all, p.lat...)
		res.add("write p99 (per write)", "ms", p.lat.pct(99))
		p.mu.Unlock()
		time.Sleep(pause / 5)
	}
	res.addLatencies("latency", all)
	return nil
}

// goMemory is this process's heap in use, stacks and goroutines.
func goMemory() (heap, stack, goroutines float64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse), float64(ms.StackInuse), float64(runtime.NumGoroutine())
}
