package alerts

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// ErrInvalidRule wraps every validation error of a rule or a rule set.
var ErrInvalidRule = errors.New("invalid alert rule")

// RuleError is a rule's validation error: the rule, the field at fault (as
// the YAML and JSON spell it: "threshold", "baseline.ratio") and why. The
// API answers its Field as the 400's parameter.
type RuleError struct {
	Rule, Field string
	Err         error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("%v: alerts: rule %q: %s: %v", ErrInvalidRule, e.Rule, e.Field, e.Err)
}

// Unwrap makes errors.Is see ErrInvalidRule and the cause.
func (e *RuleError) Unwrap() []error { return []error{ErrInvalidRule, e.Err} }

// Defaults of a rule's optional fields.
const (
	DefaultResolveFor = 5 * time.Minute
	DefaultSeverity   = "warning"
	DefaultWeeks      = 4
	DefaultMinWeeks   = 2
	maxWeeks          = 52
)

// Origins of a rule.
const (
	OriginFile = "file"
	OriginAPI  = "api"
)

// Severities a rule may have: a closed list, so the firing gauge has one
// series per severity made once.
var Severities = []string{"info", "warning", "critical"}

// Rule is one alert rule, as the `alerts:` section of the configuration file
// and the admin API write it (docs/ALERTS.md). Validate fills the defaults and
// the parsed forms; a rule is used only after it.
type Rule struct {
	Name string `yaml:"name" json:"name"`
	// Scope in the API's form: "" (the whole network), "exporter=192.0.2.1",
	// "if=192.0.2.1:3&dir=in", "proto=udp".
	Scope string `yaml:"scope" json:"scope,omitempty"`
	// Dim is a TopN dimension, or "" for the scope's total; Key a key in the
	// dimension's syntax, or "*" for any key of it (over the minute's top N).
	Dim string `yaml:"dim" json:"dim,omitempty"`
	Key string `yaml:"key" json:"key,omitempty"`
	// Metric is bps (default), pps or flows (flows/s).
	Metric string `yaml:"metric" json:"metric,omitempty"`
	// Op is >, >=, < or <= (default >); Threshold a rate with an SI suffix
	// ("8G", "8Gbps", "1.5M", "100k"). A baseline rule has neither.
	Op        string `yaml:"op" json:"op,omitempty"`
	Threshold string `yaml:"threshold" json:"threshold,omitempty"`
	// For is how long the condition holds before the alert fires (0: at
	// once); ResolveFor how long it is false before it resolves (0: 5m);
	// Repeat the interval of repeats while firing (0: none). Whole minutes.
	For        Duration `yaml:"for" json:"for,omitempty"`
	ResolveFor Duration `yaml:"resolve_for" json:"resolve_for,omitempty"`
	Repeat     Duration `yaml:"repeat" json:"repeat,omitempty"`
	// Severity is info, warning (default) or critical.
	Severity string            `yaml:"severity" json:"severity,omitempty"`
	Labels   map[string]string `yaml:"labels" json:"labels,omitempty"`
	// Targets name the notification targets (internal/alerts/notify).
	Targets []string `yaml:"targets" json:"targets,omitempty"`
	// EarlyWarning fires the rule on the open minute's rate so far, before
	// the minute is closed (EvaluateOpen); only with for 0 (or 1m) and > or >=.
	EarlyWarning bool      `yaml:"early_warning" json:"early_warning,omitempty"`
	Baseline     *Baseline `yaml:"baseline" json:"baseline,omitempty"`
	// Origin is where the rule in force came from: OriginFile (the
	// configuration file) or OriginAPI (the admin API, kept in the store).
	// Set by the evaluator; ignored on input.
	Origin string `yaml:"-" json:"origin,omitempty"`

	p parsed
}

