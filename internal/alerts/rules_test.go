package alerts

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

func TestValidate(t *testing.T) {
	ok := func() Rule { return Rule{Name: "r", Threshold: "1G"} }
	cases := []struct {
		name string
		edit func(r *Rule)
		want string // "" valid
	}{
		{"minimal", func(*Rule) {}, ""},
		{"name missing", func(r *Rule) { r.Name = "" }, `rule "": name: missing`},
		{"name control", func(r *Rule) { r.Name = "a\nb" }, `rule "a\nb": name: has a control character`},
		{"scope", func(r *Rule) { r.Scope = "exporter=nope" }, `rule "r": scope: exporter: not an IP address: "nope"`},
		{"scope combined", func(r *Rule) { r.Scope = "exporter=192.0.2.1&proto=udp" }, `rule "r": scope: "exporter=192.0.2.1&proto=udp": a scope is exporter=ADDR, proto=PROTO or if=EXPORTER:IFINDEX&dir=in|out, alone`},
		{"scope drill-down", func(r *Rule) { r.Scope = "ip=192.0.2.1" }, `rule "r": scope: "ip=192.0.2.1": a scope is exporter=ADDR, proto=PROTO or if=EXPORTER:IFINDEX&dir=in|out, alone`},
		{"scope if without dir", func(r *Rule) { r.Scope = "if=192.0.2.1:3" }, `rule "r": scope: "if=192.0.2.1:3": a scope is exporter=ADDR, proto=PROTO or if=EXPORTER:IFINDEX&dir=in|out, alone`},
		{"scope dir", func(r *Rule) { r.Scope = "if=192.0.2.1:3&dir=up" }, `rule "r": scope: dir: must be in or out, got "up"`},
		{"scope proto", func(r *Rule) { r.Scope = "proto=nope" }, `rule "r": scope: proto: unknown protocol "nope" (a number 0-255 or a name such as tcp, udp, icmp)`},
		{"dim", func(r *Rule) { r.Dim, r.Key = "colour", "x" }, `rule "r": dim: unknown dimension "colour" (` + topn.DimNames() + ")"},
		{"dim not in scope", func(r *Rule) { r.Scope, r.Dim, r.Key = "if=192.0.2.1:3&dir=in", "in_if", "*" }, `rule "r": dim: scope if=192.0.2.1:3 dir=in has no in_if table`},
		{"key missing", func(r *Rule) { r.Dim = "dstip" }, `rule "r": key: a rule on a dimension needs a key, or * for any key`},
		{"key bad", func(r *Rule) { r.Dim, r.Key = "dstip", "nope" }, `rule "r": key: not an IP address: "nope"`},
		{"key without dim", func(r *Rule) { r.Key = "192.0.2.1" }, `rule "r": key: a key needs a dim`},
		{"metric", func(r *Rule) { r.Metric = "bytes" }, `rule "r": metric: unknown metric "bytes" (bps, pps or flows)`},
		{"op", func(r *Rule) { r.Op = "!=" }, `rule "r": op: unknown operator "!=" (>, >=, < or <=)`},
		{"op below any key", func(r *Rule) { r.Dim, r.Key, r.Op = "dstip", "*", "<" }, `rule "r": op: an any-key rule fires above a threshold (> or >=): every key not seen is below`},
		{"threshold missing", func(r *Rule) { r.Threshold = "" }, `rule "r": threshold: missing`},
		{"threshold suffix", func(r *Rule) { r.Threshold = "8X" }, `rule "r": threshold: "8X": unknown suffix`},
		{"threshold unit", func(r *Rule) { r.Threshold = "8Gpps" }, `rule "r": threshold: "8Gpps": unit pps is not the metric's (bps)`},
		{"threshold number", func(r *Rule) { r.Threshold = "-1G" }, `rule "r": threshold: "-1G": not a rate (a number ≥ 0 with an SI suffix such as 8G or 1.5M)`},
		{"for", func(r *Rule) { r.For = Duration(90 * time.Second) }, `rule "r": for: 1m30s: must be whole minutes, 0 or more`},
		{"resolve_for", func(r *Rule) { r.ResolveFor = Duration(-time.Minute) }, `rule "r": resolve_for: -1m0s: must be whole minutes, 0 or more`},
		{"repeat", func(r *Rule) { r.Repeat = Duration(time.Second) }, `rule "r": repeat: 1s: must be whole minutes, 0 or more`},
		{"severity", func(r *Rule) { r.Severity = "page" }, `rule "r": severity: unknown severity "page" (info, warning, critical)`},
		{"labels", func(r *Rule) { r.Labels = map[string]string{"": "x"} }, `rule "r": labels: empty label name`},
		{"targets", func(r *Rule) { r.Targets = []string{"ops", ""} }, `rule "r": targets: empty target name`},
		{"early_warning", func(r *Rule) { r.EarlyWarning = true }, ""},
		{"early_warning baseline", func(r *Rule) { r.EarlyWarning, r.Threshold, r.Baseline = true, "", &Baseline{Ratio: 5} }, ""},
		{"early_warning for", func(r *Rule) { r.EarlyWarning, r.For = true, Duration(2*time.Minute) }, `rule "r": early_warning: needs for: 0 or 1m (the minutes before the open one are not closed yet)`},
		{"early_warning op", func(r *Rule) { r.EarlyWarning, r.Op = true, "<=" }, `rule "r": early_warning: needs > or >= (the rate so far only grows)`},
		{"baseline with threshold", func(r *Rule) { r.Baseline = &Baseline{Ratio: 5} }, `rule "r": threshold: a baseline rule has no threshold: its baseline is its threshold`},
		{"baseline with op", func(r *Rule) { r.Threshold, r.Op, r.Baseline = "", ">", &Baseline{Ratio: 5} }, `rule "r": op: a baseline rule has no operator: it fires above its baseline`},
		{"baseline ok", func(r *Rule) { r.Threshold, r.Baseline = "", &Baseline{Ratio: 5, MinVolume: "10M"} }, ""},
		{"baseline neither", func(r *Rule) { r.Threshold, r.Baseline = "", &Baseline{} }, `rule "r": baseline: needs exactly one of ratio and deviation`},
		{"baseline both", func(r *Rule) { r.Threshold, r.Baseline = "", &Baseline{Ratio: 5, Deviation: 3} }, `rule "r": baseline: needs exactly one of ratio and deviation`},
		{"baseline ratio", func(r *Rule) { r.Threshold, r.Baseline = "", &Baseline{Ratio: -5} }, `rule "r": baseline: ratio: -5: must be a positive number`},
		{"baseline deviation", func(r *Rule) { r.Threshold, r.Baseline = "", &Baseline{Deviation: -1} }, `rule "r": baseline: deviation: -1: must be a positive number`},
		{"baseline weeks", func(r *Rule) { r.Threshold, r.Baseline = "", &Baseline{Ratio: 5, Weeks: 53} }, `rule "r": baseline: weeks: 53: must be 1 to 52`},
		{"baseline min_weeks", func(r *Rule) { r.Threshold, r.Baseline = "", &Baseline{Ratio: 5, Weeks: 2, MinWeeks: 3} }, `rule "r": baseline: min_weeks: 3: must be 1 to weeks (2)`},
		{"baseline min_volume", func(r *Rule) { r.Threshold, r.Baseline = "", &Baseline{Ratio: 5, MinVolume: "lots"} }, `rule "r": baseline: min_volume: "lots": unknown suffix`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ok()
			c.edit(&r)
			err := r.Validate()
			if c.want == "" {
				require.NoError(t, err)
				require.True(t, r.p.valid)
				return
			}
			require.ErrorIs(t, err, ErrInvalidRule)
			require.EqualError(t, err, "invalid alert rule: alerts: "+c.want)
			require.False(t, r.p.valid)
		})
	}
}

