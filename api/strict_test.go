package api

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/store"
)

// An unknown parameter (a typo) or one given twice is a 400 naming it, on
// every route, rather than an answer that silently ignores it.
func TestUnknownAndRepeatedParametersAre400(t *testing.T) {
	h := newTestAPI(t)
	f := func(path, param, msg string) {
		t.Helper()
		var body map[string]string
		require.Equal(t, http.StatusBadRequest, get(t, h, path, &body), path)
		require.Equal(t, param, body["parameter"], path)
		require.Contains(t, body["error"], msg, path)
	}
	f("/api/v1/top?by=app&metrics=packets", "metrics", "did you mean metric?")
	f("/api/v1/report?by=app&form=-1h", "form", "did you mean from?")
	f("/api/v1/series?stpe=5m", "stpe", "did you mean step?")
	f("/api/v1/top?by=app&zzz=1", "zzz", "not a parameter of /api/v1/top, which takes app, by, compare")
	f("/api/v1/exporters?verbose=1", "verbose", "not a parameter of /api/v1/exporters, which takes none")
	f("/api/v1/capabilities?x=", "x", "not a parameter")
	f("/api/v1/openapi.json?format=yaml", "format", "not a parameter")
	// Each route takes its own: key is series', not top's.
	f("/api/v1/top?by=app&key=https", "key", "not a parameter of /api/v1/top")
	f("/api/v1/top?by=app&by=ip", "by", "given 2 times")
	f("/api/v1/report?by=app&step=5m&step=1h", "step", "given 2 times")
	f("/api/v1/series?from=-1h&from=-2h", "from", "given 2 times")
}

// A declared path with another method is a 405 with Allow, in the usual
// JSON error shape; OPTIONS says what is allowed; an unknown path stays 404.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	h := newTestAPI(t)
	f := func(method, path string, code int, allow string) {
		t.Helper()
		rr := do(h, method, path, "")
		require.Equal(t, code, rr.Code, "%s %s: %s", method, path, rr.Body)
		require.Equal(t, allow, rr.Header().Get("Allow"), "%s %s", method, path)
		if method == http.MethodOptions || method == http.MethodHead {
			return
		}
		var body map[string]string
		require.NoError(t, json.Unmarshal(rr.Body.Bytes(), &body), rr.Body.String())
		require.NotEmpty(t, body["error"])
		if code == http.StatusMethodNotAllowed && strings.HasPrefix(path, "/api/v1/") {
			require.Contains(t, body["error"], "use "+allow[:len(allow)-len(", OPTIONS")])
		}
	}
	f(http.MethodPost, "/api/v1/top?by=app", 405, "GET, OPTIONS")
	f(http.MethodPut, "/api/v1/report", 405, "GET, OPTIONS")
	f(http.MethodDelete, "/api/v1/openapi.json", 405, "GET, OPTIONS")
	f(http.MethodHead, "/api/v1/series", 405, "GET, OPTIONS")
	f(http.MethodGet, "/api/v1/exporters/192.0.2.1", 405, "DELETE, OPTIONS")
	f(http.MethodPost, "/api/v1/exporters", 405, "GET, OPTIONS")
	f(http.MethodOptions, "/api/v1/top", 204, "GET, OPTIONS")
	f(http.MethodGet, "/api/v1/nope", 404, "")
	f(http.MethodPost, "/api/v1/top/extra", 404, "")
	f(http.MethodGet, "/api/v1/top", 400, "") // by is required: the route itself answers
	// Outside /api/v1 Echo's own 405 has Allow too.
	f(http.MethodPost, "/healthz", 405, "OPTIONS, GET")
}

// Durations in messages read as in the configuration (400d, 14d, 2h), not as
// Go prints them (9600h0m0s).
func TestMessagesUseConfigurationUnits(t *testing.T) {
	a := newTestAPIWith(t, DefaultConfiguration(), func(d *Dependencies) {
		d.Retention = fixedRetention{store.TierMinute: 14 * 24 * time.Hour, store.TierHour: 36 * time.Hour, store.TierDay: 90*time.Minute + 30*time.Second}
	})
	h := a.Handler()
	f := func(path, param string, want []string) {
		t.Helper()
		var body map[string]string
		require.Equal(t, http.StatusBadRequest, get(t, h, path, &body), path)
		require.Equal(t, param, body["parameter"], path)
		for _, w := range want {
			require.Contains(t, body["error"], w, path)
		}
		require.NotRegexp(t, `\d+h\d+m\d+s`, body["error"], path)
	}
	f("/api/v1/top?by=app&from=-401d", "from", []string{"range of 401d is longer than the maximum of 400d (api.max_range)"})
	f("/api/v1/top?by=app&from=-400d&to=-1m", "from", []string{"retention of the day tier (5430s;"})
	f("/api/v1/series?from=-20d&step=1m", "from", []string{"retention of the minute tier (14d;", "a step of 1m"})
	f("/api/v1/series?from=-3d&step=1h", "from", []string{"retention of the hour tier (36h;"})
	f("/api/v1/series?from=-3h&step=7m&compare=1d", "compare", []string{"(1d before)", "steps of 7m"})
	f("/api/v1/series?from=-90d&step=1m", "step", []string{"of 1m is too many points"})
}

// An exporter that sent only errors lists no protocol: [], not null.
func TestExportersProtocolsNeverNull(t *testing.T) {
	h := newTestAPIWith(t, DefaultConfiguration(), func(d *Dependencies) {
		d.Exporters = fakeExporters{
			{Address: netip.MustParseAddr("192.0.2.1"), Protocols: []string{"ipfix"}, Datagrams: 3},
			{Address: netip.MustParseAddr("192.0.2.9"), Datagrams: 40, Errors: map[string]uint64{"malformed": 40}},
		}
	}).Handler()
	var raw struct {
		Exporters []map[string]json.RawMessage `json:"exporters"`
	}
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/exporters", &raw))
	require.Len(t, raw.Exporters, 2)
	require.JSONEq(t, `["ipfix"]`, string(raw.Exporters[0]["protocols"]))
	require.JSONEq(t, `[]`, string(raw.Exporters[1]["protocols"]))
	require.JSONEq(t, `{"malformed": 40}`, string(raw.Exporters[1]["errors"]))
}
