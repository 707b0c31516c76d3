package tests

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The README shows this function, from the line after BEGIN to the line
// before END, as the Go way to check X-Session-Signature; a test keeps the
// two the same.

// BEGIN README Go recipe
// SessionHeadersAreGenuine reports whether the X-Session-* headers of r
// came from the gateway: secret is its first secret.
func SessionHeadersAreGenuine(r *http.Request, secret string, maxAge time.Duration) bool {
	var t, v1 string
	for _, part := range strings.Split(r.Header.Get("X-Session-Signature"), ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			t = v
		case "v1":
			v1 = v
		}
	}
	unix, err := strconv.ParseInt(t, 10, 64)
	if err != nil || math.Abs(time.Since(time.Unix(unix, 0)).Seconds()) > maxAge.Seconds() {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t + "." + r.Header.Get("X-Session-Id") + "." + r.Header.Get("X-Session-New") + "." + r.Header.Get("X-Session-Data")))
	given, err := hex.DecodeString(v1)
	return err == nil && hmac.Equal(mac.Sum(nil), given)
}

// END README Go recipe
