package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tmsd/tmsd/internal/alerts"
)

// marshal is json.Marshal without HTML escaping: "&" in URLs and ">" in
// summaries stay readable to people reading payloads.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// WebhookVersion is the "version" field of the generic webhook payload; it
// changes only on an incompatible change of the schema.
const WebhookVersion = 1

// webhookPayload follows the schema of docs/ALERTS.md: the fields of
// alerts.Event under their JSON tags plus "version":
//
//	{"version":1,"kind":"firing","rule":"...","metric":"bps","value":8.4e9,...}
func webhookPayload(ev *alerts.Event) ([]byte, error) {
	return marshal(struct {
		Version int `json:"version"`
		alerts.Event
	}{WebhookVersion, *ev})
}

type slackText struct {
	Type string `json:"type"` // "mrkdwn"
	Text string `json:"text"`
}

type slackBlock struct {
	Type   string      `json:"type"` // "section"
	Text   *slackText  `json:"text,omitempty"`
	Fields []slackText `json:"fields,omitempty"`
}

// slackPayload follows Slack's incoming webhook message
// (https://api.slack.com/messaging/webhooks) with Block Kit section blocks
// (https://api.slack.com/reference/block-kit/blocks#section): "text" is the
// notification fallback, a section has a mrkdwn "text" or up to 10 mrkdwn
// "fields":
//
//	{"text":"...","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"..."}},
//	                        {"type":"section","fields":[{"type":"mrkdwn","text":"*Rule*\n..."}]}]}
func slackPayload(ev *alerts.Event) ([]byte, error) {
	field := func(name, value string) slackText {
		return slackText{"mrkdwn", "*" + name + "*\n" + slackEscape(value)}
	}
	var fields []slackText
	for _, f := range facts(ev) {
		fields = append(fields, field(f[0], f[1]))
	}
	blocks := []slackBlock{
		{Type: "section", Text: &slackText{"mrkdwn", "*" + title(ev) + "*\n" + slackEscape(ev.Summary)}},
		{Type: "section", Fields: fields[:min(len(fields), 10)]},
	}
	if ev.URL != "" {
		blocks = append(blocks, slackBlock{Type: "section",
			Text: &slackText{"mrkdwn", "<" + slackURL.Replace(ev.URL) + "|Open in tmsd>"}})
	}
	return marshal(struct {
		Text   string       `json:"text"`
		Blocks []slackBlock `json:"blocks"`
	}{slackEscape(kindWord(ev.Kind) + ": " + ev.Summary), blocks})
}

// slackURL percent-encodes what would end Slack's <url|text> link markup.
var slackURL = strings.NewReplacer("|", "%7C", "<", "%3C", ">", "%3E")

// slackEscape escapes the three characters Slack's mrkdwn reserves
// (https://api.slack.com/reference/surfaces/formatting#escaping).
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

type teamsMessage struct {
	Type        string            `json:"type"` // "message"
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	ContentURL  *string   `json:"contentUrl"` // null
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string        `json:"$schema"`
	Type    string        `json:"type"`
	Version string        `json:"version"`
	Body    []teamsElem   `json:"body"`
	Actions []teamsAction `json:"actions,omitempty"`
}

type teamsElem struct {
	Type   string      `json:"type"` // TextBlock or FactSet
	Text   string      `json:"text,omitempty"`
	Weight string      `json:"weight,omitempty"`
	Size   string      `json:"size,omitempty"`
	Wrap   bool        `json:"wrap,omitempty"`
	Facts  []teamsFact `json:"facts,omitempty"`
}

type teamsFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

type teamsAction struct {
	Type  string `json:"type"` // Action.OpenUrl
	Title string `json:"title"`
	URL   string `json:"url"`
}

