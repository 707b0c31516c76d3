package mergepatch

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON work of the write path is done here rather than by
// encoding/json, which costs dozens of allocations a request to decode into
// map[string]any and encode back. Stored data is already canonical, so
// values are kept as the text they were written as, and only objects,
// which canonical form sorts, are taken apart.
//
// What is accepted, and the output, must stay exactly encoding/json's:
// FuzzCanonicalMatchesOracle compares the two.

// maxDepth is the deepest nesting of objects and arrays that encoding/json
// accepts; refusing deeper keeps the accepted inputs the same.
const maxDepth = 10000

// A kind says how a value is written in canonical form.
type kind uint8

const (
	kindLiteral kind = iota // a number, true, false or null: as written
	kindString              // re-escaped
	kindObject              // members sorted by key
	kindArray               // elements in order
)

// A value is a parsed JSON value. Strings and numbers are not decoded:
// numbers must keep their exact text anyway, and a string is decoded as it
// is written out.
type value struct {
	kind  kind
	text  string // as written, quotes included, for a literal or string
	items span   // the members of an object, or the elements of an array
}

// A member is a member of an object, or an element of an array.
type member struct {
	key string // decoded, as encoding/json decodes it; "" for an element
	value
}

// A span is where the members of an object, or the elements of an array,
// are in a parser's tree: tree[first:end]. Spans are indexes, not slices,
// because the tree moves when it grows.
type span struct{ first, end int }

func (s span) empty() bool { return s.first == s.end }

func (v *value) isNull() bool { return v.kind == kindLiteral && v.text == "null" }

// A parser parses JSON texts into one tree, which merging adds to and
// writing out reads.
type parser struct {
	s string // the text being parsed
	i int    // where in s the parser is

	// tree holds the members and elements of every object and array,
	// each one's contiguous. They cannot go there as they are parsed, as
	// those of nested values would come between them: open holds them until
	// their object or array ends, innermost last.
	tree []member
	open []member

	out []byte // the text written out
}

// parsers holds parsers between uses. A parser's tree is full of pointers:
// allocated anew for every request, it costs more in garbage collection
// than all the rest of the work, and with it reused, the result string is
// the only allocation (but for keys written with escapes, which are
// decoded to a string of their own).
var parsers = sync.Pool{New: func() any { return new(parser) }}

// maxPooledMembers bounds the tree a parser may keep when put back, so that
// one unusually large session does not keep its memory held.
const maxPooledMembers = 1024

func getParser() *parser { return parsers.Get().(*parser) }

// release puts p back for reuse. Its members refer to session data, which
// the pool must not keep alive, and its output buffer holds a copy of
// some: both are cleared. (Past the end of open, finish and sortMembers
// have cleared what they left.)
func (p *parser) release() {
	if cap(p.tree)+cap(p.open) > maxPooledMembers || cap(p.out) > 64<<10 {
		return
	}
	clear(p.tree)
	clear(p.open)
	clear(p.out[:cap(p.out)])
	*p = parser{tree: p.tree[:0], open: p.open[:0], out: p.out[:0]}
	parsers.Put(p)
}

// parseObjectText parses s, a JSON object between optional whitespace, and
// returns its members.
func (p *parser) parseObjectText(s string) (span, error) {
	p.s, p.i = s, 0
	p.skipSpace()
	v, err := p.parseValue(0)
	if err != nil {
		return span{}, err
	}
	p.skipSpace()
	if p.i < len(p.s) {
		return span{}, fmt.Errorf("%w: data after the value", errInvalidJSON)
	}
	if v.kind != kindObject {
		return span{}, errNotObject
	}
	return v.items, nil
}

// syntaxError reports the offset only: these errors are logged, and the
// text, session data, must never be.
func (p *parser) syntaxError() error {
	if p.i >= len(p.s) {
		return fmt.Errorf("%w: unexpected end", errInvalidJSON)
	}
	return fmt.Errorf("%w at byte %d", errInvalidJSON, p.i)
}