func TestValidateRulesDuplicate(t *testing.T) {
	err := ValidateRules([]Rule{{Name: "a", Threshold: "1G"}, {Name: "b", Threshold: "1Q"}, {Name: "a", Threshold: "2G"}})
	require.EqualError(t, err, "invalid alert rule: alerts: rule \"b\": threshold: \"1Q\": unknown suffix\n"+
		"invalid alert rule: alerts: rule \"a\": name: defined twice")
}

// The config file's YAML decodes into rules, whose defaults and parsed forms
// Validate fills.
func TestRuleYAML(t *testing.T) {
	var rules []Rule
	require.NoError(t, yaml.Unmarshal([]byte(`
- name: https-kt
  scope: if=192.0.2.1:3&dir=in
  dim: dstport
  key: 443/6
  metric: bps
  threshold: 8Gbps
  for: 5m
  repeat: 1h
  severity: critical
  labels: {team: noc}
  targets: [ops-mail]
- name: baseline
  dim: dstip
  key: "*"
  metric: flows
  baseline: {weeks: 6, deviation: 4, min_volume: 1.5k flows/s}
  resolve_for: 2d
`), &rules))
	require.NoError(t, ValidateRules(rules))
	r := rules[0]
	require.Equal(t, "443/tcp", r.Key, "canonical")
	require.Equal(t, ">", r.Op)
	require.Equal(t, Duration(DefaultResolveFor), r.ResolveFor)
	require.Equal(t, parsed{valid: true,
		scope: topn.Scope{Kind: topn.ScopeInterface, Exporter: flow.AddrFromV4([]byte{192, 0, 2, 1}), IfIndex: 3, Dir: topn.DirIn},
		dim:   topn.DimDstPort, key: topn.PortKey(443, 6), metric: topn.Bytes, unit: "bps", op: ">", threshold: 8e9,
		forN: 5, resolveN: 5, repeat: time.Hour}, r.p)
	b := rules[1]
	require.Equal(t, "warning", b.Severity)
	require.Equal(t, &Baseline{Weeks: 6, Deviation: 4, MinVolume: "1.5k flows/s", MinWeeks: DefaultMinWeeks}, b.Baseline)
	require.True(t, b.p.anyKey)
	require.Equal(t, 1500.0, b.p.minVolume)
	require.Equal(t, 2*24*60, b.p.resolveN)
}

