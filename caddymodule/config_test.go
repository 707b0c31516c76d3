package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/memorystore"
)

// unmarshalHandler decodes a handler's JSON config, as Caddy does.
func unmarshalHandler(t *testing.T, js string) *Handler {
	t.Helper()
	h := new(Handler)
	if err := json.Unmarshal([]byte(js), h); err != nil {
		t.Fatalf("unmarshaling %s: %v", js, err)
	}
	return h
}

// provision provisions h in a context of its own, released at the end of
// the test.
func provision(t *testing.T, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return h.Provision(ctx)
}

// mustProvision provisions h and fails the test if that fails.
func mustProvision(t *testing.T, h *Handler) *Handler {
	t.Helper()
	if err := provision(t, h); err != nil {
		t.Fatalf("provisioning %+v: %v", h, err)
	}
	return h
}

func TestCheckConfigJSON(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string // all in the error text; nil for no error
	}{
		{"empty", `{}`, nil},
		{"expiry as a number is nanoseconds", `{"expiry": 3600}`, []string{"expiry", "nanoseconds", `"3600s"`}},
		{"expiry 1 ns", `{"expiry": 1}`, []string{"expiry", `"1s"`}},
		{"expiry 999999999 ns", `{"expiry": 999999999}`, []string{"expiry", "under one second"}},
		{"expiry 3600s", `{"expiry": "3600s"}`, nil},
		{"expiry 500ms has no nanoseconds hint", `{"expiry": "500ms"}`, []string{"expiry", "under one second", "smallest expiry is 1s"}},
		{"expiry 1h", `{"expiry": "1h"}`, nil},
		{"expiry 30d", `{"expiry": "30d"}`, nil},
		{"expiry 1s", `{"expiry": "1s"}`, nil},
		{"expiry 0", `{"expiry": 0}`, nil},
		{"expiry 0s", `{"expiry": "0s"}`, nil},
		{"expiry in nanoseconds", `{"expiry": 3600000000000}`, nil},
		{"expiry negative string", `{"expiry": "-1s"}`, []string{"expiry", "negative", "-1s"}},
		{"expiry negative number", `{"expiry": -3600000000000}`, []string{"expiry", "negative", "-1h0m0s"}},
		{"expiry negative tiny", `{"expiry": -1}`, []string{"expiry", "negative"}},
		{"expiry 1500ms", `{"expiry": "1500ms"}`, []string{"expiry", "whole number of seconds", "1.5s"}},
		{"expiry 1h0m0.5s", `{"expiry": "1h0m0.5s"}`, []string{"expiry", "whole number of seconds"}},
		{"expiry 500ms", `{"expiry": "500ms"}`, []string{"expiry", "under one second"}},

		{"samesite strict", `{"samesite": "strict"}`, nil},
		{"samesite Lax", `{"samesite": "Lax"}`, nil},
		{"samesite bad", `{"samesite": "sometimes"}`, []string{"samesite", `"sometimes"`}},
		{"samesite none secure default", `{"samesite": "none"}`, []string{"samesite none", "secure always"}},
		{"samesite none secure auto", `{"samesite": "none", "secure": "auto"}`, []string{"samesite none", "secure always"}},
		{"samesite none secure never", `{"samesite": "None", "secure": "never"}`, []string{"samesite none", "secure always"}},
		{"samesite none secure always", `{"samesite": "none", "secure": "always"}`, nil},
		{"samesite NONE secure ALWAYS", `{"samesite": "NONE", "secure": "ALWAYS"}`, nil},
		{"samesite none __Secure- cookie", `{"samesite": "none", "cookie_name": "__Secure-s"}`, nil},
		{"samesite none __Host- cookie secure auto", `{"samesite": "none", "secure": "auto", "cookie_name": "__Host-s"}`, nil},

		{"secure always", `{"secure": "always"}`, nil},
		{"secure never", `{"secure": "never"}`, nil},
		{"secure Auto", `{"secure": "Auto"}`, nil},
		{"secure bad", `{"secure": "sometimes"}`, []string{"secure", `"sometimes"`}},
		{"secure true", `{"secure": "true"}`, []string{"secure", `"true"`}},

		{"__Secure- secure default", `{"cookie_name": "__Secure-s"}`, nil},
		{"__Secure- secure auto", `{"cookie_name": "__Secure-s", "secure": "auto"}`, nil},
		{"__Secure- secure never", `{"cookie_name": "__Secure-s", "secure": "never"}`, []string{"secure never", `"__Secure-s"`}},
		{"__Secure- secure NEVER", `{"cookie_name": "__Secure-s", "secure": "NEVER"}`, []string{"secure never", `"__Secure-s"`}},
		{"__Host- plain", `{"cookie_name": "__Host-s"}`, nil},
		{"__Host- path /", `{"cookie_name": "__Host-s", "path": "/"}`, nil},
		{"__Host- path /x", `{"cookie_name": "__Host-s", "path": "/x"}`, []string{"path", `"/x"`, "__Host-"}},
		{"__Host- domain", `{"cookie_name": "__Host-s", "domain": "example.com"}`, []string{"domain", "__Host-"}},
		{"__Host- secure never", `{"cookie_name": "__Host-s", "secure": "never"}`, []string{"secure never", `"__Host-s"`}},

		{"cookie_name bad", `{"cookie_name": "a b"}`, []string{"cookie_name", `"a b"`}},
		{"cookie_name semicolon", `{"cookie_name": "a;b"}`, []string{"cookie_name", `"a;b"`}},
		{"path relative", `{"path": "app"}`, []string{"path", `"app"`, "must start with /"}},
		{"path bad byte", `{"path": "/a;b"}`, []string{"path", `"/a;b"`}},
		{"domain", `{"domain": "example.com"}`, nil},
		{"domain leading dot", `{"domain": ".example.com"}`, nil},
		{"domain bad", `{"domain": "bad domain"}`, []string{"domain", `"bad domain"`}},

		{"session_name alt_session", `{"session_name": "alt_session"}`, nil},
		{"session_name alt-session2", `{"session_name": "alt-session2"}`, nil},
		{"session_name S", `{"session_name": "S"}`, nil},
		{"session_name space", `{"session_name": "bad name!"}`, []string{"session_name", `"bad name!"`}},
		{"session_name digit first", `{"session_name": "1abc"}`, []string{"session_name", `"1abc"`}},
		{"session_name underscore first", `{"session_name": "_a"}`, []string{"session_name", `"_a"`}},
		{"session_name double separator", `{"session_name": "a_-b"}`, []string{"session_name", `"a_-b"`}},
		{"session_name trailing underscore", `{"session_name": "a_"}`, []string{"session_name", `"a_"`}},
		{"session_name dot", `{"session_name": "a.b"}`, []string{"session_name", `"a.b"`}},
		{"session_name non-ASCII", `{"session_name": "sé"}`, []string{"session_name"}},

		{"prefix empty", `{"prefix": ""}`, nil},
		{"prefix", `{"prefix": "app:session:"}`, nil},
		{"prefix LF", `{"prefix": "a\nb"}`, []string{"prefix"}},
		{"prefix CR", `{"prefix": "a\rb"}`, []string{"prefix"}},
		{"prefix NUL", `{"prefix": "a\u0000b"}`, []string{"prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := unmarshalHandler(t, tt.json)
			before := *h
			err := h.checkConfig()
			if !reflect.DeepEqual(*h, before) {
				t.Errorf("checkConfig changed the handler: %+v, was %+v", *h, before)
			}
			if verr := h.Validate(); (verr == nil) != (err == nil) || verr != nil && verr.Error() != err.Error() {
				t.Errorf("Validate() = %v, checkConfig() = %v", verr, err)
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("%s: unexpected error %v", tt.json, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s: no error, want one containing %q", tt.json, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %q does not contain %q", tt.json, err, w)
				}
			}
		})
	}
}

