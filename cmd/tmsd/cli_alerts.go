package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/alerts"
)

// `tmsd alerts` is a thin client of a running tmsd's alerts API, as top and
// report are of theirs: each subcommand is one or two requests, printed as an
// aligned table (or the server's own JSON or CSV when asked). The answers are
// decoded into internal/alerts' own types, the ones the API writes, so the
// client cannot drift from the server's schema. A rule file in YAML is read
// as the configuration file reads a rule (unknown keys refused) and sent as
// JSON; the server validates it, and its 400 is relayed naming the field.

// alertsSubcommands are the subcommands, in the order --help lists them.
var alertsSubcommands = []struct{ name, args, summary string }{
	{"active", "[flags]", "print the alerts pending and firing now (the default)"},
	{"history", "[--last 24h | --from T --to T] [--state KIND] [--rule NAME] [-n N] [--csv]", "print the alert events: firing, resolved, repeat and silenced"},
	{"rules", "[--json]", "print the rules in force, from the configuration file and from the API"},
	{"put", "NAME --file FILE", "add or replace an API rule from a JSON or YAML file (admin token)"},
	{"delete", "NAME", "delete an API rule (admin token)"},
	{"silence", "--rule NAME [--key KEY] --for DURATION [--comment TEXT]", "mute a rule's alerts, of one key or of all (admin token)"},
	{"silences", "[flags]", "print the silences in force"},
	{"unsilence", "ID", "end a silence (admin token)"},
}

func alertsUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\nPrint a running tmsd's alerts, their history, the rules and the silences; change the API's rules and the silences.\n\nSubcommands:\n",
		commandUsage("alerts"))
	for _, s := range alertsSubcommands {
		fmt.Fprintf(w, "  %-10s %s\n", s.name, s.summary)
	}
	fmt.Fprint(w, "\nEach takes --server URL, --token TOKEN (default $TMSD_TOKEN) and --timeout DURATION;\n"+
		"tmsd alerts SUBCOMMAND --help lists its flags.\n")
}

// alertsCommand runs `tmsd alerts [SUBCOMMAND] ...`.
func alertsCommand(args []string, env cliEnv) error {
	sub := "active"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "-help" || a == "--help":
			alertsUsage(env.stdout)
			return flag.ErrHelp
		case !strings.HasPrefix(a, "-"):
			sub, args = a, args[1:]
		}
	}
	switch sub {
	case "active":
		return alertsActive(args, env)
	case "history":
		return alertsHistory(args, env)
	case "rules":
		return alertsRules(args, env)
	case "put":
		return alertsPut(args, env)
	case "delete":
		return alertsDelete(args, env)
	case "silence":
		return alertsSilence(args, env)
	case "silences":
		return alertsSilences(args, env)
	case "unsilence":
		return alertsUnsilence(args, env)
	}
	names := make([]string, len(alertsSubcommands))
	for i, s := range alertsSubcommands {
		names[i] = s.name
	}
	return usagef("alerts", "unknown subcommand %q (%s)", sub, strings.Join(names, ", "))
}

// alertsConn is where a subcommand's requests go, from its common flags.
type alertsConn struct {
	env     cliEnv
	server  string
	token   string
	timeout time.Duration
}

// newAlertsFlagSet is a subcommand's flag set with the flags every
// subcommand takes; --help prints its usage line, summary and flags.
func newAlertsFlagSet(sub string, env cliEnv) (*flag.FlagSet, *alertsConn) {
	fs := flag.NewFlagSet("tmsd alerts "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseArgs says what went wrong, in one line
	c := &alertsConn{env: env}
	what := "read"
	for _, s := range alertsSubcommands {
		if s.name == sub {
			if strings.Contains(s.summary, "admin token") {
				what = "admin"
			}
			fs.Usage = func() {
				w := fs.Output()
				fmt.Fprintf(w, "Usage: tmsd alerts %s %s\n\n%s.\n", s.name, s.args, strings.ToUpper(s.summary[:1])+s.summary[1:])
				printFlags(w, fs)
			}
		}
	}
	fs.StringVar(&c.server, "server", "http://127.0.0.1:8080", "`URL` of the running tmsd")
	fs.StringVar(&c.token, "token", "", what+" `token` (default: $TMSD_TOKEN)")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "give up after this `duration`")
	return fs, c
}

