package sim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pryvsync/pryvsync/syncproto"
)

// Dir is the direction of a frame on a replica's connection.
type Dir int

// Directions.
const (
	S2C Dir = iota // server to client
	C2S            // client to server
)

func (d Dir) String() string {
	if d == S2C {
		return "s→c"
	}
	return "c→s"
}

// Frame is one complete websocket message (or close frame) that crossed a
// replica's connection: for S2C, bytes the replica's process actually read.
type Frame struct {
	Conn  int // connection number on the endpoint (1, 2, …)
	Dir   Dir
	Raw   []byte
	Msg   *syncproto.Message // nil for a close frame or an undecodable message
	Err   error              // decode error
	Close int                // close code of a close frame (0 otherwise)
	At    time.Time
}

// Fault disturbs the next connection of an endpoint: it cuts it after
// AfterMsgs complete data messages in Dir (the last one delivered whole),
// or after AfterBytes bytes in Dir (possibly mid-frame); or, with Reorder,
// it delivers the first pushResult only after the server's next message
// (the server's push results and change batches come from two goroutines,
// so either order happens).
type Fault struct {
	Dir        Dir
	AfterMsgs  int
	AfterBytes int
	Reorder    bool
}

func (f Fault) String() string {
	switch {
	case f.Reorder:
		return "deliver the first pushResult after the next message"
	case f.AfterBytes > 0:
		return "cut " + f.Dir.String() + " after " + strconv.Itoa(f.AfterBytes) + " bytes"
	}
	return "cut " + f.Dir.String() + " after " + strconv.Itoa(f.AfterMsgs) + " messages"
}

// HoldFor is the longest a reordered frame is held back.
var HoldFor = 200 * time.Millisecond

// ErrCut is returned by a connection the fault injector closed.
var ErrCut = errors.New("sim: connection cut by fault injection")

// ErrPartitioned is returned by dials of a partitioned endpoint.
var ErrPartitioned = errors.New("sim: endpoint partitioned")

// Endpoint is one client of the network: its HTTP client dials the server
// over loopback TCP through a tap that records every websocket message and
// injects faults.
type Endpoint struct {
	Name   string
	Client *http.Client
	addr   string

	mu          sync.Mutex
	partitioned bool
	fault       *Fault
	conns       int
	open        map[*tapConn]struct{}
	frames      []Frame
}

// NewEndpoint returns an endpoint dialing addr (host:port).
func NewEndpoint(name, addr string) *Endpoint {
	ep := &Endpoint{Name: name, addr: addr, open: map[*tapConn]struct{}{}}
	ep.Client = &http.Client{Transport: &http.Transport{
		DialContext:       ep.dial,
		DisableKeepAlives: true,
		ForceAttemptHTTP2: false,
	}}
	return ep
}

func (ep *Endpoint) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	ep.mu.Lock()
	if ep.partitioned {
		ep.mu.Unlock()
		return nil, ErrPartitioned
	}
	f := ep.fault
	ep.fault = nil
	ep.conns++
	n := ep.conns
	ep.mu.Unlock()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, ep.addr)
	if err != nil {
		return nil, err
	}
	tc := &tapConn{Conn: c, ep: ep, n: n, fault: f}
	tc.in = &wsParser{dir: S2C, server: true, emit: tc.emit}
	tc.out = &wsParser{dir: C2S, emit: tc.emit}
	switch {
	case f == nil:
	case f.Reorder:
		tc.in.holdResult = true
	case f.Dir == S2C:
		tc.in.cutMsgs, tc.in.cutBytes = f.AfterMsgs, f.AfterBytes
	default:
		tc.out.cutMsgs, tc.out.cutBytes = f.AfterMsgs, f.AfterBytes
	}
	ep.mu.Lock()
	ep.open[tc] = struct{}{}
	ep.mu.Unlock()
	return tc, nil
}

// Partition makes dials fail and closes the open connections; Heal undoes it.
func (ep *Endpoint) Partition() {
	ep.mu.Lock()
	ep.partitioned = true
	var open []*tapConn
	for c := range ep.open {
		open = append(open, c)
	}
	ep.mu.Unlock()
	for _, c := range open {
		c.kill()
	}
}

// Heal lets dials through again.
func (ep *Endpoint) Heal() {
	ep.mu.Lock()
	ep.partitioned = false
	ep.mu.Unlock()
}