// teamsPayload follows the message that Microsoft Teams incoming webhooks
// and Workflows accept, carrying an Adaptive Card 1.4
// (https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#send-adaptive-cards-using-an-incoming-webhook):
//
//	{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
//	  "contentUrl":null,"content":{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json",
//	  "type":"AdaptiveCard","version":"1.4","body":[...],"actions":[{"type":"Action.OpenUrl",...}]}}]}
func teamsPayload(ev *alerts.Event) ([]byte, error) {
	var fs []teamsFact
	for _, f := range facts(ev) {
		fs = append(fs, teamsFact{f[0], f[1]})
	}
	card := teamsCard{
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Type:    "AdaptiveCard",
		Version: "1.4",
		Body: []teamsElem{
			{Type: "TextBlock", Text: title(ev), Weight: "Bolder", Size: "Medium", Wrap: true},
			{Type: "TextBlock", Text: ev.Summary, Wrap: true},
			{Type: "FactSet", Facts: fs},
		},
	}
	if ev.URL != "" {
		card.Actions = []teamsAction{{Type: "Action.OpenUrl", Title: "Open in tmsd", URL: ev.URL}}
	}
	return marshal(teamsMessage{
		Type: "message",
		Attachments: []teamsAttachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content:     card,
		}},
	})
}

type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// alertmanagerPayload follows postableAlerts of the Alertmanager v2 API
// (https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml),
// for POST /api/v2/alerts:
//
//	[{"labels":{"alertname":"..."},"annotations":{...},"startsAt":"RFC3339",
//	  "endsAt":"RFC3339","generatorURL":"..."}]
//
// A firing or repeat event's endsAt is amHold ahead: tmsd re-posts it every
// amResend while it fires (alertmanager.go), as Prometheus does. A resolved
// event sets endsAt to its resolution; a silenced one to now, since tmsd
// stops re-posting it.
func alertmanagerPayload(ev *alerts.Event, now time.Time) ([]byte, error) {
	labels := make(map[string]string, len(ev.Labels)+6)
	for k, v := range ev.Labels {
		if v != "" {
			labels[labelName(k)] = v
		}
	}
	// Ours win over the rule's labels of the same name: alertname must
	// stay the rule for Alertmanager's grouping.
	for k, v := range map[string]string{"alertname": ev.Rule, "severity": ev.Severity,
		"scope": ev.Scope, "dim": ev.Dim, "key": ev.Key} {
		if v != "" { // an empty label is no label to Alertmanager
			labels[k] = v
		}
	}
	ann := map[string]string{
		"summary":   ev.Summary,
		"value":     formatRate(ev.Value, ev.Metric),
		"threshold": formatRate(ev.Threshold, ev.Metric),
		"metric":    ev.Metric,
		"kind":      string(ev.Kind),
	}
	if ev.Label != "" {
		ann["label"] = ev.Label
	}
	if ev.Baseline != 0 {
		ann["baseline"] = formatRate(ev.Baseline, ev.Metric)
	}
	if ev.Bounded {
		ann["error"] = formatRate(ev.Error, ev.Metric)
	}
	a := amAlert{Labels: labels, Annotations: ann, StartsAt: ev.Since, GeneratorURL: ev.URL}
	if a.StartsAt.IsZero() {
		a.StartsAt = ev.At
	}
	switch ev.Kind {
	case alerts.KindFiring, alerts.KindRepeat:
		a.EndsAt = now.Add(amHold)
	case alerts.KindResolved:
		a.EndsAt = ev.EndsAt
		if a.EndsAt.IsZero() {
			a.EndsAt = now
		}
	case alerts.KindSilenced:
		a.EndsAt = now
	}
	return marshal([]amAlert{a})
}

// labelName makes s a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*,
// not starting with the reserved "__").
func labelName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	s = string(b)
	if s == "" || strings.HasPrefix(s, "__") || s[0] >= '0' && s[0] <= '9' {
		s = "l_" + strings.TrimLeft(s, "_")
	}
	return s
}

// title is the event's headline: "FIRING: rule".
func title(ev *alerts.Event) string {
	return kindWord(ev.Kind) + ": " + ev.Rule
}

func kindWord(k alerts.Kind) string {
	switch k {
	case alerts.KindRepeat:
		return "FIRING (repeat)"
	case "":
		return "UNKNOWN"
	}
	return strings.ToUpper(string(k))
}

