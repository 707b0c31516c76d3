package caddymodule

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var uuid4Hex = regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 32 || !uuid4Hex.MatchString(id) {
			t.Fatalf("newID() = %q, want a UUID v4 as 32 lowercase hex characters", id)
		}
		if !validID(id) {
			t.Fatalf("validID(newID()) is false for %q", id)
		}
		if seen[id] {
			t.Fatalf("newID() gave %q twice", id)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"0123456789abcdef0123456789abcdef", true},
		{"00000000000000000000000000000000", true},
		{"ffffffffffffffffffffffffffffffff", true},
		{"", false},
		{"0123456789abcdef0123456789abcde", false},   // 31
		{"0123456789abcdef0123456789abcdef0", false}, // 33
		{"0123456789ABCDEF0123456789ABCDEF", false},  // uppercase
		{"0123456789abcdef0123456789abcdeF", false},
		{"0123456789abcdef0123456789abcdeg", false},
		{"01234567-89ab-cdef-0123-456789ab", false}, // dashes, 32 long
		{"0123456789abcdef0123456789abcd f", false},
		{"0123456789abcdef0123456789abcd\x00f", false},
		{"\"0123456789abcdef0123456789abcd\"", false},
		{"0123456789abcdef0123456789abcdé", false}, // 32 bytes, not ASCII
	}
	for _, tt := range tests {
		if got := validID(tt.in); got != tt.want {
			t.Errorf("validID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

const (
	id1 = "0123456789abcdef0123456789abcdef"
	id2 = "fedcba9876543210fedcba9876543210"
)

// firstClientID is what a request's session cookies give when only the
// first well-formed ID counts: that ID, why a refused value was refused,
// and whether any cookie of the name was sent.
func firstClientID(h *Handler, hdr http.Header) (id, rejected string, present bool) {
	var c clientCookies
	h.readClientIDs(hdr, &c)
	if c.n > 0 {
		id = c.ids[0]
	}
	return id, c.rejected, c.sent > 0
}

func TestReadSessionCookie(t *testing.T) {
	tests := []struct {
		name        string
		lines       []string // Cookie header lines; nil for none
		cookie      string   // the session cookie's name; "" for "session"
		wantID      string
		wantPresent bool
	}{
		{"no header", nil, "", "", false},
		{"empty line", []string{""}, "", "", false},
		{"only cookie", []string{"session=" + id1}, "", id1, true},
		{"among others", []string{"a=1; session=" + id1 + "; b=2"}, "", id1, true},
		{"no spaces", []string{"a=1;session=" + id1 + ";b=2"}, "", id1, true},
		{"many spaces", []string{"a=1;   session=" + id1 + "   ;b=2"}, "", id1, true},
		{"tab", []string{"a=1;\tsession=" + id1}, "", id1, true},
		{"second line", []string{"a=1; b=2", "c=3; session=" + id1}, "", id1, true},
		{"quoted", []string{`session="` + id1 + `"`}, "", id1, true},
		{"quoted among others", []string{`a=1; session="` + id1 + `"; b=2`}, "", id1, true},
		{"first of two", []string{"session=" + id1 + "; session=" + id2}, "", id1, true},
		{"first well-formed of several", []string{"session=bad; session=" + id2 + "; session=" + id1}, "", id2, true},
		{"first well-formed across lines", []string{"session=bad", "a=1; session=" + id2}, "", id2, true},
		{"malformed", []string{"session=bad"}, "", "", true},
		{"empty value", []string{"a=1; session=; b=2"}, "", "", true},
		{"empty quoted value", []string{`session=""`}, "", "", true},
		{"lone quote", []string{`session="`}, "", "", true},
		{"half quoted", []string{`session="` + id1}, "", "", true},
		{"uppercase ID", []string{"session=" + strings.ToUpper(id1)}, "", "", true},
		{"ID with suffix", []string{"session=" + id1 + "0"}, "", "", true},
		{"name alone", []string{"session"}, "", "", false},
		{"name with other case", []string{"Session=" + id1}, "", "", false},
		{"prefixed name", []string{"xsession=" + id1}, "", "", false},
		{"suffixed name", []string{"session2=" + id1 + "; sessionx=" + id2}, "", "", false},
		{"prefixed then real", []string{"xsession=" + id2 + "; session=" + id1}, "", id1, true},
		{"name as a value", []string{"a=session=" + id1}, "", "", false},
		{"other cookie name", []string{"session=" + id2 + "; myapp=" + id1}, "myapp", id1, true},
		{"__Host- name", []string{"session=" + id2 + "; __Host-s=" + id1}, "__Host-s", id1, true},
		{"trailing semicolon", []string{"session=" + id1 + ";"}, "", id1, true},
		{"empty parts", []string{";; ;session=" + id1 + ";;"}, "", id1, true},
		{"space before =", []string{"session =" + id1}, "", id1, true},
		{"spaces around =", []string{"a=1; session = " + id1 + " ; b=2"}, "", id1, true},
		{"tab before =", []string{"session\t=" + id1}, "", id1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.cookie
			if name == "" {
				name = "session"
			}
			h := http.Header{}
			if tt.lines != nil {
				h["Cookie"] = append([]string(nil), tt.lines...)
			}
			id, _, present := firstClientID(&Handler{CookieName: name}, h)
			if id != tt.wantID || present != tt.wantPresent {
				t.Errorf("readClientID(%q, %q) = %q, %v; want %q, %v", tt.lines, name, id, present, tt.wantID, tt.wantPresent)
			}
			if !reflect.DeepEqual(h["Cookie"], tt.lines) {
				t.Errorf("readClientID changed the header to %q", h["Cookie"])
			}
		})
	}
}

// TestReadClientIDs: every well-formed ID is kept, in order, distinct, up to
// maxCookieLookups, and every cookie of the name is counted.
func TestReadClientIDs(t *testing.T) {
	id3, id4, id5 := strings.Repeat("3", 32), strings.Repeat("4", 32), strings.Repeat("5", 32)
	tests := []struct {
		name     string
		lines    []string
		wantIDs  []string
		wantSent int
		rejected string
	}{
		{"none", nil, nil, 0, ""},
		{"one", []string{"session=" + id1}, []string{id1}, 1, ""},
		{"two in order", []string{"session=" + id2 + "; session=" + id1}, []string{id2, id1}, 2, ""},
		{"malformed ones counted, not kept", []string{"session=x; session=" + id1 + "; session=y"}, []string{id1}, 3, ""},
		{"only malformed", []string{"session=x; session=y"}, nil, 2, rejectedMalformed},
		{"duplicates once", []string{"session=" + id1 + "; session=" + id1, "session=" + id2}, []string{id1, id2}, 3, ""},
		{"bounded", []string{"session=" + id1 + "; session=" + id2 + "; session=" + id3 + "; session=" + id4 + "; session=" + id5},
			[]string{id1, id2, id3, id4}, 5, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c clientCookies
			(&Handler{CookieName: "session"}).readClientIDs(http.Header{"Cookie": tt.lines}, &c)
			if got := c.ids[:c.n]; !reflect.DeepEqual(append([]string(nil), got...), tt.wantIDs) || c.sent != tt.wantSent || c.rejected != tt.rejected {
				t.Errorf("readClientIDs(%q) = %q, sent %d, rejected %q; want %q, %d, %q", tt.lines, got, c.sent, c.rejected, tt.wantIDs, tt.wantSent, tt.rejected)
			}
		})
	}
}

func TestRemoveSessionCookie(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string // nil: the Cookie header is gone
	}{
		{"no header", nil, nil},
		{"only cookie", []string{"session=" + id1}, nil},
		{"first", []string{"session=" + id1 + "; a=1; b=2"}, []string{"a=1; b=2"}},
		{"middle", []string{"a=1; session=" + id1 + "; b=2"}, []string{"a=1; b=2"}},
		{"last", []string{"a=1; b=2; session=" + id1}, []string{"a=1; b=2"}},
		{"no spaces", []string{"a=1;session=x;b=2"}, []string{"a=1; b=2"}},
		{"several", []string{"session=x; a=1; session=" + id1 + "; b=2; session=y"}, []string{"a=1; b=2"}},
		{"several lines, order kept", []string{"c=3; session=x", "session=" + id1, "a=1; session=y; b=2"}, []string{"c=3", "a=1; b=2"}},
		{"all lines emptied", []string{"session=x", "session=" + id1}, nil},
		{"malformed values", []string{`session=""; session="` + id1 + `"; a=1`}, []string{"a=1"}},
		{"name alone", []string{"a=1; session"}, []string{"a=1"}},
		{"similar names stay", []string{"xsession=1; session=2; session2=3; Session=4"}, []string{"xsession=1; session2=3; Session=4"}},
		{"other values stay as they were", []string{`a="q"; b=x=y; session=z; c=`}, []string{`a="q"; b=x=y; c=`}},
		{"no session cookie", []string{"a=1; b=2", "c=3"}, []string{"a=1; b=2", "c=3"}},
		{"empty parts dropped", []string{";a=1;; ;b=2;"}, []string{"a=1; b=2"}},
		{"space before =", []string{"a=1; session =" + id1 + "; b=2"}, []string{"a=1; b=2"}},
		{"spaces around =", []string{"session = " + id1 + "; b=2"}, []string{"b=2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Accept": {"*/*"}, "X-Other": {"1", "2"}}
			if tt.lines != nil {
				h["Cookie"] = append([]string(nil), tt.lines...)
			}
			var orig []string
			if tt.lines != nil {
				orig = h["Cookie"][:len(tt.lines):len(tt.lines)]
			}
			removeSessionCookie(h, "session")
			got, ok := h["Cookie"]
			if tt.want == nil {
				if ok {
					t.Errorf("Cookie header is %q, want it deleted", got)
				}
			} else if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Cookie header %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(orig, tt.lines) {
				t.Errorf("the original slice was overwritten: %q, was %q", orig, tt.lines)
			}
			if !reflect.DeepEqual(h["Accept"], []string{"*/*"}) || !reflect.DeepEqual(h["X-Other"], []string{"1", "2"}) {
				t.Errorf("other headers changed: %v", h)
			}
			if id, _, present := firstClientID(&Handler{CookieName: "session"}, h); id != "" || present {
				t.Errorf("after removal readClientID = %q, %v", id, present)
			}
		})
	}
}

