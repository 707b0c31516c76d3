// Command example is the Go example app of caddy-session (see
// examples/SPEC.md): net/http behind the gateway, with the appsession
// helper. It listens on 127.0.0.1:$APP_PORT and checks
// X-Session-Signature with $SESSION_SECRET.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-session/caddy-session/appsession"
)

func main() {
	port, secret := os.Getenv("APP_PORT"), os.Getenv("SESSION_SECRET")
	if port == "" || secret == "" {
		log.Fatal("APP_PORT and SESSION_SECRET are needed")
	}
	secrets := []string{secret}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /session", func(w http.ResponseWriter, r *http.Request) {
		s := appsession.From(r)
		reply(w, http.StatusOK, map[string]any{"id": s.ID(), "new": s.IsNew(), "data": s.Data(), "verified": s.Verified()})
	})
	mux.HandleFunc("GET /verify", func(w http.ResponseWriter, r *http.Request) {
		if !appsession.Verify(r.Header, "session", secrets, 0) {
			reply(w, http.StatusUnauthorized, map[string]any{"ok": false})
			return
		}
		reply(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := appsession.From(r)
		s.Regenerate() // a new ID on login, against session fixation
		user := r.FormValue("user")
		if !setOr413(w, s, "user", user) {
			return
		}
		reply(w, http.StatusOK, map[string]any{"user": user})
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		appsession.From(r).Clear()
		reply(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("POST /counter", func(w http.ResponseWriter, r *http.Request) {
		s := appsession.From(r)
		var n int64
		if v, ok := s.Get("counter"); ok {
			if num, ok := v.(json.Number); ok {
				n, _ = num.Int64()
			}
		}
		n++
		if !setOr413(w, s, "counter", n) {
			return
		}
		reply(w, http.StatusOK, map[string]any{"counter": n})
	})
	mux.HandleFunc("POST /set", func(w http.ResponseWriter, r *http.Request) {
		if !setOr413(w, appsession.From(r), r.FormValue("key"), r.FormValue("value")) {
			return
		}
		reply(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("POST /remember", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.FormValue("seconds"), 10, 64)
		if err == nil {
			err = appsession.From(r).SetExpiry(time.Duration(n) * time.Second)
		}
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		}
		reply(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		got := map[string]string{}
		for name, values := range r.Header {
			if n := strings.ToLower(strings.ReplaceAll(name, "_", "-")); strings.HasPrefix(n, "x-session") {
				got[name] = strings.Join(values, ", ")
			}
		}
		reply(w, http.StatusOK, map[string]any{"headers": got})
	})

	srv := &http.Server{
		Addr:              "127.0.0.1:" + port,
		Handler:           appsession.Middleware(appsession.Options{Secrets: secrets})(mux),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("listening on %s", srv.Addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// setOr413 sets key, or answers 413 when the helper refuses the change
// because the session would pass max_size.
func setOr413(w http.ResponseWriter, s *appsession.Session, key string, value any) bool {
	err := s.Set(key, value)
	switch {
	case errors.Is(err, appsession.ErrTooLarge):
		reply(w, http.StatusRequestEntityTooLarge, map[string]any{"error": err.Error()})
		return false
	case err != nil:
		reply(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return false
	}
	return true
}

func reply(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
