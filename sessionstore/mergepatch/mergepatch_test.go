package mergepatch

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestApplyPatchesRFC7396 runs every example of RFC 7396 Appendix A whose
// target and patch are both objects. (The examples with an array, null or
// string patch, or an array target, do not apply to session data.)
func TestApplyPatchesRFC7396(t *testing.T) {
	tests := []struct {
		name, target, patch, want string
	}{
		{"replace value", `{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{"add key", `{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{"delete only key", `{"a":"b"}`, `{"a":null}`, `{}`},
		{"delete one key", `{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{"string over array", `{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{"array over string", `{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{"nested merge and delete", `{"a": {"b": "c"}}`, `{"a": {"b": "d", "c": null}}`, `{"a":{"b":"d"}}`},
		{"array replaced whole", `{"a": [{"b":"c"}]}`, `{"a": [1]}`, `{"a":[1]}`},
		{"null in target kept", `{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{"nulls in new object dropped", `{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.target, []string{tt.patch})
			if err != nil {
				t.Fatalf("Apply(%s, %s): %v", tt.target, tt.patch, err)
			}
			if got != tt.want {
				t.Errorf("Apply(%s, %s) = %s, want %s", tt.target, tt.patch, got, tt.want)
			}
		})
	}
}

func TestApplyPatches(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		patches []string
		want    string
	}{
		{"empty data is empty object", "", []string{`{"a":1}`}, `{"a":1}`},
		{"no patches canonicalizes", `{"b": 2, "a": 1}`, nil, `{"a":1,"b":2}`},
		{"empty data no patches", "", nil, `{}`},
		{"patches in order", `{}`, []string{`{"a":1}`, `{"a":2}`, `{"b":3}`}, `{"a":2,"b":3}`},
		{"later patch deletes earlier", `{}`, []string{`{"a":1,"b":2}`, `{"a":null}`}, `{"b":2}`},
		{"delete absent key", `{"a":1}`, []string{`{"zz":null}`}, `{"a":1}`},
		{"nested delete", `{"u":{"name":"x","role":"admin","pref":{"t":"dark","l":"en"}}}`,
			[]string{`{"u":{"role":null,"pref":{"l":null}}}`}, `{"u":{"name":"x","pref":{"t":"dark"}}}`},
		{"nested delete of last key leaves empty object", `{"u":{"a":1}}`, []string{`{"u":{"a":null}}`}, `{"u":{}}`},
		{"delete whole subtree", `{"u":{"a":1,"b":{"c":2}},"k":1}`, []string{`{"u":null}`}, `{"k":1}`},
		{"object over string", `{"a":"s"}`, []string{`{"a":{"b":1}}`}, `{"a":{"b":1}}`},
		{"object over number", `{"a":5}`, []string{`{"a":{"b":1,"c":null}}`}, `{"a":{"b":1}}`},
		{"object over array", `{"a":[1,2]}`, []string{`{"a":{"b":[3]}}`}, `{"a":{"b":[3]}}`},
		{"object over null", `{"a":null}`, []string{`{"a":{"b":true}}`}, `{"a":{"b":true}}`},
		{"scalar over object", `{"a":{"b":1}}`, []string{`{"a":false}`}, `{"a":false}`},
		{"empty object patch keeps target", `{"a":{"b":1}}`, []string{`{}`}, `{"a":{"b":1}}`},
		{"empty object value merges nothing", `{"a":{"b":1}}`, []string{`{"a":{}}`}, `{"a":{"b":1}}`},
		{"empty object value over scalar", `{"a":1}`, []string{`{"a":{}}`}, `{"a":{}}`},
		{"null inside array kept", `{}`, []string{`{"a":[null,{"b":null}]}`}, `{"a":[null,{"b":null}]}`},
		{"emptied result", `{"a":1,"b":{"c":2}}`, []string{`{"a":null}`, `{"b":null}`}, `{}`},
		{"big integer exact", `{}`, []string{`{"n":12345678901234567890}`}, `{"n":12345678901234567890}`},
		{"trailing zero decimal exact", `{"n":1.10}`, []string{`{"m":2}`}, `{"m":2,"n":1.10}`},
		{"exponent exact", `{}`, []string{`{"a":1E+2,"b":-0,"c":1e-7,"d":0.1000}`}, `{"a":1E+2,"b":-0,"c":1e-7,"d":0.1000}`},
		{"long mantissa exact", `{"pi":3.14159265358979323846264338327950288}`, nil, `{"pi":3.14159265358979323846264338327950288}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.data, tt.patches)
			if err != nil {
				t.Fatalf("Apply(%q, %q): %v", tt.data, tt.patches, err)
			}
			if got != tt.want {
				t.Errorf("Apply(%q, %q) = %s, want %s", tt.data, tt.patches, got, tt.want)
			}
		})
	}
}

func TestApplyPatchesErrors(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		patches []string
		wantSub string
	}{
		{"bad stored data", `{"a":`, nil, "stored session data"},
		{"stored data not object", `[1]`, nil, "stored session data"},
		{"bad first patch", `{}`, []string{`nope`}, "patch 1"},
		{"bad second patch", `{}`, []string{`{"a":1}`, `[1]`}, "patch 2"},
		{"patch null", `{}`, []string{`null`}, "patch 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.data, tt.patches)
			if err == nil {
				t.Fatalf("Apply(%q, %q) = %s, want error", tt.data, tt.patches, got)
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("error %q does not contain %q", err, tt.wantSub)
			}
			if got != "" {
				t.Errorf("Apply returned %q with an error, want empty", got)
			}
		})
	}
}

// TestApplyPatchesNestedSequence checks that nested objects built by one
// patch are merged into, not replaced, by the patches after it.
func TestApplyPatchesNestedSequence(t *testing.T) {
	got, err := Apply(`{}`, []string{`{"a":{"b":{"c":1}}}`, `{"a":{"b":{"d":2}}}`, `{"a":{"b":{"c":null}}}`})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":{"b":{"d":2}}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"python json.dumps", `{"a": 1, "b": "\u00e9"}`, `{"a":1,"b":"\u00e9"}`},
		{"python json.dumps nested", `{"z": [1, 2, {"y": null}], "a": {"c": true, "b": false}}`,
			`{"a":{"b":false,"c":true},"z":[1,2,{"y":null}]}`},
		{"already canonical", `{"a":1}`, `{"a":1}`},
		{"keys sorted", `{"b":1,"a":2,"c":{"z":1,"y":2},"B":0}`, `{"B":0,"a":2,"b":1,"c":{"y":2,"z":1}}`},
		{"whitespace removed", " {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\" : { } } \n", `{"a":[1,2],"b":{}}`},
		{"whitespace inside strings kept", `{"a":" x  y "}`, `{"a":" x  y "}`},
		{"empty object", `{}`, `{}`},
		{"empty object with space", `{ }`, `{}`},
		{"raw non-ascii escaped", `{"a":"é"}`, `{"a":"\u00e9"}`},
		{"raw non-ascii in key escaped", `{"é":"x"}`, `{"\u00e9":"x"}`},
		{"three byte utf-8", `{"a":"€ 日本"}`, `{"a":"\u20ac \u65e5\u672c"}`},
		{"emoji as surrogate pair", `{"a":"😀"}`, `{"a":"\ud83d\ude00"}`},
		{"escaped emoji stays pair", `{"a":"\uD83D\uDE00"}`, `{"a":"\ud83d\ude00"}`},
		{"max code point", "{\"a\":\"\U0010FFFF\"}", `{"a":"\udbff\udfff"}`},
		{"latin-1 boundary", "{\"a\":\"\u0080\u00ff\u0100\"}", `{"a":"\u0080\u00ff\u0100"}`},
		{"DEL escaped", "{\"a\":\"x\x7fy\"}", `{"a":"x\u007fy"}`},
		{"escaped DEL escaped", `{"a":"\u007f"}`, `{"a":"\u007f"}`},
		{"html not escaped", `{"a":"<b>&amp;</b>"}`, `{"a":"<b>&amp;</b>"}`},
		{"escaped html unescaped", `{"a":"\u003c\u003e\u0026"}`, `{"a":"<>&"}`},
		{"line and paragraph separators", "{\"a\":\"\u2028\u2029\"}", `{"a":"\u2028\u2029"}`},
		{"control characters", `{"a":"\u0001\n\t\"\\"}`, `{"a":"\u0001\n\t\"\\"}`},
		{"printable ascii unchanged", `{"a":" !#$%'()*+,-./0123456789:;=?@AZ[]^_` + "`" + `az{|}~"}`,
			`{"a":" !#$%'()*+,-./0123456789:;=?@AZ[]^_` + "`" + `az{|}~"}`},
		{"numbers as written", `{"a":12345678901234567890,"b":1.10,"c":-0.0,"d":2E10}`,
			`{"a":12345678901234567890,"b":1.10,"c":-0.0,"d":2E10}`},
		{"duplicate key last wins", `{"a":1,"a":2}`, `{"a":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize(tt.in)
			if err != nil {
				t.Fatalf("Canonicalize(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Canonicalize(%q) = %s, want %s", tt.in, got, tt.want)
			}
			for i := 0; i < len(got); i++ {
				if c := got[i]; c < 0x20 || c >= 0x7f {
					t.Errorf("output byte %d is %#x, not printable ASCII", i, c)
				}
			}
			// The output must mean the same as the input.
			var a, b any
			if err := json.Unmarshal([]byte(tt.in), &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(got), &b); err != nil {
				t.Fatalf("output %s is not JSON: %v", got, err)
			}
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				t.Errorf("output %s decodes to %s, input to %s", got, jb, ja)
			}
			// Canonical form is a fixed point.
			again, err := Canonicalize(got)
			if err != nil || again != got {
				t.Errorf("Canonicalize(%s) = %s, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestCanonicalizeErrors(t *testing.T) {
	for _, in := range []string{``, `[]`, `null`, `"x"`, `1`, `{`, `{} x`, `{}}`} {
		if got, err := Canonicalize(in); err == nil {
			t.Errorf("Canonicalize(%q) = %q, want error", in, got)
		}
	}
}

func TestValidatePatch(t *testing.T) {
	tests := []struct {
		name      string
		patch     string
		ok        bool
		notObject bool // the error must be errNotObject
	}{
		{"empty object", `{}`, true, false},
		{"object", `{"a":1,"b":{"c":null}}`, true, false},
		{"null member", `{"a":null}`, true, false},
		{"leading and trailing whitespace", " \t\r\n{\"a\":1}\n\r\t ", true, false},
		{"whitespace only after", "{}\n", true, false},
		{"empty string", ``, false, false},
		{"whitespace only", "  \n", false, false},
		{"invalid json", `{"a":}`, false, false},
		{"unterminated", `{"a":1`, false, false},
		{"single quotes", `{'a':1}`, false, false},
		{"bare word", `hello`, false, false},
		{"array", `[]`, false, true},
		{"array of objects", `[{"a":1}]`, false, true},
		{"string", `"{}"`, false, true},
		{"null", `null`, false, true},
		{"number", `42`, false, true},
		{"float", `-1.5e3`, false, true},
		{"bool", `true`, false, true},
		{"trailing word", `{} x`, false, false},
		{"trailing brace", `{}}`, false, false},
		{"two objects", `{}{}`, false, false},
		{"two objects spaced", `{"a":1} {"b":2}`, false, false},
		{"trailing comma", `{"a":1,}`, false, false},
		{"trailing null byte", "{}\x00", false, false},
		{"non-json whitespace after", "{}\u00a0", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.patch)
			if tt.ok {
				if err != nil {
					t.Errorf("Validate(%q) = %v, want nil", tt.patch, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%q) = nil, want error", tt.patch)
			}
			if got := errors.Is(err, errNotObject); got != tt.notObject {
				t.Errorf("Validate(%q) = %v; errors.Is(errNotObject) = %v, want %v", tt.patch, err, got, tt.notObject)
			}
		})
	}
}

// TestValidatePatchAgreesWithApply checks that every patch Validate
// accepts is one Apply accepts, and every one it refuses, refused.
func TestValidatePatchAgreesWithApply(t *testing.T) {
	for _, p := range []string{`{}`, ` {"a":1} `, `{} x`, `[]`, `null`, `{"a":[1]}`, `{}}`} {
		vErr := Validate(p)
		_, aErr := Apply(`{}`, []string{p})
		if (vErr == nil) != (aErr == nil) {
			t.Errorf("patch %q: Validate = %v, Apply = %v", p, vErr, aErr)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
		same     bool // the input itself comes back, unparsed
	}{
		{in: `{}`, want: `{}`, same: true},
		{in: `{"a":1,"b":"x y"}`, want: `{"a":1,"b":"x y"}`, same: true},
		{in: `{"b":1,"a":2}`, want: `{"b":1,"a":2}`, same: true}, // compact ASCII in any key order is kept
		{in: `{"q":"say \"hi\" {"}`, want: `{"q":"say \"hi\" {"}`, same: true},
		{in: `{"a": 1, "b": "\u00e9"}`, want: `{"a":1,"b":"\u00e9"}`}, // sanic_session's json.dumps
		{in: "{\"a\":\"é\"}", want: `{"a":"\u00e9"}`},
		{in: "{\"a\":\"\x7f\"}", want: `{"a":"\u007f"}`},
		{in: " {\"a\":1}", want: `{"a":1}`},
		{in: "{\"a\":1}\n", want: `{"a":1}`},
		{in: `[1,2]`, wantErr: true},
		{in: `"text"`, wantErr: true},
		{in: `{"a":`, wantErr: true},
		{in: `{"a":1}}`, wantErr: true},
		{in: ``, wantErr: true},
		{in: `not json`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("Normalize(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if tt.same != IsCompactASCIIObject(tt.in) {
			t.Errorf("IsCompactASCIIObject(%q) = %v, want %v", tt.in, !tt.same, tt.same)
		}
	}
}

func TestPatchErrorsDoNotQuoteData(t *testing.T) {
	for _, bad := range []string{`{"secret":"hunter2"`, `{"secret":hunter2}`, `secret`, `{"a":1} secret`} {
		err := Validate(bad)
		if err == nil {
			t.Fatalf("Validate(%q) accepted it", bad)
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "hunter") || strings.Contains(err.Error(), "'") {
			t.Errorf("Validate(%q) error %q quotes the data", bad, err)
		}
	}
}
