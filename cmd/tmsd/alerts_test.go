package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/internal/alerts"
	"github.com/tmsd/tmsd/internal/alerts/notify"
)

// An alert rule of the configuration file fires on the captures' traffic and
// its event reaches a real webhook receiver, through the query engine and the
// notifier tmsd serve builds; a bad rule stops the start with its FILE:LINE.
func TestAlertRuleFromTheConfigReachesAWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []alerts.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev alerts.Event
		if json.Unmarshal(b, &ev) == nil {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		}
	}))
	t.Cleanup(hook.Close)

	dir := t.TempDir()
	conf := filepath.Join(dir, "tmsd.yaml")
	write := func(rule string) {
		require.NoError(t, os.WriteFile(conf, []byte(`alerts:
  dashboard_url: http://tmsd.example
  targets:
    - {name: noc, type: webhook, url: `+hook.URL+`}
  rules:
`+rule), 0o644))
	}
	write("    - {name: https-busy, dim: app, key: https, threshold: 1k, targets: [noc]}\n")
	data := filepath.Join(dir, "data")
	require.NoError(t, run([]string{"import", "--data", data, "--retention", "36500d", "../../testdata/pcaps/softflowd-v9.pcap"}, io.Discard, io.Discard))
	cfg, _, err := parseFlags("serve", []string{"--config", conf, "--data", data, "--retention", "36500d",
		"--netflow", "127.0.0.1:0", "--sflow", "127.0.0.1:0", "--http", "127.0.0.1:0"}, io.Discard)
	require.NoError(t, err)
	p, _ := serveConfig(t, cfg, nil)
	require.NotNil(t, p.alerts)
	// The capture's minute (its flows end at 19:47), evaluated as the loop
	// would once it is closed.
	minute := time.Date(2026, 11, 22, 19, 47, 0, 0, time.UTC)
	require.NoError(t, p.alerts.EvaluateMinute(minute))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 }, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	ev := got[0]
	mu.Unlock()
	require.Equal(t, alerts.KindFiring, ev.Kind)
	require.Equal(t, "https-busy", ev.Rule)
	require.Equal(t, "https", ev.Key)
	require.Equal(t, minute, ev.At)
	// softflowd-v9.pcap: https 4,214,706 bytes in that minute.
	require.InDelta(t, 4214706*8/60.0, ev.Value, 1)
	require.True(t, strings.HasPrefix(ev.URL, "http://tmsd.example/"), ev.URL)

	write("    - {name: bad, dim: app, key: https, threshold: 8X, targets: [noc]}\n")
	_, _, err = parseFlags("serve", []string{"--config", conf, "--data", data}, io.Discard)
	require.ErrorContains(t, err, conf+":6:")
	require.ErrorContains(t, err, `rule "bad": threshold`)
	write("    - {name: orphan, dim: app, key: https, threshold: 1k, targets: [pager]}\n")
	_, _, err = parseFlags("serve", []string{"--config", conf, "--data", data}, io.Discard)
	require.ErrorContains(t, err, `target "pager" is not in alerts.targets`)
}

// GET /api/v1/config shows no credential of a notification target.
func TestAlertTargetsCredentialsAreRedacted(t *testing.T) {
	c := AlertsConfig{Targets: []notify.Target{
		{Name: "hook", Type: notify.TypeWebhook, URL: "https://hooks.example/x", Secret: "hmac-key", Headers: map[string]string{"Authorization": "Bearer tok"}},
		{Name: "chat", Type: notify.TypeSlack, URL: "https://hooks.slack.com/services/T/B/secretpath"},
		{Name: "mail", Type: notify.TypeEmail, Email: &notify.Email{Server: "smtp.example:587", Username: "u", Password: "pw", From: "a@example", To: []string{"b@example"}}},
	}}
	b, err := yaml.Marshal(struct {
		Alerts AlertsConfig `yaml:"alerts"`
	}{c})
	require.NoError(t, err)
	for _, secret := range []string{"hmac-key", "Bearer tok", "secretpath", "pw"} {
		require.NotContains(t, string(b), secret)
	}
	require.Contains(t, string(b), "https://hooks.example/x", "a webhook's URL is no credential")
	require.Equal(t, "pw", c.Targets[2].Email.Password, "the configuration in force keeps it")
}

