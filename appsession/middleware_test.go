package appsession

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testSecret = "a-test-secret-of-at-least-32-bytes-long!"

// signedHeaders are session headers as the gateway would send them.
func signedHeaders(secret, sessionName, id, isNew, data string, t time.Time) http.Header {
	n := namesFor(sessionName)
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	io.WriteString(mac, ts+"."+sessionName+"."+id+"."+isNew+"."+data)
	h := http.Header{}
	h.Set(n.id, id)
	h.Set(n.isNew, isNew)
	h.Set(n.data, data)
	h.Set(n.signature, "t="+ts+",v2="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

func TestMiddlewareEndToEnd(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := From(r)
		s.Regenerate()
		if err := s.Set("user", r.FormValue("user")); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello "+s.ID()+" "+strconv.FormatBool(s.Verified()))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		if err := From(r).Set("big", strings.Repeat("x", 9000)); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
	})
	mux.HandleFunc("/silent", func(w http.ResponseWriter, r *http.Request) {
		_ = From(r).Set("silent", 1) // returns without writing: implicit 200
	})
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		s := From(r)
		_ = s.Set("a", 1)
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Error(err)
		}
		if err := s.Set("b", 2); err != ErrResponseStarted {
			t.Errorf("Set after flush: %v, want ErrResponseStarted", err)
		}
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		_ = From(r).Set("after103", true)
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/readfrom", func(w http.ResponseWriter, r *http.Request) {
		_ = From(r).Set("rf", "é")
		io.Copy(w, strings.NewReader("body")) // uses ReadFrom
	})
	srv := httptest.NewServer(Middleware(Options{Secrets: []string{"older-secret-of-at-least-32-bytes!!!!", testSecret}})(mux))
	defer srv.Close()

	do := func(path string, h http.Header) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+path+"?user=%C3%A9lodie", nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.ReadAll(resp.Body)
		return resp
	}
	genuine := signedHeaders(testSecret, "session", "0123456789abcdef0123456789abcdef", "false", `{"cart":[1]}`, time.Now())

	resp := do("/login", genuine)
	if got := resp.Header.Get("X-Session-Set"); got != `{"user":"\u00e9lodie"}` {
		t.Errorf("login: X-Session-Set = %q", got)
	}
	if resp.Header.Get("X-Session-Regenerate") != "true" {
		t.Error("login: no X-Session-Regenerate")
	}

	// Forged (unsigned) headers: an empty, new, unverified session.
	forged := genuine.Clone()
	forged.Set("X-Session-Data", `{"user":"admin"}`)
	req := httptest.NewRequest("GET", "/", nil)
	req.Header = forged
	var seen *Session
	Middleware(Options{Secrets: []string{testSecret}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = From(r)
	})).ServeHTTP(httptest.NewRecorder(), req)
	if seen == nil || seen.Verified() || !seen.IsNew() || len(seen.Data()) != 0 || seen.ID() != "" {
		t.Errorf("forged headers: session %+v", seen)
	}

	resp = do("/big", genuine)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("X-Session-Set") != "" {
		t.Errorf("big: %d, X-Session-Set %q", resp.StatusCode, resp.Header.Get("X-Session-Set"))
	}
	if resp = do("/silent", genuine); resp.Header.Get("X-Session-Set") != `{"silent":1}` {
		t.Errorf("silent: X-Session-Set = %q", resp.Header.Get("X-Session-Set"))
	}
	if resp = do("/flush", genuine); resp.Header.Get("X-Session-Set") != `{"a":1}` {
		t.Errorf("flush: X-Session-Set = %q", resp.Header.Get("X-Session-Set"))
	}
	if resp = do("/early", genuine); resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Session-Set") != `{"after103":true}` {
		t.Errorf("early hints: %d, X-Session-Set = %q", resp.StatusCode, resp.Header.Get("X-Session-Set"))
	}
	if resp = do("/readfrom", genuine); resp.Header.Get("X-Session-Set") != `{"rf":"\u00e9"}` {
		t.Errorf("readfrom: X-Session-Set = %q", resp.Header.Get("X-Session-Set"))
	}
}

func TestMiddlewareWithoutSecrets(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Session-Id", "abc")
	req.Header.Set("X-Session-Data", `{"n":1.50}`)
	var seen *Session
	Middleware(Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = From(r)
	})).ServeHTTP(httptest.NewRecorder(), req)
	if v, _ := seen.Get("n"); seen.ID() != "abc" || seen.Verified() || v != json.Number("1.50") {
		t.Errorf("session %+v, n %v", seen, v)
	}
	if From(httptest.NewRequest("GET", "/", nil)) != nil {
		t.Error("From outside the middleware is not nil")
	}
}

