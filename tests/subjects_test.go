package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Whose session it is: a subject per session, revocation (sign out other
// devices, everywhere, one device), the devices endpoint and remember me,
// over real HTTP with a cookie jar per device.

// device is one browser of a user: a cookie jar and a user agent.
type device struct {
	*client
	ua string
}

func newDevice(t *testing.T, ua string) *device { return &device{newClient(t), ua} }

// on requests path from base as this device, with the upstream's
// instructions as query parameters (see startUpstream), and returns the
// response and what the upstream saw.
func (d *device) on(base, path string, header ...string) (*http.Response, seen) {
	d.t.Helper()
	return d.getURL(base+path, append([]string{"User-Agent: " + d.ua}, header...)...)
}

// login signs the device in as subject, as an app's login does: data, a
// new ID and the subject in one response, plus more instructions.
func (d *device) login(base, subject string, more ...string) {
	d.t.Helper()
	q := url.Values{"set": {fmt.Sprintf(`{"user":%q}`, subject)}, "regenerate": {"true"}, "hdr": {"X-Session-Subject:" + subject}}
	for _, m := range more {
		q.Add("hdr", m)
	}
	resp, s := d.on(base, "/login?"+q.Encode())
	if resp.StatusCode != http.StatusOK || len(setCookies(resp, "session")) != 1 {
		d.t.Fatalf("login as %s: %d, Set-Cookie %q, upstream saw %v", subject, resp.StatusCode, resp.Header.Values("Set-Cookie"), s.Header)
	}
}

// user returns the user the device's session names, "" for none.
func (d *device) user(base string) string {
	d.t.Helper()
	_, s := d.on(base, "/")
	if s.get("X-Session-New") == "true" {
		return ""
	}
	return fmt.Sprint(mustJSON(d.t, s.get("X-Session-Data"))["user"])
}

// devicesList is the devices endpoint's answer.
type devicesList struct {
	Sessions []struct {
		Handle    string `json:"handle"`
		Current   bool   `json:"current"`
		Created   string `json:"created"`
		LastSeen  string `json:"last_seen"`
		UserAgent string `json:"user_agent"`
		IP        string `json:"ip"`
	} `json:"sessions"`
	Total int    `json:"total"`
	Error string `json:"error"`
}

// request sends method to base+path as this device and returns the status,
// the response and its body.
func (d *device) request(method, base, path string, header ...string) (*http.Response, []byte) {
	d.t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("User-Agent", d.ua)
	for _, h := range header {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Set(name, value)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatal(err)
	}
	return resp, body
}

// devices lists the device's subject's sessions through the endpoint.
func (d *device) devices(base string) (int, devicesList) {
	d.t.Helper()
	resp, body := d.request(http.MethodGet, base, "/devices")
	var out devicesList
	if err := json.Unmarshal(body, &out); err != nil {
		d.t.Fatalf("GET /devices: %d %q: %v", resp.StatusCode, body, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		d.t.Errorf("GET /devices: Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		d.t.Errorf("GET /devices: Cache-Control %q, want no-store", cc)
	}
	return resp.StatusCode, out
}

// wantDeletionCookie checks that resp deletes the session cookie, and sets
// no other of its name.
func wantDeletionCookie(t *testing.T, when string, resp *http.Response) {
	t.Helper()
	if cks := setCookies(resp, "session"); len(cks) != 1 || cks[0].MaxAge >= 0 {
		t.Errorf("%s: Set-Cookie %q, want the deletion cookie", when, resp.Header.Values("Set-Cookie"))
	}
}

// current returns the handle the list marks current, and how many it marks.
func (l devicesList) current() (string, int) {
	handle, n := "", 0
	for _, s := range l.Sessions {
		if s.Current {
			handle, n = s.Handle, n+1
		}
	}
	return handle, n
}

const (
	uaFirefox = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
	uaChrome  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36"
	uaSafari  = "Mozilla/5.0 (iPhone; CPU iPhone OS 19_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/19.0 Mobile/15E148 Safari/604.1"
)

// alice is the test's user: a subject of its own, since the tests share
// one memory store.
func alice(t *testing.T) string { return "alice/" + t.Name() }

// threeDevices signs three devices in as alice(t).
func threeDevices(t *testing.T, base string) (laptop, desktop, phone *device) {
	laptop, desktop, phone = newDevice(t, uaFirefox), newDevice(t, uaChrome), newDevice(t, uaSafari)
	for _, d := range []*device{laptop, desktop, phone} {
		d.login(base, alice(t))
		if got := d.user(base); got != alice(t) {
			t.Fatalf("after login the session's user is %q", got)
		}
	}
	return laptop, desktop, phone
}

const subjectsSite = `session {
	devices /devices
	record user_agent ip
}
reverse_proxy {upstream}`

func TestSubjectRevokeOthersAndAll(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, subjectsSite)
	bob := newDevice(t, uaFirefox)
	bob.login(caddyBase, "bob/"+t.Name())

	laptop, desktop, phone := threeDevices(t, caddyBase)
	revokedBefore := metricValue(t, "caddy_session_revoked_total", `by="others"`)

	// "Sign out other devices" from the laptop: the other two end, the
	// laptop and bob keep theirs.
	resp, _ := laptop.on(caddyBase, "/password?hdr=X-Session-Revoke:others")
	if h := resp.Header.Get("X-Session-Revoke"); h != "" {
		t.Errorf("the instruction reached the client: %q", h)
	}
	if got := laptop.user(caddyBase); got != alice(t) {
		t.Errorf("revoke others ended the laptop's own session: user %q", got)
	}
	for name, d := range map[string]*device{"desktop": desktop, "phone": phone} {
		if got := d.user(caddyBase); got != "" {
			t.Errorf("revoke others left the %s signed in as %q", name, got)
		}
	}
	if got := bob.user(caddyBase); got != "bob/"+t.Name() {
		t.Errorf("alice's revoke ended bob's session: %q", got)
	}
	if got := metricValue(t, "caddy_session_revoked_total", `by="others"`) - revokedBefore; got != 2 {
		t.Errorf("revoked_total{by=others} rose by %v, want 2", got)
	}

	// "Sign out everywhere" from the phone: all three end, and the
	// phone's own cookie is deleted on that response.
	laptop, desktop, phone = threeDevices(t, caddyBase)
	resp, _ = phone.on(caddyBase, "/logout-everywhere?hdr=X-Session-Revoke:all")
	wantDeletionCookie(t, "revoke all", resp)
	if phone.cookie("session") != "" {
		t.Error("revoke all: the phone still holds its cookie")
	}
	for name, d := range map[string]*device{"laptop": laptop, "desktop": desktop, "phone": phone} {
		if got := d.user(caddyBase); got != "" {
			t.Errorf("revoke all left the %s signed in as %q", name, got)
		}
	}
	if got := bob.user(caddyBase); got != "bob/"+t.Name() {
		t.Errorf("alice's revoke all ended bob's session: %q", got)
	}

	// A logout that signs out the other devices too: Clear ends this
	// one, and Revoke acts on the subject it had.
	laptop, desktop, phone = threeDevices(t, caddyBase)
	resp, _ = desktop.on(caddyBase, "/logout?clear=true&hdr=X-Session-Revoke:others")
	wantDeletionCookie(t, "logout with revoke others", resp)
	for name, d := range map[string]*device{"laptop": laptop, "desktop": desktop, "phone": phone} {
		if got := d.user(caddyBase); got != "" {
			t.Errorf("a logout with revoke others left the %s signed in as %q", name, got)
		}
	}

	// A login that signs out the user's other devices at once.
	laptop, desktop, _ = threeDevices(t, caddyBase)
	fresh := newDevice(t, uaFirefox)
	fresh.login(caddyBase, alice(t), "X-Session-Revoke:others")
	if laptop.user(caddyBase) != "" || desktop.user(caddyBase) != "" || fresh.user(caddyBase) != alice(t) {
		t.Error("a login with Revoke: others did not leave only the new session")
	}
}

func TestSubjectDevicesEndpoint(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, subjectsSite)
	laptop, desktop, phone := threeDevices(t, caddyBase)

	status, list := laptop.devices(caddyBase)
	if status != http.StatusOK || len(list.Sessions) != 3 || list.Total != 3 {
		t.Fatalf("GET /devices: %d, %+v; want 3 sessions", status, list)
	}
	cur, n := list.current()
	if n != 1 {
		t.Fatalf("%d sessions marked current, want 1: %+v", n, list)
	}
	uas := map[string]string{} // handle: user agent
	for _, s := range list.Sessions {
		uas[s.Handle] = s.UserAgent
		if s.IP != "127.0.0.0/24" {
			t.Errorf("ip %q, want the client's /24, 127.0.0.0/24", s.IP)
		}
		if _, err := time.Parse(time.RFC3339, s.LastSeen); err != nil {
			t.Errorf("last_seen %q: %v", s.LastSeen, err)
		}
		if _, err := time.Parse(time.RFC3339, s.Created); err != nil {
			t.Errorf("created %q: %v", s.Created, err)
		}
		// A handle is not the ID, nor holds it.
		for _, d := range []*device{laptop, desktop, phone} {
			if id := d.cookie("session"); strings.Contains(id, s.Handle) || strings.Contains(s.Handle, id) {
				t.Errorf("handle %q and session ID %q", s.Handle, id)
			}
		}
	}
	if uas[cur] != "Firefox 140 on Linux" {
		t.Errorf("the current (laptop) session's user agent is %q, want Firefox 140 on Linux", uas[cur])
	}
	wantUAs := []string{"Chrome 141 on Windows", "Firefox 140 on Linux", "Safari 19 on iOS"}
	if got := slices.Sorted(func(yield func(string) bool) {
		for _, ua := range uas {
			yield(ua)
		}
	}); !slices.Equal(got, wantUAs) {
		t.Errorf("user agents %q, want %q", got, wantUAs)
	}
	_, fromPhone := phone.devices(caddyBase)
	phoneHandle, _ := fromPhone.current()
	if phoneHandle == cur || uas[phoneHandle] != "Safari 19 on iOS" {
		t.Fatalf("the phone's own session: %q (%q)", phoneHandle, uas[phoneHandle])
	}

	// Another site cannot sign the user out: a cross-origin DELETE is
	// refused, whatever proves it so (or nothing proves it same-origin).
	for _, hdr := range [][]string{
		{"Origin: https://evil.example"},
		{"Sec-Fetch-Site: cross-site", "Origin: https://evil.example"},
		{"Sec-Fetch-Site: same-site"},
		{},
	} {
		resp, body := laptop.request(http.MethodDelete, caddyBase, "/devices/"+phoneHandle, hdr...)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"error"`) {
			t.Errorf("DELETE with %q: %d %s, want 403 with a JSON error", hdr, resp.StatusCode, body)
		}
	}
	if got := phone.user(caddyBase); got != alice(t) {
		t.Fatalf("a refused DELETE ended the phone's session: %q", got)
	}

	// A same-origin DELETE ends that device.
	resp, body := laptop.request(http.MethodDelete, caddyBase, "/devices/"+phoneHandle, "Sec-Fetch-Site: same-origin")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("same-origin DELETE: %d %s", resp.StatusCode, body)
	}
	if got := phone.user(caddyBase); got != "" {
		t.Errorf("the phone is still signed in as %q after its DELETE", got)
	}
	if got := laptop.user(caddyBase); got != alice(t) {
		t.Errorf("the DELETE ended the laptop's own session: %q", got)
	}
	if _, list = laptop.devices(caddyBase); len(list.Sessions) != 2 || list.Total != 2 {
		t.Errorf("after the DELETE: %+v, want 2", list)
	}
	// Gone is gone: the same handle again, and a handle of no session.
	for _, h := range []string{phoneHandle, strings.Repeat("A", 22), "not-a-handle"} {
		if resp, _ := laptop.request(http.MethodDelete, caddyBase, "/devices/"+h, "Origin: "+caddyBase); resp.StatusCode != http.StatusNotFound {
			t.Errorf("DELETE of %q: %d, want 404", h, resp.StatusCode)
		}
	}
	// An Origin of this site is proof enough, for the device itself.
	_, list = desktop.devices(caddyBase)
	desktopHandle, _ := list.current()
	resp, _ = desktop.request(http.MethodDelete, caddyBase, "/devices/"+desktopHandle, "Origin: "+caddyBase)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE of its own session: %d", resp.StatusCode)
	}
	wantDeletionCookie(t, "DELETE of its own session", resp)

	// The app revokes one device by its handle.
	phone.login(caddyBase, alice(t))
	_, list = phone.devices(caddyBase)
	phoneHandle, _ = list.current()
	laptop.on(caddyBase, "/?hdr=X-Session-Revoke:"+phoneHandle)
	if got := phone.user(caddyBase); got != "" {
		t.Errorf("Revoke: <handle> left the phone signed in as %q", got)
	}

	// Without a subject: 401, with a JSON error; the request never
	// reaches the upstream.
	anon := newDevice(t, uaFirefox)
	anon.on(caddyBase, "/"+set(`{"cart":[1]}`))
	for _, d := range []*device{anon, newDevice(t, uaChrome)} {
		if status, list := d.devices(caddyBase); status != http.StatusUnauthorized || list.Error == "" {
			t.Errorf("GET /devices without a subject: %d %+v, want 401 with an error", status, list)
		}
	}
	resp, body = laptop.request(http.MethodGet, caddyBase, "/devices/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"total":1`) {
		t.Errorf("GET /devices/: %d %s, want the list", resp.StatusCode, body)
	}
	if resp, body := laptop.request(http.MethodPost, caddyBase, "/devices"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /devices: %d %s", resp.StatusCode, body)
	}
}

// A subject removed (an empty X-Session-Subject) takes the session out of
// the list; the subject survives a regenerate; Clear ends it.
func TestSubjectLifecycle(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, subjectsSite)
	laptop, desktop, _ := threeDevices(t, caddyBase)
	desktop.on(caddyBase, "/?regenerate=true")
	if _, list := laptop.devices(caddyBase); list.Total != 3 {
		t.Errorf("after a regenerate: total %d, want 3", list.Total)
	}
	desktop.on(caddyBase, "/?hdr=X-Session-Subject:")
	if desktop.user(caddyBase) != alice(t) {
		t.Error("removing the subject ended the session")
	}
	if status, _ := desktop.devices(caddyBase); status != http.StatusUnauthorized {
		t.Errorf("GET /devices after the subject was removed: %d, want 401", status)
	}
	laptop.on(caddyBase, "/?clear=true")
	if _, list := newSignedIn(t, alice(t)).devices(caddyBase); list.Total != 2 {
		t.Errorf("after one removed its subject and one cleared: total %d, want 2 (the phone and the new one)", list.Total)
	}
	// A subject with no data to keep it is refused, and counted.
	before := metricValue(t, "caddy_session_refused_total", `reason="no_session"`)
	newDevice(t, uaFirefox).on(caddyBase, "/?hdr=X-Session-Subject:mallory")
	if got := metricValue(t, "caddy_session_refused_total", `reason="no_session"`) - before; got != 1 {
		t.Errorf("refused{no_session} rose by %v, want 1", got)
	}
}

