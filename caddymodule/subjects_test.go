package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// provisionedForTest is a handler provisioned on the memory store.
func provisionedForTest(t *testing.T, h *Handler) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

func TestSubjectInstructions(t *testing.T) {
	h := provisionedForTest(t, &Handler{SessionName: "subj_test"})
	long := strings.Repeat("a", sessionstore.MaxSubjectLength)
	handle := handleOf("session:0123")
	tests := []struct {
		name    string
		hdr     http.Header
		subject string
		set     bool
		revoke  string
		persist sessionstore.Persist
	}{
		{"none", http.Header{}, "", false, "", 0},
		{"subject", http.Header{"X-Subj-Test-Subject": {"alice@example.com"}}, "alice@example.com", true, "", 0},
		{"subject trimmed", http.Header{"X-Subj-Test-Subject": {"  42 "}}, "42", true, "", 0},
		{"subject with spaces inside", http.Header{"X-Subj-Test-Subject": {"Alice Smith"}}, "Alice Smith", true, "", 0},
		{"subject empty removes", http.Header{"X-Subj-Test-Subject": {""}}, "", true, "", 0},
		{"subject longest", http.Header{"X-Subj-Test-Subject": {long}}, long, true, "", 0},
		{"subject too long", http.Header{"X-Subj-Test-Subject": {long + "a"}}, "", false, "", 0},
		{"subject not ASCII", http.Header{"X-Subj-Test-Subject": {"zo\xc3\xab"}}, "", false, "", 0},
		{"subject control", http.Header{"X-Subj-Test-Subject": {"a\x01b"}}, "", false, "", 0},
		{"subject twice", http.Header{"X-Subj-Test-Subject": {"a", "b"}}, "", false, "", 0},
		{"subject CGI name", http.Header{"X_subj_test_subject": {"bob"}}, "bob", true, "", 0},
		{"revoke others", http.Header{"X-Subj-Test-Revoke": {"others"}}, "", false, revokeOthers, 0},
		{"revoke ALL", http.Header{"X-Subj-Test-Revoke": {"ALL"}}, "", false, revokeAll, 0},
		{"revoke handle", http.Header{"X-Subj-Test-Revoke": {handle}}, "", false, handle, 0},
		{"revoke a session ID", http.Header{"X-Subj-Test-Revoke": {"0123456789abcdef0123456789abcdef"}}, "", false, "", 0},
		{"revoke garbage", http.Header{"X-Subj-Test-Revoke": {"everyone"}}, "", false, "", 0},
		{"revoke twice", http.Header{"X-Subj-Test-Revoke": {"all", "others"}}, "", false, "", 0},
		{"persist true", http.Header{"X-Subj-Test-Persist": {"true"}}, "", false, "", sessionstore.PersistOn},
		{"persist False", http.Header{"X-Subj-Test-Persist": {"False"}}, "", false, "", sessionstore.PersistOff},
		{"persist yes", http.Header{"X-Subj-Test-Persist": {"yes"}}, "", false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := tt.hdr.Clone()
			in := h.takeInstructions(hdr, nil)
			if in.subject != tt.subject || in.setSubject != tt.set || in.revoke != tt.revoke || in.persist != tt.persist {
				t.Errorf("got subject %q set %v, revoke %q, persist %v; want %q %v, %q, %v",
					in.subject, in.setSubject, in.revoke, in.persist, tt.subject, tt.set, tt.revoke, tt.persist)
			}
			if len(hdr) != 0 {
				t.Errorf("headers left for the client: %v", hdr)
			}
		})
	}
}

