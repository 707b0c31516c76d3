package mergepatch

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func FuzzApplyPatches(f *testing.F) {
	for _, seed := range [][2]string{
		{`{"a":"b"}`, `{"a":"c"}`},
		{`{"a":{"b":1,"c":2}}`, `{"a":{"b":null,"d":[1,2]}}`},
		{`{"n":12345678901234567890}`, `{"m":1.10}`},
		{`{"é":"\u00fc"}`, `{"😀":"x"}`},
		{`{}`, `{"a":null}`},
		{`{"a": 1, "b": [ ]}`, `{"b":{"c":{"d":null}}}`},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, target, patch string) {
		if _, err := Canonicalize(target); err != nil || Validate(patch) != nil {
			if _, err := Apply(target, []string{patch}); err == nil && target != "" {
				t.Fatalf("Apply took a bad target %q or patch %q", target, patch)
			}
			return
		}
		once, err := Apply(target, []string{patch})
		if err != nil {
			t.Fatalf("Apply(%q, %q): %v", target, patch, err)
		}
		if again, err := Canonicalize(once); err != nil || again != once {
			t.Fatalf("result %q is not canonical (%q, %v)", once, again, err)
		}
		if normalized, err := Normalize(once); err != nil || normalized != once {
			t.Fatalf("Normalize changed canonical %q to %q (%v)", once, normalized, err)
		}
		// A merge patch is idempotent.
		if twice, err := Apply(once, []string{patch}); err != nil || twice != once {
			t.Fatalf("applying %q again changed %q to %q (%v)", patch, once, twice, err)
		}
	})
}

// FuzzCanonicalMatchesOracle holds the JSON work to the oracle, the
// encoding/json implementation it replaced: for any input, the same result,
// and the same failure (errNotObject, or errInvalidJSON) for the same input.
func FuzzCanonicalMatchesOracle(f *testing.F) {
	for _, seed := range oracleSeeds() {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(checkMatchesOracle)
}

// TestCanonicalMatchesOracle runs the fuzz seeds, the cases known to be
// tricky, through the differential check, one subtest each.
func TestCanonicalMatchesOracle(t *testing.T) {
	for i, seed := range oracleSeeds() {
		t.Run(strconv.Itoa(i), func(t *testing.T) { checkMatchesOracle(t, seed[0], seed[1]) })
	}
}

// errorShape is every error text the JSON work may produce. It leaves no
// room for quoting the input: these errors are logged, session data is not.
var errorShape = regexp.MustCompile(`^((stored session data|patch \d+): )?(invalid JSON( at byte \d+)?(: [a-z ]+)?|not a JSON object)$`)

func checkMatchesOracle(t *testing.T, target, patch string) {
	// call names the call for a failure message; only a failure formats it.
	same := func(call func() string, got string, err error, want string, wantErr error) {
		t.Helper()
		if got != want || errorClass(err) != errorClass(wantErr) {
			t.Fatalf("%s = %s, %v\n want %s, %v", call(), clip(got), err, clip(want), wantErr)
		}
		if err == nil {
			return
		}
		if !errorShape.MatchString(err.Error()) {
			t.Fatalf("%s: error %q is not of a known shape", call(), err)
		}
		if blame(err) != blame(wantErr) {
			t.Fatalf("%s: error %q, want %q", call(), err, wantErr)
		}
	}
	apply := func(data string, patches ...string) {
		t.Helper()
		got, err := Apply(data, patches)
		want, wantErr := oracleApplyPatches(data, patches)
		same(func() string { return fmt.Sprintf("Apply(%q, %q)", clip(data), clipAll(patches)) }, got, err, want, wantErr)
	}
	apply(target, patch)
	apply("", target, patch)
	apply(target, patch, target)
	apply(target)
	for _, s := range []string{target, patch} {
		got, err := Canonicalize(s)
		want, wantErr := oracleCanonicalize(s)
		same(func() string { return fmt.Sprintf("Canonicalize(%q)", clip(s)) }, got, err, want, wantErr)
		got, err = Normalize(s)
		want, wantErr = oracleNormalize(s)
		same(func() string { return fmt.Sprintf("Normalize(%q)", clip(s)) }, got, err, want, wantErr)
		err, wantErr = Validate(s), oracleValidatePatch(s)
		same(func() string { return fmt.Sprintf("Validate(%q)", clip(s)) }, "", err, "", wantErr)
	}
}

// errorClass names what an error says about the input.
func errorClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errNotObject):
		return "not an object"
	case errors.Is(err, errInvalidJSON):
		return "invalid"
	}
	return "other"
}

// blame returns which input an Apply error is about, the stored
// data or a patch, or "" for an error about the one input there is.
func blame(err error) string {
	where, _, _ := strings.Cut(err.Error(), ": ")
	if where == "stored session data" || strings.HasPrefix(where, "patch ") {
		return where
	}
	return ""
}

// clip shortens s for a failure message: the deep-nesting seeds are long.
func clip(s string) string {
	if len(s) > 200 {
		return s[:100] + "..." + s[len(s)-100:]
	}
	return s
}

func clipAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clip(s)
	}
	return out
}

// nest returns open depth times, a value where open ends in ':', and close
// depth times.
func nest(depth int, open, close string) string {
	value := ""
	if strings.HasSuffix(open, ":") {
		value = "1"
	}
	return strings.Repeat(open, depth) + value + strings.Repeat(close, depth)
}

