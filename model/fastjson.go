package model

import "strconv"

// Fast paths for the values replicas and apps send most: a short plain
// string, a number, an event type. Each recognises only input whose slow
// path (encoding/json) result it can state exactly, and leaves anything
// else to the slow path, so both give the same answer (fastjson_test.go
// checks them against each other).

// fastPaths is off only in tests that compare against the slow paths.
var fastPaths = true

// simpleString reports whether raw is a JSON string that needs no
// unescaping and that encoding/json writes back byte for byte: printable
// ASCII without a quote, a backslash or the HTML characters json escapes.
func simpleString(raw []byte) bool {
	if !fastPaths || len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// simpleNumber reports whether raw is exactly one JSON number (RFC 8259):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func simpleNumber(raw []byte) bool {
	if !fastPaths {
		return false
	}
	i, n := 0, len(raw)
	digits := func() int {
		start := i
		for i < n && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < n && raw[i] == '-' {
		i++
	}
	switch {
	case i < n && raw[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < n && raw[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < n && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < n && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == n
}

// simpleFloat parses raw when it is a JSON number that fits a float64.
func simpleFloat(raw []byte) (float64, bool) {
	if !simpleNumber(raw) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// simpleType reports whether raw is an event type exactly as this package
// writes it: {"class":"…","format":"…"} with both parts matching typeRE.
func simpleType(raw []byte) bool {
	const open, mid, end = `{"class":"`, `","format":"`, `"}`
	if !fastPaths || len(raw) < len(open)+len(mid)+len(end)+2 || string(raw[:len(open)]) != open || string(raw[len(raw)-len(end):]) != end {
		return false
	}
	rest := raw[len(open) : len(raw)-len(end)]
	part := func() bool {
		n := 0
		for n < len(rest) && (rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= '0' && rest[n] <= '9' || rest[n] == '-') {
			n++
		}
		rest = rest[n:]
		return n > 0
	}
	if !part() || len(rest) < len(mid) || string(rest[:len(mid)]) != mid {
		return false
	}
	rest = rest[len(mid):]
	return part() && len(rest) == 0
}
