package sessionstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// EmptyData is the canonical form of a session with no keys.
const EmptyData = "{}"

var (
	errInvalidJSON = errors.New("invalid JSON")
	// errNotObject is returned for JSON that is valid but not an object.
	errNotObject = errors.New("not a JSON object")
)

// ValidatePatch reports whether patch is usable as a merge patch on session
// data: a JSON object. Stores rely on patches having passed it.
func ValidatePatch(patch string) error {
	// The common case, a valid object, needs no decoding: json.Valid
	// scans without allocating. Only a bad patch is decoded, for its error.
	if t := strings.TrimLeft(patch, " \t\r\n"); t != "" && t[0] == '{' && json.Valid([]byte(patch)) {
		return nil
	}
	_, err := decodeObject(patch)
	return err
}

// ApplyPatches applies the JSON merge patches (RFC 7396) in order to data,
// a JSON object, and returns the result in canonical form. An empty data
// string is taken as an empty object.
func ApplyPatches(data string, patches []string) (string, error) {
	target := map[string]any{}
	if data != "" {
		var err error
		if target, err = decodeObject(data); err != nil {
			return "", fmt.Errorf("stored session data: %w", err)
		}
	}
	for i, p := range patches {
		patch, err := decodeObject(p)
		if err != nil {
			return "", fmt.Errorf("patch %d: %w", i+1, err)
		}
		target = mergeObject(target, patch)
	}
	return encodeCanonical(target)
}

// Canonicalize returns data, a JSON object, in canonical form: compact, keys
// sorted, every character outside printable ASCII written as a \u escape,
// numbers exactly as given. That form is safe as an HTTP header value and is
// read by any JSON parser, Python's json.loads included.
func Canonicalize(data string) (string, error) {
	obj, err := decodeObject(data)
	if err != nil {
		return "", err
	}
	return encodeCanonical(obj)
}

// mergeObject applies patch to target as RFC 7396 section 2 describes and
// returns the result; target may be modified in place.
func mergeObject(target, patch map[string]any) map[string]any {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(target, k)
		case map[string]any:
			sub, ok := target[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
			}
			target[k] = mergeObject(sub, pv)
		default:
			target[k] = v
		}
	}
	return target
}

func decodeObject(s string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber() // keep numbers exactly as written: no float64 rounding
	var v any
	if err := dec.Decode(&v); err != nil {
		// Not the decoder's message: it quotes the offending character,
		// and these errors are logged, where session data never goes.
		return nil, fmt.Errorf("%w at byte %d", errInvalidJSON, dec.InputOffset())
	}
	if strings.TrimLeft(s[dec.InputOffset():], " \t\r\n") != "" {
		return nil, fmt.Errorf("%w: data after the value", errInvalidJSON)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errNotObject
	}
	return obj, nil
}

func encodeCanonical(obj map[string]any) (string, error) {
	if len(obj) == 0 {
		return EmptyData, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return "", fmt.Errorf("encoding session data: %w", err)
	}
	return asciiJSON(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})), nil
}

// asciiJSON rewrites every byte of encoded JSON outside printable ASCII as a
// \u escape (UTF-16 surrogate pairs above U+FFFF), as Python's json.dumps
// does by default. Such bytes occur only inside strings, where the escape
// means the same character. DEL is escaped too: it is not allowed in an HTTP
// header value.
func asciiJSON(b []byte) string {
	i := 0
	for i < len(b) && b[i] < utf8.RuneSelf && b[i] != 0x7f {
		i++
	}
	if i == len(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 16)
	sb.Write(b[:i])
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf && c != 0x7f {
			sb.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			writeU(&sb, r1)
			writeU(&sb, r2)
			continue
		}
		writeU(&sb, r)
	}
	return sb.String()
}

func writeU(sb *strings.Builder, r rune) {
	sb.WriteString(`\u`)
	h := strconv.FormatInt(int64(r), 16)
	for n := len(h); n < 4; n++ {
		sb.WriteByte('0')
	}
	sb.WriteString(h)
}

// Normalize returns data in a form fit for the X-Session-Data header: data
// itself when it is already a compact, printable-ASCII JSON object (what
// caddy-session writes, checked without allocating), or else its canonical
// form. It fails when data is not a JSON object. Stores that may hold data
// written by others (sanic_session writes `{"a": 1}` with spaces, and may
// write raw UTF-8) pass what they load through it.
func Normalize(data string) (string, error) {
	if isCompactASCIIObject(data) {
		return data, nil
	}
	return Canonicalize(data)
}

// isCompactASCIIObject reports whether s is a JSON object with no
// whitespace outside strings and no byte outside printable ASCII.
func isCompactASCIIObject(s string) bool {
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
