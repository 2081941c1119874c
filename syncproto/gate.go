package syncproto

// The validation gate.
//
// msgpack/v5 trusts the element count a frame declares: decoding `{"c": array32(50M)}`, an
// 8-byte frame, preallocates gigabytes, and with a count of 0xFFFFFFFF the process dies with
// an out-of-memory error that recover cannot catch (research/go-stack.md §0.1, §1.3). Every
// inbound frame therefore passes through Validate before any msgpack decoder sees it.
//
// Invariants of a frame Validate accepts:
//
//   - It is exactly one msgpack value: no trailing bytes, no truncation, never the reserved
//     byte 0xc1.
//   - Every array's declared count n fits in the bytes that follow its header (n <= remaining),
//     and every map's in twice that (2n <= remaining), because each element takes at least
//     one byte. Since the frame is also complete, the sum of all declared counts is at most
//     len(frame), so a decoder's preallocation is linear in the frame size.
//   - Every str, bin and ext payload length fits in the bytes that follow its header.
//   - Containers nest at most maxDepth deep; the outermost container is depth 1, and an empty
//     container counts like any other.
//
// Validate does not check meaning: map keys may be of any type, ext type ids are not looked
// up, and str payloads are not checked for UTF-8. Those are the decoder's and the message
// types' concern. Validate runs in time linear in len(frame) and allocates nothing unless it
// returns an error or the frame nests deeper than DefaultMaxDepth.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// DefaultMaxDepth is the nesting limit for inbound frames: room for protocol messages that
// carry user content, while msgpack's recursive decoder stays shallow.
const DefaultMaxDepth = 32

// ErrMalformed is wrapped by every error Validate returns.
var ErrMalformed = errors.New("syncproto: malformed message")

func malformed(off int, format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrMalformed, off, fmt.Sprintf(format, args...))
}

