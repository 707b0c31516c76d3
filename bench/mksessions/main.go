// Command mksessions starts sessions through a session gateway for
// bench/run.sh: it sends n cookieless requests to a URL whose upstream
// answers with an X-Session-Set (the upstream's /login), and prints the
// session ID of each response's Set-Cookie, one a line.
//
// Usage: mksessions -url http://127.0.0.1:18081/login -n 100000 > ids
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to request; its upstream must set session data")
	n := flag.Int("n", 1, "how many sessions to start")
	conc := flag.Int("c", 16, "concurrent requests")
	cookie := flag.String("cookie", "session", "the session cookie's name")
	flag.Parse()
	if *url == "" || *n < 1 || *conc < 1 {
		flag.Usage()
		os.Exit(2)
	}

	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: *conc,
			DisableCompression:  true,
		},
	}
	ids := make([]string, *n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) || failed.Load() != nil {
					return
				}
				id, err := start(client, *url, *cookie)
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		fmt.Fprintln(os.Stderr, "mksessions:", err)
		os.Exit(1)
	}

	out := bufio.NewWriter(os.Stdout)
	for _, id := range ids {
		fmt.Fprintln(out, id)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "mksessions:", err)
		os.Exit(1)
	}
}

// start makes one request and returns the session ID its response set.
func start(client *http.Client, url, name string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	for _, c := range resp.Cookies() {
		if c.Name == name && c.Value != "" {
			return c.Value, nil
		}
	}
	return "", fmt.Errorf("GET %s: no %s cookie in the response", url, name)
}
