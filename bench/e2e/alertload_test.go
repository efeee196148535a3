package main

import (
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/internal/alerts"
)

// The alert-load run's rules are valid rules, in the proportions it reports.
func TestAlertRulesAreValid(t *testing.T) {
	var cfg struct {
		Alerts struct {
			Rules []alerts.Rule `yaml:"rules"`
		} `yaml:"alerts"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(alertRules(1000, 4)), &cfg))
	rules := cfg.Alerts.Rules
	require.Len(t, rules, 1000)
	require.NoError(t, alerts.ValidateRules(rules))
	anyKey, baseline, scopes := 0, 0, map[string]bool{}
	for _, r := range rules {
		if r.Key == "*" {
			anyKey++
			require.Equal(t, "dstip", r.Dim)
		}
		if r.Baseline != nil {
			baseline++
		}
		scopes[r.Scope] = true
	}
	require.Equal(t, 100, anyKey)
	require.Equal(t, 200, baseline)
	require.Greater(t, len(scopes), 200, "rules over many scopes, not one")
}