// Validate walks one msgpack-encoded frame without allocating for its contents and
// rejects it unless it is exactly one well-formed msgpack value whose every container's
// declared element count fits in the bytes remaining (each element needs >= 1 byte,
// maps 2 per entry), whose nesting depth is <= maxDepth, whose str/bin/ext lengths fit
// in the remaining bytes, and which has no trailing bytes. A negative maxDepth is treated
// as 0, which admits only a single scalar. The returned error wraps ErrMalformed and names
// the offset of the offending value and the reason.
//
// Validate is safe to call from any goroutine; it does not retain frame.
func Validate(frame []byte, maxDepth int) error {
	n := len(frame)
	if n == 0 {
		return malformed(0, "empty frame")
	}

	// rem is how many values the innermost open container still expects (maps count keys
	// and values separately); the frame itself is a container of one. outer holds the rem
	// of every enclosing container, so len(outer) is the current nesting depth. Keeping
	// the innermost count in a local rather than on the stack keeps the loop fast.
	var outerBuf [DefaultMaxDepth]int
	outer := outerBuf[:0]
	rem := 1

	p := 0
	for {
		if rem == 0 {
			if len(outer) == 0 {
				break
			}
			rem = outer[len(outer)-1]
			outer = outer[:len(outer)-1]
			continue
		}
		if p >= n {
			return malformed(p, "truncated: %d more values expected", rem+sum(outer))
		}
		rem--
		start := p
		c := frame[p]

		// A scalar sets size, its total length including the header. A container advances
		// p past its header and sets count, its element count.
		var size, count int
		switch {
		case c <= 0x7f || c >= 0xe0: // positive and negative fixint
			p++
			continue
		case c <= 0x8f: // fixmap
			count = 2 * int(c&0x0f)
			p++
		case c <= 0x9f: // fixarray
			count = int(c & 0x0f)
			p++
		case c <= 0xbf: // fixstr
			size = 1 + int(c&0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
				size = 1
			case 0xcc, 0xd0: // uint8, int8
				size = 2
			case 0xcd, 0xd1: // uint16, int16
				size = 3
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				size = 5
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				size = 9
			case 0xd4: // fixext1: header, type, 1 byte
				size = 3
			case 0xd5: // fixext2
				size = 4
			case 0xd6: // fixext4
				size = 6
			case 0xd7: // fixext8
				size = 10
			case 0xd8: // fixext16
				size = 18
			case 0xc4, 0xd9: // bin8, str8
				if n-p < 2 {
					return malformed(start, "truncated %s header", codeName(c))
				}
				size = 2 + int(frame[p+1])
			case 0xc5, 0xda: // bin16, str16
				if n-p < 3 {
					return malformed(start, "truncated %s header", codeName(c))
				}
				size = 3 + int(binary.BigEndian.Uint16(frame[p+1:]))
			case 0xc6, 0xdb: // bin32, str32
				if n-p < 5 {
					return malformed(start, "truncated %s header", codeName(c))
				}
				l := uint64(binary.BigEndian.Uint32(frame[p+1:]))
				if l > uint64(n-p-5) {
					return malformed(start, "%s declares %d bytes, %d remain", codeName(c), l, n-p-5)
				}
				size = 5 + int(l)
			case 0xc7: // ext8: header, length, type, data
				if n-p < 2 {
					return malformed(start, "truncated ext8 header")
				}
				size = 3 + int(frame[p+1])
			case 0xc8: // ext16
				if n-p < 3 {
					return malformed(start, "truncated ext16 header")
				}
				size = 4 + int(binary.BigEndian.Uint16(frame[p+1:]))
			case 0xc9: // ext32
				if n-p < 5 {
					return malformed(start, "truncated ext32 header")
				}
				l := uint64(binary.BigEndian.Uint32(frame[p+1:]))
				if l+1 > uint64(n-p-5) {
					return malformed(start, "ext32 declares %d bytes, %d remain", l+1, n-p-5)
				}
				size = 6 + int(l)
			case 0xdc, 0xde: // array16, map16
				if n-p < 3 {
					return malformed(start, "truncated %s header", codeName(c))
				}
				count = int(binary.BigEndian.Uint16(frame[p+1:]))
				if c == 0xde {
					count *= 2
				}
				p += 3
			case 0xdd, 0xdf: // array32, map32
				if n-p < 5 {
					return malformed(start, "truncated %s header", codeName(c))
				}
				l := uint64(binary.BigEndian.Uint32(frame[p+1:]))
				if c == 0xdf {
					l *= 2
				}
				p += 5
				if l > uint64(n-p) {
					return malformed(start, "%s declares %d elements, %d bytes remain", codeName(c), l, n-p)
				}
				count = int(l)
			default: // 0xc1, the one byte msgpack reserves
				return malformed(start, "reserved byte 0x%02x", c)
			}
		}

		if size > 0 {
			if size > n-p {
				return malformed(start, "%s needs %d bytes, %d remain", codeName(c), size, n-p)
			}
			p += size
			continue
		}
		if count > n-p {
			return malformed(start, "%s declares %d elements, %d bytes remain", codeName(c), count, n-p)
		}
		if len(outer) >= maxDepth {
			return malformed(start, "nesting deeper than %d", max(maxDepth, 0))
		}
		if count > 0 {
			outer = append(outer, rem)
			rem = count
		}
	}
	if p != n {
		return malformed(p, "%d trailing bytes", n-p)
	}
	return nil
}

func sum(counts []int) int {
	total := 0
	for _, c := range counts {
		total += c
	}
	return total
}

// codeName names a msgpack type byte for error messages.
func codeName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0:
		return "fixint"
	case c <= 0x8f:
		return "fixmap"
	case c <= 0x9f:
		return "fixarray"
	case c <= 0xbf:
		return "fixstr"
	}
	switch c {
	case 0xc0:
		return "nil"
	case 0xc2, 0xc3:
		return "bool"
	case 0xc4:
		return "bin8"
	case 0xc5:
		return "bin16"
	case 0xc6:
		return "bin32"
	case 0xc7:
		return "ext8"
	case 0xc8:
		return "ext16"
	case 0xc9:
		return "ext32"
	case 0xca:
		return "float32"
	case 0xcb:
		return "float64"
	case 0xcc:
		return "uint8"
	case 0xcd:
		return "uint16"
	case 0xce:
		return "uint32"
	case 0xcf:
		return "uint64"
	case 0xd0:
		return "int8"
	case 0xd1:
		return "int16"
	case 0xd2:
		return "int32"
	case 0xd3:
		return "int64"
	case 0xd4:
		return "fixext1"
	case 0xd5:
		return "fixext2"
	case 0xd6:
		return "fixext4"
	case 0xd7:
		return "fixext8"
	case 0xd8:
		return "fixext16"
	case 0xd9:
		return "str8"
	case 0xda:
		return "str16"
	case 0xdb:
		return "str32"
	case 0xdc:
		return "array16"
	case 0xdd:
		return "array32"
	case 0xde:
		return "map16"
	case 0xdf:
		return "map32"
	}
	return fmt.Sprintf("0x%02x", c)
}
