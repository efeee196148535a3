package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/alerts"
)

// decodeStrict decodes body into v, refusing fields v does not mirror, so
// a payload holds only what its documented shape has.
func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "%s", body)
}

// sendOne delivers ev to a started notifier with one target of type typ
// pointing at a recorder, and returns the request the recorder received.
func sendOne(t *testing.T, tg Target, path string, ev alerts.Event) recorded {
	t.Helper()
	rec := newRecorder(t, nil)
	tg.URL = rec.srv.URL + path
	cfg := DefaultConfiguration()
	cfg.Targets = []Target{tg}
	n := start(t, cfg, Dependencies{})
	require.NoError(t, n.Send([]string{tg.Name}, ev))
	r := rec.next(t)
	require.Equal(t, http.MethodPost, r.method)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	return r
}

func TestWebhookPayload(t *testing.T) {
	ev := sampleEvent(1)
	ev.Bounded, ev.Error = true, 1e8
	r := sendOne(t, Target{Name: "w", Type: TypeWebhook, Secret: "s3cret",
		Headers: map[string]string{"Authorization": "Bearer tok"}}, "/hooks/tmsd", ev)
	require.Equal(t, "/hooks/tmsd", r.path)
	require.Equal(t, "Bearer tok", r.header.Get("Authorization"))

	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(r.body)
	require.Equal(t, "sha256="+hex.EncodeToString(mac.Sum(nil)), r.header.Get("X-Tmsd-Signature"))

	// The schema of docs/ALERTS.md.
	var got struct {
		Version   int               `json:"version"`
		Kind      string            `json:"kind"`
		Rule      string            `json:"rule"`
		Severity  string            `json:"severity"`
		Labels    map[string]string `json:"labels"`
		Scope     string            `json:"scope"`
		Dim       string            `json:"dim"`
		Key       string            `json:"key"`
		Label     string            `json:"label"`
		Metric    string            `json:"metric"`
		Value     float64           `json:"value"`
		Threshold float64           `json:"threshold"`
		Baseline  float64           `json:"baseline"`
		Bounded   bool              `json:"bounded"`
		Error     float64           `json:"error"`
		Since     time.Time         `json:"since"`
		At        time.Time         `json:"at"`
		EndsAt    *time.Time        `json:"ends_at"`
		URL       string            `json:"url"`
		Summary   string            `json:"summary"`
	}
	decodeStrict(t, r.body, &got)
	require.Equal(t, 1, got.Version)
	require.Equal(t, "firing", got.Kind)
	require.Equal(t, ev.Rule, got.Rule)
	require.Equal(t, ev.Labels, got.Labels)
	require.Equal(t, ev.Scope, got.Scope)
	require.Equal(t, "443/tcp", got.Key)
	require.Equal(t, "443/tcp https", got.Label)
	require.Equal(t, 8.4e9, got.Value)
	require.Equal(t, 8e9, got.Threshold)
	require.Equal(t, 4e9, got.Baseline)
	require.True(t, got.Bounded)
	require.Equal(t, 1e8, got.Error)
	require.True(t, got.At.Equal(ev.At))
	require.True(t, got.Since.Equal(ev.Since))
	require.Nil(t, got.EndsAt, "no ends_at while firing")
	require.Equal(t, ev.URL, got.URL)
	require.Equal(t, ev.Summary, got.Summary)
}

func TestWebhookUnsigned(t *testing.T) {
	r := sendOne(t, Target{Name: "w", Type: TypeWebhook}, "/", sampleEvent(0))
	require.Empty(t, r.header.Values("X-Tmsd-Signature"))
}