// TestCookies checks the Set-Cookie values of the session cookie and of the
// cookie that deletes it.
func TestCookies(t *testing.T) {
	const (
		id     = id1
		expire = "Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0"
	)
	// now is in a zone ahead of UTC: Expires must still be written in GMT.
	now := time.Date(2030, time.January, 31, 23, 30, 0, 0, time.FixedZone("UTC+2", 2*3600))
	const (
		in30Days  = "Expires=Sat, 02 Mar 2030 21:30:00 GMT; Max-Age=2592000"
		in400Days = "Expires=Fri, 07 Mar 2031 21:30:00 GMT; Max-Age=34560000"
		in1Hour   = "Expires=Thu, 31 Jan 2030 22:30:00 GMT; Max-Age=3600"
	)
	tests := []struct {
		name    string
		json    string
		tls     bool
		want    string // the session cookie
		wantDel string // the deletion cookie
	}{
		{"defaults over HTTP", `{}`, false,
			"session=" + id + "; Path=/; " + in30Days + "; HttpOnly",
			"session=; Path=/; " + expire + "; HttpOnly"},
		{"defaults over TLS", `{}`, true,
			"session=" + id + "; Path=/; " + in30Days + "; HttpOnly; Secure",
			"session=; Path=/; " + expire + "; HttpOnly; Secure"},
		{"secure auto over TLS", `{"secure": "auto"}`, true,
			"session=" + id + "; Path=/; " + in30Days + "; HttpOnly; Secure",
			"session=; Path=/; " + expire + "; HttpOnly; Secure"},
		{"secure never over TLS", `{"secure": "never"}`, true,
			"session=" + id + "; Path=/; " + in30Days + "; HttpOnly",
			"session=; Path=/; " + expire + "; HttpOnly"},
		{"secure always over HTTP", `{"secure": "always"}`, false,
			"session=" + id + "; Path=/; " + in30Days + "; HttpOnly; Secure",
			"session=; Path=/; " + expire + "; HttpOnly; Secure"},
		{"__Secure- over HTTP", `{"cookie_name": "__Secure-s"}`, false,
			"__Secure-s=" + id + "; Path=/; " + in30Days + "; HttpOnly; Secure",
			"__Secure-s=; Path=/; " + expire + "; HttpOnly; Secure"},
		{"__Host- over HTTP", `{"cookie_name": "__Host-s", "secure": "auto"}`, false,
			"__Host-s=" + id + "; Path=/; " + in30Days + "; HttpOnly; Secure",
			"__Host-s=; Path=/; " + expire + "; HttpOnly; Secure"},
		{"samesite strict", `{"samesite": "strict"}`, false,
			"session=" + id + "; Path=/; " + in30Days + "; HttpOnly; SameSite=Strict",
			"session=; Path=/; " + expire + "; HttpOnly; SameSite=Strict"},
		{"samesite LAX", `{"samesite": "LAX"}`, false,
			"session=" + id + "; Path=/; " + in30Days + "; HttpOnly; SameSite=Lax",
			"session=; Path=/; " + expire + "; HttpOnly; SameSite=Lax"},
		{"samesite none", `{"samesite": "none", "secure": "always"}`, false,
			"session=" + id + "; Path=/; " + in30Days + "; HttpOnly; Secure; SameSite=None",
			"session=; Path=/; " + expire + "; HttpOnly; Secure; SameSite=None"},
		{"domain", `{"domain": "example.com"}`, false,
			"session=" + id + "; Path=/; Domain=example.com; " + in30Days + "; HttpOnly",
			"session=; Path=/; Domain=example.com; " + expire + "; HttpOnly"},
		{"path", `{"path": "/app"}`, false,
			"session=" + id + "; Path=/app; " + in30Days + "; HttpOnly",
			"session=; Path=/app; " + expire + "; HttpOnly"},
		{"httponly false", `{"httponly": false}`, false,
			"session=" + id + "; Path=/; " + in30Days,
			"session=; Path=/; " + expire},
		{"sessioncookie", `{"sessioncookie": true}`, false,
			"session=" + id + "; Path=/; HttpOnly",
			"session=; Path=/; " + expire + "; HttpOnly"},
		{"permanent", `{"expiry": 0}`, false,
			"session=" + id + "; Path=/; " + in400Days + "; HttpOnly",
			"session=; Path=/; " + expire + "; HttpOnly"},
		{"permanent sessioncookie", `{"expiry": 0, "sessioncookie": true}`, false,
			"session=" + id + "; Path=/; HttpOnly",
			"session=; Path=/; " + expire + "; HttpOnly"},
		{"expiry 1h", `{"expiry": "1h"}`, false,
			"session=" + id + "; Path=/; " + in1Hour + "; HttpOnly",
			"session=; Path=/; " + expire + "; HttpOnly"},
		{"everything", `{"cookie_name": "myapp", "domain": "example.com", "path": "/app", "expiry": "1h",
			"httponly": false, "samesite": "lax", "secure": "always"}`, false,
			"myapp=" + id + "; Path=/app; Domain=example.com; " + in1Hour + "; Secure; SameSite=Lax",
			"myapp=; Path=/app; Domain=example.com; " + expire + "; Secure; SameSite=Lax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustProvision(t, unmarshalHandler(t, tt.json))
			r := httptest.NewRequest(http.MethodGet, "http://example.com/app/x", nil)
			if tt.tls {
				r = httptest.NewRequest(http.MethodGet, "https://example.com/app/x", nil)
				r.TLS = &tls.ConnectionState{}
			} else {
				r.TLS = nil
			}
			sc := h.sessionCookie(r, id, h.cookieAge, !h.SessionCookie, now)
			dc := h.deletionCookie(r)
			if got := sc; got != tt.want {
				t.Errorf("session cookie\n got %s\nwant %s", got, tt.want)
			}
			if got := dc; got != tt.wantDel {
				t.Errorf("deletion cookie\n got %s\nwant %s", got, tt.wantDel)
			}

			// A browser matches the deletion cookie to the session
			// cookie by these: read back, they must be the same.
			s, err := http.ParseSetCookie(sc)
			if err != nil {
				t.Fatal(err)
			}
			d, err := http.ParseSetCookie(dc)
			if err != nil {
				t.Fatal(err)
			}
			type match struct {
				Name, Domain, Path string
				Secure, HttpOnly   bool
				SameSite           http.SameSite
			}
			sm := match{s.Name, s.Domain, s.Path, s.Secure, s.HttpOnly, s.SameSite}
			dm := match{d.Name, d.Domain, d.Path, d.Secure, d.HttpOnly, d.SameSite}
			if sm != dm {
				t.Errorf("deletion cookie %+v does not match session cookie %+v", dm, sm)
			}
			if d.Value != "" || d.MaxAge != -1 || !d.Expires.Equal(time.Unix(0, 0)) {
				t.Errorf("deletion cookie reads back as value %q, MaxAge %d, Expires %v", d.Value, d.MaxAge, d.Expires)
			}
		})
	}
}