// TestCheckExpiry judges durations as Caddy decodes them.
func TestCheckExpiry(t *testing.T) {
	tests := []struct {
		d      time.Duration
		wantOK bool
	}{
		{0, true},
		{time.Second, true},
		{time.Hour, true},
		{DefaultExpiry, true},
		{PermanentCookieAge, true},
		{time.Duration(1<<63-1) / time.Second * time.Second, true},
		{1, false},
		{time.Second - 1, false},
		{time.Second + 1, false},
		{1500 * time.Millisecond, false},
		{-time.Second, false},
		{-1, false},
	}
	for _, tt := range tests {
		if err := checkExpiry("expiry", tt.d); (err == nil) != tt.wantOK {
			t.Errorf("checkExpiry(%v) = %v, want ok %v", tt.d, err, tt.wantOK)
		}
	}
}

func TestEffectiveSecure(t *testing.T) {
	tests := []struct {
		cookieName, secure string
		want               secureMode
	}{
		{"", "", secureAuto},
		{"session", "", secureAuto},
		{"session", "auto", secureAuto},
		{"session", "always", secureAlways},
		{"session", "Always", secureAlways},
		{"session", "never", secureNever},
		{"session", "NEVER", secureNever},
		{"__Secure-s", "", secureAlways},
		{"__Secure-s", "auto", secureAlways},
		{"__Secure-s", "always", secureAlways},
		{"__Host-s", "", secureAlways},
		{"__Host-s", "auto", secureAlways},
		{"__secure-s", "", secureAlways}, // prefixes match in any case (RFC 6265bis)
		{"__HOST-s", "", secureAlways},
		{"x__Secure-s", "", secureAuto},
	}
	for _, tt := range tests {
		h := &Handler{CookieName: tt.cookieName, Secure: tt.secure}
		if got := h.effectiveSecure(); got != tt.want {
			t.Errorf("cookie_name %q secure %q: effectiveSecure() = %q, want %q", tt.cookieName, tt.secure, got, tt.want)
		}
	}
}

