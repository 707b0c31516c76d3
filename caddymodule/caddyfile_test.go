package caddymodule

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// directiveLine is the Caddyfile line that oneLine and block put the
// session directive on; block puts its option lines right after it.
const directiveLine = 3

// oneLine returns a site whose session directive, on line 3, has args on
// its line.
func oneLine(args string) string {
	return ":8080 {\n\t# the session directive is on line 3\n\tsession " + args + "\n\trespond ok\n}\n"
}

// block returns a site whose session directive, on line 3, has lines in
// its block, from line 4 on.
func block(lines ...string) string {
	return blockWith("", lines...)
}

// blockWith is block with args on the directive's line before the block.
func blockWith(args string, lines ...string) string {
	var b strings.Builder
	b.WriteString(":8080 {\n\t# the session directive is on line 3\n\tsession ")
	if args != "" {
		b.WriteString(args + " ")
	}
	b.WriteString("{\n")
	for _, l := range lines {
		b.WriteString("\t\t" + l + "\n")
	}
	b.WriteString("\t}\n\trespond ok\n}\n")
	return b.String()
}

// adapt runs the Caddyfile through the real adapter, as `caddy adapt` does.
func adapt(cf string) ([]byte, error) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	return out, err
}

// sessionRoute is a session handler found in an adapted config, with the
// matchers of the route it is in.
type sessionRoute struct {
	handler map[string]any
	match   any
}

