package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// A reload reads the file again: a bad rule is refused with FILE:LINE and
// the reason, the rules in force keep classifying, and the file's names are
// applied only with good rules; a good file's rules take over from the next
// minute, and the answers over that minute say so.
func TestReloadRefusesABadRuleAndKeepsTheOld(t *testing.T) {
	path := writeConfig(t, "apps:\n  - \"web-a = tcp/443\"\n")
	args := []string{"--config", path, "--netflow", "127.0.0.1:0", "--sflow", "", "--http", "127.0.0.1:0", "--data", t.TempDir()}
	cfg, _, err := parseFlags("serve", args, io.Discard)
	require.NoError(t, err)
	cfg.Listener.Sockets = 1
	p, base := serveConfig(t, cfg, func(p *pipeline) { p.reloadArgs, p.config = args, cfg })
	start := time.Now()
	flows := uint64(0)
	send := func() {
		t.Helper()
		flows += 2
		sendFlows(t, p, v5Datagram(time.Now(), 1, 2, 2), flows)
	}
	apps := func() map[string]uint64 {
		top, _ := topRows(t, base, "app", start.Add(-time.Minute), time.Now().Add(2*time.Minute))
		out := map[string]uint64{}
		for _, r := range top.Rows {
			out[r.Key] = r.Flows
		}
		return out
	}
	reload := func() (int, map[string]any) {
		resp, err := http.Post(base+"/api/v1/admin/reload", "", nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}

	send()
	require.Equal(t, map[string]uint64{"web-a": 2}, apps())

	// A bad rule on line 3, and a name that must not be applied with it.
	require.NoError(t, os.WriteFile(path, []byte("exporters: {127.0.0.1: edge-1}\napps:\n  - \"web-b = tcp/99999\"\n"), 0o600))
	code, body := reload()
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "reload refused, the configuration in force stays: "+path+`:3: apps: app rule "web-b = tcp/99999": bad port "tcp/99999": want PROTO/PORT or PROTO/LOW-HIGH, ports 0-65535`, body["error"])
	p.reload() // SIGHUP's path: refused the same way, logged
	send()
	require.Equal(t, map[string]uint64{"web-a": 4}, apps(), "the old rules still classify")
	_, exp := topRows(t, base, "exporter", start.Add(-time.Minute), time.Now().Add(2*time.Minute))
	require.NotEqual(t, "edge-1", exp["127.0.0.1"], "nothing of a refused file is applied")

	// A good file: the new rules from the next minute, the names at once.
	require.NoError(t, os.WriteFile(path, []byte("exporters: {127.0.0.1: edge-1}\napps:\n  - \"web-b = tcp/443\"\n"), 0o600))
	code, body = reload()
	require.Equal(t, http.StatusOK, code, body)
	require.ElementsMatch(t, []any{"apps", "exporters"}, body["changed"])
	from, err := time.Parse(time.RFC3339, body["from"].(string))
	require.NoError(t, err)
	require.True(t, from.After(start) && !from.After(time.Now().Add(time.Minute)) && from.Second() == 0, "from %v: the next minute", from)
	_, exp = topRows(t, base, "exporter", start.Add(-time.Minute), time.Now().Add(2*time.Minute))
	require.Equal(t, "edge-1", exp["127.0.0.1"])
	if time.Now().Before(from) { // flows of this minute are still the old rules'
		send()
		require.Equal(t, map[string]uint64{"web-a": 6}, apps())
	}
	top, _ := topRows(t, base, "app", start.Add(-time.Minute), from.Add(2*time.Minute))
	require.Equal(t, []string{from.UTC().Format(time.RFC3339)}, top.RulesChanged)
	top, _ = topRows(t, base, "app", start.Add(-time.Minute), from)
	require.Empty(t, top.RulesChanged, "a range before the change does not mention it")
}

// The live classifier switches rule sets at the minute a reload names, and
// an application keeps its id across rule sets.
func TestLiveClassifierSwitchesAtTheMinute(t *testing.T) {
	parse := func(lines ...string) []apps.Rule {
		var out []apps.Rule
		for _, l := range lines {
			r, err := apps.ParseRule(l)
			require.NoError(t, err)
			out = append(out, r)
		}
		return out
	}
	l, err := newLiveClassifier(parse("erp = tcp/5432", "web-a = tcp/443"))
	require.NoError(t, err)
	rec := func(port uint16, at time.Time) *flow.Record {
		return &flow.Record{Proto: 6, SrcPort: 40000, DstPort: port, Received: at.UnixMilli()}
	}
	name := func(r *flow.Record) string {
		k, ok := l.AppKey(l.ClassifyID(r))
		require.True(t, ok)
		return k.App()
	}
	now := time.Date(2026, 12, 3, 12, 34, 56, 0, time.UTC)
	erpID := l.ClassifyID(rec(5432, now))
	from, err := l.replace(parse("web-b = tcp/443", "erp = tcp/5432"), now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 3, 12, 35, 0, 0, time.UTC), from)
	require.Equal(t, "web-a", name(rec(443, now)), "this minute keeps the old rules")
	require.Equal(t, "web-b", name(rec(443, from)))
	require.Equal(t, erpID, l.ClassifyID(rec(5432, from)), "erp keeps its id in the new rule set")
	require.Equal(t, "ssh", name(rec(22, now)), "the port table names the same before")
	require.Equal(t, "ssh", name(rec(22, from)), "and after")
	k, ok := l.AppKey(l.ClassifyID(rec(443, now)))
	require.True(t, ok)
	require.Equal(t, topn.AppKey("web-a"), k, "an id given out before the reload still names its application")
	require.Equal(t, []time.Time{from}, l.RuleChanges(now, now.Add(time.Hour)))
	require.Empty(t, l.RuleChanges(now, from))
}