// Partitioned reports whether the endpoint is partitioned.
func (ep *Endpoint) Partitioned() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.partitioned
}

// Arm sets a fault for the next connection (nil disarms).
func (ep *Endpoint) Arm(f *Fault) {
	ep.mu.Lock()
	ep.fault = f
	ep.mu.Unlock()
}

// Take returns the frames recorded since the last Take.
func (ep *Endpoint) Take() []Frame {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	out := ep.frames
	ep.frames = nil
	return out
}

// CloseAll closes every open connection of the endpoint.
func (ep *Endpoint) CloseAll() {
	ep.mu.Lock()
	var open []*tapConn
	for c := range ep.open {
		open = append(open, c)
	}
	ep.mu.Unlock()
	for _, c := range open {
		c.kill()
	}
}

type tapConn struct {
	net.Conn
	ep    *Endpoint
	n     int
	fault *Fault

	rmu, wmu sync.Mutex
	in, out  *wsParser
	pending  []byte // read bytes not yet returned
	rerr     error
	deadline bool // a read deadline is set for a held frame

	kmu    sync.Mutex
	killed bool
}

func (c *tapConn) emit(f Frame) {
	f.Conn = c.n
	f.At = time.Now()
	c.ep.mu.Lock()
	c.ep.frames = append(c.ep.frames, f)
	c.ep.mu.Unlock()
}

func (c *tapConn) isKilled() bool {
	c.kmu.Lock()
	defer c.kmu.Unlock()
	return c.killed
}

func (c *tapConn) kill() {
	c.kmu.Lock()
	c.killed = true
	c.kmu.Unlock()
	_ = c.Conn.Close()
}