// findSessions walks an adapted config for session handlers.
func findSessions(v any, out *[]sessionRoute) {
	switch v := v.(type) {
	case map[string]any:
		if handle, ok := v["handle"].([]any); ok {
			for _, h := range handle {
				if hm, ok := h.(map[string]any); ok && hm["handler"] == "session" {
					*out = append(*out, sessionRoute{handler: hm, match: v["match"]})
				}
			}
		}
		for _, child := range v {
			findSessions(child, out)
		}
	case []any:
		for _, child := range v {
			findSessions(child, out)
		}
	}
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// canonical re-encodes JSON with sorted keys and numbers kept as written.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	out, err := json.Marshal(decodeJSON(t, b))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// adaptSession adapts cf, which must hold exactly one session handler, and
// returns that handler's JSON in canonical form and its route's matchers.
func adaptSession(t *testing.T, cf string) (string, any) {
	t.Helper()
	out, err := adapt(cf)
	if err != nil {
		t.Fatalf("adapting:\n%s\nerror: %v", cf, err)
	}
	var found []sessionRoute
	findSessions(decodeJSON(t, out), &found)
	if len(found) != 1 {
		t.Fatalf("adapting:\n%s\nfound %d session handlers, want 1, in %s", cf, len(found), out)
	}
	h, err := json.Marshal(found[0].handler)
	if err != nil {
		t.Fatal(err)
	}
	return string(h), found[0].match
}

// TestCaddyfileOptions gives every option in the directive-line form and
// in the block form, which must both adapt to want.
func TestCaddyfileOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []string // one option (with its arguments) per element
		want string   // the handler's JSON, without "handler"
	}{
		{"none", nil, `{}`},
		{"cookie_name", []string{"cookie_name myapp"}, `{"cookie_name":"myapp"}`},
		{"domain", []string{"domain example.com"}, `{"domain":"example.com"}`},
		{"path", []string{"path /app"}, `{"path":"/app"}`},
		{"expiry seconds", []string{"expiry 3600"}, `{"expiry":3600000000000}`},
		{"expiry 1h", []string{"expiry 1h"}, `{"expiry":3600000000000}`},
		{"expiry 30d", []string{"expiry 30d"}, `{"expiry":2592000000000000}`},
		{"expiry 1 second", []string{"expiry 1"}, `{"expiry":1000000000}`},
		{"expiry 0", []string{"expiry 0"}, `{"expiry":0}`},
		{"expiry 0s", []string{"expiry 0s"}, `{"expiry":0}`},
		{"expiry largest", []string{"expiry 9223372036"}, `{"expiry":9223372036000000000}`},
		{"httponly alone", []string{"httponly"}, `{"httponly":true}`},
		{"httponly true", []string{"httponly true"}, `{"httponly":true}`},
		{"httponly false", []string{"httponly false"}, `{"httponly":false}`},
		{"httponly FALSE", []string{"httponly FALSE"}, `{"httponly":false}`},
		{"sessioncookie alone", []string{"sessioncookie"}, `{"sessioncookie":true}`},
		{"sessioncookie true", []string{"sessioncookie true"}, `{"sessioncookie":true}`},
		{"sessioncookie false", []string{"sessioncookie false"}, `{}`},
		{"samesite strict", []string{"samesite strict"}, `{"samesite":"strict"}`},
		{"samesite LAX", []string{"samesite LAX"}, `{"samesite":"LAX"}`},
		{"samesite None secure always", []string{"samesite None", "secure always"}, `{"samesite":"None","secure":"always"}`},
		{"samesite none secure alone", []string{"samesite none", "secure"}, `{"samesite":"none","secure":"always"}`},
		{"samesite none __Secure- cookie", []string{"cookie_name __Secure-s", "samesite none"}, `{"cookie_name":"__Secure-s","samesite":"none"}`},
		{"secure alone", []string{"secure"}, `{"secure":"always"}`},
		{"secure always", []string{"secure always"}, `{"secure":"always"}`},
		{"secure never", []string{"secure never"}, `{"secure":"never"}`},
		{"secure auto", []string{"secure auto"}, `{"secure":"auto"}`},
		{"secure NEVER", []string{"secure NEVER"}, `{"secure":"never"}`},
		{"prefix", []string{"prefix app:"}, `{"prefix":"app:"}`},
		{"prefix empty", []string{`prefix ""`}, `{"prefix":""}`},
		{"session_name", []string{"session_name alt_session"}, `{"session_name":"alt_session"}`},
		{"devices", []string{"devices /account/devices"}, `{"devices":"/account/devices"}`},
		{"record one", []string{"record user_agent"}, `{"record":["user_agent"]}`},
		{"record two", []string{"record user_agent ip"}, `{"record":["user_agent","ip"]}`},
		{"record full_ip", []string{"record full_ip"}, `{"record":["full_ip"]}`},
		{"session_name dashes", []string{"session_name alt-session2"}, `{"session_name":"alt-session2"}`},
		{"forward_cookie alone", []string{"forward_cookie"}, `{"forward_cookie":true}`},
		{"forward_cookie true", []string{"forward_cookie true"}, `{"forward_cookie":true}`},
		{"forward_cookie false", []string{"forward_cookie false"}, `{}`},
		{"store memory", []string{"store memory"}, `{"store":{"backend":"memory"}}`},
		{"__Host- cookie", []string{"cookie_name __Host-s", "path /"}, `{"cookie_name":"__Host-s","path":"/"}`},
		{"__Secure- cookie secure auto", []string{"cookie_name __Secure-s", "secure auto"}, `{"cookie_name":"__Secure-s","secure":"auto"}`},
		// A flag followed by another option: on the directive's line the
		// flag must not swallow it.
		{"flags before options", []string{"httponly", "sessioncookie", "forward_cookie", "secure", "cookie_name x"},
			`{"cookie_name":"x","httponly":true,"sessioncookie":true,"forward_cookie":true,"secure":"always"}`},
		{"flags with values before options", []string{"httponly false", "secure never", "cookie_name x"},
			`{"cookie_name":"x","httponly":false,"secure":"never"}`},
		{"all options", []string{
			"cookie_name myapp", "domain example.com", "path /app", "expiry 1h",
			"httponly false", "sessioncookie", "samesite lax", "secure never",
			"prefix app:", "session_name alt_session", "forward_cookie", "store memory",
		}, `{"cookie_name":"myapp","domain":"example.com","path":"/app","expiry":3600000000000,
			"httponly":false,"sessioncookie":true,"samesite":"lax","secure":"never",
			"prefix":"app:","session_name":"alt_session","forward_cookie":true,"store":{"backend":"memory"}}`},
	}
	for _, tt := range tests {
		want := addHandlerName(t, tt.want)
		t.Run(tt.name+"/line", func(t *testing.T) {
			got, _ := adaptSession(t, oneLine(strings.Join(tt.opts, " ")))
			if got != want {
				t.Errorf("session %s\n got %s\nwant %s", strings.Join(tt.opts, " "), got, want)
			}
		})
		t.Run(tt.name+"/block", func(t *testing.T) {
			got, _ := adaptSession(t, block(tt.opts...))
			if got != want {
				t.Errorf("session block %q\n got %s\nwant %s", tt.opts, got, want)
			}
		})
	}
}

