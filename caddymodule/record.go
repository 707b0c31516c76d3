package caddymodule

// What is recorded of a session's client for the devices list (the
// `record` option): opt-in, and shortened, since a list of where a user
// signs in from is personal data.

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// The values of the record option.
const (
	recordUserAgent = "user_agent"
	recordIP        = "ip"
	recordFullIP    = "full_ip"
)

// recordOptions is the record option, parsed.
type recordOptions struct {
	userAgent bool
	ip        bool // the client address, cut to its network
	fullIP    bool // the whole address
}

func (o recordOptions) any() bool { return o.userAgent || o.ip || o.fullIP }

// checkRecord judges the record option's values.
func checkRecord(values []string) error {
	seen := map[string]bool{}
	for _, v := range values {
		switch v {
		case recordUserAgent, recordIP, recordFullIP:
		default:
			return fmt.Errorf("record: want user_agent, ip or full_ip, got %q", v)
		}
		if seen[v] {
			return fmt.Errorf("record: %s given twice", v)
		}
		seen[v] = true
	}
	if seen[recordIP] && seen[recordFullIP] {
		return fmt.Errorf("record: ip and full_ip exclude each other (ip keeps the network only)")
	}
	return nil
}

func parseRecord(values []string) recordOptions {
	var o recordOptions
	for _, v := range values {
		switch v {
		case recordUserAgent:
			o.userAgent = true
		case recordIP:
			o.ip = true
		case recordFullIP:
			o.fullIP = true
		}
	}
	return o
}

// recordClient fills what the record option asks for of the request's
// client into opts.
func (h *Handler) recordClient(r *http.Request, opts *sessionstore.PatchOptions) {
	if h.record.userAgent {
		opts.UserAgent = shortUserAgent(r.UserAgent())
	}
	if h.record.ip || h.record.fullIP {
		opts.Addr = clientAddr(r, h.record.fullIP)
	}
}

// clientAddr is the request's client address as Caddy has it (after
// trusted_proxies), cut to its /24 (IPv4) or /48 (IPv6) network unless
// full: enough to tell "home" from "abroad" without the address itself.
func clientAddr(r *http.Request, full bool) string {
	ipStr, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if ipStr == "" {
		ipStr = r.RemoteAddr
		if ap, err := netip.ParseAddrPort(ipStr); err == nil {
			ipStr = ap.Addr().String()
		}
	}
	ip, err := netip.ParseAddr(ipStr)
	if err != nil {
		return ""
	}
	ip = ip.Unmap().WithZone("")
	if full {
		return ip.String()
	}
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// browsers and systems are what shortUserAgent looks for, in order: the
// first match names the browser or the system. Order matters: Edge and
// Opera say "Chrome" too, Chrome says "Safari", Android says "Linux".
var (
	browsers = []struct{ token, name string }{
		{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
		{"OPR/", "Opera"}, {"SamsungBrowser/", "Samsung Internet"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"Chrome/", "Chrome"}, {"Chromium/", "Chromium"},
		{"Version/", "Safari"}, // Safari gives its version as Version/
		{"curl/", "curl"}, {"Wget/", "Wget"},
	}
	systems = []struct{ token, name string }{
		{"Windows", "Windows"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"},
		{"Android", "Android"}, {"CrOS", "ChromeOS"}, {"Mac OS X", "macOS"},
		{"Macintosh", "macOS"}, {"Linux", "Linux"},
	}
)

// shortUserAgent shortens a User-Agent header to what a person recognizes
// a device by, such as "Firefox 140 on Linux"; one it cannot read, to its
// first product name. It never returns more than
// sessionstore.MaxRecordLength bytes, nor anything but printable ASCII.
func shortUserAgent(ua string) string {
	browser, version := "", ""
	for _, b := range browsers {
		if i := strings.Index(ua, b.token); i >= 0 {
			browser, version = b.name, majorVersion(ua[i+len(b.token):])
			break
		}
	}
	system := ""
	for _, s := range systems {
		if strings.Contains(ua, s.token) {
			system = s.name
			break
		}
	}
	var out string
	switch {
	case browser != "" && version != "" && system != "":
		out = browser + " " + version + " on " + system
	case browser != "" && version != "":
		out = browser + " " + version
	case browser != "" && system != "":
		out = browser + " on " + system
	case browser != "":
		out = browser
	default:
		// An agent it cannot read keeps its first product name
		// ("MyApp" of "MyApp/2.1 (build 77; device 1234)"): what
		// follows can be as identifying as a device ID.
		out, _, _ = strings.Cut(ua, "/")
		out, _, _ = strings.Cut(out, " ")
	}
	return printableCut(out, 32)
}

// majorVersion reads the leading digits of s.
func majorVersion(s string) string {
	n := 0
	for n < len(s) && n < 6 && '0' <= s[n] && s[n] <= '9' {
		n++
	}
	return s[:n]
}

// printableCut keeps the printable ASCII of s, at most n bytes of it.
func printableCut(s string, n int) string {
	n = min(n, sessionstore.MaxRecordLength)
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e {
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}