// parseAlertsArgs parses flags and positional arguments in any order
// (`put NAME --file F` as well as `put --file F NAME`), and checks that
// exactly the positional arguments named in want were given.
func parseAlertsArgs(fs *flag.FlagSet, c *alertsConn, args []string, want ...string) ([]string, error) {
	var pos []string
	for {
		if err := parseArgs(fs, args, c.env.stdout); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...) // after --, nothing is a flag
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	cmd := strings.TrimPrefix(fs.Name(), "tmsd ")
	switch {
	case len(pos) > len(want):
		return nil, usagef(cmd, "unexpected argument %q", pos[len(want)])
	case len(pos) < len(want):
		return nil, usagef(cmd, "missing argument %s", want[len(pos)])
	}
	for i, p := range pos {
		if p == "" {
			return nil, usagef(cmd, "argument %s is empty", want[i])
		}
	}
	if c.token == "" {
		c.token = c.env.getenv("TMSD_TOKEN")
	}
	return pos, nil
}

// do sends one request to /api/v1+path and returns the body of a 2xx, or a
// one-line reason: the server's own message, with the parameter it names.
func (c *alertsConn) do(method, path string, q url.Values, body []byte) ([]byte, error) {
	u := strings.TrimRight(c.server, "/") + "/api/v1" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return request(c.env.client, method, u, c.token, c.timeout, body)
}

// getJSON GETs path and decodes its JSON into v.
func (c *alertsConn) getJSON(path string, q url.Values, v any) error {
	body, err := c.do(http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	return decodeAnswer(body, path, v)
}

func decodeAnswer(body []byte, path string, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("the server's answer to %s is not what tmsd alerts reads: %w", path, err)
	}
	return nil
}

// cliActive is GET /alerts/active.
type cliActive struct {
	Firing  int             `json:"firing"`
	Pending int             `json:"pending"`
	Rules   int             `json:"rules"`
	Alerts  []alerts.Status `json:"alerts"`
}

type cliRules struct {
	Rules []alerts.Rule `json:"rules"`
}

func alertsActive(args []string, env cliEnv) error {
	fs, c := newAlertsFlagSet("active", env)
	if _, err := parseAlertsArgs(fs, c, args); err != nil {
		return err
	}
	var a cliActive
	if err := c.getJSON("/alerts/active", nil, &a); err != nil {
		return err
	}
	// The rules give what a Status leaves out: the operator, and whether a
	// threshold is a baseline's ratio or deviation.
	var rs cliRules
	if err := c.getJSON("/alerts/rules", nil, &rs); err != nil {
		return err
	}
	byName := map[string]*alerts.Rule{}
	for i := range rs.Rules {
		byName[rs.Rules[i].Name] = &rs.Rules[i]
	}
	rows := [][]string{{"STATE", "RULE", "SEVERITY", "KEY", "VALUE", "THRESHOLD", "SINCE", "FLAGS"}}
	var short []alerts.Status
	for _, s := range a.Alerts {
		if s.State == "" {
			short = append(short, s)
			continue
		}
		r := byName[s.Rule]
		metric := s.Metric
		if metric == "" && r != nil {
			metric = r.Metric
		}
		unit := rateUnit(metric)
		var flags []string
		if s.Bounded {
			flags = append(flags, "bounded")
		}
		if s.Silenced {
			flags = append(flags, "silenced")
		}
		rows = append(rows, []string{string(s.State), s.Rule, s.Severity, keyText(s.Scope, s.Dim, s.Key),
			humanRate(s.Value, unit), thresholdText(r, s.Threshold, s.Baseline, unit), cliTime(s.Since), strings.Join(flags, ",")})
	}
	w := env.stdout
	if len(rows) == 1 {
		fmt.Fprintln(w, "no alerts firing")
	} else {
		fmt.Fprint(w, alignLeft(rows, 4))
	}
	if len(short) > 0 {
		fmt.Fprintln(w, "baseline rules not judged (history too short):")
		for _, s := range short {
			fmt.Fprintf(w, "  %s %s: %s\n", s.Rule, keyText(s.Scope, s.Dim, s.Key), s.Reason)
		}
	}
	fmt.Fprintf(w, "%d firing, %d pending, of %d rule%s\n", a.Firing, a.Pending, a.Rules, plural(a.Rules))
	return nil
}

// cliHistory is GET /alerts.
type cliHistory struct {
	From      string         `json:"from"`
	To        string         `json:"to"`
	Truncated bool           `json:"truncated"`
	Events    []alerts.Event `json:"events"`
}