func TestSlackPayload(t *testing.T) {
	ev := sampleEvent(2)
	ev.Label = "443/tcp <https> & co"
	r := sendOne(t, Target{Name: "s", Type: TypeSlack}, "/services/T0/B0/x", ev)
	require.Equal(t, "/services/T0/B0/x", r.path)
	type text struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	var got struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type   string `json:"type"`
			Text   *text  `json:"text"`
			Fields []text `json:"fields"`
		} `json:"blocks"`
	}
	decodeStrict(t, r.body, &got)
	require.Contains(t, got.Text, slackEscape(ev.Summary))
	var all []string
	for _, b := range got.Blocks {
		require.Equal(t, "section", b.Type)
		require.True(t, b.Text != nil || len(b.Fields) > 0, "a section has text or fields")
		require.LessOrEqual(t, len(b.Fields), 10, "Block Kit: at most 10 fields")
		if b.Text != nil {
			require.Equal(t, "mrkdwn", b.Text.Type)
			all = append(all, b.Text.Text)
		}
		for _, f := range b.Fields {
			require.Equal(t, "mrkdwn", f.Type)
			require.LessOrEqual(t, len(f.Text), 2000)
			all = append(all, f.Text)
		}
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{
		"*Rule*\nhttps-spike",
		"*Key*\ndport 443/tcp &lt;https&gt; &amp; co", // mrkdwn escaping
		"*Value*\n8.40 Gbps",
		"*Threshold*\n8.00 Gbps (baseline 4.00 Gbps)",
		"*At*\n2026-12-03 15:04:00 UTC",
		"<" + ev.URL + "|Open in tmsd>",
		"8.4 Gbps &gt; 8 Gbps for 5m #2", // the summary, escaped
	} {
		require.Contains(t, joined, want)
	}
}

func TestTeamsPayload(t *testing.T) {
	ev := sampleEvent(3)
	r := sendOne(t, Target{Name: "t", Type: TypeTeams}, "/workflows/x", ev)
	type fact struct {
		Title string `json:"title"`
		Value string `json:"value"`
	}
	var got struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string          `json:"contentType"`
			ContentURL  json.RawMessage `json:"contentUrl"`
			Content     struct {
				Schema  string `json:"$schema"`
				Type    string `json:"type"`
				Version string `json:"version"`
				Body    []struct {
					Type   string `json:"type"`
					Text   string `json:"text"`
					Weight string `json:"weight"`
					Size   string `json:"size"`
					Wrap   bool   `json:"wrap"`
					Facts  []fact `json:"facts"`
				} `json:"body"`
				Actions []struct {
					Type  string `json:"type"`
					Title string `json:"title"`
					URL   string `json:"url"`
				} `json:"actions"`
			} `json:"content"`
		} `json:"attachments"`
	}
	decodeStrict(t, r.body, &got)
	require.Equal(t, "message", got.Type)
	require.Len(t, got.Attachments, 1)
	a := got.Attachments[0]
	require.Equal(t, "application/vnd.microsoft.card.adaptive", a.ContentType)
	require.Equal(t, "null", string(a.ContentURL))
	require.Equal(t, "http://adaptivecards.io/schemas/adaptive-card.json", a.Content.Schema)
	require.Equal(t, "AdaptiveCard", a.Content.Type)
	require.Equal(t, "1.4", a.Content.Version)
	var texts []string
	facts := map[string]string{}
	for _, b := range a.Content.Body {
		switch b.Type {
		case "TextBlock":
			texts = append(texts, b.Text)
		case "FactSet":
			for _, f := range b.Facts {
				facts[f.Title] = f.Value
			}
		default:
			t.Fatalf("unexpected element %q", b.Type)
		}
	}
	require.Equal(t, []string{"FIRING: https-spike", ev.Summary}, texts)
	require.Equal(t, "https-spike", facts["Rule"])
	require.Equal(t, "dport 443/tcp https", facts["Key"])
	require.Equal(t, "8.40 Gbps", facts["Value"])
	require.Equal(t, "8.00 Gbps (baseline 4.00 Gbps)", facts["Threshold"])
	require.Equal(t, "2026-12-03 15:04:00 UTC", facts["At"])
	require.Len(t, a.Content.Actions, 1)
	require.Equal(t, "Action.OpenUrl", a.Content.Actions[0].Type)
	require.Equal(t, ev.URL, a.Content.Actions[0].URL)
}

