package caddymodule

import (
	"net/http"
	"reflect"
	"sort"
	"testing"
)

func TestNewContractNames(t *testing.T) {
	tests := []struct {
		sessionName string
		want        contractNames
	}{
		{"session", contractNames{
			headerPrefix: "X-Session-", matchPrefix: "x-session-",
			idHeader: "X-Session-Id", dataHeader: "X-Session-Data", newHeader: "X-Session-New", signatureHeader: "X-Session-Signature",
			idPlaceholder: "http.session.id", newPlaceholder: "http.session.new",
			dataPlaceholder: "http.session.data", dataKeyPrefix: "http.session.data.",
		}},
		{"alt_session", contractNames{
			headerPrefix: "X-Alt-Session-", matchPrefix: "x-alt-session-",
			idHeader: "X-Alt-Session-Id", dataHeader: "X-Alt-Session-Data", newHeader: "X-Alt-Session-New", signatureHeader: "X-Alt-Session-Signature",
			idPlaceholder: "http.alt_session.id", newPlaceholder: "http.alt_session.new",
			dataPlaceholder: "http.alt_session.data", dataKeyPrefix: "http.alt_session.data.",
		}},
		{"alt-session", contractNames{
			headerPrefix: "X-Alt-Session-", matchPrefix: "x-alt-session-",
			idHeader: "X-Alt-Session-Id", dataHeader: "X-Alt-Session-Data", newHeader: "X-Alt-Session-New", signatureHeader: "X-Alt-Session-Signature",
			idPlaceholder: "http.alt-session.id", newPlaceholder: "http.alt-session.new",
			dataPlaceholder: "http.alt-session.data", dataKeyPrefix: "http.alt-session.data.",
		}},
		{"MyApp2", contractNames{
			headerPrefix: "X-Myapp2-", matchPrefix: "x-myapp2-",
			idHeader: "X-Myapp2-Id", dataHeader: "X-Myapp2-Data", newHeader: "X-Myapp2-New", signatureHeader: "X-Myapp2-Signature",
			idPlaceholder: "http.MyApp2.id", newPlaceholder: "http.MyApp2.new",
			dataPlaceholder: "http.MyApp2.data", dataKeyPrefix: "http.MyApp2.data.",
		}},
	}
	for _, tt := range tests {
		got := newContractNames(tt.sessionName)
		if got != tt.want {
			t.Errorf("newContractNames(%q)\n got %+v\nwant %+v", tt.sessionName, got, tt.want)
		}
		// The headers set on requests are in canonical form, so that
		// r.Header.Get finds them and they reach upstreams as written.
		for _, hdr := range []string{got.idHeader, got.dataHeader, got.newHeader} {
			if c := http.CanonicalHeaderKey(hdr); c != hdr {
				t.Errorf("%q: header %q is not canonical (%q)", tt.sessionName, hdr, c)
			}
			if !got.hasPrefix(hdr) {
				t.Errorf("%q: its own header %q does not have its prefix", tt.sessionName, hdr)
			}
		}
	}
}

func TestHasPrefix(t *testing.T) {
	tests := []struct {
		sessionName string
		header      string
		want        bool
	}{
		{"session", "X-Session-Id", true},
		{"session", "X-Session-Data", true},
		{"session", "X-Session-Set", true},
		{"session", "X-Session-Anything", true},
		{"session", "x-session-id", true},
		{"session", "X-SESSION-ID", true},
		{"session", "X_SESSION_ID", true},
		{"session", "x.session.data", true},
		{"session", "X-Session_Role", true},
		{"session", "X.Session-Id", true},
		{"session", "x_Session.clear", true},
		{"session", "X-Session-", true},
		{"session", "X-Sessions", false},
		{"session", "X-Sessions-Id", false},
		{"session", "X-Session", false},
		{"session", "X-SessionId", false},
		{"session", "X-Alt-Session-Id", false},
		{"session", "Session-Id", false},
		{"session", "XX-Session-Id", false},
		{"session", "X--Session-Id", false},
		{"session", "X Session Id", false},
		{"session", "X-Sessiom-Id", false},
		{"session", "", false},
		{"session", "Cookie", false},

		{"alt_session", "X-Alt-Session-Id", true},
		{"alt_session", "X_ALT_SESSION_SET", true},
		{"alt_session", "x.alt.session.data", true},
		{"alt_session", "X-Alt_Session.Clear", true},
		{"alt_session", "X-Session-Id", false},
		{"alt_session", "X-AltSession-Id", false},
		{"alt_session", "X-Alt-Session", false},
	}
	for _, tt := range tests {
		n := newContractNames(tt.sessionName)
		if got := n.hasPrefix(tt.header); got != tt.want {
			t.Errorf("%s: hasPrefix(%q) = %v, want %v", tt.sessionName, tt.header, got, tt.want)
		}
	}
}