func alertsHistory(args []string, env cliEnv) error {
	fs, c := newAlertsFlagSet("history", env)
	last := fs.String("last", "24h", "the range ending now (`duration`: 15m, 24h, 7d); ignored with --from")
	from := fs.String("from", "", "start (RFC 3339, unix seconds or -24h)")
	to := fs.String("to", "", "end (default now)")
	state := fs.String("state", "", "only events of this `kind`: firing, resolved, repeat or silenced")
	rule := fs.String("rule", "", "only this rule's events (`name`)")
	n := fs.Int("n", 0, "at most this many events, the most recent (default: the server's, 1000)")
	asCSV := fs.Bool("csv", false, "print the server's CSV instead of a table")
	if _, err := parseAlertsArgs(fs, c, args); err != nil {
		return err
	}
	q := url.Values{}
	switch {
	case *from != "":
		q.Set("from", *from)
		if *to != "" {
			q.Set("to", *to)
		}
	default:
		d, err := api.ParseDuration(*last)
		if err != nil || d <= 0 {
			return fmt.Errorf("alerts history: --last %q is not a duration such as 15m, 24h or 7d", *last)
		}
		q.Set("from", "-"+*last) // to: now, by the server's clock
	}
	if *state != "" {
		q.Set("state", *state)
	}
	if *rule != "" {
		q.Set("rule", *rule)
	}
	if *n != 0 {
		q.Set("n", strconv.Itoa(*n))
	}
	if *asCSV {
		q.Set("format", "csv")
		body, err := c.do(http.MethodGet, "/alerts", q, nil)
		if err != nil {
			return err
		}
		_, err = env.stdout.Write(body)
		return err
	}
	var h cliHistory
	if err := c.getJSON("/alerts", q, &h); err != nil {
		return err
	}
	w := env.stdout
	if len(h.Events) == 0 {
		fmt.Fprintf(w, "no alert events from %s to %s\n", h.From, h.To)
		return nil
	}
	rows := [][]string{{"AT", "KIND", "RULE", "KEY", "VALUE", "THRESHOLD", "SUMMARY"}}
	bounded := false
	for _, ev := range h.Events {
		unit := rateUnit(ev.Metric)
		value := humanRate(ev.Value, unit)
		if ev.Bounded {
			value += " ~"
			bounded = true
		}
		rows = append(rows, []string{cliTime(ev.At), string(ev.Kind), ev.Rule, keyText(ev.Scope, ev.Dim, ev.Key),
			value, thresholdText(nil, ev.Threshold, ev.Baseline, unit), ev.Summary})
	}
	fmt.Fprint(w, alignLeft(rows, 4))
	foot := fmt.Sprintf("%s – %s: %d event%s", h.From, h.To, len(h.Events), plural(len(h.Events)))
	if h.Truncated {
		foot += " (truncated: the most recent kept; narrow the range or raise -n)"
	}
	if bounded {
		foot += "; values marked ~ are lower bounds"
	}
	fmt.Fprintln(w, foot)
	return nil
}

func alertsRules(args []string, env cliEnv) error {
	fs, c := newAlertsFlagSet("rules", env)
	asJSON := fs.Bool("json", false, "print the server's JSON instead of a table")
	if _, err := parseAlertsArgs(fs, c, args); err != nil {
		return err
	}
	body, err := c.do(http.MethodGet, "/alerts/rules", nil, nil)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err = env.stdout.Write(body)
		return err
	}
	var rs cliRules
	if err := decodeAnswer(body, "/alerts/rules", &rs); err != nil {
		return err
	}
	if len(rs.Rules) == 0 {
		fmt.Fprintln(env.stdout, "no alert rules")
		return nil
	}
	fmt.Fprint(env.stdout, rulesTable(rs.Rules))
	return nil
}

func rulesTable(rules []alerts.Rule) string {
	rows := [][]string{{"NAME", "ORIGIN", "SCOPE", "WHAT", "CONDITION", "FOR", "SEVERITY", "TARGETS"}}
	for i := range rules {
		r := &rules[i]
		scope := r.Scope
		if scope == "" {
			scope = "all"
		}
		what := "total"
		if r.Dim != "" {
			what = r.Dim + "=" + r.Key
		}
		targets := strings.Join(r.Targets, ",")
		if targets == "" {
			targets = "-"
		}
		rows = append(rows, []string{r.Name, r.Origin, scope, what, conditionText(r), durationText(r.For), r.Severity, targets})
	}
	return alignLeft(rows, 5)
}