// addHandlerName adds "handler":"session" to a handler's JSON and returns
// it in canonical form.
func addHandlerName(t *testing.T, js string) string {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("bad want %s: %v", js, err)
	}
	m["handler"] = "session"
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestCaddyfileLineEqualsBlock: the README's example, both ways, adapts to
// the very same config.
func TestCaddyfileLineEqualsBlock(t *testing.T) {
	line, err := adapt(oneLine("cookie_name myapp expiry 3600 sessioncookie"))
	if err != nil {
		t.Fatal(err)
	}
	blk, err := adapt(block("cookie_name myapp", "expiry 3600", "sessioncookie"))
	if err != nil {
		t.Fatal(err)
	}
	if canonical(t, line) != canonical(t, blk) {
		t.Errorf("directive line and block differ:\nline:  %s\nblock: %s", line, blk)
	}
	got, _ := adaptSession(t, oneLine("cookie_name myapp expiry 3600 sessioncookie"))
	want := `{"cookie_name":"myapp","expiry":3600000000000,"handler":"session","sessioncookie":true}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestCaddyfileLineAndBlock mixes options on the directive's line with a
// block.
func TestCaddyfileLineAndBlock(t *testing.T) {
	tests := []struct {
		name  string
		cf    string
		want  string
		match string // the route's matchers as JSON; "" for none
	}{
		{
			name: "line and block",
			cf:   blockWith("cookie_name x secure", "expiry 1h", "httponly false"),
			want: `{"cookie_name":"x","secure":"always","expiry":3600000000000,"httponly":false}`,
		},
		{
			name: "store on the line, options in the block",
			cf:   blockWith("store memory", "cookie_name x"),
			want: `{"cookie_name":"x","store":{"backend":"memory"}}`,
		},
		{
			name: "flag right before the block",
			cf:   blockWith("sessioncookie", "cookie_name x"),
			want: `{"cookie_name":"x","sessioncookie":true}`,
		},
		{
			name: "secure right before the block",
			cf:   blockWith("secure", "cookie_name x"),
			want: `{"cookie_name":"x","secure":"always"}`,
		},
		{
			name:  "path matcher",
			cf:    oneLine("/app/* cookie_name x"),
			want:  `{"cookie_name":"x"}`,
			match: `[{"path":["/app/*"]}]`,
		},
		{
			name:  "path matcher and flag",
			cf:    oneLine("/app/* httponly false"),
			want:  `{"httponly":false}`,
			match: `[{"path":["/app/*"]}]`,
		},
		{
			name:  "path matcher and block",
			cf:    blockWith("/app/*", "cookie_name x"),
			want:  `{"cookie_name":"x"}`,
			match: `[{"path":["/app/*"]}]`,
		},
		{
			name:  "named matcher",
			cf:    ":8080 {\n\t@api path /api/*\n\tsession @api cookie_name x expiry 60\n\trespond ok\n}\n",
			want:  `{"cookie_name":"x","expiry":60000000000}`,
			match: `[{"path":["/api/*"]}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, match := adaptSession(t, tt.cf)
			if want := addHandlerName(t, tt.want); got != want {
				t.Errorf("handler:\n got %s\nwant %s", got, want)
			}
			gotMatch := ""
			if match != nil {
				b, err := json.Marshal(match)
				if err != nil {
					t.Fatal(err)
				}
				gotMatch = string(b)
			}
			if gotMatch != tt.match {
				t.Errorf("match: got %s, want %s", gotMatch, tt.match)
			}
		})
	}
}

