package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// TestSignerStaleCookies: a cookie signed by the first secret in the current
// format is fresh; by another secret, or in the first format (which did
// not bind the session_name), it verifies but is stale, to be re-issued.
// A cookie signed for another session_name does not verify.
func TestSignerStaleCookies(t *testing.T) {
	newKey, oldKey := strings.Repeat("n", 32), strings.Repeat("o", 32)
	current := newSigner([]string{newKey, oldKey}, "session", "sid")
	byOld := newSigner([]string{oldKey}, "session", "sid")
	otherName := newSigner([]string{newKey}, "admin", "sid")
	legacy := func(key string) string {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte("caddy-session cookie\nsid\n" + id1))
		return id1 + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}
	tests := []struct {
		name      string
		value     string
		ok, stale bool
	}{
		{"first secret", current.cookieValue(id1), true, false},
		{"older secret", byOld.cookieValue(id1), true, true},
		{"first format, first secret", legacy(newKey), true, true},
		{"first format, older secret", legacy(oldKey), true, true},
		{"another session_name", otherName.cookieValue(id1), false, false},
		{"unknown secret", newSigner([]string{strings.Repeat("x", 32)}, "session", "sid").cookieValue(id1), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, stale, ok := current.verifyCookie(tt.value)
			if ok != tt.ok || stale != tt.stale || ok && id != id1 {
				t.Errorf("verifyCookie = %q, stale %v, ok %v; want ok %v, stale %v", id, stale, ok, tt.ok, tt.stale)
			}
		})
	}
}

// TestAssertionBindsSessionName: the same session under two session_names
// gets different X-Session-Signature values.
func TestAssertionBindsSessionName(t *testing.T) {
	key := strings.Repeat("k", 32)
	a := newSigner([]string{key}, "session", "sid").assertion(1700000000, id1, "false", "{}")
	b := newSigner([]string{key}, "admin", "sid").assertion(1700000000, id1, "false", "{}")
	if a == b || !strings.HasPrefix(a, "t=1700000000,v2=") {
		t.Errorf("assertions %q and %q", a, b)
	}
}
