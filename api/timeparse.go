package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseTime accepts RFC 3339, unix seconds, "now", or a duration relative to
// now ("-15m", "-24h", "-7d").
func parseTime(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "-"):
		d, err := ParseDuration(s[1:])
		if err != nil || d <= 0 {
			return time.Time{}, fmt.Errorf("relative time must look like -15m, -24h or -7d: %q", s)
		}
		return now.Add(-d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not RFC 3339, unix seconds, now, or relative like -15m", s)
}

// ParseDuration is time.ParseDuration plus a "d" (24 h) unit; negative
// durations are refused. The API and the configuration file share it.
func ParseDuration(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n float64
		n, err = strconv.ParseFloat(days, 64)
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q: use 90s, 15m, 1h or 14d", s)
	}
	return d, nil
}
