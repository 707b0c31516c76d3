package appsession

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

func TestEscaping(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want string
	}{
		{"ascii", "plain text ~", `"plain text ~"`},
		{"é", "é", `"\u00e9"`},
		{"emoji, a surrogate pair", "😀", `"\ud83d\ude00"`},
		{"CJK", "漢字", `"\u6f22\u5b57"`},
		{"U+2028 and U+2029", "a\u2028b\u2029", `"a\u2028b\u2029"`},
		{"control characters", "\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"short escapes", "\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"DEL", "\x7f", `"\u007f"`},
		{"quote and backslash", `"\`, `"\"\\"`},
		{"slash and html stay", "/<>&'", `"/<>&'"`},
		{"invalid UTF-8 is U+FFFD", "a\xffb", `"a\ufffdb"`},
		{"U+FFFF and U+10000", "\uffff\U00010000", `"\uffff\ud800\udc00"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := CanonicalJSON(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
			var back string
			if err := json.Unmarshal([]byte(got), &back); err != nil {
				t.Fatal(err)
			}
			if want := strings.ToValidUTF8(c.in, "\ufffd"); back != want {
				t.Errorf("decodes to %q, want %q", back, want)
			}
		})
	}
}

func TestCanonicalOfGoValues(t *testing.T) {
	type user struct {
		Name string `json:"name"`
		Age  int    `json:"age"`
	}
	got, err := CanonicalJSON(map[string]any{"u": user{"é", 3}, "n": 1.5, "b": []int{1, 2}, "z": nil})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"b":[1,2],"n":1.5,"u":{"age":3,"name":"\u00e9"},"z":null}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := CanonicalJSON(math.NaN()); err == nil {
		t.Error("NaN: no error")
	}
	if _, err := CanonicalJSON(map[string]any{"c": make(chan int)}); err == nil {
		t.Error("chan: no error")
	}
}