// Baseline makes a rule compare the minute's rate with the same hour of the
// week over the last Weeks weeks (their median), rather than with a threshold.
type Baseline struct {
	Weeks int `yaml:"weeks" json:"weeks,omitempty"`
	// Exactly one of Ratio (fire above median × Ratio) and Deviation (fire
	// above median + Deviation × MAD).
	Ratio     float64 `yaml:"ratio" json:"ratio,omitempty"`
	Deviation float64 `yaml:"deviation" json:"deviation,omitempty"`
	// MinVolume is a rate (SI suffix) below which the rule never fires.
	MinVolume string `yaml:"min_volume" json:"min_volume,omitempty"`
	// MinWeeks is how many of the weeks must have data (default 2).
	MinWeeks int `yaml:"min_weeks" json:"min_weeks,omitempty"`
}

// parsed is a validated rule's fields in the forms evaluation uses.
type parsed struct {
	valid     bool
	scope     topn.Scope
	dim       topn.Dim // 0: the scope's total
	key       topn.Key
	anyKey    bool
	metric    topn.Metric
	unit      string // bps, pps, flows/s
	op        string
	threshold float64
	minVolume float64
	forN      int // minutes
	resolveN  int
	repeat    time.Duration
}

// Duration is a time.Duration written "90s", "5m", "1h" or "7d" in YAML and JSON.
type Duration time.Duration

