package caddymodule

import (
	"net/http"
	"reflect"
	"testing"
)

// TestKeepOutOfSharedCaches: a response carrying the session cookie is
// private, whatever the upstream allowed shared caches; its other
// directives stay.
func TestKeepOutOfSharedCaches(t *testing.T) {
	tests := []struct {
		name string
		cc   []string // the upstream's Cache-Control; nil for none
		want []string
	}{
		{"none", nil, []string{"private"}},
		{"public", []string{"public, max-age=600"}, []string{"max-age=600", "private"}},
		{"s-maxage", []string{"max-age=60, s-maxage=600"}, []string{"max-age=60", "private"}},
		{"public alone", []string{"public"}, []string{"private"}},
		{"mixed case over lines", []string{"Public", "S-MaxAge=5, must-revalidate"}, []string{"must-revalidate", "private"}},
		{"private already", []string{"private, max-age=60"}, []string{"private, max-age=60"}},
		{"private and public", []string{"public, private"}, []string{"private"}},
		{"private with fields", []string{`private="Set-Cookie", max-age=60`}, []string{`private="Set-Cookie", max-age=60`, "private"}},
		{"no-store", []string{"public, no-store"}, []string{"public, no-store"}},
		{"no-cache", []string{"no-cache"}, []string{"no-cache", "private"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.cc != nil {
				h["Cache-Control"] = append([]string(nil), tt.cc...)
			}
			var slot [1]string
			keepOutOfSharedCaches(h, &slot)
			if got := h["Cache-Control"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Cache-Control %q, want %q", got, tt.want)
			}
		})
	}
}
