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