func TestSuffix(t *testing.T) {
	n := newContractNames("session")
	tests := []struct {
		header, want string
		instruction  string // the instruction it names, if any
	}{
		{"X-Session-Set", "Set", hdrSet},
		{"x_session_set", "set", hdrSet},
		{"X-SESSION-CLEAR", "CLEAR", hdrClear},
		{"x.session.Regenerate", "Regenerate", hdrRegenerate},
		{"X-Session-Id", "Id", ""},
		{"X-Session-", "", ""},
		{"X-Session-Set-Cookie", "Set-Cookie", ""},
		{"X-Session-Sets", "Sets", ""},
	}
	for _, tt := range tests {
		got := n.suffix(tt.header)
		if got != tt.want {
			t.Errorf("suffix(%q) = %q, want %q", tt.header, got, tt.want)
		}
		instruction := ""
		for _, in := range []string{hdrSet, hdrClear, hdrRegenerate} {
			if equalHeaderName(got, in) {
				instruction = in
			}
		}
		if instruction != tt.instruction {
			t.Errorf("%q names instruction %q, want %q", tt.header, instruction, tt.instruction)
		}
	}
}

func TestEqualHeaderName(t *testing.T) {
	tests := []struct {
		name, lower string
		want        bool
	}{
		{"", "", true},
		{"set", "set", true},
		{"Set", "set", true},
		{"SET", "set", true},
		{"x-a-b", "x-a-b", true},
		{"X_A.B", "x-a-b", true},
		{"x.a_b", "x-a-b", true},
		{"x a b", "x-a-b", false},
		{"xxa-b", "x-a-b", false},
		{"sett", "set", false},
		{"se", "set", false},
		{"Set ", "set", false},
		{"sEt", "Set", false}, // the second name must be lowercase
		{"\xc3\xa9", "\xc3\xa9", true},
		{"\xc3\x89", "\xc3\xa9", false}, // no Unicode case folding
	}
	for _, tt := range tests {
		if got := equalHeaderName(tt.name, tt.lower); got != tt.want {
			t.Errorf("equalHeaderName(%q, %q) = %v, want %v", tt.name, tt.lower, got, tt.want)
		}
	}
}

func TestStripPrefixed(t *testing.T) {
	tests := []struct {
		name        string
		sessionName string
		header      []string // names, in any form, all with value "v"
		wantLeft    []string
	}{
		{"nothing", "session", nil, nil},
		{"none of ours", "session", []string{"Cookie", "X-Sessions", "X-Session", "X-Alt-Session-Id", "Accept"},
			[]string{"Accept", "Cookie", "X-Alt-Session-Id", "X-Session", "X-Sessions"}},
		{"all forms", "session",
			[]string{"X-Session-Id", "x-session-data", "X_SESSION_ID", "x.session.data", "X-Session_Role", "X-SESSION-NEW", "X-Session-Set"},
			nil},
		{"mixed", "session",
			[]string{"Cookie", "X-Session-Id", "X_Session_Data", "X-Alt-Session-Id", "X-Forwarded-For", "x.session.clear"},
			[]string{"Cookie", "X-Alt-Session-Id", "X-Forwarded-For"}},
		{"alt_session", "alt_session",
			[]string{"X-Session-Id", "X-Alt-Session-Id", "x_alt_session_data", "X.Alt.Session.Set", "Cookie"},
			[]string{"Cookie", "X-Session-Id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newContractNames(tt.sessionName)
			h := http.Header{}
			for _, name := range tt.header {
				h[name] = []string{"v"} // as given, not canonicalized
			}
			n.stripPrefixed(h)
			var left []string
			for name, v := range h {
				left = append(left, name)
				if !reflect.DeepEqual(v, []string{"v"}) {
					t.Errorf("%s changed to %q", name, v)
				}
			}
			sort.Strings(left)
			if !reflect.DeepEqual(left, tt.wantLeft) {
				t.Errorf("left %q, want %q", left, tt.wantLeft)
			}
		})
	}
}

// TestStripPrefixedNil: a nil header has nothing to strip, and no panic.
func TestStripPrefixedNil(t *testing.T) {
	n := newContractNames("session")
	var h http.Header
	n.stripPrefixed(h)
	if h != nil {
		t.Errorf("stripPrefixed(nil) made %v", h)
	}
}

// TestStripConnectionTokens: tokens naming a session header leave
// Connection, in every spelling the stripping knows; others stay.
func TestStripConnectionTokens(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string // nil: the header is gone
	}{
		{"none", nil, nil},
		{"keep-alive only", []string{"keep-alive"}, []string{"keep-alive"}},
		{"session headers", []string{"keep-alive, X-Session-Id, X-Session-Data, X-Session-New"}, []string{"keep-alive"}},
		{"spellings", []string{"x-session-id,X_SESSION_DATA", "X.Session.Signature, Upgrade"}, []string{"Upgrade"}},
		{"only session headers", []string{"X-Session-Id"}, nil},
		{"other prefixes stay", []string{"X-Sessions, X-Alt-Session-Id, close"}, []string{"X-Sessions, X-Alt-Session-Id, close"}},
	}
	n := newContractNames("session")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.lines != nil {
				h["Connection"] = append([]string(nil), tt.lines...)
			}
			n.stripConnectionTokens(h)
			if got := h["Connection"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Connection %q, want %q", got, tt.want)
			}
		})
	}
}
