package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/alerts"
	"github.com/tmsd/tmsd/internal/store"
)

// alertsAPI is an API whose evaluator has one rule from "the file", total
// above 1 bps, over one minute of traffic at now-5m.
func alertsAPI(t *testing.T) (http.Handler, *alerts.Evaluator) {
	t.Helper()
	var ev *alerts.Evaluator
	a := newTestAPIWith(t, DefaultConfiguration(), func(d *Dependencies) {
		cfg := alerts.DefaultConfiguration()
		cfg.Rules = []alerts.Rule{{Name: "file-rule", Threshold: "1", ResolveFor: alerts.Duration(time.Minute)}}
		var err error
		ev, err = alerts.New(cfg, alerts.Dependencies{Source: d.Engine, Store: memStore(t), Clock: d.Clock,
			Logger: slog.New(slog.DiscardHandler), Targets: func(n string) bool { return n == "ops" }})
		require.NoError(t, err)
		d.Alerts = ev
	}, rec("10.0.0.1", "10.0.0.2", 40000, 443, 60_000, now.Add(-5*time.Minute)))
	return a.Handler(), ev
}

// memStore is a store in memory, for the evaluator's own records.
func memStore(t *testing.T) *store.Store {
	t.Helper()
	cfg := store.DefaultConfiguration()
	cfg.InMemory = true
	st, err := store.New(cfg, store.Dependencies{})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })
	return st
}

func call(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	var out map[string]any
	if strings.HasPrefix(rr.Header().Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(rr.Body.Bytes(), &out), rr.Body.String())
	}
	return rr.Code, out
}

func TestAlertRulesAPI(t *testing.T) {
	h, _ := alertsAPI(t)
	code, out := call(t, h, "PUT", "/api/v1/alerts/rules/https-in", `{"dim": "app", "key": "https", "threshold": "8G", "for": "5m", "targets": ["ops"]}`)
	require.Equal(t, 200, code, out)
	require.Equal(t, "https-in", out["name"])
	require.Equal(t, "api", out["origin"])
	require.Equal(t, "5m0s", out["resolve_for"], "defaults filled")

	code, out = call(t, h, "GET", "/api/v1/alerts/rules", "")
	require.Equal(t, 200, code)
	var names []string
	for _, r := range out["rules"].([]any) {
		r := r.(map[string]any)
		names = append(names, r["name"].(string)+" "+r["origin"].(string))
	}
	require.Equal(t, []string{"file-rule file", "https-in api"}, names)
	code, out = call(t, h, "GET", "/api/v1/alerts/rules/https-in", "")
	require.Equal(t, 200, code)
	require.Equal(t, "8G", out["threshold"])

	// Refusals name what is at fault; the rules in force stay.
	bad := func(method, path, body string, status int, param string) {
		t.Helper()
		code, out := call(t, h, method, path, body)
		require.Equal(t, status, code, out)
		if param != "" {
			require.Equal(t, param, out["parameter"], out)
		}
		require.NotEmpty(t, out["error"])
	}
	bad("PUT", "/api/v1/alerts/rules/x", `{"threshold": "fast"}`, 400, "threshold")
	bad("PUT", "/api/v1/alerts/rules/x", `{"threshold": "1G", "metric": "bits"}`, 400, "metric")
	bad("PUT", "/api/v1/alerts/rules/x", `{"threshold": "1G", "thresold": "1G"}`, 400, "thresold")
	bad("PUT", "/api/v1/alerts/rules/x", `{"threshold": "1G", "severity": 3}`, 400, "severity")
	bad("PUT", "/api/v1/alerts/rules/x", `{"threshold": "1G", "targets": ["pager"]}`, 400, "targets")
	bad("PUT", "/api/v1/alerts/rules/x", `{"name": "y", "threshold": "1G"}`, 400, "name")
	bad("PUT", "/api/v1/alerts/rules/x", ``, 400, "body")
	bad("PUT", "/api/v1/alerts/rules/x", `{"threshold": "1G"} {}`, 400, "body")
	bad("PUT", "/api/v1/alerts/rules/file-rule", `{"threshold": "2G"}`, 409, "")
	bad("DELETE", "/api/v1/alerts/rules/file-rule", ``, 409, "")
	bad("DELETE", "/api/v1/alerts/rules/nope", ``, 404, "")
	bad("GET", "/api/v1/alerts/rules/nope", ``, 404, "")
	bad("PUT", "/api/v1/alerts/rules", `{"rules": [{"name": "a", "threshold": "1G"}, {"name": "b", "op": "~", "threshold": "1G"}]}`, 400, "op")
	bad("PUT", "/api/v1/alerts/rules", `{}`, 400, "rules")
	_, out = call(t, h, "GET", "/api/v1/alerts/rules", "")
	require.Len(t, out["rules"], 2, "nothing refused reached the rules in force")

	code, out = call(t, h, "PUT", "/api/v1/alerts/rules", `{"rules": [{"name": "a", "threshold": "1G"}, {"name": "b", "dim": "dstip", "key": "*", "threshold": "1G"}]}`)
	require.Equal(t, 200, code, out)
	require.Len(t, out["rules"], 3, "the file's and the two")
	code, out = call(t, h, "DELETE", "/api/v1/alerts/rules/a", "")
	require.Equal(t, 200, code)
	require.Equal(t, "a", out["deleted"])
	_, out = call(t, h, "GET", "/api/v1/alerts/rules", "")
	require.Len(t, out["rules"], 2)
}

