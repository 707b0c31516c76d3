package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// fuzzHandlers are a plain and a signing handler, provisioned once.
func fuzzHandlers(t testing.TB) (plain, signing *Handler) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	plain = &Handler{}
	signing = &Handler{Secrets: []string{strings.Repeat("k", 32), strings.Repeat("o", 32)}}
	for _, h := range []*Handler{plain, signing} {
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return plain, signing
}

func FuzzReadClientID(f *testing.F) {
	for _, seed := range []string{
		"session=0123456789abcdef0123456789abcdef",
		"a=1; session=\"0123456789abcdef0123456789abcdef\"; b=2",
		"session=0123456789abcdef0123456789abcdef.AAAA",
		"session=; session=x; session",
		"session=\xff\xfe",
		strings.Repeat("session=x;", 50),
	} {
		f.Add(seed)
	}
	plain, signing := fuzzHandlers(f)
	f.Fuzz(func(t *testing.T, cookie string) {
		hdr := http.Header{"Cookie": {cookie}}
		for _, h := range []*Handler{plain, signing} {
			id, rejected, present := firstClientID(h, hdr)
			if id != "" && (!validID(id) || rejected != "" || !present) {
				t.Fatalf("readClientID(%q) = %q, %q, %v", cookie, id, rejected, present)
			}
			if !present && (id != "" || rejected != "") {
				t.Fatalf("no cookie, yet %q, %q", id, rejected)
			}
			if h == signing && id != "" && !strings.Contains(cookie, signing.signer.cookieValue(id)) {
				t.Fatalf("accepted %q, whose value is not its signed value", id)
			}
		}
	})
}

func FuzzSignedCookie(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef", 0, byte('x'))
	f.Add("ffffffffffffffffffffffffffffffff", 40, byte('A'))
	_, signing := fuzzHandlers(f)
	f.Fuzz(func(t *testing.T, id string, at int, b byte) {
		if !validID(id) {
			if _, _, ok := signing.signer.verifyCookie(id); ok {
				t.Fatalf("verified a value that is not even an ID: %q", id)
			}
			return
		}
		v := signing.signer.cookieValue(id)
		if got, stale, ok := signing.signer.verifyCookie(v); !ok || got != id || stale {
			t.Fatalf("own cookie %q did not verify", v)
		}
		if at < 0 {
			at = -at
		}
		tampered := []byte(v)
		tampered[at%len(tampered)] = b
		if string(tampered) != v {
			if _, _, ok := signing.signer.verifyCookie(string(tampered)); ok {
				t.Fatalf("tampered %q verified", tampered)
			}
		}
	})
}

func FuzzStripPrefixed(f *testing.F) {
	for _, seed := range []string{"X-Session-Id", "x_session_data", "X.Session.New", "X-Sessions", "X-Alt-Session-Id", "x-session-"} {
		f.Add(seed)
	}
	names := newContractNames("session")
	f.Fuzz(func(t *testing.T, name string) {
		h := http.Header{name: {"v"}, "Keep-Me": {"k"}}
		normalized := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
		want := strings.HasPrefix(normalized, "x-session-")
		if got := names.hasPrefix(name); got != want && isASCII(name) {
			t.Fatalf("hasPrefix(%q) = %v, want %v", name, got, want)
		}
		names.stripPrefixed(h)
		if _, left := h[name]; left == names.hasPrefix(name) && name != "Keep-Me" {
			t.Fatalf("strip of %q: left %v", name, left)
		}
		if h.Get("Keep-Me") != "k" {
			t.Fatal("another header was stripped")
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func FuzzCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"cookie_name myapp expiry 3600 sessioncookie",
		"{\n\tsamesite none\n\tsecure\n}",
		"secret " + strings.Repeat("s", 40) + " {\n\tmax_lifetime 1h\n\tmax_size 1KiB\n}",
		"{\n\tstore memory {\n\t\tmax_sessions 5\n\t}\n}",
		"expiry -1",
		"{\n\thttponly maybe\n}",
	} {
		f.Add(seed)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	f.Fuzz(func(t *testing.T, body string) {
		out, _, err := adapter.Adapt([]byte(":8080 {\n\tsession "+body+"\n}\n"), nil)
		if err != nil {
			return // refused: fine, as long as it did not panic
		}
		// What the adapter accepts, the handler's own checks accept.
		var cfg struct {
			Apps struct {
				HTTP struct {
					Servers map[string]struct {
						Routes []struct {
							Handle []json.RawMessage `json:"handle"`
						} `json:"routes"`
					} `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("adapted config is not JSON: %v", err)
		}
		for _, srv := range cfg.Apps.HTTP.Servers {
			for _, route := range srv.Routes {
				for _, raw := range route.Handle {
					var h Handler
					if json.Unmarshal(raw, &h) == nil && strings.Contains(string(raw), `"handler":"session"`) {
						if err := h.checkConfig(); err != nil {
							t.Fatalf("the adapter accepted %q, checkConfig refuses it: %v", body, err)
						}
					}
				}
			}
		}
	})
}