func TestVerifyHostile(t *testing.T) {
	now := time.Unix(1767225600, 0)
	good := signedHeaders(testSecret, "session", "id", "false", "{}", now)
	if !VerifyAt(good, "session", []string{testSecret}, time.Minute, now) {
		t.Fatal("genuine headers refused")
	}
	sig := good.Get("X-Session-Signature")
	for _, bad := range []string{
		"", ",", "=", "t=", "t=,v2=", "v2=" + sig[len("t=1767225600,v2="):],
		sig + ",", sig + "0", " " + sig, strings.Replace(sig, "t=", "T=", 1),
		strings.Replace(sig, ",", ";", 1), "t=99999999999999999999,v2=" + strings.Repeat("0", 64),
		"t=1767225600,v2=" + strings.Repeat("é", 32), "t=+1767225600" + sig[len("t=1767225600"):],
		"t=1767225600,v1=" + sig[len("t=1767225600,v2="):] + ",v2=" + sig[len("t=1767225600,v2="):],
		strings.Repeat("t=1,", 10000), "\x00\xff",
	} {
		h := good.Clone()
		h.Set("X-Session-Signature", bad)
		if VerifyAt(h, "session", []string{testSecret}, time.Minute, now) {
			t.Errorf("accepted %q", bad)
		}
	}
	h := good.Clone()
	h.Add("X-Session-Data", `{"user":"admin"}`)
	if VerifyAt(h, "session", []string{testSecret}, time.Minute, now) {
		t.Error("accepted a second X-Session-Data")
	}
	for _, secrets := range [][]string{nil, {}, {""}, {"wrong"}} {
		if VerifyAt(good, "session", secrets, time.Minute, now) {
			t.Errorf("accepted with secrets %q", secrets)
		}
	}
	if VerifyAt(nil, "session", []string{testSecret}, time.Minute, now) {
		t.Error("accepted nil headers")
	}
	// maxAge 0 is the default, 5 minutes.
	if !VerifyAt(good, "session", []string{testSecret}, 0, now.Add(299*time.Second)) ||
		VerifyAt(good, "session", []string{testSecret}, 0, now.Add(301*time.Second)) {
		t.Error("maxAge 0 is not DefaultMaxAge")
	}
}

// FuzzVerify: hostile signature headers never panic and are never taken.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1767225600, 0)
	good := signedHeaders(testSecret, "session", "id", "false", "{}", now)
	f.Add(good.Get("X-Session-Signature"), "{}")
	f.Add("t=1767225600,v2=", "{}")
	f.Add("t=1,v2=00", "\xff")
	f.Fuzz(func(t *testing.T, sig, data string) {
		h := good.Clone()
		h.Set("X-Session-Signature", sig)
		h.Set("X-Session-Data", data)
		ok := VerifyAt(h, "session", []string{testSecret}, time.Minute, now)
		if ok && (sig != good.Get("X-Session-Signature") || data != "{}") {
			t.Errorf("accepted %q %q", sig, data)
		}
		_, _ = Read(h, "session")
	})
}

// TestMiddlewareOwnerHeaders: the subject, revoke and persist
// instructions reach the wire, an empty subject as an empty value.
func TestMiddlewareOwnerHeaders(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := From(r)
		s.Regenerate()
		for _, err := range []error{s.Set("user", "alice"), s.SetSubject("42"), s.RevokeOthers(), s.SetPersist(r.FormValue("remember") == "on")} {
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
	})
	mux.HandleFunc("/forget", func(w http.ResponseWriter, r *http.Request) {
		if err := From(r).RemoveSubject(); err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/everywhere", func(w http.ResponseWriter, r *http.Request) {
		if err := From(r).RevokeAll(); err != nil {
			t.Error(err)
		}
		io.WriteString(w, "signed out")
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "nothing asked")
	})
	srv := httptest.NewServer(Middleware(Options{SessionName: "alt_session"})(mux))
	defer srv.Close()
	get := func(path string) http.Header {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := http.Header{}
		for k, v := range resp.Header {
			if strings.HasPrefix(k, "X-") {
				h[k] = v
			}
		}
		return h
	}
	for path, want := range map[string]http.Header{
		"/login?remember=on": {
			"X-Alt-Session-Regenerate": {"true"},
			"X-Alt-Session-Set":        {`{"user":"alice"}`},
			"X-Alt-Session-Subject":    {"42"},
			"X-Alt-Session-Revoke":     {"others"},
			"X-Alt-Session-Persist":    {"true"},
		},
		"/login": {
			"X-Alt-Session-Regenerate": {"true"},
			"X-Alt-Session-Set":        {`{"user":"alice"}`},
			"X-Alt-Session-Subject":    {"42"},
			"X-Alt-Session-Revoke":     {"others"},
			"X-Alt-Session-Persist":    {"false"},
		},
		"/forget":     {"X-Alt-Session-Subject": {""}},
		"/everywhere": {"X-Alt-Session-Revoke": {"all"}},
		"/plain":      {},
	} {
		if got := get(path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s\n got %v\nwant %v", path, got, want)
		}
	}
}