// peek returns the byte at p.i, or 0 at the end of the text: NUL is not
// valid anywhere peek is used, so the end needs no check of its own.
func (p *parser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// parseValue parses the value at p.i, which is inside depth objects and
// arrays.
func (p *parser) parseValue(depth int) (value, error) {
	switch c := p.peek(); {
	case c == '{':
		return p.parseObject(depth + 1)
	case c == '[':
		return p.parseArray(depth + 1)
	case c == '"':
		start := p.i
		if _, err := p.scanString(); err != nil {
			return value{}, err
		}
		return value{kind: kindString, text: p.s[start:p.i]}, nil
	case c == '-' || isDigit(c):
		return p.parseNumber()
	case c == 't':
		return p.parseLiteral("true")
	case c == 'f':
		return p.parseLiteral("false")
	case c == 'n':
		return p.parseLiteral("null")
	}
	return value{}, p.syntaxError()
}

func (p *parser) parseObject(depth int) (value, error) {
	if depth > maxDepth {
		return value{}, fmt.Errorf("%w: nested too deep", errInvalidJSON)
	}
	p.i++ // {
	start := len(p.open)
	p.skipSpace()
	if p.peek() == '}' {
		p.i++
		return value{kind: kindObject, items: p.finish(start)}, nil
	}
	for {
		if p.peek() != '"' {
			return value{}, p.syntaxError()
		}
		key, err := p.parseKey()
		if err != nil {
			return value{}, err
		}
		p.skipSpace()
		if p.peek() != ':' {
			return value{}, p.syntaxError()
		}
		p.i++
		p.skipSpace()
		v, err := p.parseValue(depth)
		if err != nil {
			return value{}, err
		}
		p.open = append(p.open, member{key: key, value: v})
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.i++
			p.skipSpace()
		case '}':
			p.i++
			p.open = p.open[:start+len(sortMembers(p.open[start:]))]
			return value{kind: kindObject, items: p.finish(start)}, nil
		default:
			return value{}, p.syntaxError()
		}
	}
}

func (p *parser) parseArray(depth int) (value, error) {
	if depth > maxDepth {
		return value{}, fmt.Errorf("%w: nested too deep", errInvalidJSON)
	}
	p.i++ // [
	start := len(p.open)
	p.skipSpace()
	if p.peek() == ']' {
		p.i++
		return value{kind: kindArray, items: p.finish(start)}, nil
	}
	for {
		v, err := p.parseValue(depth)
		if err != nil {
			return value{}, err
		}
		p.open = append(p.open, member{value: v})
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.i++
			p.skipSpace()
		case ']':
			p.i++
			return value{kind: kindArray, items: p.finish(start)}, nil
		default:
			return value{}, p.syntaxError()
		}
	}
}

// finish moves the members of the object or array that starts at
// open[start], now parsed, to the tree.
func (p *parser) finish(start int) span {
	first := len(p.tree)
	p.tree = append(p.tree, p.open[start:]...)
	clear(p.open[start:])
	p.open = p.open[:start]
	return span{first, len(p.tree)}
}

// sortMembers puts the members of an object in the order encoding/json
// writes map keys, and keeps only the last of members with the same key,
// as decoding into a map does. It returns the members kept, a prefix of ms,
// and clears the rest of ms.
func sortMembers(ms []member) []member {
	if isSortedUnique(ms) { // as canonical data is
		return ms
	}
	slices.SortStableFunc(ms, compareKeys) // stable: the last stays last
	kept := ms[:0]
	for i := range ms {
		if i+1 < len(ms) && ms[i+1].key == ms[i].key {
			continue
		}
		kept = append(kept, ms[i])
	}
	clear(ms[len(kept):])
	return kept
}

func isSortedUnique(ms []member) bool {
	for i := 1; i < len(ms); i++ {
		if ms[i-1].key >= ms[i].key {
			return false
		}
	}
	return true
}

func compareKeys(a, b member) int { return strings.Compare(a.key, b.key) }

// parseKey parses the string at p.i and returns it decoded: keys are
// compared, to sort them and to find duplicates, by what they mean.
func (p *parser) parseKey() (string, error) {
	start := p.i
	plain, err := p.scanString()
	if err != nil {
		return "", err
	}
	content := p.s[start+1 : p.i-1]
	if plain {
		return content, nil
	}
	return unquote(content), nil
}

// scanString moves past the string at p.i. It reports whether the string
// is plain, printable ASCII with no escapes, which decodes to itself.
func (p *parser) scanString() (plain bool, err error) {
	p.i++ // "
	plain = true
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			p.i++
			return plain, nil
		case c == '\\':
			plain = false
			if err := p.scanEscape(); err != nil {
				return false, err
			}
			continue
		case c < ' ':
			return false, p.syntaxError()
		case c >= 0x7f:
			plain = false
		}
		p.i++
	}
	return false, p.syntaxError()
}

// scanEscape moves past the escape sequence at p.i.
func (p *parser) scanEscape() error {
	p.i++ // \
	switch p.peek() {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		p.i++
		return nil
	case 'u':
		p.i++
		for range 4 {
			if !isHex(p.peek()) {
				return p.syntaxError()
			}
			p.i++
		}
		return nil
	}
	return p.syntaxError()
}

// parseNumber moves past the number at p.i, which JSON's grammar allows no
// leading zero, no '+' and no bare '.'.
func (p *parser) parseNumber() (value, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case isDigit(c):
		p.skipDigits()
	default:
		return value{}, p.syntaxError()
	}
	if p.peek() == '.' {
		p.i++
		if !isDigit(p.peek()) {
			return value{}, p.syntaxError()
		}
		p.skipDigits()
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if !isDigit(p.peek()) {
			return value{}, p.syntaxError()
		}
		p.skipDigits()
	}
	return value{kind: kindLiteral, text: p.s[start:p.i]}, nil
}

