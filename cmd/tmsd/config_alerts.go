package main

import (
	"fmt"
	"net/url"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/internal/alerts"
	"github.com/tmsd/tmsd/internal/alerts/notify"
)

// AlertsConfig is the `alerts:` section: the rules and where their events
// go (docs/ALERTS.md).
type AlertsConfig struct {
	Rules   []AlertRule     `yaml:"rules,omitempty"`
	Targets []notify.Target `yaml:"targets,omitempty"`
	// DashboardURL is the dashboard's address as the receivers reach it, the
	// base of each event's link ("": no link).
	DashboardURL string `yaml:"dashboard_url"`
	// HistoryRetention is how long alert events are kept (0: forever).
	HistoryRetention Duration `yaml:"history_retention"`
}

// AlertRule is one rule, validated as it is read so that a bad one names
// its line.
type AlertRule struct{ alerts.Rule }

// UnmarshalYAML decodes and validates the rule, with its line in the error.
func (r *AlertRule) UnmarshalYAML(n *yaml.Node) error {
	var rule alerts.Rule
	if err := n.Decode(&rule); err != nil {
		return lineError(n, "alert rule: %v", err)
	}
	if err := rule.Validate(); err != nil {
		return lineError(n, "%v", err)
	}
	r.Rule = rule
	return nil
}

func (c AlertsConfig) rules() []alerts.Rule {
	out := make([]alerts.Rule, len(c.Rules))
	for i, r := range c.Rules {
		out[i] = r.Rule
	}
	return out
}

func (c AlertsConfig) notifyConfiguration() notify.Configuration {
	n := notify.DefaultConfiguration()
	n.Targets = c.Targets
	return n
}

// evaluatorConfiguration evaluates a minute once the aggregator has closed
// and stored it: its grace, then a flush interval's worth more.
func (c *Config) evaluatorConfiguration() alerts.Configuration {
	e := alerts.DefaultConfiguration()
	e.Rules = c.Alerts.rules()
	e.Grace = time.Duration(c.Aggregate.Grace) + 30*time.Second
	e.HistoryRetention = time.Duration(c.Alerts.HistoryRetention)
	return e
}

// checkAlerts refuses rules as a set (names twice) and targets the rules
// name that are not configured, and validates the targets.
func (c *Config) checkAlerts(src configSource) error {
	if u := c.Alerts.DashboardURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return src.errorf("alerts.dashboard_url", "want an http:// or https:// URL, got %q", u)
		}
	}
	if err := alerts.ValidateRules(c.Alerts.rules()); err != nil {
		return src.errorf("alerts.rules", "%v", err)
	}
	if _, err := notify.New(c.Alerts.notifyConfiguration(), notify.Dependencies{}); err != nil {
		return src.errorf("alerts.targets", "%v", err)
	}
	known := map[string]bool{}
	for _, t := range c.Alerts.Targets {
		known[t.Name] = true
	}
	for _, r := range c.Alerts.Rules {
		for _, t := range r.Targets {
			if !known[t] {
				return src.errorf("alerts.rules", "%v", fmt.Errorf("rule %q: target %q is not in alerts.targets", r.Name, t))
			}
		}
	}
	return nil
}

// MarshalYAML shows the section with what authenticates a delivery
// redacted (GET /api/v1/config): webhook secrets, header values, e-mail
// passwords, and the URLs of Slack and Teams webhooks, which are their
// credential.
func (c AlertsConfig) MarshalYAML() (any, error) {
	type plain AlertsConfig // without this method
	out := plain(c)
	if len(c.Targets) == 0 {
		return out, nil
	}
	out.Targets = make([]notify.Target, len(c.Targets))
	for i, t := range c.Targets {
		red := func(s string) string {
			if s == "" {
				return ""
			}
			return "redacted"
		}
		t.Secret = red(t.Secret)
		if t.Type == notify.TypeSlack || t.Type == notify.TypeTeams {
			t.URL = red(t.URL)
		}
		if len(t.Headers) > 0 {
			h := make(map[string]string, len(t.Headers))
			for k, v := range t.Headers {
				h[k] = red(v)
			}
			t.Headers = h
		}
		if t.Email != nil {
			e := *t.Email
			e.Password = red(e.Password)
			t.Email = &e
		}
		out.Targets[i] = t
	}
	return out, nil
}