func TestParseSameSite(t *testing.T) {
	tests := []struct {
		in   string
		want http.SameSite
	}{
		{"", http.SameSiteDefaultMode},
		{"strict", http.SameSiteStrictMode},
		{"Strict", http.SameSiteStrictMode},
		{"lax", http.SameSiteLaxMode},
		{"LAX", http.SameSiteLaxMode},
		{"none", http.SameSiteNoneMode},
		{"None", http.SameSiteNoneMode},
		{"other", http.SameSiteDefaultMode},
	}
	for _, tt := range tests {
		if got := parseSameSite(tt.in); got != tt.want {
			t.Errorf("parseSameSite(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestEffectivePrefixAndExpiry(t *testing.T) {
	empty, app := "", "app:"
	zero, hour := caddy.Duration(0), caddy.Duration(time.Hour)
	tests := []struct {
		name       string
		h          Handler
		wantPrefix string
		wantExpiry time.Duration
	}{
		{"defaults", Handler{}, "session:", 30 * 24 * time.Hour},
		{"set", Handler{Prefix: &app, Expiry: &hour}, "app:", time.Hour},
		{"empty prefix, zero expiry", Handler{Prefix: &empty, Expiry: &zero}, "", 0},
	}
	for _, tt := range tests {
		if got := tt.h.effectivePrefix(); got != tt.wantPrefix {
			t.Errorf("%s: effectivePrefix() = %q, want %q", tt.name, got, tt.wantPrefix)
		}
		if got := tt.h.effectiveExpiry(); got != tt.wantExpiry {
			t.Errorf("%s: effectiveExpiry() = %v, want %v", tt.name, got, tt.wantExpiry)
		}
	}
}

// provisioned is what Provision makes of a configuration.
type provisioned struct {
	CookieName, Path, SessionName string
	prefix                        string
	expiry, cookieAge, renewAfter time.Duration
	httpOnly                      bool
	secure                        secureMode
	sameSite                      http.SameSite
	idHeader                      string
}

func provisionedOf(h *Handler) provisioned {
	return provisioned{
		CookieName: h.CookieName, Path: h.Path, SessionName: h.SessionName,
		prefix: h.prefix, expiry: h.expiry, cookieAge: h.cookieAge, renewAfter: sessionstore.RenewInterval(h.expiry),
		httpOnly: h.httpOnly, secure: h.secure, sameSite: h.sameSite, idHeader: h.names.idHeader,
	}
}

func TestProvision(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name      string
		json      string
		want      provisioned
		storeName string
	}{
		{"defaults", `{}`, provisioned{
			CookieName: "session", Path: "/", SessionName: "session", prefix: "session:",
			expiry: 30 * day, cookieAge: 30 * day, renewAfter: 3 * day,
			httpOnly: true, secure: secureAuto, sameSite: http.SameSiteDefaultMode, idHeader: "X-Session-Id",
		}, ""},
		{"permanent", `{"expiry": 0}`, provisioned{
			CookieName: "session", Path: "/", SessionName: "session", prefix: "session:",
			expiry: 0, cookieAge: 400 * day, renewAfter: 40 * day,
			httpOnly: true, secure: secureAuto, sameSite: http.SameSiteDefaultMode, idHeader: "X-Session-Id",
		}, ""},
		{"all set", `{"cookie_name": "myapp", "path": "/app", "expiry": "1h", "httponly": false,
			"samesite": "Lax", "secure": "NEVER", "prefix": "", "session_name": "alt_session"}`, provisioned{
			CookieName: "myapp", Path: "/app", SessionName: "alt_session", prefix: "",
			expiry: time.Hour, cookieAge: time.Hour, renewAfter: 6 * time.Minute,
			httpOnly: false, secure: secureNever, sameSite: http.SameSiteLaxMode, idHeader: "X-Alt-Session-Id",
		}, ""},
		{"httponly true, samesite none", `{"httponly": true, "samesite": "none", "secure": "always"}`, provisioned{
			CookieName: "session", Path: "/", SessionName: "session", prefix: "session:",
			expiry: 30 * day, cookieAge: 30 * day, renewAfter: 3 * day,
			httpOnly: true, secure: secureAlways, sameSite: http.SameSiteNoneMode, idHeader: "X-Session-Id",
		}, ""},
		{"__Host- forces secure", `{"cookie_name": "__Host-s", "secure": "auto", "samesite": "strict"}`, provisioned{
			CookieName: "__Host-s", Path: "/", SessionName: "session", prefix: "session:",
			expiry: 30 * day, cookieAge: 30 * day, renewAfter: 3 * day,
			httpOnly: true, secure: secureAlways, sameSite: http.SameSiteStrictMode, idHeader: "X-Session-Id",
		}, ""},
		{"memory store with options", `{"store": {"backend": "memory", "name": "config_test", "max_sessions": 5}}`, provisioned{
			CookieName: "session", Path: "/", SessionName: "session", prefix: "session:",
			expiry: 30 * day, cookieAge: 30 * day, renewAfter: 3 * day,
			httpOnly: true, secure: secureAuto, sameSite: http.SameSiteDefaultMode, idHeader: "X-Session-Id",
		}, "config_test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustProvision(t, unmarshalHandler(t, tt.json))
			if got := provisionedOf(h); got != tt.want {
				t.Errorf("provisioned\n got %+v\nwant %+v", got, tt.want)
			}
			wantStore := tt.storeName
			if wantStore == "" {
				wantStore = "default"
			}
			if ms, ok := h.store.(*memorystore.MemoryStore); !ok {
				t.Errorf("store is %T, want *memorystore.MemoryStore", h.store)
			} else if ms.Name != wantStore || tt.storeName != "" && ms.MaxSessions != 5 {
				t.Errorf("memory store %q with max_sessions %d, want %q", ms.Name, ms.MaxSessions, wantStore)
			}
			if h.logger == nil {
				t.Error("no logger")
			}
			if err := h.Validate(); err != nil {
				t.Errorf("Validate after Provision: %v", err)
			}
		})
	}
}

// TestProvisionDefaultsStructLiteral provisions a Handler{} built in Go.
func TestProvisionDefaultsStructLiteral(t *testing.T) {
	h := mustProvision(t, &Handler{})
	want := provisioned{
		CookieName: DefaultCookieName, Path: DefaultPath, SessionName: DefaultSessionName, prefix: DefaultPrefix,
		expiry: DefaultExpiry, cookieAge: DefaultExpiry, renewAfter: DefaultExpiry / sessionstore.RenewFraction,
		httpOnly: true, secure: secureAuto, sameSite: http.SameSiteDefaultMode, idHeader: "X-Session-Id",
	}
	if got := provisionedOf(h); got != want {
		t.Errorf("provisioned\n got %+v\nwant %+v", got, want)
	}
	if h.store == nil {
		t.Error("no store")
	}
}

func TestProvisionErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"bad samesite", `{"samesite": "other"}`, []string{"samesite", `"other"`}},
		{"expiry in nanoseconds", `{"expiry": 60}`, []string{"expiry", `"60s"`}},
		{"unknown store", `{"store": {"backend": "bogus"}}`, []string{"loading store", "bogus"}},
		{"bad store option", `{"store": {"backend": "memory", "max_sessions": -1}}`, []string{"loading store", "max_sessions"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := unmarshalHandler(t, tt.json)
			err := provision(t, h)
			if err == nil {
				t.Fatalf("%s: Provision gave no error", tt.json)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if h.store != nil {
				t.Errorf("store set despite the error: %T", h.store)
			}
		})
	}
}