func (p *parser) skipDigits() {
	for isDigit(p.peek()) {
		p.i++
	}
}

func (p *parser) parseLiteral(lit string) (value, error) {
	if !strings.HasPrefix(p.s[p.i:], lit) {
		return value{}, p.syntaxError()
	}
	p.i += len(lit)
	return value{kind: kindLiteral, text: lit}, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unquote decodes the content of a valid JSON string. It allocates only
// for a string that does not decode to itself.
func unquote(s string) string {
	if !strings.Contains(s, `\`) && utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, n := nextRune(s[i:])
		b = utf8.AppendRune(b, r)
		i += n
	}
	return string(b)
}

// nextRune decodes the first character of s, the content of a valid JSON
// string, and returns it and the bytes it takes. It decodes as
// encoding/json does: a byte that is not UTF-8, and a \u escape of half a
// surrogate pair that has not its other half right after it, each become
// U+FFFD.
func nextRune(s string) (rune, int) {
	switch c := s[0]; {
	case c == '\\':
		return unescape(s)
	case c < utf8.RuneSelf:
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s)
}

// unescape decodes the escape sequence that s begins with.
func unescape(s string) (rune, int) {
	switch c := s[1]; c {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r := hex4(s[2:6])
		if !utf16.IsSurrogate(r) {
			return r, 6
		}
		if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
			if pair := utf16.DecodeRune(r, hex4(s[8:12])); pair != utf8.RuneError {
				return pair, 12
			}
		}
		return utf8.RuneError, 6
	default: // " \ or /
		return rune(c), 2
	}
}

// hex4 decodes four hex digits, already checked to be hex digits.
func hex4(s string) rune {
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// encode returns the canonical form of the object with the given members.
func (p *parser) encode(obj span) string {
	if obj.empty() {
		return EmptyData
	}
	p.out = p.appendObject(p.out[:0], obj)
	return string(p.out)
}

func (p *parser) appendValue(dst []byte, v *value) []byte {
	switch v.kind {
	case kindObject:
		return p.appendObject(dst, v.items)
	case kindArray:
		return p.appendArray(dst, v.items)
	case kindString:
		return appendString(dst, v.text)
	}
	return append(dst, v.text...)
}

func (p *parser) appendObject(dst []byte, members span) []byte {
	dst = append(dst, '{')
	for i := members.first; i < members.end; i++ {
		if i > members.first {
			dst = append(dst, ',')
		}
		m := &p.tree[i]
		dst = appendQuoted(dst, m.key)
		dst = append(dst, ':')
		dst = p.appendValue(dst, &m.value)
	}
	return append(dst, '}')
}

func (p *parser) appendArray(dst []byte, elems span) []byte {
	dst = append(dst, '[')
	for i := elems.first; i < elems.end; i++ {
		if i > elems.first {
			dst = append(dst, ',')
		}
		dst = p.appendValue(dst, &p.tree[i].value)
	}
	return append(dst, ']')
}

// appendString appends raw, a JSON string as written in valid JSON, in
// canonical form: what it decodes to, escaped as appendRune escapes.
func appendString(dst []byte, raw string) []byte {
	s := raw[1 : len(raw)-1]
	dst = append(dst, '"')
	for i := 0; ; {
		j := i
		for j < len(s) && isPlain(s[j]) {
			j++
		}
		dst = append(dst, s[i:j]...)
		if j == len(s) {
			return append(dst, '"')
		}
		r, n := nextRune(s[j:])
		dst = appendRune(dst, r)
		i = j + n
	}
}

// appendQuoted appends s, valid UTF-8, as a canonical JSON string.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; ; {
		j := i
		for j < len(s) && isPlain(s[j]) {
			j++
		}
		dst = append(dst, s[i:j]...)
		if j == len(s) {
			return append(dst, '"')
		}
		r, n := rune(s[j]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(s[j:])
		}
		dst = appendRune(dst, r)
		i = j + n
	}
}

// isPlain reports whether c is written in a canonical string as itself.
func isPlain(c byte) bool { return ' ' <= c && c < 0x7f && c != '"' && c != '\\' }

// appendRune appends r as a canonical string has it: what Go's encoder
// writes with HTML escaping off, then every character outside printable
// ASCII, DEL included, as a \u escape, as Python's json.dumps does by
// default. The result is safe as an HTTP header value.
func appendRune(dst []byte, r rune) []byte {
	switch r {
	case '"', '\\':
		return append(dst, '\\', byte(r))
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	switch {
	case ' ' <= r && r < 0x7f:
		return append(dst, byte(r))
	case r > 0xffff:
		r1, r2 := utf16.EncodeRune(r)
		return appendU(appendU(dst, r1), r2)
	}
	return appendU(dst, r)
}

const hexDigits = "0123456789abcdef"

func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
