package mergepatch

import (
	"errors"
	"strings"
	"testing"
)

// TestCanonicalStrings covers how strings are decoded and escaped again,
// where encoding/json has rules of its own: U+FFFD for what is not UTF-8
// or is half a surrogate pair, and its choice of escapes.
func TestCanonicalStrings(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", `"abc xyz"`, `"abc xyz"`},
		{"empty", `""`, `""`},
		{"short escapes kept", `"\b\f\n\r\t\"\\"`, `"\b\f\n\r\t\"\\"`},
		{"solidus unescaped", `"\/"`, `"/"`},
		{"u escapes of short escapes", `"\u0008\u000c\u000a\u000d\u0009\u0022\u005c"`, `"\b\f\n\r\t\"\\"`},
		{"other control characters", `"\u0000\u0001\u001f"`, `"\u0000\u0001\u001f"`},
		{"escaped printable ascii unescaped", `"\u0041\u007e\u0020"`, `"A~ "`},
		{"DEL", "\"\x7f\\u007f\"", `"\u007f\u007f"`},
		{"upper case hex lowered", `"\u00E9\uABCD"`, `"\u00e9\uabcd"`},
		{"raw two byte", `"é"`, `"\u00e9"`},
		{"line separators raw", "\"\u2028\u2029\"", `"\u2028\u2029"`},
		{"line separators escaped", `"\u2028\u2029"`, `"\u2028\u2029"`},
		{"surrogate pair", `"\uD83D\uDE00"`, `"\ud83d\ude00"`},
		{"raw four byte", `"😀"`, `"\ud83d\ude00"`},
		{"lone high surrogate", `"\ud800"`, `"\ufffd"`},
		{"lone low surrogate", `"\udc00"`, `"\ufffd"`},
		{"low then high", `"\udc00\ud800"`, `"\ufffd\ufffd"`},
		{"high before a pair", `"\ud800\ud800\udc00"`, `"\ufffd\ud800\udc00"`},
		{"high before a letter", `"\ud800\u0041"`, `"\ufffdA"`},
		{"high before raw text", `"\ud800x"`, `"\ufffdx"`},
		{"high at the end", `"x\ud83d"`, `"x\ufffd"`},
		{"high before a short escape", `"\ud800\n"`, `"\ufffd\n"`},
		{"invalid byte", "\"a\xffb\"", `"a\ufffdb"`},
		{"UTF-8 of a surrogate", "\"\xed\xa0\x80\"", `"\ufffd\ufffd\ufffd"`},
		{"truncated sequence", "\"\xe2\x82\"", `"\ufffd\ufffd"`},
		{"overlong encoding", "\"\xc0\xaf\"", `"\ufffd\ufffd"`},
		{"above U+10FFFF", "\"\xf4\x90\x80\x80\"", `"\ufffd\ufffd\ufffd\ufffd"`},
		{"replacement character itself", "\"\xef\xbf\xbd\\ufffd\"", `"\ufffd\ufffd"`},
		{"html", `"<a href='x'>&amp;</a>"`, `"<a href='x'>&amp;</a>"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// As a value, and as a key: keys are decoded first, values not.
			for _, c := range []struct{ in, want string }{
				{`{"k":` + tt.in + `}`, `{"k":` + tt.want + `}`},
				{`{` + tt.in + `:1}`, `{` + tt.want + `:1}`},
			} {
				got, err := Canonicalize(c.in)
				if err != nil || got != c.want {
					t.Errorf("Canonicalize(%q) = %s, %v; want %s", c.in, got, err, c.want)
				}
				checkMatchesOracle(t, c.in, c.in)
			}
		})
	}
}

// TestCanonicalKeys covers keys, which are sorted and compared decoded.
func TestCanonicalKeys(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"byte order", `{"b":1,"a":2,"B":3,"":4,"aa":5}`, `{"":4,"B":3,"a":2,"aa":5,"b":1}`},
		{"non-ascii after ascii", `{"\u00e9":1,"z":2,"Z":3}`, `{"Z":3,"z":2,"\u00e9":1}`},
		// UTF-8 order, not UTF-16 order: U+FFFF comes first.
		{"UTF-8 order", `{"\ud83d\ude00":1,"\uffff":2}`, `{"\uffff":2,"\ud83d\ude00":1}`},
		{"duplicate, last wins", `{"a":1,"b":0,"a":2}`, `{"a":2,"b":0}`},
		{"three of a key", `{"a":1,"a":2,"a":3}`, `{"a":3}`},
		{"duplicate by escape", `{"a":1,"\u0061":2}`, `{"a":2}`},
		{"duplicate by escape, escape first", `{"\u0061":1,"a":2}`, `{"a":2}`},
		{"duplicate by replacement", "{\"\xff\":1,\"\\ufffd\":2,\"\\ud800\":3}", `{"\ufffd":3}`},
		{"duplicate object replaced, not merged", `{"a":{"x":1},"a":{"y":2}}`, `{"a":{"y":2}}`},
		{"nested duplicate", `{"o":{"k":1,"j":0,"k":{"z":1,"y":2}}}`, `{"o":{"j":0,"k":{"y":2,"z":1}}}`},
		{"empty key", `{"":{"":""}}`, `{"":{"":""}}`},
		{"objects in arrays sorted", `{"a":[{"z":1,"y":2},[{"c":1,"b":1}]]}`, `{"a":[{"y":2,"z":1},[{"b":1,"c":1}]]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("Canonicalize(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
			}
			checkMatchesOracle(t, tt.in, tt.in)
		})
	}
}

