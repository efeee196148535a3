package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/alerts"
	"github.com/tmsd/tmsd/internal/apps"
)

// reload reads the configuration file again (SIGHUP, POST
// /api/v1/admin/reload) and applies what can change while running: the
// application rules (from the next minute on) and the exporter and
// interface names (at once). The whole file is checked first, as at
// start-up: a bad line is refused with FILE:LINE and the reason, and
// everything in force stays. Other keys the file changed are named as
// needing a restart. The GeoIP databases reload themselves when their files
// change (geoip.reload_interval).
func (p *pipeline) Reload() (api.ReloadResult, error) {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if p.reloadArgs == nil || !hasConfigFlag(p.reloadArgs) {
		return api.ReloadResult{}, api.ErrNothingToReload
	}
	cfg, _, err := parseFlags("serve", p.reloadArgs, io.Discard)
	if err != nil {
		p.logger.Error("reload refused: the configuration in force stays", "error", err)
		return api.ReloadResult{}, fmt.Errorf("reload refused, the configuration in force stays: %w", err)
	}
	var res api.ReloadResult
	old := p.config
	alertRules := !reflect.DeepEqual(old.Alerts.Rules, cfg.Alerts.Rules)
	if alertRules {
		// Checked before anything is applied: with the API's rules, a name
		// the API wrote is refused here.
		if err := p.alerts.CheckRules(cfg.Alerts.rules()); err != nil {
			err = fmt.Errorf("%s: alerts.rules: %w", ruleWhere(configPath(p.reloadArgs), err), err)
			p.logger.Error("reload refused: the configuration in force stays", "error", err)
			return api.ReloadResult{}, fmt.Errorf("reload refused, the configuration in force stays: %w", err)
		}
	}
	if !slices.EqualFunc(old.Apps, cfg.Apps, func(a, b AppRule) bool { return reflect.DeepEqual(a.Rule, b.Rule) }) {
		rules := make([]apps.Rule, len(cfg.Apps))
		for i, r := range cfg.Apps {
			rules[i] = r.Rule
		}
		from, err := p.classifier.replace(rules, time.Now())
		if err != nil {
			p.logger.Error("reload refused: the configuration in force stays", "error", err)
			return api.ReloadResult{}, fmt.Errorf("reload refused, the configuration in force stays: apps: %w", err)
		}
		res.From = from.UTC().Format(time.RFC3339)
		res.Changed = append(res.Changed, "apps")
	}
	if alertRules {
		if err := p.alerts.SetRules(cfg.Alerts.rules()); err != nil {
			// Only a rule the API wrote since CheckRules: the apps are applied.
			p.logger.Error("reload: the alert rules were refused: the ones in force stay", "error", err)
			return api.ReloadResult{}, fmt.Errorf("reload: the alert rules were refused, the ones in force stay: %w", err)
		}
		res.Changed = append(res.Changed, "alerts.rules")
	}
	if !reflect.DeepEqual(old.Exporters, cfg.Exporters) {
		res.Changed = append(res.Changed, "exporters")
	}
	if !reflect.DeepEqual(old.Interfaces, cfg.Interfaces) {
		res.Changed = append(res.Changed, "interfaces")
	}
	p.names.SetStatic(cfg.staticNames())
	res.Restart = restartKeys(old, cfg)
	// What the next reload compares with: the keys applied, the others as
	// they were started (a restart applies them).
	kept := old
	kept.Apps, kept.Exporters, kept.Interfaces, kept.Alerts.Rules = cfg.Apps, cfg.Exporters, cfg.Interfaces, cfg.Alerts.Rules
	p.config = kept
	if res.Changed == nil {
		res.Changed = []string{}
	}
	p.logger.Info("configuration reloaded", "changed", res.Changed, "rules_from", res.From, "needs_restart", res.Restart)
	return res, nil
}

// reload is Reload for SIGHUP: its outcome is logged.
func (p *pipeline) reload() { _, _ = p.Reload() }

// RuleChanges are the minutes from which reloaded rules classify flows.
func (p *pipeline) RuleChanges(from, to time.Time) []time.Time {
	return p.classifier.RuleChanges(from, to)
}

// restartKeys are the top-level keys whose values differ, other than those a
// reload applies.
func restartKeys(old, cfg Config) []string {
	var out []string
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(cfg)
	t := ov.Type()
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("yaml")
		switch key {
		case "apps", "exporters", "interfaces", "":
			continue
		}
		o, n := ov.Field(i).Interface(), nv.Field(i).Interface()
		if key == "alerts" { // its rules reload; its targets take a restart
			oa, na := o.(AlertsConfig), n.(AlertsConfig)
			oa.Rules, na.Rules = nil, nil
			o, n = oa, na
		}
		if !reflect.DeepEqual(o, n) {
			out = append(out, key)
		}
	}
	return out
}

// ruleWhere is "FILE:LINE" of the rule an error names (*alerts.RuleError),
// found in the file's YAML, or FILE.
func ruleWhere(path string, err error) string {
	var re *alerts.RuleError
	b, rerr := os.ReadFile(path)
	var doc yaml.Node
	if !errors.As(err, &re) || rerr != nil || yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return path
	}
	find := func(n *yaml.Node, key string) *yaml.Node {
		for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
		return nil
	}
	if rules := find(find(doc.Content[0], "alerts"), "rules"); rules != nil {
		for _, r := range rules.Content {
			if n := find(r, "name"); n != nil && n.Value == re.Rule {
				return fmt.Sprintf("%s:%d", path, r.Line)
			}
		}
	}
	return path
}

// configPath is the value of --config in args ("" without one).
func configPath(args []string) string {
	for i, a := range args {
		for _, f := range []string{"-config", "--config"} {
			if a == f && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, f+"="); ok {
				return v
			}
		}
	}
	return ""
}

func hasConfigFlag(args []string) bool {
	for _, a := range args {
		switch {
		case a == "-config" || a == "--config":
			return true
		case len(a) > 8 && (a[:8] == "-config=" || (len(a) > 9 && a[:9] == "--config=")):
			return true
		}
	}
	return false
}