// conditionText is a rule's condition: "bps > 8G", "pps > baseline×2 (4 weeks)".
func conditionText(r *alerts.Rule) string {
	metric := r.Metric
	if metric == "" {
		metric = "bps"
	}
	b := r.Baseline
	if b == nil {
		op := r.Op
		if op == "" {
			op = ">"
		}
		return metric + " " + op + " " + r.Threshold
	}
	s := metric + " > baseline"
	if b.Deviation != 0 {
		s += "+" + strconv.FormatFloat(b.Deviation, 'g', -1, 64) + "×MAD"
	} else {
		s += "×" + strconv.FormatFloat(b.Ratio, 'g', -1, 64)
	}
	weeks := b.Weeks
	if weeks == 0 {
		weeks = alerts.DefaultWeeks
	}
	s += fmt.Sprintf(" (%d weeks", weeks)
	if b.MinVolume != "" {
		s += ", min " + b.MinVolume
	}
	return s + ")"
}

func durationText(d alerts.Duration) string {
	if d == 0 {
		return "0"
	}
	return Duration(d).String()
}

func alertsPut(args []string, env cliEnv) error {
	fs, c := newAlertsFlagSet("put", env)
	file := fs.String("file", "", "the rule, a JSON or YAML `file` (.json, .yaml or .yml) with the fields of a rule of alerts.rules")
	pos, err := parseAlertsArgs(fs, c, args, "NAME")
	if err != nil {
		return err
	}
	if *file == "" {
		return usagef("alerts put", "--file is required")
	}
	name := pos[0]
	body, err := ruleBody(name, *file)
	if err != nil {
		return err
	}
	answer, err := c.do(http.MethodPut, "/alerts/rules/"+url.PathEscape(name), nil, body)
	if err != nil {
		return err
	}
	var r alerts.Rule
	if err := decodeAnswer(answer, "/alerts/rules/"+name, &r); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "rule %q in force:\n", r.Name)
	fmt.Fprint(env.stdout, rulesTable([]alerts.Rule{r}))
	return nil
}

// ruleBody is the PUT body of the rule in file: a JSON file as it is (the
// server decodes it strictly), a YAML one decoded as the configuration file
// decodes a rule, unknown keys refused, then written as JSON.
func ruleBody(name, file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("alerts put: %w", err)
	}
	ext := strings.ToLower(filepath.Ext(file))
	if ext == ".json" || (ext != ".yaml" && ext != ".yml" && json.Valid(b)) {
		if !json.Valid(b) {
			return nil, fmt.Errorf("alerts put: %s is not JSON", file)
		}
		return b, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var r alerts.Rule
	if err := dec.Decode(&r); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("alerts put: %s is empty", file)
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
		msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
		msg = strings.TrimPrefix(msg, "yaml: ")
		return nil, fmt.Errorf("alerts put: %s: %s", file, msg)
	}
	if r.Name == "" {
		r.Name = name
	}
	return json.Marshal(r)
}

