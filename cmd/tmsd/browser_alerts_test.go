package main

// The Alerts page and the firing banner in a real browser (browser_test.go's
// helpers): a rule of the configuration file fires on an imported capture's
// minute through the real evaluator, store and query engine, and the page
// silences, unsilences, saves and deletes rules through the admin API.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/alerts"
)

// alertMinute is softflowd-v9.pcap's minute: its flows end at 19:47
// (TestAlertRuleFromTheConfigReachesAWebhook).
var alertMinute = time.Date(2026, 11, 22, 19, 47, 0, 0, time.UTC)

// A rule on the whole network's total that any traffic fires at once, and
// a baseline rule the store has no earlier weeks for.
const alertRulesYAML = `rules:
  - {name: net-busy, threshold: "1", for: 0, severity: critical}
  - {name: net-unusual, baseline: {ratio: 2}}
`

// waitJS polls a JavaScript expression in the page until it is true.
func waitJS(t *testing.T, b *browser, js, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(25*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(t, err, msg)
	require.True(t, ok, msg)
}

// apiCall makes one request to the API with a bearer token ("" for none)
// and a JSON body (nil for none), and returns the status and the body.
func apiCall(t *testing.T, method, u, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

type activeAnswer struct {
	Firing, Pending, Rules int
	Alerts                 []alerts.Status
}

// firingDashboard runs tmsd on a store of softflowd-v9.pcap with the rule
// of alertRulesYAML, the capture's minute evaluated: net-busy fires. The
// evaluation loop is stopped first, so that no later (empty) minute begins
// the alert's resolution and moves the figures the page shows.
func firingDashboard(t *testing.T, edit func(*Config)) (*pipeline, string) {
	t.Helper()
	data := t.TempDir()
	require.NoError(t, run([]string{"import", "--data", data, "--retention", "36500d", "../../testdata/pcaps/softflowd-v9.pcap"}, io.Discard, io.Discard))
	p := startDashboard(t, data, func(c *Config) {
		require.NoError(t, yaml.Unmarshal([]byte(alertRulesYAML), &c.Alerts))
		if edit != nil {
			edit(c)
		}
	})
	require.NotNil(t, p.alerts)
	require.NoError(t, p.alerts.Stop())
	require.NoError(t, p.alerts.EvaluateMinute(alertMinute))
	return p, "http://" + p.api.Addr().String()
}

func TestDashboardAlerts(t *testing.T) {
	b := newBrowser(t) // first: skips at once when there is no chromium
	_, base := firingDashboard(t, nil)
	var active activeAnswer
	getJSON(t, base+"/api/v1/alerts/active", &active)
	require.Equal(t, 1, active.Firing, "%+v", active)
	require.Len(t, active.Alerts, 2, "net-busy firing, net-unusual's short history")
	fire, short := active.Alerts[0], active.Alerts[1]
	require.Equal(t, "net-unusual", short.Rule)
	require.Empty(t, short.State)
	require.NotEmpty(t, short.Reason)
	require.Equal(t, "net-busy", fire.Rule)
	require.Equal(t, alerts.StateFiring, fire.State)
	require.Greater(t, fire.Value, 1000.0, "the capture's minute carries kbps at least")
	require.Equal(t, alertMinute, fire.Since.UTC())
	// The minute's range, as absolute times: the test runs whenever.
	hist := url.Values{"from": {alertMinute.Add(-time.Hour).Format(time.RFC3339)}, "to": {alertMinute.Add(time.Hour).Format(time.RFC3339)}}

	bannerRe := regexp.MustCompile(`^1 alert firing: net-busy total (.+)$`)
	t.Run("the banner shows what fires, on every view", func(t *testing.T) {
		b.open(t, base+"/")
		waitJS(t, b, `(() => { const e = document.getElementById('alert-banner'); return !e.hidden && Number(e.dataset.firing) >= 1 })()`, "the banner fires")
		var banner struct{ Text, Href, Firing string }
		b.eval(t, `(() => { const e = document.getElementById('alert-banner'); return {text: e.textContent, href: e.getAttribute('href'), firing: e.dataset.firing} })()`, &banner)
		require.Equal(t, "1", banner.Firing)
		require.Equal(t, "#/alerts", banner.Href)
		m := bannerRe.FindStringSubmatch(banner.Text)
		require.NotNil(t, m, "banner %q", banner.Text)
		require.True(t, strings.HasSuffix(m[1], "bps"), "banner %q: the value in bps", banner.Text)
		near(t, fire.Value, parseShown(t, m[1]), "banner value %q", m[1])

		// A view's error banner is cleared on a route change; the alert's is not.
		b.setHash(t, "#/top?by=nosuch")
		require.False(t, evalJS[bool](t, b, `document.getElementById('banner').hidden`), "the view's error shows")
		b.setHash(t, "#/interfaces")
		require.True(t, evalJS[bool](t, b, `document.getElementById('banner').hidden`), "clearBanner on the route change")
		require.Equal(t, "1", evalJS[string](t, b, `(() => { const e = document.getElementById('alert-banner'); return e.hidden ? 'hidden' : e.dataset.firing })()`))
		b.takeProblems() // the browser logs the 400 itself

		// It links to the Alerts page.
		b.do(t, chromedp.Click(chromedp.CSS(`#alert-banner`)))
		b.waitReady(t)
		require.Equal(t, "#/alerts", evalJS[string](t, b, `location.hash`))
		require.Equal(t, "alerts", evalJS[string](t, b, `document.getElementById('view').dataset.view`))
		require.Equal(t, "/alerts", evalJS[string](t, b, `document.querySelector('nav a.active').dataset.nav`), "the nav marks Alerts")
		require.Empty(t, b.takeProblems())
	})

	t.Run("the Alerts page lists the firing alert and the file rule", func(t *testing.T) {
		b.setHash(t, "#/alerts?"+hist.Encode())
		var row struct {
			State string
			Cells []string
			Href  string
			Since string
		}
		b.eval(t, `(() => { const tr = document.querySelector('#view [data-panel="active"] tr[data-rule="net-busy"]');
			return {state: tr.dataset.state, cells: [...tr.cells].map(td => td.textContent), href: tr.querySelector('td.key a').getAttribute('href'), since: tr.cells[7].title} })()`, &row)
		require.Equal(t, "firing", row.State)
		require.Equal(t, []string{"firing", "net-busy", "critical", "whole network", "total"}, row.Cells[:5])
		near(t, fire.Value, parseShown(t, row.Cells[5]), "value %q", row.Cells[5])
		require.Equal(t, "> 1\u202fbps", row.Cells[6], "the threshold in human units")
		require.True(t, strings.HasPrefix(row.Since, "2026-11-22 19:47:00 UTC"), "since %q", row.Since)
		require.Equal(t, "Silence", row.Cells[9])
		require.Equal(t, "1 firing, 0 pending; 2 rules evaluated each minute", evalJS[string](t, b, `document.querySelector('#view [data-panel="active"] .card-head .muted').textContent`))
		// The baseline rule with too short a history, with its reason.
		require.Equal(t, []string{"net-unusual", "whole network", "total", short.Reason},
			evalJS[[]string](t, b, `[...document.querySelector('#view [data-panel="active"] table.alerts-short tr[data-rule="net-unusual"]').cells].slice(0, 4).map(td => td.textContent)`))
		require.Nil(t, evalJS[any](t, b, `document.querySelector('#view [data-panel="active"] table.alerts-active tr[data-rule="net-unusual"]')`), "not among the alerts")

		// The file rule, with no Delete button: the file owns it.
		var rule struct {
			Origin string
			Cells  []string
			Delete bool
		}
		b.eval(t, `(() => { const tr = document.querySelector('#view [data-panel="rules"] tr[data-rule="net-busy"]');
			return {origin: tr.dataset.origin, cells: [...tr.cells].map(td => td.textContent), delete: !!tr.querySelector('button.delete')} })()`, &rule)
		require.Equal(t, "file", rule.Origin)
		require.Equal(t, []string{"net-busy", "file", "whole network", "total", "bps", "> 1 bps", "0", "critical", "—"}, rule.Cells[:9])
		require.False(t, rule.Delete)

		// The key links to the dashboard's view of it, from an hour before the alert began.
		require.True(t, strings.HasPrefix(row.Href, "#/top?"), "a total links to the TopN: %q", row.Href)
		q, err := url.ParseQuery(strings.TrimPrefix(row.Href, "#/top?"))
		require.NoError(t, err)
		require.Equal(t, alertMinute.Add(-time.Hour).Format(time.RFC3339), q.Get("from"))
		require.Equal(t, alertMinute.Add(time.Hour).Format(time.RFC3339), q.Get("to"))
		b.do(t, chromedp.Click(chromedp.CSS(`#view [data-panel="active"] tr[data-rule="net-busy"] td.key a`)))
		b.waitReady(t)
		require.NotZero(t, evalJS[int](t, b, `document.querySelectorAll('#view table.top tbody tr[data-key]').length`), "the capture's traffic is there")
		require.Empty(t, b.takeProblems())
	})

	t.Run("the page's Silence button silences, Unsilence ends it", func(t *testing.T) {
		b.setHash(t, "#/alerts?"+hist.Encode())
		b.do(t, chromedp.Click(chromedp.CSS(`#view [data-panel="active"] tr[data-rule="net-busy"] button.silence`)))
		waitJS(t, b, `document.querySelector('#view .silence-dialog').open`, "the silence dialog opens")
		require.Equal(t, "1h", evalJS[string](t, b, `document.querySelector('#view .silence-dialog input[name=for]').value`), "an hour by default")
		before := time.Now()
		b.do(t, chromedp.SendKeys(chromedp.CSS(`#view .silence-dialog input[name=comment]`), "maintenance window"),
			chromedp.Click(chromedp.CSS(`#view .silence-dialog button[value=save]`)))
		waitJS(t, b, `!!document.querySelector('#view [data-panel="silences"] tr[data-rule="net-busy"]')`, "the silence is listed")
		after := time.Now()
		var sil struct {
			Silences []alerts.Silence
		}
		getJSON(t, base+"/api/v1/alerts/silences", &sil)
		require.Len(t, sil.Silences, 1)
		s := sil.Silences[0]
		require.Equal(t, "net-busy", s.Rule)
		require.Empty(t, s.Key, "a total: every key")
		require.Equal(t, "maintenance window", s.Comment)
		require.WithinRange(t, s.Until, before.Add(time.Hour-time.Second).Truncate(time.Second), after.Add(time.Hour+time.Second))
		cells := evalJS[[]string](t, b, `[...document.querySelector('#view [data-panel="silences"] tr[data-rule="net-busy"]').cells].map(td => td.textContent)`)
		require.Equal(t, []string{s.ID, "net-busy", "all keys"}, cells[:3])
		require.Equal(t, "maintenance window", cells[4])
		// The alert says it is silenced, here and in the banner.
		waitJS(t, b, `!!document.querySelector('#view [data-panel="active"] tr[data-rule="net-busy"] .marker.silenced')`, "the alert is marked silenced")
		waitJS(t, b, `document.getElementById('alert-banner').textContent.endsWith('(silenced)')`, "the banner says silenced")

		b.do(t, chromedp.Click(chromedp.CSS(`#view [data-panel="silences"] tr[data-rule="net-busy"] button.unsilence`)))
		waitJS(t, b, `!document.querySelector('#view [data-panel="silences"] tr') && !document.querySelector('#view [data-panel="active"] .marker.silenced')`, "the silence is gone")
		getJSON(t, base+"/api/v1/alerts/silences", &sil)
		require.Empty(t, sil.Silences)
		require.Empty(t, b.takeProblems())
	})

	t.Run("an API rule is listed with origin api and its Delete button removes it", func(t *testing.T) {
		code, body := apiCall(t, http.MethodPut, base+"/api/v1/alerts/rules/https-busy", "", map[string]string{"dim": "app", "key": "https", "threshold": "1k"})
		require.Equal(t, http.StatusOK, code, string(body))
		var put alerts.Rule
		require.NoError(t, json.Unmarshal(body, &put))
		require.Equal(t, "api", put.Origin)
		b.setHash(t, "#/alerts?"+hist.Encode()+"&n=1") // another hash: the page renders anew
		var rule struct {
			Origin string
			Cells  []string
		}
		b.eval(t, `(() => { const tr = document.querySelector('#view [data-panel="rules"] tr[data-rule="https-busy"]');
			return {origin: tr.dataset.origin, cells: [...tr.cells].map(td => td.textContent)} })()`, &rule)
		require.Equal(t, "api", rule.Origin)
		require.Equal(t, []string{"https-busy", "api", "whole network", "app https", "bps", "> 1k bps"}, rule.Cells[:6])
		require.Equal(t, "Delete", rule.Cells[9])
		// One click arms the button, the second deletes.
		sel := `#view [data-panel="rules"] tr[data-rule="https-busy"] button.delete`
		b.do(t, chromedp.Click(chromedp.CSS(sel)))
		require.Equal(t, "Delete? again", evalJS[string](t, b, `document.querySelector('`+sel+`').textContent`))
		b.do(t, chromedp.Click(chromedp.CSS(sel)))
		waitJS(t, b, `!document.querySelector('#view [data-panel="rules"] tr[data-rule="https-busy"]')`, "the rule is gone from the page")
		code, _ = apiCall(t, http.MethodGet, base+"/api/v1/alerts/rules/https-busy", "", nil)
		require.Equal(t, http.StatusNotFound, code, "and from tmsd")
		require.Empty(t, b.takeProblems())
	})

	t.Run("the rule editor saves a rule and names a refused field", func(t *testing.T) {
		b.do(t, chromedp.Click(chromedp.CSS(`#view .rule-editor summary`)))
		save := func(rule string) (state, text string) {
			b.do(t, chromedp.SetValue(chromedp.CSS(`#view .rule-editor textarea`), rule))
			evalJS[chromedp.Void](t, b, `document.querySelector('#view .rule-result').dataset.state = ''`)
			b.do(t, chromedp.Click(chromedp.CSS(`#view .rule-editor button[type=submit]`)))
			waitJS(t, b, `!!document.querySelector('#view .rule-result').dataset.state`, "the editor answers")
			var res struct{ State, Text string }
			b.eval(t, `(() => { const r = document.querySelector('#view .rule-result'); return {state: r.dataset.state, text: r.textContent} })()`, &res)
			return res.State, res.Text
		}
		state, text := save(`{"name": "typo", "threshold": "8X"}`)
		require.Equal(t, "error", state)
		require.Contains(t, text, "the field “threshold”", text)
		state, text = save(`{"name": "net-busy", "threshold": "5"}`)
		require.Equal(t, "error", state, "a file rule cannot be replaced")
		require.Contains(t, text, "409", text)
		state, text = save(`{"name": "dns-busy", "dim": "app", "key": "dns", "metric": "pps", "threshold": "100", "for": "2m", "severity": "info"}`)
		require.Equal(t, "ok", state, text)
		require.Equal(t, "Rule dns-busy saved (origin api).", text)
		waitJS(t, b, `document.querySelector('#view [data-panel="rules"] tr[data-rule="dns-busy"]')?.dataset.origin === 'api'`, "the saved rule is listed")
		cells := evalJS[[]string](t, b, `[...document.querySelector('#view [data-panel="rules"] tr[data-rule="dns-busy"]').cells].map(td => td.textContent)`)
		require.Equal(t, []string{"dns-busy", "api", "whole network", "app dns", "pps", "> 100 pps", "2m", "info"}, cells[:8])
		code, _ := apiCall(t, http.MethodDelete, base+"/api/v1/alerts/rules/dns-busy", "", nil)
		require.Equal(t, http.StatusOK, code)
		b.takeProblems() // the browser logs the 400 and the 409 itself
	})

	t.Run("the history lists the firing event, and filters by kind", func(t *testing.T) {
		b.setHash(t, "#/alerts?"+hist.Encode())
		var ev struct {
			Kind, Rule string
			Cells      []string
			At         string
		}
		b.eval(t, `(() => { const tr = document.querySelector('#view [data-panel="history"] tbody tr');
			return tr ? {kind: tr.dataset.kind, rule: tr.dataset.rule, cells: [...tr.cells].map(td => td.textContent), at: tr.cells[0].title} : {} })()`, &ev)
		require.Equal(t, "firing", ev.Kind, "%+v", ev)
		require.Equal(t, "net-busy", ev.Rule)
		require.True(t, strings.HasPrefix(ev.At, "2026-11-22 19:47:00 UTC"), "at %q", ev.At)
		require.Equal(t, []string{"firing", "net-busy", "total"}, ev.Cells[1:4])
		near(t, fire.Value, parseShown(t, ev.Cells[4]), "value %q", ev.Cells[4])
		require.Equal(t, "> 1\u202fbps", ev.Cells[5])
		require.True(t, strings.HasPrefix(ev.Cells[6], "net-busy: total at "), "summary %q", ev.Cells[6])
		presets := evalJS[[]string](t, b, `[...document.querySelectorAll('#view [data-panel="history"] .presets button')].map(b => b.textContent)`)
		require.Equal(t, []string{"1h", "24h", "7d", "30d"}, presets)

		// The kind filter: the range has no resolved event.
		evalJS[chromedp.Void](t, b, `(() => { const s = document.querySelector('#view [data-panel="history"] select[name=state]'); s.value = 'resolved'; s.dispatchEvent(new Event('change')) })()`)
		b.waitReady(t)
		require.Contains(t, evalJS[string](t, b, `location.hash`), "state=resolved")
		require.Zero(t, evalJS[int](t, b, `document.querySelectorAll('#view [data-panel="history"] tbody tr').length`))
		require.Equal(t, "No resolved event in this range.", evalJS[string](t, b, `document.querySelector('#view [data-panel="history"] .nodata').textContent`))
		var got struct{ Events []alerts.Event }
		getJSON(t, base+"/api/v1/alerts?state=resolved&"+hist.Encode(), &got)
		require.Empty(t, got.Events, "as the API says")
		require.Empty(t, b.takeProblems())
	})

	t.Run("with a read token, Silence says it needs an admin token", func(t *testing.T) {
		const read, admin = "tmsd_alerts_read_token", "tmsd_alerts_admin_token"
		_, bt := firingDashboard(t, func(c *Config) {
			c.API.ReadTokens = []TokenHash{{api.HashToken(read)}}
			c.API.AdminTokens = []TokenHash{{api.HashToken(admin)}}
		})
		tb := b.tab(t)
		tb.open(t, bt+"/")
		// No token yet: the banner's poll fails quietly (the views ask for the token).
		waitJS(t, tb, `document.getElementById('alert-banner').dataset.poll === 'failed'`, "the banner's poll was refused")
		require.True(t, evalJS[bool](t, tb, `document.getElementById('alert-banner').hidden`))
		require.True(t, evalJS[bool](t, tb, `document.getElementById('token-dialog').open`))
		tb.do(t, chromedp.SendKeys(chromedp.CSS(`#token-dialog input`), read),
			chromedp.Click(chromedp.CSS(`#token-dialog button[value=save]`)))
		tb.waitReady(t)
		waitJS(t, tb, `document.getElementById('alert-banner').dataset.firing === '1'`, "a new token polls the banner again")
		tb.setHash(t, "#/alerts")
		tb.do(t, chromedp.Click(chromedp.CSS(`#view [data-panel="active"] tr[data-rule="net-busy"] button.silence`)))
		waitJS(t, tb, `document.querySelector('#view .silence-dialog').open`, "the silence dialog opens")
		tb.do(t, chromedp.Click(chromedp.CSS(`#view .silence-dialog button[value=save]`)))
		waitJS(t, tb, `!document.getElementById('banner').hidden`, "the refusal shows")
		msg := evalJS[string](t, tb, `document.getElementById('banner').textContent`)
		require.Contains(t, msg, "needs an admin token (403)")
		require.Contains(t, msg, "this endpoint needs an admin token")
		require.Equal(t, "403", evalJS[string](t, tb, `document.getElementById('banner').dataset.status`))
		code, body := apiCall(t, http.MethodGet, bt+"/api/v1/alerts/silences", admin, nil)
		require.Equal(t, http.StatusOK, code, string(body))
		require.JSONEq(t, `{"silences": []}`, string(body), "nothing silenced")
		tb.takeProblems() // the browser logs the 401s and the 403 itself
	})

	t.Run("nothing firing: no banner", func(t *testing.T) {
		pe := startDashboard(t, t.TempDir(), nil)
		tb := b.tab(t)
		tb.open(t, "http://"+pe.api.Addr().String()+"/#/alerts")
		waitJS(t, tb, `document.getElementById('alert-banner').dataset.poll === 'ok'`, "the banner's poll answered")
		require.True(t, evalJS[bool](t, tb, `document.getElementById('alert-banner').hidden`))
		require.Equal(t, "0", evalJS[string](t, tb, `document.getElementById('alert-banner').dataset.firing`))
		require.Equal(t, "Nothing is firing or pending.", evalJS[string](t, tb, `document.querySelector('#view [data-panel="active"] .nodata').textContent`))
		require.Empty(t, tb.takeProblems())
	})
}