// TestApplyPatchesDuplicateKeys checks that a patch with a key twice
// means what its last one says, as it did decoded into a map.
func TestApplyPatchesDuplicateKeys(t *testing.T) {
	tests := []struct {
		name, data, patch, want string
	}{
		{"null then value", `{"a":0}`, `{"a":null,"a":1}`, `{"a":1}`},
		{"value then null", `{"a":0,"b":0}`, `{"a":1,"a":null}`, `{"b":0}`},
		{"object then object", `{"a":{"c":2,"d":3}}`, `{"a":{"b":1},"a":{"c":null}}`, `{"a":{"d":3}}`},
		{"duplicates in data", `{"a":1,"a":{"x":1}}`, `{"a":{"y":2}}`, `{"a":{"x":1,"y":2}}`},
		{"nested duplicates in patch", `{}`, `{"a":{"x":null,"x":1,"y":1,"y":null}}`, `{"a":{"x":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.data, []string{tt.patch})
			if err != nil || got != tt.want {
				t.Errorf("Apply(%s, %s) = %s, %v; want %s", tt.data, tt.patch, got, err, tt.want)
			}
			checkMatchesOracle(t, tt.data, tt.patch)
		})
	}
}

// TestNestingLimit checks the limit on nesting, encoding/json's: as deep
// as it allows, and one more, in the stored data and in a patch.
func TestNestingLimit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // errorClass
	}{
		{"arrays in an object", `{"a":` + nest(maxDepth-1, "[", "]") + `}`, "ok"},
		{"arrays in an object, too deep", `{"a":` + nest(maxDepth, "[", "]") + `}`, "invalid"},
		{"objects", nest(maxDepth, `{"a":`, "}"), "ok"},
		{"objects, too deep", nest(maxDepth+1, `{"a":`, "}"), "invalid"},
		{"mixed", nest(maxDepth/2, `{"a":[`, "]}"), "ok"},
		{"mixed, too deep", `{"a":` + nest(maxDepth/2, `[{"a":`, "}]") + `}`, "invalid"},
		{"arrays", nest(maxDepth, "[", "]"), "not an object"},
		{"arrays, too deep", nest(maxDepth+1, "[", "]"), "invalid"},
		{"too deep and unclosed", strings.Repeat("[", maxDepth+1), "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Canonicalize(tt.in)
			if got := errorClass(err); got != tt.want {
				t.Errorf("Canonicalize: %s (%v), want %s", got, err, tt.want)
			}
			checkMatchesOracle(t, tt.in, tt.in)
			checkMatchesOracle(t, `{"a":1}`, tt.in)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{``, "invalid JSON: unexpected end"},
		{" \n", "invalid JSON: unexpected end"},
		{`{"a":1`, "invalid JSON: unexpected end"},
		{`{"a":"x`, "invalid JSON: unexpected end"},
		{`{"a":x}`, "invalid JSON at byte 5"},
		{`{"a":1,}`, "invalid JSON at byte 7"},
		{`{"a":01}`, "invalid JSON at byte 6"},
		{"{\"a\":\"\x01\"}", "invalid JSON at byte 6"},
		{`{"a":"\q"}`, "invalid JSON at byte 7"},
		{`{"a":1} x`, "invalid JSON: data after the value"},
		{`[1]`, "not a JSON object"},
		{nest(maxDepth+1, "[", "]"), "invalid JSON: nested too deep"},
	}
	for _, tt := range tests {
		_, err := Canonicalize(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Canonicalize(%q) error = %v, want %s", clip(tt.in), err, tt.want)
		}
		if want := errInvalidJSON; tt.want == errNotObject.Error() {
			want = errNotObject
		} else if !errors.Is(err, want) {
			t.Errorf("Canonicalize(%q) error %v is not %v", clip(tt.in), err, want)
		}
	}
}

// TestReleaseClearsSessionData checks that a parser put back in the pool
// keeps no session data alive.
func TestReleaseClearsSessionData(t *testing.T) {
	p := getParser()
	members, err := p.parseObjectText(`{"secret":"hunter2","n":{"a":[1,2],"b":"hunter2","b":2},"secret":1}`)
	if err != nil {
		t.Fatal(err)
	}
	p.encode(members)
	tree := p.tree[:cap(p.tree)]
	// Fail halfway through a second text, leaving members open.
	if _, err := p.parseObjectText(`{"secret":{"x":"hunter2","y":[`); err == nil {
		t.Fatal("parsed a text that is cut short")
	}
	open := p.open[:cap(p.open)]
	p.release()
	for i, m := range append(tree, open...) {
		if m != (member{}) {
			t.Errorf("member %d left as %+v", i, m)
		}
	}
	if p.s != "" {
		t.Errorf("text left as %q", p.s)
	}
}

func TestEncodeEmpty(t *testing.T) {
	var p parser
	if got := p.encode(span{}); got != EmptyData {
		t.Errorf("encode(no members) = %q, want %q", got, EmptyData)
	}
}

func TestAppendQuoted(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, `""`},
		{`{"a":1}`, `"{\"a\":1}"`},
		{"\x7f", `"\u007f"`},
		{"a\x7f", `"a\u007f"`},
		{"é", `"\u00e9"`},
		{"xé😀y", `"x\u00e9\ud83d\ude00y"`},
		{"\uffff", `"\uffff"`},
		{"\U00010000", `"\ud800\udc00"`},
		{"\U0010ffff", `"\udbff\udfff"`},
		{"\x00\x1f\b\f\n\r\t\\", `"\u0000\u001f\b\f\n\r\t\\"`},
		{"\u2028", `"\u2028"`},
	}
	for _, tt := range tests {
		if got := string(appendQuoted(nil, tt.in)); got != tt.want {
			t.Errorf("appendQuoted(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
