// Command upstream is the app behind Caddy in bench/run.sh: it answers
// every request with a small fixed body, and plays a session-aware app on
// two paths:
//
//	/write   adds X-Session-Set: {"n":<counter>}, a change of one key
//	/login   adds X-Session-Set: {"user":"u<counter>"}, which starts a session
//	/stats   (not to be proxied) answers "new=<n> known=<n> none=<n>": how
//	         many requests since the last /stats came with X-Session-New
//	         true, false, or none at all; bench/run.sh checks each run
//	         took the path it measures
//
// Usage: upstream -addr 127.0.0.1:18090
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

var body = []byte("hello from upstream\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:18090", "address to listen on")
	flag.Parse()

	var counter, isNew, known, none atomic.Int64
	bodyLen := strconv.Itoa(len(body))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Session-New") {
		case "true":
			isNew.Add(1)
		case "false":
			known.Add(1)
		default:
			none.Add(1)
		}
		h := w.Header()
		switch r.URL.Path {
		case "/stats":
			none.Add(-1)
			h.Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = fmt.Fprintf(w, "new=%d known=%d none=%d\n", isNew.Swap(0), known.Swap(0), none.Swap(0))
			return
		case "/write":
			h.Set("X-Session-Set", `{"n":`+strconv.FormatInt(counter.Add(1), 10)+`}`)
		case "/login":
			h.Set("X-Session-Set", `{"user":"u`+strconv.FormatInt(counter.Add(1), 10)+`"}`)
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", bodyLen)
		_, _ = w.Write(body)
	})
	srv := &http.Server{
		Addr:              *addr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Fatal(srv.ListenAndServe())
}