// oracleSeeds returns pairs of (stored data, patch), each pair meant to
// catch one way of differing from encoding/json.
func oracleSeeds() [][2]string {
	return [][2]string{
		// Merging.
		{`{"a":"b"}`, `{"a":"c"}`},
		{`{"cart":[1,2,3],"n":41,"user":"alice"}`, `{"n":42}`},
		{`{"a":{"b":1,"c":2}}`, `{"a":{"b":null,"d":[1,2]}}`},
		{`{"a":{"b":{"c":[1,{"z":1,"y":null}]}}}`, `{"a":{"b":{"c":{"d":null,"e":{"f":null}}}}}`},
		{`{"a":[{"b":null}],"z":null}`, `{"b":{"c":null},"z":{"y":{}}}`},
		{`{"a":1}`, `{"a":{}}`},
		{`{}`, `{}`},
		{``, `{"a":null}`},
		// Duplicate keys: the last one wins, at every level.
		{`{"a":1,"a":2}`, `{"b":1,"b":null}`},
		{`{"a":{"x":1},"a":{"y":2}}`, `{"a":null,"a":{"z":3}}`},
		{`{"a":{"x":1,"x":{"q":1},"x":3}}`, `{"a":{"y":1},"a":{"x":null}}`},
		{`{"a":1,"\u0061":2,"b":3}`, `{"\u0062":null,"b":4}`},
		{"{\"\xff\":1,\"\\ufffd\":2}", "{\"\xfe\":null}"},
		// Unicode and escapes.
		{`{"é":"ü","日本":"語","😀":"x"}`, `{"€":"\u20ac"}`},
		{`{"a":"\u0000\u001f\b\f\n\r\t\"\\\/"}`, `{"\u0000":"\u007f","/":"\/"}`},
		{"{\"a\":\"\u2028\u2029\",\"b\":\"\\u2028\\u2029\"}", "{\"\u2028\":1}"},
		{`{"a":"\ud83d\ude00","b":"\uD83D\uDE00","c":"\uDBFF\uDFFF"}`, `{"d":"\ud800\udc00"}`},
		{`{"a":"\ud800","b":"\udc00\ud800","c":"\ud800\ud800\udc00"}`, `{"e":"x\ud83d","f":"\ud83dx"}`},
		{`{"a":"\ud800\u0041","b":"\ud83d\u00e9","c":"\udbff"}`, `{"\ud800":1,"\udfff":2}`},
		{"{\"a\":\"\xff\xfe\",\"b\":\"\xed\xa0\x80\",\"c\":\"\xe2\x82\",\"d\":\"\xc0\xaf\"}", "{\"\xf4\x90\x80\x80\":1}"},
		{"{\"a\":\"x\x7fy\",\"\x7f\":\"\\u007f\"}", "{\"b\":\"\xef\xbf\xbd\"}"},
		{`{"a":"<b>&amp;</b>","b":"\u003c\u003e\u0026"}`, `{"c":"\u0027'"}`},
		{`{"":"","a":{"":{"":null}}}`, `{"":{"":1}}`},
		// Numbers, as written.
		{`{"a":-0,"b":1e400,"c":1.0E+2,"d":0.0,"e":1E-0,"f":-0.0e-0}`, `{"g":12345678901234567890123,"h":1e-400}`},
		{`{"pi":3.14159265358979323846264338327950288}`, `{"n":-1.5e3}`},
		{`{"a":01}`, `{"a":1.}`},
		{`{"a":.5}`, `{"a":+1}`},
		{`{"a":1e}`, `{"a":-}`},
		{`{"a":--1}`, `{"a":0x1}`},
		{`{"a":NaN}`, `{"a":Infinity}`},
		{`{"a":1E+}`, `{"a":-01}`},
		// Whitespace.
		{" \t\r\n{ \"a\" : [ 1 , { } , [ ] ] , \"b\" : { \"c\" : null } } \n", "\n{\n\"b\"\n:\n{\n}\n}\n"},
		{"\v{}", "{}\f"},
		{"{}\u00a0", "\u00a0{}"},
		{"{\"a\":\"\t\"}", "{\"a\":\"\n\"}"},
		{"{\"a\":\"\x01\"}", "{\"a\":\"\x1f\"}"},
		// Not objects, and not JSON.
		{`[]`, `null`},
		{`"x"`, `1`},
		{`true`, ` [{"a":1}] `},
		{`false`, `-1.5e3`},
		{``, ` `},
		{`{`, `}`},
		{`{"a"}`, `{"a":}`},
		{`{a:1}`, `{'a':1}`},
		{`{"a":1,}`, `{"a":[1,]}`},
		{`{,}`, `[,]`},
		{`{"a":tru}`, `{"a":nul}`},
		{`{"a":truex}`, `{"a":nulll}`},
		{`{"a":"\x"}`, `{"a":"\u12"}`},
		{`{"a":"\u12G4"}`, `{"a":"\U0041"}`},
		{`{"a":"unterminated}`, `{"a":"x"`},
		// Data after the value.
		{`{}x`, `{} {}`},
		{`{}}`, `{"a":1}]`},
		{"{}\x00", "{}{"},
		{`[] x`, `1 2`},
		{`01`, `nullx`},
		// Nesting, which the parser recurses on. (The limit itself is
		// TestNestingLimit's: inputs that long slow the fuzzer down.)
		{`{"a":` + nest(64, "[", "]") + `}`, `{"a":` + nest(64, "{\"a\":", "}") + `}`},
		{nest(32, `{"a":{"b":1},"a":`, "}"), nest(32, `{"a":{"c":null},"a":`, "}")},
	}
}
