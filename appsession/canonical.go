package appsession

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The gateway measures and stores session data in one canonical form:
// compact JSON, object keys sorted (by their UTF-8 bytes), numbers exactly
// as written, and every character outside printable ASCII (DEL included)
// as a lowercase \u escape, with a surrogate pair above the BMP. The
// helper writes its patches in that form too, so that what it sends is
// ASCII and what it measures is what the gateway will measure.

// CanonicalJSON returns v in the gateway's canonical form. v may be any
// value encoding/json can marshal; the decoded values of a Session
// (map[string]any, []any, string, json.Number, bool, nil) are written as
// they are.
func CanonicalJSON(v any) (string, error) {
	g, err := normalize(v)
	if err != nil {
		return "", err
	}
	return string(appendCanonical(nil, g)), nil
}

// normalize turns v into the generic form the helper works with: objects
// as map[string]any, arrays as []any, numbers as json.Number, strings
// (valid UTF-8), bools and nil. Values already in that form are copied
// without a round trip through encoding/json.
func normalize(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, json.Number:
		return x, nil
	case string:
		if utf8.ValidString(x) {
			return x, nil
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("appsession: %v is not a JSON number", x)
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if !utf8.ValidString(k) {
				return normalizeByJSON(v)
			}
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	return normalizeByJSON(v)
}

// normalizeByJSON normalizes any other value through encoding/json, which
// also replaces invalid UTF-8 with U+FFFD, as the gateway does.
func normalizeByJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("appsession: value cannot be written as JSON: %w", err)
	}
	return decodeJSON(b)
}

// decodeJSON decodes one JSON value, keeping numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("appsession: invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("appsession: invalid JSON: data after the value")
	}
	return out, nil
}

// decodeObject decodes a JSON object.
func decodeObject(s string) (map[string]any, error) {
	v, err := decodeJSON([]byte(s))
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("appsession: JSON is not an object")
	}
	return m, nil
}

// appendCanonical writes a normalized value in canonical form.
func appendCanonical(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, x)
	case json.Number:
		return append(dst, x...)
	case string:
		return appendString(dst, x)
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendCanonical(dst, e)
		}
		return append(dst, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendCanonical(dst, x[k])
		}
		return append(dst, '}')
	}
	// normalize never yields anything else.
	panic(fmt.Sprintf("appsession: unexpected %T in normalized data", v))
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string in ASCII: the short escapes for
// quote, backslash, \b \f \n \r \t, and \u escapes (surrogate pairs above
// the BMP) for every other character outside printable ASCII, DEL
// included. Invalid UTF-8 is written as U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // other control characters, and DEL
				dst = appendU(dst, rune(c))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r > 0xffff {
			hi, lo := utf16.EncodeRune(r)
			dst = appendU(appendU(dst, hi), lo)
			continue
		}
		dst = appendU(dst, r) // RuneError for invalid UTF-8 is U+FFFD
	}
	return append(dst, '"')
}

func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// mergePatch applies an RFC 7396 merge patch to target, as the gateway
// does. target is not modified; parts of it may be shared with the result.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	out := make(map[string]any, len(t)+len(p))
	if ok {
		for k, v := range t {
			out[k] = v
		}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergePatch(out[k], v)
	}
	return out
}

// diffPatch returns a merge patch that turns from into to, both objects
// with no null members (nulls are allowed in arrays); nil when they are
// equal. Keys that did not change are not in it, so that concurrent
// requests which change other keys lose nothing.
func diffPatch(from, to map[string]any) map[string]any {
	var patch map[string]any
	put := func(k string, v any) {
		if patch == nil {
			patch = map[string]any{}
		}
		patch[k] = v
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			put(k, nil)
		}
	}
	for k, tv := range to {
		fv, ok := from[k]
		if ok && equalJSON(fv, tv) {
			continue
		}
		fObj, fIsObj := fv.(map[string]any)
		tObj, tIsObj := tv.(map[string]any)
		if ok && fIsObj && tIsObj {
			put(k, diffPatch(fObj, tObj))
			continue
		}
		put(k, tv)
	}
	return patch
}

// equalJSON reports whether two normalized values are written the same.
func equalJSON(a, b any) bool {
	return string(appendCanonical(nil, a)) == string(appendCanonical(nil, b))
}

// stripNulls removes the null members of objects, recursively through
// objects (not arrays), as applying a merge patch does: such members
// cannot be stored.
func stripNulls(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, e := range m {
		if e == nil {
			delete(m, k)
			continue
		}
		m[k] = stripNulls(e)
	}
	return m
}

// deepCopy copies a normalized value.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// OverSize reports whether a change must be refused under limit, by the
// gateway's rule: the result is longer than limit and longer than the data
// it replaces, so that data already over a lowered limit may still shrink.
// Both are lengths in bytes of canonical JSON; a limit of 0 or less means
// no limit.
func OverSize(resultLen, currentLen, limit int) bool {
	return limit > 0 && resultLen > limit && resultLen > currentLen
}