func TestHandles(t *testing.T) {
	a, b := handleOf("session:"+strings.Repeat("a", 32)), handleOf("session:"+strings.Repeat("b", 32))
	if !validHandle(a) || !validHandle(b) || a == b {
		t.Fatalf("handles %q, %q", a, b)
	}
	if a != handleOf("session:"+strings.Repeat("a", 32)) {
		t.Error("a handle is not stable")
	}
	// Another prefix, another handle: a handle names a session of one
	// handler's.
	if handleOf("other:"+strings.Repeat("a", 32)) == a {
		t.Error("a handle does not depend on the prefix")
	}
	for _, bad := range []string{"", a[:21], a + "x", strings.Repeat("a", 21) + "=", strings.Repeat("a", 21) + "/"} {
		if validHandle(bad) {
			t.Errorf("validHandle(%q) = true", bad)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		name   string
		host   string
		header http.Header
		want   bool
	}{
		{"Sec-Fetch-Site same-origin", "example.com", http.Header{"Sec-Fetch-Site": {"same-origin"}}, true},
		{"Sec-Fetch-Site same-site", "example.com", http.Header{"Sec-Fetch-Site": {"same-site"}}, false},
		{"Sec-Fetch-Site cross-site", "example.com", http.Header{"Sec-Fetch-Site": {"cross-site"}}, false},
		{"Sec-Fetch-Site none", "example.com", http.Header{"Sec-Fetch-Site": {"none"}}, false},
		{"Sec-Fetch-Site wins over Origin", "example.com", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://example.com"}}, false},
		{"Origin same host", "example.com", http.Header{"Origin": {"https://example.com"}}, true},
		{"Origin same host and port", "example.com:8443", http.Header{"Origin": {"https://example.com:8443"}}, true},
		{"Origin other port", "example.com:8443", http.Header{"Origin": {"https://example.com"}}, false},
		{"Origin other host", "example.com", http.Header{"Origin": {"https://evil.example"}}, false},
		{"Origin sibling", "example.com", http.Header{"Origin": {"https://a.example.com"}}, false},
		{"Origin null", "example.com", http.Header{"Origin": {"null"}}, false},
		{"neither", "example.com", http.Header{}, false},
		{"Origin http on a TLS request", "example.com", http.Header{"Origin": {"http://example.com"}}, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodDelete, "https://"+tt.host+"/devices/x", nil) // a TLS request
		r.Header = tt.header
		if got := sameOrigin(r); got != tt.want {
			t.Errorf("%s: sameOrigin = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestShortUserAgent(t *testing.T) {
	tests := []struct{ ua, want string }{
		{"Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0", "Firefox 140 on Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36", "Chrome 141 on Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36 Edg/141.0.3537.57", "Edge 141 on Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/19.0 Safari/605.1.15", "Safari 19 on macOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 19_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/19.0 Mobile/15E148 Safari/604.1", "Safari 19 on iOS"},
		{"Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Mobile Safari/537.36", "Chrome 141 on Android"},
		{"curl/8.14.1", "curl 8"},
		{"", ""},
		{"MyApp/1.0 (custom; device 1234)", "MyApp"},
		{"My\x01App/1.0", "MyApp"},
		{"Lynx 2.9", "Lynx"},
		{strings.Repeat("x", 500), strings.Repeat("x", 32)},
	}
	for _, tt := range tests {
		if got := shortUserAgent(tt.ua); got != tt.want {
			t.Errorf("shortUserAgent(%q) = %q, want %q", tt.ua, got, tt.want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct {
		remote     string
		full, want string
	}{
		{"192.0.2.77:5555", "192.0.2.77", "192.0.2.0/24"},
		{"[2001:db8:1234:5678::9]:443", "2001:db8:1234:5678::9", "2001:db8:1234::/48"},
		{"[::ffff:192.0.2.77]:80", "192.0.2.77", "192.0.2.0/24"},
		{"garbage", "", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tt.remote
		if got := clientAddr(r, true); got != tt.full {
			t.Errorf("clientAddr(%q, full) = %q, want %q", tt.remote, got, tt.full)
		}
		if got := clientAddr(r, false); got != tt.want {
			t.Errorf("clientAddr(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
	// Caddy's client address (after trusted_proxies) is the one used.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "198.51.100.9"})
	if got := clientAddr(r.WithContext(ctx), false); got != "198.51.100.0/24" {
		t.Errorf("with Caddy's client IP: %q", got)
	}
}

// TestSameOriginBehindATLSProxy: a plain HTTP request (TLS ended by a proxy
// in front) accepts the https page's Origin.
func TestSameOriginBehindATLSProxy(t *testing.T) {
	r := httptest.NewRequest(http.MethodDelete, "http://example.com/devices/x", nil)
	r.Header.Set("Origin", "https://example.com")
	if !sameOrigin(r) {
		t.Error("refused")
	}
}