func alertsDelete(args []string, env cliEnv) error {
	fs, c := newAlertsFlagSet("delete", env)
	pos, err := parseAlertsArgs(fs, c, args, "NAME")
	if err != nil {
		return err
	}
	if _, err := c.do(http.MethodDelete, "/alerts/rules/"+url.PathEscape(pos[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "deleted rule %q\n", pos[0])
	return nil
}

func alertsSilence(args []string, env cliEnv) error {
	fs, c := newAlertsFlagSet("silence", env)
	rule := fs.String("rule", "", "the rule whose alerts are muted (`name`)")
	key := fs.String("key", "", "only this `key`'s alert (default: every key of the rule)")
	forD := fs.String("for", "", "how long, a `duration` such as 30m, 2h or 1d")
	until := fs.String("until", "", "or until this `time` (RFC 3339)")
	comment := fs.String("comment", "", "why, for the others (`text`)")
	if _, err := parseAlertsArgs(fs, c, args); err != nil {
		return err
	}
	if *rule == "" {
		return usagef("alerts silence", "--rule is required")
	}
	if (*forD == "") == (*until == "") {
		return usagef("alerts silence", "give one of --for and --until")
	}
	req := map[string]string{"rule": *rule}
	for k, v := range map[string]string{"key": *key, "for": *forD, "until": *until, "comment": *comment} {
		if v != "" {
			req[k] = v
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	answer, err := c.do(http.MethodPost, "/alerts/silences", nil, body)
	if err != nil {
		return err
	}
	var s alerts.Silence
	if err := decodeAnswer(answer, "/alerts/silences", &s); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "silence %s: rule %q, %s, until %s (tmsd alerts unsilence %s ends it)\n",
		s.ID, s.Rule, silenceKey(s.Key), cliTime(s.Until), s.ID)
	return nil
}

func silenceKey(k string) string {
	if k == "" || k == "*" {
		return "every key"
	}
	return "key " + k
}

func alertsSilences(args []string, env cliEnv) error {
	fs, c := newAlertsFlagSet("silences", env)
	if _, err := parseAlertsArgs(fs, c, args); err != nil {
		return err
	}
	var ss struct {
		Silences []alerts.Silence `json:"silences"`
	}
	if err := c.getJSON("/alerts/silences", nil, &ss); err != nil {
		return err
	}
	if len(ss.Silences) == 0 {
		fmt.Fprintln(env.stdout, "no silences in force")
		return nil
	}
	rows := [][]string{{"ID", "RULE", "KEY", "UNTIL", "COMMENT"}}
	for _, s := range ss.Silences {
		k := s.Key
		if k == "" {
			k = "*"
		}
		rows = append(rows, []string{s.ID, s.Rule, k, cliTime(s.Until), s.Comment})
	}
	fmt.Fprint(env.stdout, alignLeft(rows))
	return nil
}

func alertsUnsilence(args []string, env cliEnv) error {
	fs, c := newAlertsFlagSet("unsilence", env)
	pos, err := parseAlertsArgs(fs, c, args, "ID")
	if err != nil {
		return err
	}
	if _, err := c.do(http.MethodDelete, "/alerts/silences/"+url.PathEscape(pos[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "silence %s ended\n", pos[0])
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// rateUnit is the unit humanRate writes a metric's rate in.
func rateUnit(metric string) string {
	switch metric {
	case "pps":
		return "pps"
	case "flows", "flows/s":
		return "flows/s"
	}
	return "bps"
}

// keyText names an alert's key with its scope: "app=https",
// "exporter=192.0.2.1 in_if=192.0.2.1:3", "proto=udp total".
func keyText(scope, dim, key string) string {
	k := "total"
	if dim != "" {
		k = dim + "=" + key
	}
	if scope == "" {
		return k
	}
	return scope + " " + k
}

// thresholdText is what an alert is judged against: "> 1.00 kbps", or a
// baseline's median and its ratio ("baseline 2.10 Mbps×1.5") or deviation.
// Without the rule (history: it may have changed or gone since), a
// baseline's threshold is written as the median times the factor it is.
func thresholdText(r *alerts.Rule, threshold, baseline float64, unit string) string {
	switch {
	case r != nil && r.Baseline != nil && r.Baseline.Deviation != 0:
		return fmt.Sprintf("baseline %s+%s×MAD = %s", humanRate(baseline, unit),
			strconv.FormatFloat(r.Baseline.Deviation, 'g', -1, 64), humanRate(threshold, unit))
	case r != nil && r.Baseline != nil:
		return fmt.Sprintf("baseline %s×%s", humanRate(baseline, unit), strconv.FormatFloat(r.Baseline.Ratio, 'g', -1, 64))
	case r != nil:
		op := r.Op
		if op == "" {
			op = ">"
		}
		return op + " " + humanRate(threshold, unit)
	case baseline > 0:
		return fmt.Sprintf("baseline %s×%.3g", humanRate(baseline, unit), threshold/baseline)
	}
	return humanRate(threshold, unit)
}

// cliTime writes a time in UTC, RFC 3339, as the footers of top and report do.
func cliTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// alignLeft pads columns of words: left-aligned, but the columns listed in
// right (numbers), and with no padding after the last column.
func alignLeft(rows [][]string, right ...int) string {
	width := map[int]int{}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	isRight := map[int]bool{}
	for _, i := range right {
		isRight[i] = true
	}
	var b strings.Builder
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i > 0 {
				line.WriteString("  ")
			}
			if isRight[i] {
				line.WriteString(pad + c)
			} else {
				line.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return b.String()
}