func TestAlertSilencesAPI(t *testing.T) {
	h, _ := alertsAPI(t)
	code, out := call(t, h, "POST", "/api/v1/alerts/silences", `{"rule": "file-rule", "for": "2h", "comment": "maintenance"}`)
	require.Equal(t, 201, code, out)
	require.Equal(t, "1", out["id"])
	require.Equal(t, now.Add(2*time.Hour).Format(time.RFC3339), out["until"])
	code, out = call(t, h, "POST", "/api/v1/alerts/silences", `{"rule": "file-rule", "until": "2026-11-01T12:00:00Z"}`)
	require.Equal(t, 201, code, out)
	require.Equal(t, "2", out["id"])

	f := func(body, param string) {
		t.Helper()
		code, out := call(t, h, "POST", "/api/v1/alerts/silences", body)
		require.Equal(t, 400, code, out)
		require.Equal(t, param, out["parameter"], out)
	}
	f(`{"rule": "file-rule"}`, "until")
	f(`{"rule": "file-rule", "for": "soon"}`, "for")
	f(`{"rule": "file-rule", "for": "1h", "until": "now"}`, "for")
	f(`{"rule": "file-rule", "until": "2000-01-01T00:00:00Z"}`, "until")
	f(`{"rule": "nope", "for": "1h"}`, "rule")
	f(`{"for": "1h"}`, "rule")

	_, out = call(t, h, "GET", "/api/v1/alerts/silences", "")
	require.Len(t, out["silences"], 2)
	code, _ = call(t, h, "DELETE", "/api/v1/alerts/silences/1", "")
	require.Equal(t, 200, code)
	code, _ = call(t, h, "DELETE", "/api/v1/alerts/silences/1", "")
	require.Equal(t, 404, code)
	_, out = call(t, h, "GET", "/api/v1/alerts/silences", "")
	require.Len(t, out["silences"], 1)
}

func TestAlertsActiveAndHistoryAPI(t *testing.T) {
	h, ev := alertsAPI(t)
	m := now.Add(-5 * time.Minute).Truncate(time.Minute)
	require.NoError(t, ev.EvaluateMinute(m))
	code, out := call(t, h, "GET", "/api/v1/alerts/active", "")
	require.Equal(t, 200, code)
	require.Equal(t, 1.0, out["firing"])
	require.Equal(t, 1.0, out["rules"])
	al := out["alerts"].([]any)[0].(map[string]any)
	require.Equal(t, "firing", al["state"])
	require.Equal(t, "file-rule", al["rule"])
	require.Equal(t, 60_000*8/60.0, al["value"])

	require.NoError(t, ev.EvaluateMinute(m.Add(time.Minute))) // no traffic: resolved
	code, out = call(t, h, "GET", "/api/v1/alerts?from=-1h", "")
	require.Equal(t, 200, code, out)
	evs := out["events"].([]any)
	require.Len(t, evs, 2)
	require.Equal(t, "firing", evs[0].(map[string]any)["kind"])
	require.Equal(t, "resolved", evs[1].(map[string]any)["kind"])
	require.Equal(t, false, out["truncated"])

	_, out = call(t, h, "GET", "/api/v1/alerts?from=-1h&state=resolved", "")
	require.Len(t, out["events"], 1)
	_, out = call(t, h, "GET", "/api/v1/alerts?from=-1h&n=1", "")
	require.Len(t, out["events"], 1)
	require.Equal(t, true, out["truncated"])
	require.Equal(t, "resolved", out["events"].([]any)[0].(map[string]any)["kind"], "the most recent kept")
	_, out = call(t, h, "GET", "/api/v1/alerts?from=-1m", "")
	require.Empty(t, out["events"])

	req := httptest.NewRequest("GET", "/api/v1/alerts?from=-1h&format=csv", nil)
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	require.Equal(t, 200, rr.Code)
	lines := strings.Split(strings.TrimSpace(rr.Body.String()), "\r\n")
	require.Len(t, lines, 3)
	require.True(t, strings.HasPrefix(lines[0], "at,kind,rule,severity,"))
	require.True(t, strings.HasPrefix(lines[1], m.Format(time.RFC3339)+",firing,file-rule,warning,"), lines[1])
}