// UnmarshalText reads a duration; a "d" suffix is days.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return fmt.Errorf("bad duration %q", s)
		}
		*d = Duration(time.Duration(days * float64(24*time.Hour)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as time.Duration does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ValidateRules validates every rule (filling its defaults) and refuses
// duplicate names. The errors name the rule and the field.
func ValidateRules(rules []Rule) error {
	seen := map[string]bool{}
	var errs []error
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[rules[i].Name] {
			errs = append(errs, &RuleError{Rule: rules[i].Name, Field: "name", Err: errors.New("defined twice")})
		}
		seen[rules[i].Name] = true
	}
	return errors.Join(errs...)
}

// Validate checks the rule, fills its defaults and keeps its parsed form.
func (r *Rule) Validate() error {
	r.p = parsed{}
	p, field, err := r.parse()
	if err != nil {
		return &RuleError{Rule: r.Name, Field: field, Err: err}
	}
	p.valid = true
	r.p = p
	return nil
}

func (r *Rule) parse() (p parsed, field string, err error) {
	if r.Name == "" {
		return p, "name", errors.New("missing")
	}
	if strings.ContainsFunc(r.Name, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return p, "name", errors.New("has a control character")
	}
	if p.scope, err = ParseScope(r.Scope); err != nil {
		return p, "scope", err
	}
	if r.Dim != "" {
		d, ok := topn.ParseDim(r.Dim)
		if !ok {
			return p, "dim", fmt.Errorf("unknown dimension %q (%s)", r.Dim, topn.DimNames())
		}
		if !p.scope.Has(d) {
			return p, "dim", fmt.Errorf("scope %s has no %s table", p.scope, d)
		}
		p.dim = d
		switch r.Key {
		case "":
			return p, "key", errors.New("a rule on a dimension needs a key, or * for any key")
		case "*":
			p.anyKey = true
		default:
			if p.key, err = d.ParseKey(r.Key); err != nil {
				return p, "key", err
			}
			r.Key = d.Format(p.key) // canonical, as events and silences write it
		}
	} else if r.Key != "" {
		return p, "key", errors.New("a key needs a dim")
	}
	if r.Metric == "" {
		r.Metric = "bps"
	}
	switch r.Metric {
	case "bps":
		p.metric, p.unit = topn.Bytes, "bps"
	case "pps":
		p.metric, p.unit = topn.Packets, "pps"
	case "flows":
		p.metric, p.unit = topn.Flows, "flows/s"
	default:
		return p, "metric", fmt.Errorf("unknown metric %q (bps, pps or flows)", r.Metric)
	}
	if r.Baseline == nil {
		if r.Op == "" {
			r.Op = ">"
		}
		switch r.Op {
		case ">", ">=", "<", "<=":
		default:
			return p, "op", fmt.Errorf("unknown operator %q (>, >=, < or <=)", r.Op)
		}
		if p.anyKey && r.Op[0] == '<' {
			return p, "op", errors.New("an any-key rule fires above a threshold (> or >=): every key not seen is below")
		}
		p.op = r.Op
		if r.Threshold == "" {
			return p, "threshold", errors.New("missing")
		}
		if p.threshold, err = ParseRate(r.Threshold, p.unit); err != nil {
			return p, "threshold", err
		}
	} else {
		if r.Op != "" {
			return p, "op", errors.New("a baseline rule has no operator: it fires above its baseline")
		}
		if r.Threshold != "" {
			return p, "threshold", errors.New("a baseline rule has no threshold: its baseline is its threshold")
		}
		p.op = ">"
		b := r.Baseline
		if b.Weeks == 0 {
			b.Weeks = DefaultWeeks
		}
		if b.MinWeeks == 0 {
			b.MinWeeks = DefaultMinWeeks
		}
		switch {
		case b.Weeks < 1 || b.Weeks > maxWeeks:
			return p, "baseline: weeks", fmt.Errorf("%d: must be 1 to %d", b.Weeks, maxWeeks)
		case b.MinWeeks < 1 || b.MinWeeks > b.Weeks:
			return p, "baseline: min_weeks", fmt.Errorf("%d: must be 1 to weeks (%d)", b.MinWeeks, b.Weeks)
		case (b.Ratio != 0) == (b.Deviation != 0):
			return p, "baseline", errors.New("needs exactly one of ratio and deviation")
		case b.Ratio < 0 || math.IsNaN(b.Ratio) || math.IsInf(b.Ratio, 0):
			return p, "baseline: ratio", fmt.Errorf("%v: must be a positive number", b.Ratio)
		case b.Deviation < 0 || math.IsNaN(b.Deviation) || math.IsInf(b.Deviation, 0):
			return p, "baseline: deviation", fmt.Errorf("%v: must be a positive number", b.Deviation)
		}
		if b.MinVolume != "" {
			if p.minVolume, err = ParseRate(b.MinVolume, p.unit); err != nil {
				return p, "baseline: min_volume", err
			}
		}
	}
	if r.ResolveFor == 0 {
		r.ResolveFor = Duration(DefaultResolveFor)
	}
	for _, f := range []struct {
		name string
		d    Duration
		n    *int
	}{{"for", r.For, &p.forN}, {"resolve_for", r.ResolveFor, &p.resolveN}, {"repeat", r.Repeat, nil}} {
		d := time.Duration(f.d)
		if d < 0 || d%time.Minute != 0 {
			return p, f.name, fmt.Errorf("%s: must be whole minutes, 0 or more", d)
		}
		if f.n != nil {
			*f.n = max(1, int(d/time.Minute))
		}
	}
	p.repeat = time.Duration(r.Repeat)
	if r.Severity == "" {
		r.Severity = DefaultSeverity
	}
	if !isSeverity(r.Severity) {
		return p, "severity", fmt.Errorf("unknown severity %q (%s)", r.Severity, strings.Join(Severities, ", "))
	}
	for k := range r.Labels {
		if k == "" {
			return p, "labels", errors.New("empty label name")
		}
	}
	for _, t := range r.Targets {
		if t == "" {
			return p, "targets", errors.New("empty target name")
		}
	}
	if r.EarlyWarning {
		// The open minute's rate so far understates it and the minutes
		// before it are not closed: only an upward crossing of a rule that
		// fires at once can be told early.
		if p.forN > 1 {
			return p, "early_warning", errors.New("needs for: 0 or 1m (the minutes before the open one are not closed yet)")
		}
		if p.op[0] == '<' {
			return p, "early_warning", errors.New("needs > or >= (the rate so far only grows)")
		}
	}
	return p, "", nil
}

func isSeverity(s string) bool {
	for _, x := range Severities {
		if x == s {
			return true
		}
	}
	return false
}

// ParseScope reads a scope in the API's query form: "" (the whole network),
// "exporter=ADDR", "proto=PROTO" or "if=EXPORTER:IFINDEX&dir=in|out". The
// drill-down scopes (app=, ip=) keep only each minute's top keys: a rule on
// them would read partial figures, so they are refused. (The API's own parser
// is unexported and also resolves interface names, which rules do not need.)
func ParseScope(s string) (topn.Scope, error) {
	if s == "" || s == "all" {
		return topn.Scope{}, nil
	}
	q, err := url.ParseQuery(s)
	if err != nil {
		return topn.Scope{}, fmt.Errorf("%q: %w", s, err)
	}
	for name, v := range q {
		if len(v) != 1 {
			return topn.Scope{}, fmt.Errorf("%q: %s given %d times", s, name, len(v))
		}
	}
	get := func(name string) string { return q.Get(name) }
	switch {
	case len(q) == 1 && get("exporter") != "":
		a, err := parseAddr(get("exporter"))
		if err != nil {
			return topn.Scope{}, fmt.Errorf("exporter: not an IP address: %q", get("exporter"))
		}
		return topn.Scope{Kind: topn.ScopeExporter, Exporter: a}, nil
	case len(q) == 1 && get("proto") != "":
		pr, err := topn.ParseProto(get("proto"))
		if err != nil {
			return topn.Scope{}, fmt.Errorf("proto: %w", err)
		}
		return topn.Scope{Kind: topn.ScopeProto, Proto: pr}, nil
	case len(q) == 2 && get("if") != "" && get("dir") != "":
		k, err := topn.DimInIf.ParseKey(get("if"))
		if err != nil {
			return topn.Scope{}, fmt.Errorf("if: %w", err)
		}
		sc := topn.Scope{Kind: topn.ScopeInterface, Exporter: k.Addr(), IfIndex: k.IfIndex()}
		switch get("dir") {
		case "in":
			sc.Dir = topn.DirIn
		case "out":
			sc.Dir = topn.DirOut
		default:
			return topn.Scope{}, fmt.Errorf("dir: must be in or out, got %q", get("dir"))
		}
		return sc, nil
	}
	return topn.Scope{}, fmt.Errorf("%q: a scope is exporter=ADDR, proto=PROTO or if=EXPORTER:IFINDEX&dir=in|out, alone", s)
}

// parseAddr reads an address as the aggregator keys it: IPv4 mapped into IPv6.
func parseAddr(s string) (flow.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return flow.Addr{}, err
	}
	return flow.AddrFrom(a.Unmap()), nil
}