func (c *tapConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	buf := make([]byte, max(len(p), 4096))
	for len(c.pending) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.isKilled() {
			return 0, ErrCut
		}
		// A held frame waits for the next message, or HoldFor at most.
		if c.in.held != nil {
			_ = c.Conn.SetReadDeadline(time.Now().Add(HoldFor))
			c.deadline = true
		} else if c.deadline {
			_ = c.Conn.SetReadDeadline(time.Time{})
			c.deadline = false
		}
		n, err := c.Conn.Read(buf)
		if c.deadline && errors.Is(err, os.ErrDeadlineExceeded) {
			_ = c.Conn.SetReadDeadline(time.Time{})
			c.deadline = false
			c.pending = append(c.pending, c.in.release()...)
			err = nil
		}
		if n > 0 {
			out, cut := c.in.feed(buf[:n])
			c.pending = append(c.pending, out...)
			if cut {
				c.kill()
				c.rerr = ErrCut
			}
		}
		if err != nil {
			c.pending = append(c.pending, c.in.release()...)
			if c.isKilled() {
				err = ErrCut
			}
			c.rerr = err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *tapConn) Write(p []byte) (int, error) {
	if c.isKilled() {
		return 0, ErrCut
	}
	c.wmu.Lock()
	out, cut := c.out.feed(p)
	c.wmu.Unlock()
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	if cut {
		c.kill()
		return len(p), ErrCut
	}
	return len(p), nil
}

func (c *tapConn) Close() error {
	c.ep.mu.Lock()
	delete(c.ep.open, c)
	c.ep.mu.Unlock()
	return c.Conn.Close()
}

// wsParser follows one direction of an HTTP-upgraded websocket stream: it
// passes the HTTP head through, then passes whole frames on (holding the
// bytes of an incomplete frame until it completes), assembles messages and
// emits them as they are delivered. It also applies the faults: where the
// stream is cut, and which frame is held back behind the next message.
type wsParser struct {
	dir    Dir
	server bool // the stream comes from the server (expect a 101 answer)
	emit   func(Frame)

	cutMsgs, cutBytes int
	holdResult        bool   // hold the first pushResult behind the next message
	held              []byte // its bytes, while held
	heldFrame         *Frame

	head   []byte
	inHead bool
	begun  bool
	dead   bool // not a websocket stream (the upgrade was refused)
	buf    []byte
	msg    []byte
	msgOp  byte
	msgs   int
	total  int
	cut    bool
}

// feed consumes b and returns the bytes to deliver now, and whether the
// stream is cut after them.
func (p *wsParser) feed(b []byte) ([]byte, bool) {
	if p.cut {
		return nil, true
	}
	cutHere := false
	if p.cutBytes > 0 && p.total+len(b) >= p.cutBytes {
		b = b[:p.cutBytes-p.total]
		cutHere = true
	}
	p.total += len(b)
	var out []byte
	if !p.begun {
		p.begun, p.inHead = true, true
	}
	if p.inHead {
		p.head = append(p.head, b...)
		i := bytes.Index(p.head, []byte("\r\n\r\n"))
		if i < 0 {
			out = append(out, b...)
			p.cut = cutHere
			return out, cutHere
		}
		if p.server && !bytes.HasPrefix(p.head, []byte("HTTP/1.1 101")) {
			p.dead = true
		}
		rest := p.head[i+4:]
		p.head = nil
		p.inHead = false
		out = append(out, b[:len(b)-len(rest)]...)
		b = rest
	}
	if p.dead {
		out = append(out, b...)
		p.cut = cutHere
		return out, cutHere
	}
	var stop bool
	out, stop = p.frames(out, b)
	if stop {
		p.cut = true
		return out, true
	}
	if cutHere {
		out = append(out, p.buf...) // the partial frame, up to the cut
		p.buf = nil
		p.cut = true
	}
	return out, cutHere
}

// release returns the bytes of a held frame (the stream ends).
func (p *wsParser) release() []byte {
	out := p.held
	if p.heldFrame != nil {
		p.emit(*p.heldFrame)
	}
	p.held, p.heldFrame = nil, nil
	return out
}

// frames appends b to the frame buffer, parses every complete frame and
// appends the bytes to deliver to out. stop says the cut was reached.
func (p *wsParser) frames(out, b []byte) ([]byte, bool) {
	p.buf = append(p.buf, b...)
	pos := 0
	for {
		fr := p.buf[pos:]
		if len(fr) < 2 {
			break
		}
		fin := fr[0]&0x80 != 0
		op := fr[0] & 0x0f
		masked := fr[1]&0x80 != 0
		n := uint64(fr[1] & 0x7f)
		h := 2
		switch n {
		case 126:
			if len(fr) < 4 {
				goto done
			}
			n = uint64(binary.BigEndian.Uint16(fr[2:4]))
			h = 4
		case 127:
			if len(fr) < 10 {
				goto done
			}
			n = binary.BigEndian.Uint64(fr[2:10])
			h = 10
		}
		var key []byte
		if masked {
			if len(fr) < h+4 {
				goto done
			}
			key = fr[h : h+4]
			h += 4
		}
		if n > 64<<20 || uint64(len(fr)) < uint64(h)+n {
			goto done
		}
		raw := fr[:h+int(n)]
		payload := append([]byte(nil), fr[h:h+int(n)]...)
		if masked {
			for i := range payload {
				payload[i] ^= key[i%4]
			}
		}
		pos += h + int(n)
		switch op {
		case 0x8: // close
			code := 0
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload[:2]))
			}
			out = append(out, p.release()...)
			out = append(out, raw...)
			p.emit(Frame{Dir: p.dir, Raw: payload, Close: code})
		case 0x9, 0xa: // ping, pong
			out = append(out, raw...)
		case 0x0, 0x1, 0x2:
			if op != 0 {
				p.msgOp = op
				p.msg = p.msg[:0]
			}
			p.msg = append(p.msg, payload...)
			if !fin {
				out = append(out, raw...)
				continue
			}
			whole := append([]byte(nil), p.msg...)
			f := Frame{Dir: p.dir, Raw: whole}
			if p.msgOp == 0x2 {
				f.Msg, f.Err = syncproto.Decode(whole)
			}
			if p.holdResult && op == 0x2 && f.Msg != nil && f.Msg.T == syncproto.TypePushResult {
				p.holdResult = false
				p.held = append([]byte(nil), raw...)
				p.heldFrame = &f
				continue
			}
			out = append(out, raw...)
			p.emit(f)
			p.msgs++
			out = append(out, p.release()...)
			if p.cutMsgs > 0 && p.msgs >= p.cutMsgs {
				p.buf = nil
				return out, true
			}
		default:
			out = append(out, raw...)
		}
	}
done:
	p.buf = append(p.buf[:0], p.buf[pos:]...)
	return out, false
}
