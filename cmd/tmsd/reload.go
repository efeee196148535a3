package main

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"time"

	"github.com/tmsd/tmsd/api"
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
	kept.Apps, kept.Exporters, kept.Interfaces = cfg.Apps, cfg.Exporters, cfg.Interfaces
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
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			out = append(out, key)
		}
	}
	return out
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