func newSignedIn(t *testing.T, subject string) *device {
	d := newDevice(t, uaSafari)
	d.login(caddyBase, subject)
	return d
}

func TestSubjectAdminAPI(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, subjectsSite)
	laptop, desktop, phone := threeDevices(t, caddyBase)
	bob := newSignedIn(t, "bob/"+t.Name())

	status, body := adminDo(t, http.MethodGet, "/session/session/?subject="+url.QueryEscape(alice(t)))
	if status != http.StatusOK {
		t.Fatalf("admin GET by subject: %d %s", status, body)
	}
	var got struct {
		Subject string `json:"subject"`
		Stores  []struct {
			Sessions []map[string]any `json:"sessions"`
			Total    int              `json:"total"`
		} `json:"stores"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Subject != alice(t) || len(got.Stores) != 1 || got.Stores[0].Total != 3 || len(got.Stores[0].Sessions) != 3 {
		t.Fatalf("admin GET by subject: %s (%v)", body, err)
	}
	for _, d := range []*device{laptop, desktop, phone, bob} {
		if id := d.cookie("session"); strings.Contains(body, id) {
			t.Errorf("the admin list shows a whole session ID: %s", body)
		}
	}
	for _, sess := range got.Stores[0].Sessions {
		if _, ok := sess["current"]; ok || sess["handle"] == nil || sess["last_seen"] == nil {
			t.Errorf("an admin list entry: %v, want a handle and last_seen, and no current", sess)
		}
	}
	before := metricValue(t, "caddy_session_revoked_total", `by="admin"`)
	if status, body := adminDo(t, http.MethodDelete, "/session/session/?subject="+url.QueryEscape(alice(t))); status != http.StatusOK || !strings.Contains(body, `"revoked":3`) {
		t.Fatalf("admin DELETE by subject: %d %s", status, body)
	}
	for _, d := range []*device{laptop, desktop, phone} {
		if got := d.user(caddyBase); got != "" {
			t.Errorf("after the admin DELETE a device is signed in as %q", got)
		}
	}
	if bob.user(caddyBase) != "bob/"+t.Name() {
		t.Error("the admin DELETE of alice ended bob's session")
	}
	if got := metricValue(t, "caddy_session_revoked_total", `by="admin"`) - before; got != 3 {
		t.Errorf("revoked_total{by=admin} rose by %v, want 3", got)
	}
	for _, q := range []string{"?subject=", "?subject=%01"} {
		if status, _ := adminDo(t, http.MethodGet, "/session/session/"+q); status != http.StatusBadRequest {
			t.Errorf("admin GET %s: %d, want 400", q, status)
		}
	}
}

// Remember me: X-Session-Persist overrides sessioncookie for one session,
// and the choice holds across renewals and regenerates.
func TestRememberMe(t *testing.T) {
	up := startUpstream(t)
	for _, sessioncookie := range []bool{true, false} {
		t.Run(fmt.Sprintf("sessioncookie %v", sessioncookie), func(t *testing.T) {
			site := "session expiry 10"
			if sessioncookie {
				site += " sessioncookie"
			}
			loadCaddy(t, up, site+"\nreverse_proxy {upstream}")
			for _, persist := range []bool{true, false} {
				d := newDevice(t, uaFirefox)
				resp, _ := d.on(caddyBase, fmt.Sprintf("/login?hdr=X-Session-Persist:%v&", persist)+set(`{"user":"alice"}`)[1:])
				check := func(when string, resp *http.Response) {
					t.Helper()
					line := rawSetCookie(t, resp, "session")
					if has := strings.Contains(line, "Max-Age=10"); has != persist {
						t.Errorf("persist %v, %s: Set-Cookie %q", persist, when, line)
					}
				}
				check("at login", resp)
				resp, _ = d.on(caddyBase, "/?regenerate=true")
				check("after a regenerate", resp)
				// A tenth of the expiry later, the session is renewed,
				// and with it a persistent cookie.
				time.Sleep(1100 * time.Millisecond)
				resp, _ = d.on(caddyBase, "/")
				if persist {
					check("at a renewal", resp)
				} else if len(setCookies(resp, "session")) != 0 {
					t.Errorf("persist false: a renewal re-sent the cookie: %q", resp.Header.Values("Set-Cookie"))
				}
				resp, _ = d.on(caddyBase, "/"+set(`{"n":1}`))
				check("after a change", resp)
			}
		})
	}
}

// A subject with thousands of sessions lists a bounded page, with the
// total.
func TestSubjectWithThousandsOfSessions(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, subjectsSite)
	const n = 1200
	subject := alice(t)
	// Each login is a new device: n requests, no cookie jar needed but
	// the last one's.
	var last *device
	for range n {
		last = newDevice(t, uaFirefox)
		last.login(caddyBase, subject)
	}
	for _, tt := range []struct {
		query string
		want  int
	}{
		{"", 100},
		{"?limit=1", 1},
		{"?limit=1000", 1000},
	} {
		resp, body := last.request(http.MethodGet, caddyBase, "/devices"+tt.query)
		var list devicesList
		if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /devices%s: %d %s", tt.query, resp.StatusCode, body)
		}
		if len(list.Sessions) != tt.want || list.Total != n {
			t.Errorf("GET /devices%s: %d sessions, total %d; want %d, total %d", tt.query, len(list.Sessions), list.Total, tt.want, n)
		}
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x"} {
		if resp, _ := last.request(http.MethodGet, caddyBase, "/devices"+q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /devices%s: %d, want 400", q, resp.StatusCode)
		}
	}
	// Signing out everywhere ends them all.
	last.on(caddyBase, "/?hdr=X-Session-Revoke:all")
	if status, body := adminDo(t, http.MethodGet, "/session/session/?subject="+url.QueryEscape(subject)); status != http.StatusOK || !strings.Contains(body, `"total":0`) {
		t.Errorf("after revoke all: %d %s", status, body)
	}
}

// A handle reaches only the sessions of its subject, its site and its
// handler's prefix.
func TestSubjectHandlesStayInTheirPlace(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, subjectsSite)
	laptop, _, _ := threeDevices(t, caddyBase)
	_, list := laptop.devices(caddyBase)
	laptopHandle, _ := list.current()
	bob := newSignedIn(t, "bob/"+t.Name())

	// Another subject's handle: not found, and Revoke ignores it.
	if resp, _ := bob.request(http.MethodDelete, caddyBase, "/devices/"+laptopHandle, "Sec-Fetch-Site: same-origin"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("bob's DELETE of alice's handle: %d, want 404", resp.StatusCode)
	}
	bob.on(caddyBase, "/?hdr=X-Session-Revoke:"+laptopHandle)
	if laptop.user(caddyBase) != alice(t) {
		t.Fatal("bob's Revoke of alice's handle ended alice's session")
	}

	// Another site on the same store and prefix, without a shared scope,
	// and another handler whose prefix begins with this one's.
	loadCaddyConfig(t, fmt.Sprintf(globalOptions, "")+fmt.Sprintf(`:%d {
	session {
		devices /devices
	}
	session cookie_name inner session_name inner prefix session:x
	reverse_proxy %[2]s
}
:%[3]d {
	session {
		devices /devices
	}
	reverse_proxy %[2]s
}
`, caddyPort, strings.TrimPrefix(up.URL, "http://"), caddyPort2))
	subject := "carol/" + t.Name()
	here, there := newDevice(t, uaFirefox), newDevice(t, uaChrome)
	here.login(caddyBase, subject)
	there.login(caddyBase2, subject)
	// The inner handler's session of the same subject, under session:x<id>.
	inner := newDevice(t, uaSafari)
	inner.on(caddyBase, "/?hdr=X-Inner-Set:"+url.QueryEscape(`{"user":"carol"}`)+"&hdr=X-Inner-Subject:"+url.QueryEscape(subject))
	if inner.cookie("inner") == "" {
		t.Fatal("the inner handler set no cookie")
	}
	for _, tt := range []struct {
		d    *device
		base string
	}{{here, caddyBase}, {there, caddyBase2}} {
		if got := totalOn(t, tt.d, tt.base); got != 1 {
			t.Errorf("through %s: %d sessions of carol, want 1 (each site and handler its own)", tt.base, got)
		}
	}
	here.on(caddyBase, "/?hdr=X-Session-Revoke:others")
	if there.user(caddyBase2) != subject {
		t.Error("a revoke on one site ended the subject's session on another site")
	}
	if _, s := inner.on(caddyBase, "/"); s.get("X-Inner-New") != "false" {
		t.Error("a revoke ended the session of a handler whose prefix begins with this one's")
	}
}

// blockingUpstream answers like startUpstream, but a request with
// ?wait holds its response until release is closed, after telling started.
func blockingUpstream(t *testing.T) (srv *httptest.Server, started chan struct{}, release chan struct{}) {
	t.Helper()
	plain := startUpstream(t)
	started, release = make(chan struct{}, 1), make(chan struct{})
	target, _ := url.Parse(plain.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("wait") {
			started <- struct{}{}
			<-release
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, started, release
}

// A request in flight when its session is signed out cannot sign the
// device back in with its response's changes.
func TestSubjectRevokedWhileInFlight(t *testing.T) {
	up, started, release := blockingUpstream(t)
	loadCaddy(t, up, subjectsSite)
	laptop, _, phone := threeDevices(t, caddyBase)
	before := metricValue(t, "caddy_session_refused_total", `reason="ended"`)

	done := make(chan *http.Response)
	go func() {
		resp, _ := phone.on(caddyBase, "/slow?wait&"+set(fmt.Sprintf(`{"user":%q,"n":1}`, alice(t)))[1:])
		done <- resp
	}()
	<-started
	laptop.on(caddyBase, "/password?hdr=X-Session-Revoke:others")
	close(release)
	resp := <-done
	wantDeletionCookie(t, "the in-flight response", resp)
	if got := phone.user(caddyBase); got != "" {
		t.Errorf("the phone is signed in again as %q", got)
	}
	if got := totalOn(t, laptop, caddyBase); got != 1 {
		t.Errorf("%d sessions of alice, want the laptop's alone", got)
	}
	if got := metricValue(t, "caddy_session_refused_total", `reason="ended"`) - before; got != 1 {
		t.Errorf("refused{ended} rose by %v, want 1", got)
	}
}

// A logout that leaves a message in a new session and signs out the other
// devices: the Revoke acts on the subject the session had before the
// Clear.
func TestSubjectClearSetRevoke(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, subjectsSite)
	laptop, desktop, phone := threeDevices(t, caddyBase)
	desktop.on(caddyBase, "/logout?clear=true&hdr=X-Session-Revoke:others&"+set(`{"flash":"signed out everywhere"}`)[1:])
	if laptop.user(caddyBase) != "" || phone.user(caddyBase) != "" {
		t.Error("the other devices are still signed in")
	}
	_, s := desktop.on(caddyBase, "/")
	if s.get("X-Session-Data") != `{"flash":"signed out everywhere"}` {
		t.Errorf("the logged-out session holds %q", s.get("X-Session-Data"))
	}
	if status, _ := desktop.devices(caddyBase); status != http.StatusUnauthorized {
		t.Errorf("the logged-out session lists devices: %d", status)
	}
}

// Sessions past max_lifetime are neither listed nor counted.
func TestSubjectOutlivedNotListed(t *testing.T) {
	up := startUpstream(t)
	// The cookies' Max-Age follows max_lifetime down, in whole seconds:
	// the times leave the young one's cookie a second to spare.
	loadCaddy(t, up, "session {\n\tdevices /devices\n\tmax_lifetime 4\n}\nreverse_proxy {upstream}")
	old := newDevice(t, uaFirefox)
	old.login(caddyBase, alice(t))
	time.Sleep(2 * time.Second)
	young := newDevice(t, uaChrome)
	young.login(caddyBase, alice(t))
	if got := totalOn(t, young, caddyBase); got != 2 {
		t.Fatalf("%d sessions, want 2", got)
	}
	time.Sleep(2200 * time.Millisecond)
	if got := totalOn(t, young, caddyBase); got != 1 {
		t.Errorf("after the first passed max_lifetime: %d sessions, want 1", got)
	}
}

// The app ends the very session it answers, by its own handle.
func TestSubjectRevokeOwnHandle(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, subjectsSite)
	laptop, desktop, _ := threeDevices(t, caddyBase)
	_, list := laptop.devices(caddyBase)
	own, _ := list.current()
	resp, _ := laptop.on(caddyBase, "/?hdr=X-Session-Revoke:"+own)
	wantDeletionCookie(t, "Revoke of its own handle", resp)
	if laptop.user(caddyBase) != "" || desktop.user(caddyBase) != alice(t) {
		t.Error("Revoke of its own handle did not end exactly this session")
	}
}