func TestSetEmitsOneASCIIPatch(t *testing.T) {
	s := sessionWith(t, `{"keep":1,"gone":2,"o":{"a":1,"b":2},"n":12345678901234567890}`)
	for k, v := range map[string]any{"name": "élève 😀 漢字 \u2028", "count": 3, "o": map[string]any{"a": 1, "c": nil}} {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	s.Delete("gone")
	if err := s.Update(map[string]any{"x": true, "y": []any{nil, "z"}}); err != nil {
		t.Fatal(err)
	}
	h := s.Headers()
	sets := h.Values("X-Session-Set")
	if len(sets) != 1 {
		t.Fatalf("X-Session-Set: %q, want one", sets)
	}
	want := `{"count":3,"gone":null,"name":"\u00e9l\u00e8ve \ud83d\ude00 \u6f22\u5b57 \u2028","o":{"b":null},"x":true,"y":[null,"z"]}`
	if sets[0] != want {
		t.Errorf("patch\n got %s\nwant %s", sets[0], want)
	}
	if len(h) != 1 {
		t.Errorf("headers %v, want only X-Session-Set", h)
	}
	// The gateway's own merge gives the data the helper shows.
	result, err := mergepatch.Apply(`{"gone":2,"keep":1,"n":12345678901234567890,"o":{"a":1,"b":2}}`, sets)
	if err != nil {
		t.Fatal(err)
	}
	mine, _ := CanonicalJSON(s.Data())
	if result != mine {
		t.Errorf("gateway's result %s, helper's data %s", result, mine)
	}
	if v, _ := s.Get("n"); v != json.Number("12345678901234567890") {
		t.Errorf("n = %#v, want the exact json.Number", v)
	}
}

func TestNoChangeNoHeaders(t *testing.T) {
	s := sessionWith(t, `{"a":1}`)
	if err := s.Set("a", 1); err != nil {
		t.Fatal(err)
	}
	if h := s.Headers(); len(h) != 0 {
		t.Errorf("headers %v for an unchanged value", h)
	}
}

func TestClearRegenerateExpiry(t *testing.T) {
	s := sessionWith(t, `{"a":1}`)
	_ = s.Set("before", 1)
	s.Clear()
	s.Regenerate()
	if err := s.Set("after", "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetExpiry(14 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	h := s.Headers()
	for k, want := range map[string]string{
		"X-Session-Clear":      "true",
		"X-Session-Regenerate": "true",
		"X-Session-Set":        `{"after":"x"}`, // applied after Clear, to empty data
		"X-Session-Expiry":     "1209600",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, bad := range []time.Duration{-time.Second, MaxExpiry + time.Second, 1500 * time.Millisecond} {
		if err := s.SetExpiry(bad); err == nil {
			t.Errorf("SetExpiry(%v): no error", bad)
		}
	}
	if err := s.SetExpiry(0); err != nil {
		t.Fatal(err)
	}
	if got := s.Headers().Get("X-Session-Expiry"); got != "0" {
		t.Errorf("permanent: X-Session-Expiry = %q", got)
	}
}

func TestSizeLimit(t *testing.T) {
	s := sessionWith(t, `{}`)
	// {"k":"..."} is 8 bytes around the value.
	if err := s.Set("k", strings.Repeat("x", DefaultMaxSize-8)); err != nil {
		t.Fatalf("exactly max_size: %v", err)
	}
	err := s.Set("k", strings.Repeat("x", DefaultMaxSize-7))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte past: err = %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "8001") {
		t.Errorf("error %q does not say the size", err)
	}
	// Escapes count as written: é is 6 bytes.
	s = sessionWith(t, `{}`)
	if err := s.Set("k", strings.Repeat("é", (DefaultMaxSize-8)/6+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("escaped: err = %v, want ErrTooLarge", err)
	}
	// A refused Update changes nothing, not even its smaller keys.
	s = sessionWith(t, `{"a":1}`)
	if err := s.Update(map[string]any{"b": 2, "big": strings.Repeat("x", DefaultMaxSize)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Update: err = %v", err)
	}
	if h := s.Headers(); len(h) != 0 {
		t.Errorf("refused Update left headers %v", h)
	}
	// Data over a lowered limit may shrink, not grow.
	s = sessionWith(t, `{"k":"`+strings.Repeat("x", 30)+`"}`)
	s.SetMaxSize(20)
	if err := s.Set("k", strings.Repeat("x", 25)); err != nil {
		t.Errorf("shrinking: %v", err)
	}
	// Measured against the data the gateway holds (38 bytes), not the
	// earlier Set of this response.
	if err := s.Set("k", strings.Repeat("x", 30)); err != nil {
		t.Errorf("as large as before: %v", err)
	}
	if err := s.Set("k", strings.Repeat("x", 31)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("growing over the limit: err = %v", err)
	}
}

// TestAgainstGateway makes random changes through a Session and checks,
// with the gateway's own merge and size rule, that the patch it sends
// gives the data it shows, and that it refuses exactly what the gateway
// would.
func TestAgainstGateway(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := []any{"x", "é😀", "\x7f\u2028", 1, 2.5, true, nil, []any{1, nil}, map[string]any{"p": 1}, map[string]any{"q": map[string]any{"r": "s"}, "p": nil}, strings.Repeat("y", 40)}
	keys := []string{"a", "b", "é", "😀", "o"}
	for i := range 500 {
		base := map[string]any{}
		for _, k := range keys {
			if rng.IntN(2) == 0 {
				base[k] = values[rng.IntN(len(values))]
			}
		}
		baseJSON, _ := CanonicalJSON(stripNulls(deepCopy(base)))
		s := sessionWith(t, baseJSON)
		limit := 40 + rng.IntN(120)
		s.SetMaxSize(limit)
		for range 1 + rng.IntN(4) {
			before := s.Headers().Values("X-Session-Set")
			k, v := keys[rng.IntN(len(keys))], values[rng.IntN(len(values))]
			switch rng.IntN(5) {
			case 0:
				s.Delete(k)
				continue
			case 1:
				if rng.IntN(8) == 0 {
					s.Clear()
					baseJSON = "{}"
					continue
				}
			}
			err := s.Set(k, v)
			after := s.Headers().Values("X-Session-Set")
			// What the gateway does with the patch the helper would send
			// if the Set were taken.
			n, _ := normalize(v)
			next := deepCopy(s.data).(map[string]any)
			if n = stripNulls(n); n == nil {
				delete(next, k)
			} else {
				next[k] = n
			}
			patch, _ := CanonicalJSON(diffPatch(s.base, next))
			result, aerr := mergepatch.Apply(baseJSON, []string{patch})
			if aerr != nil {
				t.Fatalf("case %d: gateway refused the patch %s: %v", i, patch, aerr)
			}
			gatewayRefuses := sessionstore.OverSize(result, baseJSON, limit)
			if gatewayRefuses != errors.Is(err, ErrTooLarge) {
				t.Fatalf("case %d: base %s patch %s limit %d: gateway refuses %v, helper err %v", i, baseJSON, patch, limit, gatewayRefuses, err)
			}
			if err != nil {
				if fmt.Sprint(before) != fmt.Sprint(after) {
					t.Fatalf("case %d: a refused Set changed the patch", i)
				}
				continue
			}
			mine, _ := CanonicalJSON(s.Data())
			if result != mine {
				t.Fatalf("case %d: gateway %s, helper %s", i, result, mine)
			}
			for _, c := range patch {
				if c >= 0x80 {
					t.Fatalf("case %d: patch not ASCII: %s", i, patch)
				}
			}
		}
	}
}

func TestReadErrors(t *testing.T) {
	for name, h := range map[string]http.Header{
		"no headers":      {},
		"no data":         {"X-Session-Id": {"abc"}},
		"data not JSON":   {"X-Session-Id": {"abc"}, "X-Session-Data": {"{"}},
		"data not object": {"X-Session-Id": {"abc"}, "X-Session-Data": {"[1]"}},
		"two data":        {"X-Session-Id": {"abc"}, "X-Session-Data": {"{}", "{}"}},
		"new not bool":    {"X-Session-Id": {"abc"}, "X-Session-Data": {"{}"}, "X-Session-New": {"yes"}},
	} {
		if _, err := Read(h, ""); !errors.Is(err, ErrNoSession) {
			t.Errorf("%s: err = %v, want ErrNoSession", name, err)
		}
	}
	h := http.Header{"X-Alt-Session-Id": {"abc"}, "X-Alt-Session-Data": {`{"a":1}`}, "X-Alt-Session-New": {"true"}}
	s, err := Read(h, "alt_session")
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != "abc" || !s.IsNew() {
		t.Errorf("alt_session: id %q new %v", s.ID(), s.IsNew())
	}
	_ = s.Set("b", 2)
	if got := s.Headers().Get("X-Alt-Session-Set"); got != `{"b":2}` {
		t.Errorf("alt_session: X-Alt-Session-Set = %q", got)
	}
}
