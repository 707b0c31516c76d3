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

// subjects and revoke targets the helpers take and refuse, the same in
// every language's tests.
var (
	goodSubjects = []string{"42", "user@example.com", "a b", "~", strings.Repeat("x", MaxSubjectLength), allPrintable()}
	badSubjects  = []string{"", " 42", "42 ", " ", "4\t2", "a\nb", "\x00", "\x7f", "é", "x\xff", strings.Repeat("x", MaxSubjectLength+1)}
	goodTargets  = []string{"others", "all", "AAAAAAAAAAAAAAAAAAAAAA", "abcdefghijklmnopqrstu-", "0123456789_-ABCDEFGHIJ"}
	badTargets   = []string{"", "other", "Others", "ALL", " all", "others ", "none", strings.Repeat("A", HandleLength-1), strings.Repeat("A", HandleLength+1), "AAAAAAAAAAAAAAAAAAAAA+", "AAAAAAAAAAAAAAAAAAAAA/", "AAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAé"}
)

// allPrintable is every printable ASCII character, space in the middle.
func allPrintable() string {
	var b strings.Builder
	for c := byte('!'); c <= '~'; c++ {
		b.WriteByte(c)
		if c == 'O' {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func TestLoginWithSubjectRevokePersist(t *testing.T) {
	s := sessionWith(t, `{"cart":[1]}`)
	s.Regenerate()
	if err := s.Set("user", "alice"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{s.SetSubject("42"), s.RevokeOthers(), s.SetPersist(true)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := http.Header{
		"X-Session-Regenerate": {"true"},
		"X-Session-Set":        {`{"user":"alice"}`},
		"X-Session-Subject":    {"42"},
		"X-Session-Revoke":     {"others"},
		"X-Session-Persist":    {"true"},
	}
	if got := s.Headers(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("headers\n got %v\nwant %v", got, want)
	}
	// A later call replaces the subject and the persist choice.
	if err := s.SetSubject("43"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPersist(false); err != nil {
		t.Fatal(err)
	}
	if h := s.Headers(); h.Get("X-Session-Subject") != "43" || h.Get("X-Session-Persist") != "false" {
		t.Errorf("replaced: subject %q persist %q", h.Get("X-Session-Subject"), h.Get("X-Session-Persist"))
	}
}

func TestNothingAskedNothingSent(t *testing.T) {
	s := sessionWith(t, `{"a":1}`)
	s.Regenerate()
	_ = s.Set("b", 2)
	_ = s.SetExpiry(time.Hour)
	for _, name := range []string{"X-Session-Subject", "X-Session-Revoke", "X-Session-Persist"} {
		if v, ok := s.Headers()[name]; ok {
			t.Errorf("%s = %q, not asked for", name, v)
		}
	}
}

func TestSubjectValidation(t *testing.T) {
	for _, subject := range goodSubjects {
		s := sessionWith(t, `{}`)
		if err := s.SetSubject(subject); err != nil {
			t.Errorf("SetSubject(%q): %v", subject, err)
		} else if got := s.Headers()["X-Session-Subject"]; len(got) != 1 || got[0] != subject {
			t.Errorf("SetSubject(%q): X-Session-Subject %q", subject, got)
		}
	}
	for _, subject := range badSubjects {
		s := sessionWith(t, `{}`)
		_ = s.SetSubject("kept")
		err := s.SetSubject(subject)
		if err == nil {
			t.Errorf("SetSubject(%q): no error", subject)
			continue
		}
		if !strings.HasPrefix(err.Error(), "appsession: subject ") {
			t.Errorf("SetSubject(%q): error %q does not say what is wrong", subject, err)
		}
		if got := s.Headers().Get("X-Session-Subject"); got != "kept" {
			t.Errorf("refused SetSubject(%q) changed the subject to %q", subject, got)
		}
	}
	// RemoveSubject sends the empty value, which removes it.
	s := sessionWith(t, `{"user":"alice"}`)
	if err := s.RemoveSubject(); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Headers()["X-Session-Subject"]; !ok || len(got) != 1 || got[0] != "" {
		t.Errorf("RemoveSubject: X-Session-Subject %q (present %v), want one empty value", got, ok)
	}
	if err := s.SetSubject("42"); err != nil || s.Headers().Get("X-Session-Subject") != "42" {
		t.Errorf("SetSubject after RemoveSubject: %v, %q", err, s.Headers().Get("X-Session-Subject"))
	}
}

func TestRevokeValidation(t *testing.T) {
	for _, target := range goodTargets {
		s := sessionWith(t, `{}`)
		if err := s.Revoke(target); err != nil {
			t.Errorf("Revoke(%q): %v", target, err)
		} else if got := s.Headers().Get("X-Session-Revoke"); got != target {
			t.Errorf("Revoke(%q): X-Session-Revoke %q", target, got)
		}
	}
	for _, target := range badTargets {
		s := sessionWith(t, `{}`)
		if err := s.Revoke(target); err == nil {
			t.Errorf("Revoke(%q): no error", target)
		} else if !strings.Contains(err.Error(), `want "others", "all" or a session handle`) {
			t.Errorf("Revoke(%q): error %q does not say what is wanted", target, err)
		}
		if h := s.Headers(); len(h) != 0 {
			t.Errorf("refused Revoke(%q) left headers %v", target, h)
		}
	}
	// One value per response: the same again is fine, another is refused
	// and the first stays.
	s := sessionWith(t, `{}`)
	if err := s.RevokeOthers(); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke("others"); err != nil {
		t.Errorf("the same target again: %v", err)
	}
	for _, other := range []func() error{s.RevokeAll, func() error { return s.Revoke(goodTargets[2]) }} {
		if err := other(); err == nil || !strings.Contains(err.Error(), `already revokes "others"`) {
			t.Errorf("a second target: err = %v", err)
		}
	}
	if got := s.Headers()["X-Session-Revoke"]; len(got) != 1 || got[0] != "others" {
		t.Errorf("X-Session-Revoke = %q, want the first target only", got)
	}
	s = sessionWith(t, `{"user":"alice"}`)
	if err := s.RevokeAll(); err != nil || s.Headers().Get("X-Session-Revoke") != "all" {
		t.Errorf("RevokeAll: %v, %q", err, s.Headers().Get("X-Session-Revoke"))
	}
}

func TestSubjectAcrossClearAndRegenerate(t *testing.T) {
	// A subject set before a Clear goes with the cleared session; the
	// Revoke, the persist choice and the Regenerate stay.
	s := sessionWith(t, `{"user":"alice"}`)
	_ = s.SetSubject("42")
	_ = s.SetPersist(true)
	_ = s.RevokeAll()
	s.Regenerate()
	s.Clear()
	want := http.Header{
		"X-Session-Clear":      {"true"},
		"X-Session-Regenerate": {"true"},
		"X-Session-Persist":    {"true"},
		"X-Session-Revoke":     {"all"},
	}
	if got := s.Headers(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("subject then Clear\n got %v\nwant %v", got, want)
	}
	// A subject set after the Clear names the new session's owner.
	_ = s.Set("user", "bob")
	_ = s.SetSubject("43")
	if h := s.Headers(); h.Get("X-Session-Subject") != "43" || h.Get("X-Session-Set") != `{"user":"bob"}` {
		t.Errorf("Clear then subject: %v", h)
	}
	s.Clear()
	if _, ok := s.Headers()["X-Session-Subject"]; ok {
		t.Error("a second Clear kept the subject")
	}
	// RemoveSubject before a Clear is dropped too: Clear removes it anyway.
	s = sessionWith(t, `{"user":"alice"}`)
	_ = s.RemoveSubject()
	s.Clear()
	if _, ok := s.Headers()["X-Session-Subject"]; ok {
		t.Error("RemoveSubject then Clear sent X-Session-Subject")
	}
}

func TestOwnerChangesAfterTheResponseStarted(t *testing.T) {
	s := sessionWith(t, `{}`)
	h := http.Header{}
	s.WriteHeaders(h)
	for name, err := range map[string]error{
		"SetSubject":    s.SetSubject("42"),
		"RemoveSubject": s.RemoveSubject(),
		"Revoke":        s.Revoke("others"),
		"RevokeOthers":  s.RevokeOthers(),
		"RevokeAll":     s.RevokeAll(),
		"SetPersist":    s.SetPersist(true),
	} {
		if err != ErrResponseStarted {
			t.Errorf("%s after WriteHeaders: %v, want ErrResponseStarted", name, err)
		}
	}
	if len(h) != 0 || len(s.Headers()) != 0 {
		t.Errorf("headers %v, %v", h, s.Headers())
	}
}

func TestOwnerHeadersFollowSessionName(t *testing.T) {
	h := http.Header{"X-Alt-Session-Id": {"abc"}, "X-Alt-Session-Data": {`{}`}}
	s, err := Read(h, "alt_session")
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetSubject("42")
	_ = s.RevokeOthers()
	_ = s.SetPersist(false)
	want := http.Header{
		"X-Alt-Session-Subject": {"42"},
		"X-Alt-Session-Revoke":  {"others"},
		"X-Alt-Session-Persist": {"false"},
	}
	if got := s.Headers(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alt_session\n got %v\nwant %v", got, want)
	}
}
