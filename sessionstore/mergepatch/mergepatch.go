// Package mergepatch is the JSON engine of the session stores: it keeps
// session data in one canonical form (compact, keys sorted, ASCII-only with
// \u escapes, numbers exactly as written) and applies JSON merge patches
// (RFC 7396) to it, so a store can merge an upstream's change into the data
// it holds as one atomic step and hand the result on as a header value.
//
// It is written for that one job without encoding/json; the encoding/json
// implementation it replaced is kept in its tests as the oracle that the
// fuzz targets hold it to.
package mergepatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// EmptyData is the canonical form of a session with no keys.
const EmptyData = "{}"

var (
	errInvalidJSON = errors.New("invalid JSON")
	// errNotObject is returned for JSON that is valid but not an object.
	errNotObject = errors.New("not a JSON object")
)

// Validate reports whether patch is usable as a merge patch on session
// data: a JSON object. Stores rely on patches having passed it.
func Validate(patch string) error {
	// The common case, a valid object, needs no parsing: json.Valid
	// scans without allocating. Only a bad patch is parsed, for its error.
	if t := strings.TrimLeft(patch, " \t\r\n"); t != "" && t[0] == '{' && json.Valid([]byte(patch)) {
		return nil
	}
	var p parser
	_, err := p.parseObjectText(patch)
	return err
}

// Apply applies the JSON merge patches (RFC 7396) in order to data,
// a JSON object, and returns the result in canonical form. An empty data
// string is taken as an empty object.
func Apply(data string, patches []string) (string, error) {
	p := getParser()
	defer p.release()
	var obj span
	if data != "" {
		var err error
		if obj, err = p.parseObjectText(data); err != nil {
			return "", fmt.Errorf("stored session data: %w", err)
		}
	}
	for i, patch := range patches {
		members, err := p.parseObjectText(patch)
		if err != nil {
			return "", fmt.Errorf("patch %d: %w", i+1, err)
		}
		obj = p.merge(obj, members)
	}
	return p.encode(obj), nil
}

// Canonicalize returns data, a JSON object, in canonical form: compact, keys
// sorted, every character outside printable ASCII written as a \u escape,
// numbers exactly as given. That form is safe as an HTTP header value and is
// read by any JSON parser, Python's json.loads included.
func Canonicalize(data string) (string, error) {
	p := getParser()
	defer p.release()
	obj, err := p.parseObjectText(data)
	if err != nil {
		return "", err
	}
	return p.encode(obj), nil
}

// merge applies the patch with members patch to the object with members
// target as RFC 7396 section 2 describes, and returns the members of the
// result. Both are sorted by key, as the parser leaves them, so one pass
// over the two in step does it, and the result is sorted too.
func (p *parser) merge(target, patch span) span {
	start := len(p.open)
	t, q := target.first, patch.first
	for t < target.end || q < patch.end {
		order := -1 // of the next target member to the next patch member
		switch {
		case t == target.end:
			order = 1
		case q < patch.end:
			order = strings.Compare(p.tree[t].key, p.tree[q].key)
		}
		if order < 0 {
			p.open = append(p.open, p.tree[t])
			t++
			continue
		}
		var sub span // what the patch member merges into, if an object
		if order == 0 {
			if p.tree[t].kind == kindObject {
				sub = p.tree[t].items
			}
			t++
		}
		m := p.tree[q]
		q++
		switch {
		case m.isNull():
			// Deleted: not copied.
		case m.kind == kindObject:
			m.items = p.merge(sub, m.items)
			p.open = append(p.open, m)
		default:
			p.open = append(p.open, m)
		}
	}
	return p.finish(start)
}

// Normalize returns data in a form fit for the X-Session-Data header: data
// itself when it is already a compact, printable-ASCII JSON object (what
// caddy-session writes, checked without allocating), or else its canonical
// form. It fails when data is not a JSON object. Stores that may hold data
// written by others (sanic_session writes `{"a": 1}` with spaces, and may
// write raw UTF-8) pass what they load through it.
func Normalize(data string) (string, error) {
	if IsCompactASCIIObject(data) {
		return data, nil
	}
	return Canonicalize(data)
}

// IsCompactASCIIObject reports whether s is a JSON object with no
// whitespace outside strings and no byte outside printable ASCII.
func IsCompactASCIIObject(s string) bool {
	if len(s) < 2 || s[0] != '{' {
		return false
	}
	inString, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return false
		}
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && c == ' ':
			return false
		}
	}
	return json.Valid([]byte(s))
}
