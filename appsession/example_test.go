package appsession_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"time"

	"github.com/caddy-session/caddy-session/appsession"
)

// printHeaders prints the session headers of a response, sorted.
func printHeaders(h http.Header) {
	for _, k := range slices.Sorted(maps.Keys(h)) {
		fmt.Printf("%s: %q\n", k, h.Get(k))
	}
}

// A login: a new ID against session fixation, the user in the data, the
// user's ID as the session's subject, and every other session of that
// user signed out (after a password change, say). A "remember me" box
// chooses the cookie.
func ExampleSession_SetSubject() {
	login := func(w http.ResponseWriter, r *http.Request) {
		s := appsession.From(r)
		s.Regenerate()
		if err := s.Set("user", "alice"); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err := s.SetSubject("42"); err != nil { // the user's ID: printable ASCII, at most 256 bytes
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := s.RevokeOthers(); err != nil { // sign out the user's other devices
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := s.SetPersist(r.FormValue("remember") == "on"); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "welcome")
	}
	h := appsession.Middleware(appsession.Options{})(http.HandlerFunc(login))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/login?remember=on", nil))
	printHeaders(rec.Header())
	// Output:
	// Content-Type: "text/plain; charset=utf-8"
	// X-Session-Persist: "true"
	// X-Session-Regenerate: "true"
	// X-Session-Revoke: "others"
	// X-Session-Set: "{\"user\":\"alice\"}"
	// X-Session-Subject: "42"
}

// "Remember me" without the login around it: a persistent cookie for 30
// days of idleness, whatever the gateway's sessioncookie says.
func ExampleSession_SetPersist() {
	s, _ := appsession.Read(http.Header{"X-Session-Id": {"0123456789abcdef0123456789abcdef"}, "X-Session-Data": {`{"user":"alice"}`}}, "")
	_ = s.SetPersist(true)
	_ = s.SetExpiry(30 * 24 * time.Hour)
	printHeaders(s.Headers())
	// Output:
	// X-Session-Expiry: "2592000"
	// X-Session-Persist: "true"
}

// "Sign out everywhere": every session of this session's subject ends,
// this one included, and the gateway deletes this response's cookie. One
// device, by the handle the gateway lists it under, is Revoke(handle).
func ExampleSession_RevokeAll() {
	s, _ := appsession.Read(http.Header{"X-Session-Id": {"0123456789abcdef0123456789abcdef"}, "X-Session-Data": {`{"user":"alice"}`}}, "")
	if err := s.RevokeAll(); err != nil {
		fmt.Println(err)
	}
	printHeaders(s.Headers())

	s, _ = appsession.Read(http.Header{"X-Session-Id": {"0123456789abcdef0123456789abcdef"}, "X-Session-Data": {`{"user":"alice"}`}}, "")
	fmt.Println(s.Revoke("not-a-handle"))
	fmt.Println(s.Revoke("q83vEjRWeJCrze8SNFZ4kA"))
	printHeaders(s.Headers())
	// Output:
	// X-Session-Revoke: "all"
	// appsession: revoke "not-a-handle": want "others", "all" or a session handle (22 characters of base64url)
	// <nil>
	// X-Session-Revoke: "q83vEjRWeJCrze8SNFZ4kA"
}