func TestAlertmanagerPayload(t *testing.T) {
	labelName := regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	type postable struct {
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     *time.Time        `json:"startsAt"`
		EndsAt       *time.Time        `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
	}
	resolved := sampleEvent(5)
	resolved.Kind = alerts.KindResolved
	resolved.EndsAt = resolved.At.Add(time.Minute)
	cases := []struct {
		name    string
		ev      alerts.Event
		wantEnd *time.Time // nil: amHold after the post
	}{
		{"firing", sampleEvent(4), nil},
		{"resolved", resolved, &resolved.EndsAt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Labels["alertname"] = "not the rule"
			before := time.Now()
			r := sendOne(t, Target{Name: "am", Type: TypeAlertmanager}, "/am/", tc.ev)
			require.Equal(t, "/am/api/v2/alerts", r.path)
			var got []postable
			decodeStrict(t, r.body, &got)
			require.Len(t, got, 1)
			a := got[0]
			for k, v := range a.Labels {
				require.Regexp(t, labelName, k)
				require.False(t, strings.HasPrefix(k, "__"), k)
				require.NotEmpty(t, v, k)
			}
			require.Equal(t, map[string]string{
				"alertname": "https-spike",
				"severity":  "critical",
				"scope":     tc.ev.Scope,
				"dim":       "dport",
				"key":       "443/tcp",
				"team":      "noc",
				"site_code": "seoul",
			}, a.Labels)
			require.Equal(t, tc.ev.Summary, a.Annotations["summary"])
			require.Equal(t, "8.40 Gbps", a.Annotations["value"])
			require.Equal(t, "8.00 Gbps", a.Annotations["threshold"])
			require.Equal(t, "443/tcp https", a.Annotations["label"])
			require.NotNil(t, a.StartsAt)
			require.True(t, a.StartsAt.Equal(tc.ev.Since))
			if tc.wantEnd == nil {
				require.NotNil(t, a.EndsAt)
				require.WithinRange(t, *a.EndsAt, before.Add(amHold-time.Second), time.Now().Add(amHold+time.Second))
			} else {
				require.NotNil(t, a.EndsAt)
				require.True(t, a.EndsAt.Equal(*tc.wantEnd))
			}
			require.Equal(t, tc.ev.URL, a.GeneratorURL)
			require.Contains(t, string(r.body), `"startsAt":"2026-12-03T14:59:00Z"`, "RFC 3339")
		})
	}
}

func TestLabelName(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		require.Equal(t, want, labelName(in))
	}
	f("team", "team")
	f("site-code", "site_code")
	f("9lives", "_lives")
	f("__name__", "l_name__")
	f("", "l_")
	f("a.b/c", "a_b_c")
}

func TestFormatRate(t *testing.T) {
	f := func(v float64, metric, want string) {
		t.Helper()
		require.Equal(t, want, formatRate(v, metric))
	}
	f(8.4e9, "bps", "8.40 Gbps")
	f(8e9, "bps", "8.00 Gbps")
	f(12.5e9, "bps", "12.5 Gbps")
	f(999.6e6, "bps", "1.00 Gbps")
	f(840e6, "bps", "840 Mbps")
	f(1234, "pps", "1.23 kpps")
	f(12, "flows/s", "12.0 flows/s")
	f(0, "bps", "0 bps")
	f(0.5, "pps", "0.50 pps")
	f(3e18, "bps", "3.00 Ebps")
	f(5e21, "bps", "5000 Ebps")
}

func TestEmailSubject(t *testing.T) {
	ev := sampleEvent(0)
	require.Equal(t, "[tmsd FIRING] https-spike: 443/tcp https 8.40 Gbps > 8.00 Gbps", emailSubject(&ev))
	ev.Kind = alerts.KindRepeat
	require.Equal(t, "[tmsd FIRING] https-spike: 443/tcp https 8.40 Gbps > 8.00 Gbps", emailSubject(&ev))
	ev.Kind, ev.Value = alerts.KindResolved, 2e9
	require.Equal(t, "[tmsd RESOLVED] https-spike: 443/tcp https 2.00 Gbps <= 8.00 Gbps", emailSubject(&ev))
	ev.Label, ev.Key, ev.Dim, ev.Scope = "", "", "", ""
	require.Equal(t, "[tmsd RESOLVED] https-spike: network total 2.00 Gbps <= 8.00 Gbps", emailSubject(&ev))
}