// Rules change while tmsd runs: through the API (a bad field is a 400
// naming it) and by reloading the file (a bad rule, or one the API wrote,
// is refused with FILE:LINE and the rules in force keep firing). A restart
// keeps the firing alert, the API's rule and the history, and notifies
// nothing again.
func TestAlertRulesChangeWhileRunning(t *testing.T) {
	var mu sync.Mutex
	var got []alerts.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev alerts.Event
		if json.NewDecoder(r.Body).Decode(&ev) == nil {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		}
	}))
	t.Cleanup(hook.Close)
	received := func() []alerts.Event { mu.Lock(); defer mu.Unlock(); return append([]alerts.Event(nil), got...) }

	dir := t.TempDir()
	conf := filepath.Join(dir, "tmsd.yaml")
	write := func(rules string) {
		require.NoError(t, os.WriteFile(conf, []byte("alerts:\n  targets:\n    - {name: noc, type: webhook, url: "+hook.URL+"}\n  rules:\n"+rules), 0o644))
	}
	minute := time.Date(2026, 11, 22, 19, 47, 0, 0, time.UTC) // the capture's
	busy := "    - {name: https-busy, dim: app, key: https, threshold: 1k, targets: [noc]}\n"
	write(busy)
	data := filepath.Join(dir, "data")
	require.NoError(t, run([]string{"import", "--data", data, "--retention", "36500d", "../../testdata/pcaps/softflowd-v9.pcap"}, io.Discard, io.Discard))
	args := []string{"--config", conf, "--data", data, "--retention", "36500d", "--netflow", "127.0.0.1:0", "--sflow", "", "--http", "127.0.0.1:0"}
	start := func() (*pipeline, string, func()) {
		cfg, _, err := parseFlags("serve", args, io.Discard)
		require.NoError(t, err)
		// The clock stays two minutes after the capture's minute: the
		// evaluation loop then evaluates nothing of its own (no minute of
		// the capture's closes), and this test decides which minutes are.
		p, err := newPipeline(cfg, newLogger("error"), func() time.Time { return minute.Add(2 * time.Minute) })
		require.NoError(t, err)
		p.reloadArgs, p.config = args, cfg
		require.NoError(t, p.startServe(cfg))
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				require.NoError(t, p.stop())
			}
		}
		t.Cleanup(stop)
		return p, "http://" + p.api.Addr().String(), stop
	}
	do := func(base, method, path, body string) (int, map[string]any) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	p, base, stop := start()
	require.NoError(t, p.alerts.EvaluateMinute(minute))
	require.Eventually(t, func() bool { return len(received()) == 1 }, 10*time.Second, 10*time.Millisecond)

	// The API: a bad field is named; a good rule is in force at once.
	code, out := do(base, "PUT", "/api/v1/alerts/rules/from-api", `{"dim": "dstport", "key": "443/tcp", "threshold": "lots"}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "threshold", out["parameter"], out)
	code, out = do(base, "PUT", "/api/v1/alerts/rules/from-api", `{"dim": "dstport", "key": "443/tcp", "threshold": "1k", "targets": ["pager"]}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "targets", out["parameter"], out)
	code, out = do(base, "PUT", "/api/v1/alerts/rules/from-api", `{"dim": "dstport", "key": "443/tcp", "threshold": "1k"}`)
	require.Equal(t, http.StatusOK, code, out)
	require.NoError(t, p.alerts.EvaluateMinute(minute)) // again: from-api fires, https-busy stays notified once
	_, out = do(base, "GET", "/api/v1/alerts?rule=from-api&from=2026-11-22T19:00:00Z&to=2026-11-22T20:00:00Z", "")
	require.Len(t, out["events"], 1, out)
	ev := out["events"].([]any)[0].(map[string]any)
	require.Equal(t, "443/tcp https", ev["label"], "labelled as the API labels keys")
	require.Contains(t, ev["summary"], "from-api: dstport 443/tcp https at ")

	// The file: a bad rule on line 6, then a rule the API wrote on line 6;
	// both refused, and https-busy keeps firing.
	write(busy + "    - {name: bad, dim: app, key: https, threshold: 8X}\n")
	_, err := p.Reload()
	require.ErrorContains(t, err, conf+":6:")
	require.ErrorContains(t, err, `rule "bad": threshold`)
	write(busy + "    - {name: from-api, dim: app, key: ssh, threshold: 1k}\n")
	_, err = p.Reload()
	require.ErrorContains(t, err, conf+":6: alerts.rules:")
	require.ErrorContains(t, err, "also written through the API")
	p.reload() // SIGHUP's path: refused the same way, logged
	_, out = do(base, "GET", "/api/v1/alerts/active", "")
	require.Equal(t, 2.0, out["firing"], out)
	require.NoError(t, p.alerts.EvaluateMinute(minute.Add(time.Minute)))
	state := func(rule string) alerts.State {
		for _, s := range p.alerts.Alerts() {
			if s.Rule == rule {
				return s.State
			}
		}
		return ""
	}
	require.Equal(t, alerts.StateFiring, state("https-busy"), "the old rule still fires")

	write(busy + "    - {name: ssh-busy, dim: app, key: ssh, threshold: 1k}\n")
	res, err := p.Reload()
	require.NoError(t, err)
	require.Equal(t, []string{"alerts.rules"}, res.Changed)
	require.Empty(t, res.Restart)
	_, out = do(base, "GET", "/api/v1/alerts/rules", "")
	var names []string
	for _, r := range out["rules"].([]any) {
		names = append(names, r.(map[string]any)["name"].(string)+" "+r.(map[string]any)["origin"].(string))
	}
	require.Equal(t, []string{"https-busy file", "ssh-busy file", "from-api api"}, names)

	// A restart: the alert is still firing, nothing is sent again, the
	// API's rule and the history are kept.
	stop()
	p, base, _ = start()
	require.Equal(t, alerts.StateFiring, state("https-busy"), "still firing after the restart")
	require.NoError(t, p.alerts.EvaluateMinute(minute.Add(2*time.Minute)))
	_, out = do(base, "GET", "/api/v1/alerts/rules/from-api", "")
	require.Equal(t, "api", out["origin"])
	_, out = do(base, "GET", "/api/v1/alerts?from=2026-11-22T19:00:00Z&to=2026-11-22T20:00:00Z", "")
	evs := out["events"].([]any)
	require.NotEmpty(t, evs)
	require.Equal(t, "firing", evs[0].(map[string]any)["kind"])
	require.Equal(t, "https-busy", evs[0].(map[string]any)["rule"])
	for _, ev := range received() {
		require.False(t, ev.Rule == "https-busy" && ev.Kind == alerts.KindFiring && ev.At != minute, "https-busy fired once: %+v", ev)
	}
}