// TestSessionCookieNow: Expires follows the time given, and Max-Age the
// expiry alone.
func TestSessionCookieNow(t *testing.T) {
	h := mustProvision(t, unmarshalHandler(t, `{"expiry": "1h"}`))
	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	for _, now := range []time.Time{
		time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2031, 6, 15, 12, 0, 0, 0, time.FixedZone("UTC-7", -7*3600)),
	} {
		c, err := http.ParseSetCookie(h.sessionCookie(r, id1, h.cookieAge, !h.SessionCookie, now))
		if err != nil {
			t.Fatal(err)
		}
		if !c.Expires.Equal(now.Add(time.Hour)) || c.Expires.Location() != time.UTC {
			t.Errorf("now %v: Expires %v, want %v in UTC", now, c.Expires, now.Add(time.Hour))
		}
		if c.MaxAge != 3600 {
			t.Errorf("now %v: MaxAge %d, want 3600", now, c.MaxAge)
		}
	}
}

// TestSessionCookieMatchesNetHTTP holds the precomputed Set-Cookie values
// to what net/http writes for the same cookie, across settings, request
// schemes, signing and lifetimes (sub-second ones round up to Max-Age=1).
func TestSessionCookieMatchesNetHTTP(t *testing.T) {
	now := time.Date(2031, 6, 15, 12, 0, 0, 0, time.FixedZone("UTC-7", -7*3600))
	for _, cfg := range []string{
		`{}`,
		`{"sessioncookie": true}`,
		`{"cookie_name": "__Host-s"}`,
		`{"cookie_name": "myapp", "domain": ".example.com", "path": "/app", "httponly": false, "samesite": "strict"}`,
		`{"samesite": "none", "secure": "always", "secrets": ["0123456789abcdef0123456789abcdef"]}`,
		`{"secure": "never", "samesite": "lax", "secrets": ["0123456789abcdef0123456789abcdef"]}`,
	} {
		h := mustProvision(t, unmarshalHandler(t, cfg))
		for _, scheme := range []string{"http", "https"} {
			r := httptest.NewRequest(http.MethodGet, scheme+"://example.com/app/x", nil)
			if scheme == "http" {
				r.TLS = nil
			}
			for _, age := range []time.Duration{time.Millisecond, 1500 * time.Millisecond, time.Hour, 400 * 24 * time.Hour} {
				want := &http.Cookie{
					Name: h.CookieName, Value: id1, Path: h.Path, Domain: h.Domain,
					HttpOnly: h.httpOnly, SameSite: h.sameSite,
					Secure: h.secure == secureAlways || h.secure == secureAuto && r.TLS != nil,
				}
				if h.signer != nil {
					want.Value = h.signer.cookieValue(id1)
				}
				if !h.SessionCookie {
					want.MaxAge = max(int(age/time.Second), 1)
					want.Expires = now.Add(age).UTC()
				}
				if got := h.sessionCookie(r, id1, age, !h.SessionCookie, now); got != want.String() {
					t.Errorf("%s over %s, age %v:\n got %s\nwant %s", cfg, scheme, age, got, want.String())
				}
				want.Value, want.MaxAge, want.Expires = "", -1, time.Unix(0, 0).UTC()
				if got := h.deletionCookie(r); got != want.String() {
					t.Errorf("%s over %s: deletion cookie\n got %s\nwant %s", cfg, scheme, got, want.String())
				}
			}
		}
	}
}
