// Package retryafter reads HTTP Retry-After values, for knotclient (Knot's
// 429/503 answers) and vaultsource (Vault's rate-limit quotas and 503s),
// which must not import each other.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max bounds a Retry-After: a value beyond a year is read as a year.
const Max = 365 * 24 * time.Hour

// Parse reads a Retry-After value, delta-seconds or an HTTP-date (RFC 9110
// section 10.2.3), relative to now. ok is false for an empty, negative or
// malformed value; a date in the past gives 0 with ok true (retry now).
func Parse(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(Max/time.Second) {
			return Max, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