// TestCaddyfileStore gives the store and the memory store's own options.
func TestCaddyfileStore(t *testing.T) {
	tests := []struct {
		name string
		cf   string
		want string
	}{
		{"block with options", block("store memory {", "\tname x", "\tmax_sessions 5", "}", "cookie_name y"),
			`{"cookie_name":"y","store":{"backend":"memory","name":"x","max_sessions":5}}`},
		{"block, options after the store", block("cookie_name y", "store memory {", "\tname x", "}", "path /app"),
			`{"cookie_name":"y","path":"/app","store":{"backend":"memory","name":"x"}}`},
		{"block, empty store block", block("store memory {", "}"), `{"store":{"backend":"memory"}}`},
		{"block, no store block", block("store memory", "cookie_name y"), `{"cookie_name":"y","store":{"backend":"memory"}}`},
		{"line, options after", oneLine("store memory cookie_name y"), `{"cookie_name":"y","store":{"backend":"memory"}}`},
		{"line, block is the directive's", blockWith("store memory", "cookie_name y"), `{"cookie_name":"y","store":{"backend":"memory"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := adaptSession(t, tt.cf)
			if want := addHandlerName(t, tt.want); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

// TestCaddyfileDirectiveOrder: session runs before header and respond,
// wherever it is written.
func TestCaddyfileDirectiveOrder(t *testing.T) {
	out, err := adapt(":8080 {\n\theader X-A b\n\trespond ok\n\tsession\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []struct {
							Handler string `json:"handler"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range cfg.Apps.HTTP.Servers["srv0"].Routes {
		for _, h := range r.Handle {
			got = append(got, h.Handler)
		}
	}
	if want := []string{"session", "headers", "static_response"}; !reflect.DeepEqual(got, want) {
		t.Errorf("handler order %q, want %q, in %s", got, want, out)
	}
}

var caddyfileLine = regexp.MustCompile(`Caddyfile:(\d+)`)

// TestCaddyfileErrors: each error names the option at fault and the line.
func TestCaddyfileErrors(t *testing.T) {
	const d = directiveLine
	tests := []struct {
		name string
		cf   string
		line int      // the line the error must name
		want []string // all in the error text
		bug  string   // a known bug: skip with this reason
	}{
		{name: "unknown option line", cf: oneLine("bogus"), line: d, want: []string{"unknown option", `"bogus"`}},
		{name: "unknown option block", cf: block("cookie_name x", "bogus 1"), line: d + 2, want: []string{"unknown option", `"bogus"`}},
		{name: "unknown option after value line", cf: oneLine("cookie_name a b"), line: d, want: []string{"unknown option", `"b"`}},
		{name: "option case matters", cf: oneLine("Cookie_Name x"), line: d, want: []string{"unknown option", "Cookie_Name"}},

		{name: "cookie_name no value line", cf: oneLine("cookie_name"), line: d, want: []string{"cookie_name needs a value"}},
		{name: "cookie_name no value block", cf: block("path /", "cookie_name"), line: d + 2, want: []string{"cookie_name needs a value"}},
		{name: "cookie_name no value before block", cf: blockWith("cookie_name", "path /"), line: d, want: []string{"cookie_name needs a value"}},
		{name: "expiry no value line", cf: oneLine("expiry"), line: d, want: []string{"expiry needs a value"}},
		{name: "expiry no value block", cf: block("expiry"), line: d + 1, want: []string{"expiry needs a value"}},
		{name: "domain no value", cf: block("domain"), line: d + 1, want: []string{"domain needs a value"}},
		{name: "path no value", cf: oneLine("path"), line: d, want: []string{"path needs a value"}},
		{name: "prefix no value", cf: block("prefix"), line: d + 1, want: []string{"prefix needs a value"}},
		{name: "session_name no value", cf: oneLine("session_name"), line: d, want: []string{"session_name needs a value"}},
		{name: "samesite no value", cf: block("samesite"), line: d + 1, want: []string{"samesite needs a value"}},

		{name: "extra argument cookie_name", cf: block("cookie_name a b"), line: d + 1, want: []string{"cookie_name", "unexpected argument", `"b"`}},
		{name: "extra argument expiry", cf: block("expiry 1h 2h"), line: d + 1, want: []string{"expiry", "unexpected argument", `"2h"`}},
		{name: "extra argument httponly", cf: block("httponly true false"), line: d + 1, want: []string{"httponly", "unexpected argument", `"false"`}},
		{name: "extra argument secure", cf: block("secure always never"), line: d + 1, want: []string{"secure", "unexpected argument", `"never"`}},
		{name: "extra argument samesite", cf: block("samesite lax strict"), line: d + 1, want: []string{"samesite", "unexpected argument", `"strict"`}},
		{name: "extra argument store", cf: block("store memory memory"), line: d + 1, want: []string{"store", "memory"}},

		{name: "negative expiry line", cf: oneLine("expiry -1"), line: d, want: []string{"expiry", "negative", `"-1"`}},
		{name: "negative expiry block", cf: block("expiry -1h"), line: d + 1, want: []string{"expiry", "negative", `"-1h"`}},
		{name: "negative expiry that overflows", cf: oneLine("expiry -36028797018960368"), line: d, want: []string{"expiry", "negative", "-36028797018960368"}},
		{name: "expiry too long", cf: oneLine("expiry 9223372037"), line: d, want: []string{"expiry", `"9223372037"`, "too long"}},
		{name: "expiry 500ms line", cf: oneLine("expiry 500ms"), line: d, want: []string{"expiry", `"500ms"`, "under one second"}},
		{name: "expiry 500ms block", cf: block("path /", "expiry 500ms"), line: d + 2, want: []string{"expiry", `"500ms"`, "under one second"}},
		{name: "expiry 1500ms", cf: block("expiry 1500ms"), line: d + 1, want: []string{"expiry", "whole number of seconds"}},
		{name: "expiry garbage line", cf: oneLine("expiry garbage"), line: d, want: []string{"expiry", `"garbage"`}},
		{name: "expiry garbage block", cf: block("expiry 1x"), line: d + 1, want: []string{"expiry", `"1x"`}},
		{name: "expiry fraction of seconds", cf: oneLine("expiry 1.5"), line: d, want: []string{"expiry", `"1.5"`}},

		{name: "devices relative", cf: block("path /", "devices account/devices"), line: d + 2, want: []string{"devices", "starting with /", `"account/devices"`}},
		{name: "devices trailing slash", cf: oneLine("devices /devices/"), line: d, want: []string{"devices", "not ending with /"}},
		{name: "devices no value", cf: block("devices"), line: d + 1, want: []string{"devices needs a value"}},
		{name: "record unknown", cf: block("path /", "record user_agent email"), line: d + 2, want: []string{"record", `"email"`, "user_agent, ip or full_ip"}},
		{name: "record twice", cf: oneLine("record ip ip"), line: d, want: []string{"record", "ip given twice"}},
		{name: "record ip and full_ip", cf: block("record ip full_ip"), line: d + 1, want: []string{"record", "exclude each other"}},
		{name: "record no value", cf: block("record"), line: d + 1, want: []string{"record needs"}},

		{name: "samesite other line", cf: oneLine("samesite other"), line: d, want: []string{"samesite", `"other"`}},
		{name: "samesite other block", cf: block("samesite other"), line: d + 1, want: []string{"samesite", `"other"`}},
		{name: "httponly yes block", cf: block("httponly yes"), line: d + 1, want: []string{"httponly", `"yes"`, "true or false"}},
		{name: "httponly yes line", cf: oneLine("httponly yes"), line: d, want: []string{"httponly", `"yes"`, "true or false"}},
		{name: "httponly yes line after options", cf: oneLine("cookie_name x httponly maybe"), line: d, want: []string{"httponly", `"maybe"`, "true or false"}},
		{name: "sessioncookie bad line", cf: oneLine("sessioncookie 1"), line: d, want: []string{"sessioncookie", `"1"`, "true or false"}},
		{name: "sessioncookie 1 block", cf: block("sessioncookie 1"), line: d + 1, want: []string{"sessioncookie", `"1"`, "true or false"}},
		{name: "forward_cookie on block", cf: block("forward_cookie on"), line: d + 1, want: []string{"forward_cookie", `"on"`, "true or false"}},
		{name: "secure sometimes block", cf: block("secure sometimes"), line: d + 1, want: []string{"secure", `"sometimes"`, "always, never or auto"}},
		{name: "secure sometimes line", cf: oneLine("secure sometimes"), line: d, want: []string{"secure", `"sometimes"`, "always, never or auto"}},

		{name: "twice line", cf: oneLine("cookie_name a cookie_name b"), line: d, want: []string{"cookie_name", "twice"}},
		{name: "twice block", cf: block("cookie_name a", "path /", "cookie_name b"), line: d + 3, want: []string{"cookie_name", "twice"}},
		{name: "twice flag line", cf: oneLine("httponly httponly false"), line: d, want: []string{"httponly", "twice"}},
		{name: "twice flag block", cf: block("secure", "secure never"), line: d + 2, want: []string{"secure", "twice"}},
		{name: "twice line and block", cf: blockWith("expiry 1h", "expiry 2h"), line: d + 1, want: []string{"expiry", "twice"}},
		{name: "twice store", cf: blockWith("store memory", "store memory"), line: d + 1, want: []string{"store", "twice"}},

		// Errors of the options together name the directive's line.
		{name: "samesite none line", cf: oneLine("samesite none"), line: d, want: []string{"samesite none", "secure always"}},
		{name: "samesite none secure auto", cf: block("samesite none", "secure auto"), line: d, want: []string{"samesite none", "secure always"}},
		{name: "samesite none secure never", cf: oneLine("secure never samesite NONE"), line: d, want: []string{"samesite none", "secure always"}},
		{name: "__Host- with domain line", cf: oneLine("cookie_name __Host-s domain example.com"), line: d, want: []string{"domain", "__Host-s"}},
		{name: "__Host- with domain block", cf: block("cookie_name __Host-s", "domain example.com"), line: d, want: []string{"domain", "__Host-s"}},
		{name: "__Host- with path", cf: block("cookie_name __Host-s", "path /x"), line: d, want: []string{"path", "__Host-s", `"/x"`}},
		{name: "__Secure- with secure never", cf: oneLine("cookie_name __Secure-x secure never"), line: d, want: []string{"secure never", "__Secure-x"}},
		{name: "__Host- with secure never", cf: block("secure never", "cookie_name __Host-x"), line: d, want: []string{"secure never", "__Host-x"}},
		{name: "session_name with space", cf: block(`session_name "bad name!"`), line: d, want: []string{"session_name", `"bad name!"`}},
		{name: "session_name digit first", cf: oneLine("session_name 1abc"), line: d, want: []string{"session_name", `"1abc"`}},
		{name: "session_name double underscore", cf: oneLine("session_name a__b"), line: d, want: []string{"session_name", `"a__b"`}},
		{name: "session_name trailing dash", cf: oneLine("session_name ab-"), line: d, want: []string{"session_name", `"ab-"`}},
		{name: "session_name dot", cf: oneLine("session_name a.b"), line: d, want: []string{"session_name", `"a.b"`}},
		{name: "cookie_name invalid", cf: block(`cookie_name "a b"`), line: d, want: []string{"cookie_name", `"a b"`}},
		{name: "path without slash", cf: oneLine("path app"), line: d, want: []string{"path", `"app"`, "must start with /"}},
		{name: "path invalid byte", cf: block(`path "/a;b"`), line: d, want: []string{"path", `"/a;b"`}},
		{name: "domain invalid", cf: oneLine(`domain "bad domain"`), line: d, want: []string{"domain", `"bad domain"`}},

		{name: "store no backend line", cf: oneLine("store"), line: d, want: []string{"store", "backend"}},
		{name: "store no backend block", cf: block("cookie_name x", "store"), line: d + 2, want: []string{"store", "backend"}},
		{name: "store no backend before block", cf: blockWith("store", "cookie_name x"), line: d, want: []string{"store", "backend"}},
		{name: "store unknown backend line", cf: oneLine("store bogus"), line: d, want: []string{"store", "bogus"}},
		{name: "store unknown backend block", cf: block("store bogus"), line: d + 1, want: []string{"store", "bogus"}},
		{name: "store memory unknown option", cf: block("store memory {", "\tbogus", "}"), line: d + 2, want: []string{"store memory", "bogus"}},
		{name: "store memory bad max_sessions", cf: block("cookie_name x", "store memory {", "\tmax_sessions 0", "}"), line: d + 3, want: []string{"max_sessions", `"0"`}},
		{name: "store memory name twice", cf: block("store memory {", "\tname a", "\tname b", "}"), line: d + 3, want: []string{"name", "twice"}},
		{name: "store memory argument", cf: block("store memory x {", "}"), line: d + 1, want: []string{"store memory", `"x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.bug != "" {
				t.Skip(tt.bug)
			}
			out, err := adapt(tt.cf)
			if err == nil {
				t.Fatalf("adapting:\n%s\nno error; adapted to %s", tt.cf, out)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			m := caddyfileLine.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("error %q names no Caddyfile line; want line %d", msg, tt.line)
			}
			if got, _ := strconv.Atoi(m[1]); got != tt.line {
				t.Errorf("error %q names line %d, want %d", msg, got, tt.line)
			}
		})
	}
}
