package mp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// ErrMalformed is wrapped by every error a Reader returns.
var ErrMalformed = errors.New("msgpack: malformed")

// maxSkipDepth bounds the nesting Skip follows.
const maxSkipDepth = 16

// AppendMapLen appends the header of a map of n entries.
func AppendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

// AppendArrayLen appends the header of an array of n elements.
func AppendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// AppendStr appends s as a msgpack str.
func AppendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// AppendBin appends v as a msgpack bin (nil as nil).
func AppendBin(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, 0xc0)
	}
	switch n := len(v); {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, v...)
}

// AppendUint appends n in its most compact form.
func AppendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), n)
}

// AppendInt appends n in its most compact form (as msgpack's compact
// integers do: non-negative values as unsigned).
func AppendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return AppendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

// AppendFloat64 appends f as a float 64.
func AppendFloat64(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(f))
}

// AppendBool appends v.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// Reader reads msgpack values from a byte slice. Every read checks bounds;
// a declared length longer than what is left is an error, so no read
// allocates more than the input's size.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader at the start of b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Offset is the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

// Len is the number of bytes left.
func (r *Reader) Len() int { return len(r.b) - r.off }

func (r *Reader) errorf(format string, a ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrMalformed, r.off, fmt.Sprintf(format, a...))
}

func (r *Reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errorf("truncated")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *Reader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, r.errorf("length %d exceeds the %d bytes left", n, len(r.b)-r.off)
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v, nil
}

func (r *Reader) uintN(n int) (uint64, error) {
	v, err := r.take(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(v[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(v)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(v)), nil
	}
	return binary.BigEndian.Uint64(v), nil
}

// Nil consumes a nil and reports true, or consumes nothing and reports false.
func (r *Reader) Nil() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xc0 {
		r.off++
		return true
	}
	return false
}

// MapLen reads a map header (nil reads as 0 entries).
func (r *Reader) MapLen() (int, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x80:
		n = uint64(c & 0x0f)
	case c == 0xde:
		n, err = r.uintN(2)
	case c == 0xdf:
		n, err = r.uintN(4)
	case c == 0xc0:
		return 0, nil
	default:
		r.off--
		return 0, r.errorf("want a map, found code 0x%02x", c)
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(r.Len()/2) {
		return 0, r.errorf("map of %d entries in %d bytes", n, r.Len())
	}
	return int(n), nil
}

// Map reads a map (nil reads as empty), calling fn with each key (valid
// during the call); fn must read or Skip the key's value.
func (r *Reader) Map(fn func(key []byte) error) error {
	n, err := r.MapLen()
	for i := 0; i < n && err == nil; i++ {
		var k []byte
		if k, err = r.Bytes(); err == nil {
			err = fn(k)
		}
	}
	return err
}

// ArrayLen reads an array header (nil reads as 0 elements).
func (r *Reader) ArrayLen() (int, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x90:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n, err = r.uintN(2)
	case c == 0xdd:
		n, err = r.uintN(4)
	case c == 0xc0:
		return 0, nil
	default:
		r.off--
		return 0, r.errorf("want an array, found code 0x%02x", c)
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(r.Len()) {
		return 0, r.errorf("array of %d elements in %d bytes", n, r.Len())
	}
	return int(n), nil
}

// Bytes reads a str or bin without copying: the result aliases the input
// (its capacity is clipped, so appending to it copies). Nil reads as nil.
func (r *Reader) Bytes() ([]byte, error) {
	c, err := r.byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = r.uintN(1)
	case c == 0xda || c == 0xc5:
		n, err = r.uintN(2)
	case c == 0xdb || c == 0xc6:
		n, err = r.uintN(4)
	case c == 0xc0:
		return nil, nil
	default:
		r.off--
		return nil, r.errorf("want a string, found code 0x%02x", c)
	}
	if err != nil {
		return nil, err
	}
	return r.take(int(n))
}

// String reads a str or bin as a new string (nil reads as "").
func (r *Reader) String() (string, error) {
	b, err := r.Bytes()
	return string(b), err
}

// Name reads a short string that recurs (map keys, node ids), sharing one
// copy per distinct value through the intern table.
func (r *Reader) Name() (string, error) {
	b, err := r.Bytes()
	if err != nil {
		return "", err
	}
	return Intern(b), nil
}