var siPrefixes = map[byte]float64{'k': 1e3, 'K': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'P': 1e15}

// ParseRate reads a rate: a number, an optional SI prefix (k, M, G, T, P)
// and optionally the unit, which must be the metric's (bps, pps, flows/s).
func ParseRate(s, unit string) (float64, error) {
	num := strings.TrimSpace(s)
	for _, u := range []string{"bps", "pps", "flows/s", "flows"} {
		n, ok := strings.CutSuffix(num, u)
		if !ok {
			continue
		}
		if u != unit && !(u == "flows" && unit == "flows/s") {
			return 0, fmt.Errorf("%q: unit %s is not the metric's (%s)", s, u, unit)
		}
		num = strings.TrimSpace(n)
		break
	}
	mult := 1.0
	if n := len(num); n > 0 && !(num[n-1] >= '0' && num[n-1] <= '9' || num[n-1] == '.') {
		m, ok := siPrefixes[num[n-1]]
		if !ok {
			return 0, fmt.Errorf("%q: unknown suffix", s)
		}
		mult, num = m, strings.TrimSpace(num[:n-1])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q: not a rate (a number ≥ 0 with an SI suffix such as 8G or 1.5M)", s)
	}
	return v * mult, nil
}

// FormatRate writes a rate for people: "8.40 Gbps", "1.20 Mpps", "3.40 k flows/s".
func FormatRate(v float64, unit string) string {
	prefixes := []struct {
		p string
		m float64
	}{{"P", 1e15}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}}
	sep := ""
	if unit == "flows/s" {
		sep = " "
	}
	for _, x := range prefixes {
		if math.Abs(v) >= x.m {
			return strconv.FormatFloat(v/x.m, 'f', 2, 64) + " " + x.p + sep + unit
		}
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " " + unit
}