func TestParseRate(t *testing.T) {
	f := func(in, unit string, want float64, wantErr string) {
		t.Helper()
		got, err := ParseRate(in, unit)
		if wantErr != "" {
			require.EqualError(t, err, wantErr)
			return
		}
		require.NoError(t, err)
		require.InDelta(t, want, got, want*1e-12)
	}
	f("8G", "bps", 8e9, "")
	f("8Gbps", "bps", 8e9, "")
	f("1.5M", "pps", 1.5e6, "")
	f("100k", "flows/s", 1e5, "")
	f("100 k flows/s", "flows/s", 1e5, "")
	f("3kflows", "flows/s", 3e3, "")
	f("12", "bps", 12, "")
	f("8X", "bps", 0, `"8X": unknown suffix`)
	f("8Mbps", "pps", 0, `"8Mbps": unit bps is not the metric's (pps)`)
	f("G", "bps", 0, `"G": not a rate (a number ≥ 0 with an SI suffix such as 8G or 1.5M)`)
}

func TestFormatRate(t *testing.T) {
	f := func(v float64, unit, want string) {
		t.Helper()
		require.Equal(t, want, FormatRate(v, unit))
	}
	f(8.4e9, "bps", "8.40 Gbps")
	f(1.2e6, "pps", "1.20 Mpps")
	f(3400, "flows/s", "3.40 k flows/s")
	f(12, "bps", "12.00 bps")
	f(0, "bps", "0.00 bps")
}