// Int reads any msgpack integer (or float, truncated) as an int64.
func (r *Reader) Int() (int64, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	}
	var u uint64
	switch c {
	case 0xcc:
		u, err = r.uintN(1)
	case 0xcd:
		u, err = r.uintN(2)
	case 0xce:
		u, err = r.uintN(4)
	case 0xcf:
		u, err = r.uintN(8)
		if err == nil && u > math.MaxInt64 {
			return 0, r.errorf("integer overflows int64")
		}
	case 0xd0:
		u, err = r.uintN(1)
		return int64(int8(u)), err
	case 0xd1:
		u, err = r.uintN(2)
		return int64(int16(u)), err
	case 0xd2:
		u, err = r.uintN(4)
		return int64(int32(u)), err
	case 0xd3:
		u, err = r.uintN(8)
		return int64(u), err
	case 0xca, 0xcb:
		r.off--
		f, err := r.Float()
		return int64(f), err
	case 0xc0:
		return 0, nil
	default:
		r.off--
		return 0, r.errorf("want an integer, found code 0x%02x", c)
	}
	return int64(u), err
}

// Uint reads any msgpack integer as a uint64 (negative values are an error).
func (r *Reader) Uint() (uint64, error) {
	if r.off < len(r.b) && r.b[r.off] == 0xcf {
		r.off++
		return r.uintN(8)
	}
	n, err := r.Int()
	if err == nil && n < 0 {
		return 0, r.errorf("negative integer %d where an unsigned one is expected", n)
	}
	return uint64(n), err
}

// Float reads a float 32 or 64, or an integer, as a float64.
func (r *Reader) Float() (float64, error) {
	if r.off >= len(r.b) {
		return 0, r.errorf("truncated")
	}
	switch r.b[r.off] {
	case 0xca:
		r.off++
		u, err := r.uintN(4)
		return float64(math.Float32frombits(uint32(u))), err
	case 0xcb:
		r.off++
		u, err := r.uintN(8)
		return math.Float64frombits(u), err
	}
	n, err := r.Int()
	return float64(n), err
}

// Bool reads a bool (nil reads as false).
func (r *Reader) Bool() (bool, error) {
	c, err := r.byte()
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc3:
		return true, nil
	case 0xc2, 0xc0:
		return false, nil
	}
	r.off--
	return false, r.errorf("want a bool, found code 0x%02x", c)
}

// Skip reads past one value of any type.
func (r *Reader) Skip() error { return r.skip(0) }

func (r *Reader) skip(depth int) error {
	if depth > maxSkipDepth {
		return r.errorf("nested deeper than %d", maxSkipDepth)
	}
	if r.off >= len(r.b) {
		return r.errorf("truncated")
	}
	c := r.b[r.off]
	var n, elems uint64
	var err error
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		r.off++
		return nil
	case c&0xe0 == 0xa0, c == 0xd9, c == 0xda, c == 0xdb, c == 0xc4, c == 0xc5, c == 0xc6:
		_, err = r.Bytes()
		return err
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		var m int
		m, err = r.MapLen()
		elems = 2 * uint64(m)
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		var m int
		m, err = r.ArrayLen()
		elems = uint64(m)
	case c == 0xcc || c == 0xd0:
		n = 2
	case c == 0xcd || c == 0xd1:
		n = 3
	case c == 0xd4: // fixext 1: code, type, 1 byte
		n = 3
	case c == 0xd5:
		n = 4
	case c == 0xce || c == 0xd2 || c == 0xca:
		n = 5
	case c == 0xcf || c == 0xd3 || c == 0xcb:
		n = 9
	case c == 0xd6:
		n = 6
	case c == 0xd7:
		n = 10
	case c == 0xd8:
		n = 18
	case c == 0xc7 || c == 0xc8 || c == 0xc9:
		r.off++
		w := 1 << (c - 0xc7) // ext 8, 16, 32: a 1-, 2- or 4-byte length
		l, err := r.uintN(w)
		if err != nil {
			return err
		}
		_, err = r.take(int(min(l+1, math.MaxInt32)))
		return err
	default:
		return r.errorf("unknown code 0x%02x", c)
	}
	if err != nil {
		return err
	}
	if n > 0 {
		_, err := r.take(int(n))
		return err
	}
	for range elems {
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// The intern table: a fixed number of slots, each holding the last string
// hashed to it. A hit returns the stored copy; a miss allocates and takes
// the slot. Memory stays bounded whatever the input.
const (
	internSlots  = 4096
	internMaxLen = 48
)

var internTable [internSlots]atomic.Pointer[string]

// Intern returns string(b), sharing one copy of short strings that recur.
func Intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > internMaxLen {
		return string(b)
	}
	h := uint32(2166136261)
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &internTable[h%internSlots]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
