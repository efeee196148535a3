package alerts

import (
	"errors"
	"fmt"
	"slices"

	"github.com/tmsd/tmsd/internal/topn"
)

// The rules in force are the configuration file's (SetRules: at start and
// on reload) followed by the API's (PutRule, DeleteRule, SetAPIRules: kept in
// the store). A name is in one of the two: the API cannot change a file's
// rule, and a reload that would define a rule the API wrote is refused.

var (
	// ErrUnknownRule is a rule name in force nowhere.
	ErrUnknownRule = errors.New("unknown alert rule")
	// ErrFileRule is an API write of a rule the configuration file defines.
	ErrFileRule = errors.New("the rule is defined in the configuration file: change it there")
)

func findRule(rules []Rule, name string) int {
	return slices.IndexFunc(rules, func(r Rule) bool { return r.Name == name })
}

// SetRules validates the configuration file's rules and puts them in force
// with the API's; a bad set is refused and the old one stays. A rule whose
// name and definition are unchanged keeps its alerts; the others start
// afresh (their alerts end without a resolved event: the rule that raised
// them is gone).
func (e *Evaluator) SetRules(rules []Rule) error {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	e.mu.Lock()
	api := e.api
	e.mu.Unlock()
	return e.install(rules, api, false, false)
}

// CheckRules validates the configuration file's rules as SetRules would,
// with the API's, and changes nothing: a reload checks every part of the
// file before it applies any.
func (e *Evaluator) CheckRules(rules []Rule) error {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	e.mu.Lock()
	api := e.api
	e.mu.Unlock()
	return e.install(rules, api, false, true)
}

// PutRule adds or replaces one rule of the API's, validated (a *RuleError
// names the field), and returns it as in force, its defaults filled.
func (e *Evaluator) PutRule(r Rule) (Rule, error) {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	e.mu.Lock()
	file, api := e.file, slices.Clone(e.api)
	e.mu.Unlock()
	if findRule(file, r.Name) >= 0 {
		return Rule{}, fmt.Errorf("alerts: rule %q: %w", r.Name, ErrFileRule)
	}
	if i := findRule(api, r.Name); i >= 0 {
		api[i] = r
	} else {
		api = append(api, r)
	}
	if err := e.install(file, api, true, false); err != nil {
		return Rule{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return cloneRules(e.api[findRule(e.api, r.Name):][:1])[0], nil
}

// DeleteRule removes one rule of the API's.
func (e *Evaluator) DeleteRule(name string) error {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	e.mu.Lock()
	file, api := e.file, slices.Clone(e.api)
	e.mu.Unlock()
	if findRule(file, name) >= 0 {
		return fmt.Errorf("alerts: rule %q: %w", name, ErrFileRule)
	}
	i := findRule(api, name)
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrUnknownRule, name)
	}
	return e.install(file, slices.Delete(api, i, i+1), true, false)
}

// SetAPIRules replaces every rule of the API's (the file's stay).
func (e *Evaluator) SetAPIRules(rules []Rule) error {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	e.mu.Lock()
	file := e.file
	e.mu.Unlock()
	for i := range rules {
		if findRule(file, rules[i].Name) >= 0 {
			return fmt.Errorf("alerts: rule %q: %w", rules[i].Name, ErrFileRule)
		}
	}
	return e.install(file, rules, true, false)
}

// install validates both sets and puts them in force (writeMu held, or
// before Start); with persist, the API's set is saved first, so that what
// is in force is what a restart finds; with dry, it only validates.
func (e *Evaluator) install(file, api []Rule, persist, dry bool) error {
	file, api = cloneRules(file), cloneRules(api)
	for i := range file {
		file[i].Origin = OriginFile
	}
	for i := range api {
		api[i].Origin = OriginAPI
	}
	if err := errors.Join(ValidateRules(file), ValidateRules(api)); err != nil {
		return err
	}
	var errs []error
	for i := range api {
		if findRule(file, api[i].Name) >= 0 {
			errs = append(errs, &RuleError{Rule: api[i].Name, Field: "name",
				Err: errors.New("also written through the API: delete it there first (DELETE /api/v1/alerts/rules/NAME)")})
		}
	}
	if e.deps.Targets != nil {
		for _, rs := range [][]Rule{file, api} {
			for i := range rs {
				for _, t := range rs[i].Targets {
					if !e.deps.Targets(t) {
						errs = append(errs, &RuleError{Rule: rs[i].Name, Field: "targets", Err: fmt.Errorf("%q is not a target of alerts.targets (targets added to the file take a restart)", t)})
					}
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil || dry {
		return err
	}
	if persist {
		if err := e.saveRules(api); err != nil {
			return err
		}
	}
	rules := append(slices.Clip(file), api...)
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	old := map[string]*Rule{}
	for i := range e.rules {
		old[e.rules[i].Name] = &e.rules[i]
	}
	alerts := map[string]map[topn.Key]*alert{}
	for i := range rules {
		if o := old[rules[i].Name]; o != nil && sameRule(o, &rules[i]) && e.alerts[o.Name] != nil {
			alerts[o.Name] = e.alerts[o.Name]
		}
	}
	e.file, e.api, e.rules, e.alerts = file, api, rules, alerts
	e.short = map[string][]Status{}
	clear(e.baseCache)
	return nil
}