// keyText names the key for people: its label, else the key, else the
// scope's total.
func keyText(ev *alerts.Event) string {
	switch {
	case ev.Label != "":
		return ev.Label
	case ev.Key != "":
		return ev.Key
	case ev.Scope != "":
		return ev.Scope + " total"
	}
	return "network total"
}

// facts are the fields shown by Slack, Teams and e-mail, in order.
func facts(ev *alerts.Event) [][2]string {
	key := keyText(ev)
	if ev.Dim != "" && ev.Key != "" {
		key = ev.Dim + " " + key
	}
	value := formatRate(ev.Value, ev.Metric)
	if ev.Bounded {
		value += fmt.Sprintf(" (lower bound, at most %s)", formatRate(ev.Value+ev.Error, ev.Metric))
	}
	threshold := formatRate(ev.Threshold, ev.Metric)
	if ev.Baseline != 0 {
		threshold += " (baseline " + formatRate(ev.Baseline, ev.Metric) + ")"
	}
	fs := [][2]string{{"Rule", ev.Rule}, {"Key", key}}
	if ev.Scope != "" {
		fs = append(fs, [2]string{"Scope", ev.Scope})
	}
	fs = append(fs, [2]string{"Value", value}, [2]string{"Threshold", threshold})
	if ev.Severity != "" {
		fs = append(fs, [2]string{"Severity", ev.Severity})
	}
	if !ev.Since.IsZero() {
		fs = append(fs, [2]string{"Since", formatTime(ev.Since)})
	}
	fs = append(fs, [2]string{"At", formatTime(ev.At)})
	if !ev.EndsAt.IsZero() {
		fs = append(fs, [2]string{"Resolved", formatTime(ev.EndsAt)})
	}
	if len(ev.Labels) > 0 {
		var ls []string
		for _, k := range slices.Sorted(maps.Keys(ev.Labels)) {
			ls = append(ls, k+"="+ev.Labels[k])
		}
		fs = append(fs, [2]string{"Labels", strings.Join(ls, ", ")})
	}
	return fs
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// formatRate writes a rate with an SI prefix and three significant digits:
// 8.4e9 bps is "8.40 Gbps", 1234 pps "1.23 kpps", 12 flows/s "12.0 flows/s".
func formatRate(v float64, metric string) string {
	unit := metric
	if unit == "" {
		unit = "bps"
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%v %s", v, unit)
	}
	prefixes := []string{"", "k", "M", "G", "T", "P", "E"}
	i := 0
	a := math.Abs(v)
	for a >= 999.5 && i < len(prefixes)-1 {
		a /= 1000
		v /= 1000
		i++
	}
	var num string
	switch {
	case a == 0:
		num = "0"
	case a < 9.995:
		num = fmt.Sprintf("%.2f", v)
	case a < 99.95:
		num = fmt.Sprintf("%.1f", v)
	default:
		num = fmt.Sprintf("%.0f", v)
	}
	return num + " " + prefixes[i] + unit
}

// emailSubject is "[tmsd FIRING] rule: label 8.40 Gbps > 8.00 Gbps".
func emailSubject(ev *alerts.Event) string {
	op := ">"
	word := strings.ToUpper(string(ev.Kind))
	switch ev.Kind {
	case alerts.KindResolved:
		op = "<="
	case alerts.KindRepeat:
		word = "FIRING"
	}
	return fmt.Sprintf("[tmsd %s] %s: %s %s %s %s", word, ev.Rule, keyText(ev),
		formatRate(ev.Value, ev.Metric), op, formatRate(ev.Threshold, ev.Metric))
}

// emailBody is the plain-text body: the summary, every field, the link.
func emailBody(ev *alerts.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n%s\n\n", title(ev), ev.Summary)
	for _, f := range facts(ev) {
		fmt.Fprintf(&b, "%-10s %s\n", f[0]+":", f[1])
	}
	if ev.URL != "" {
		fmt.Fprintf(&b, "\nOpen in tmsd: %s\n", ev.URL)
	}
	return b.String()
}
