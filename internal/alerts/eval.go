package alerts

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/topn"
)

// Configuration of the evaluator.
type Configuration struct {
	Rules []Rule `yaml:"rules"`
	// Grace is how long after a minute's end it is closed and stored (the
	// aggregator's grace and final write): the minute is evaluated then.
	Grace time.Duration `yaml:"grace"`
	// TopN is how many rows of a minute an any-key rule reads.
	TopN int `yaml:"top_n"`
	// EarlyEvery is how often the rules with early_warning read the open
	// minute's rate so far.
	EarlyEvery time.Duration `yaml:"early_every"`
	// HistoryRetention is how long the event log keeps events (0: forever).
	HistoryRetention time.Duration `yaml:"history_retention"`
}

// DefaultConfiguration returns the default configuration: no rules.
func DefaultConfiguration() Configuration {
	return Configuration{Grace: 2 * time.Minute, TopN: 100, EarlyEvery: 15 * time.Second, HistoryRetention: 90 * 24 * time.Hour}
}

// Source is what the evaluator reads traffic from: *query.Engine.
type Source interface {
	Top(sc topn.Scope, d topn.Dim, from, to time.Time, n int, m topn.Metric) (query.Result, error)
	Series(sc topn.Scope, from, to time.Time, step time.Duration, d topn.Dim, key *topn.Key) (query.SeriesResult, error)
}

var _ Source = (*query.Engine)(nil)

// Dependencies of the evaluator.
type Dependencies struct {
	Source Source
	// Notify delivers an event to the rule's targets (internal/alerts/notify);
	// it is called from the evaluation, so it must queue, not block.
	Notify func(targets []string, ev Event)
	// Store keeps the API's rules, the silences, the alerts' states and the
	// event log, silenced events included (nil: nothing outlives the process
	// and History answers ErrNoHistory).
	Store Store
	// Targets reports whether a rule's target name is configured (nil: any is).
	Targets func(name string) bool
	// Clock is the wall clock (nil: time.Now). The evaluation loop waits on
	// timers, so the clock must advance with them (time.Now, or synctest's).
	Clock    func() time.Time
	Logger   *slog.Logger          // nil: slog.Default()
	Registry prometheus.Registerer // may be nil: no metrics registered
	// DashboardURL is the base of Event.URL ("" leaves URL empty).
	DashboardURL string
	// Label names a key for people ("443/tcp https", "AS4766 Korea
	// Telecom"), as the API does; nil: the key as written.
	Label func(d topn.Dim, k topn.Key) string
}

// Status is an alert pending or firing, or a baseline rule's key whose
// history is too short to judge (Reason says why; State is then empty).
type Status struct {
	Rule      string    `json:"rule"`
	Severity  string    `json:"severity"`
	Scope     string    `json:"scope,omitempty"`
	Dim       string    `json:"dim,omitempty"`
	Key       string    `json:"key,omitempty"`
	Metric    string    `json:"metric,omitempty"`
	State     State     `json:"state,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	At        time.Time `json:"at"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold,omitempty"`
	Baseline  float64   `json:"baseline,omitempty"`
	Bounded   bool      `json:"bounded,omitempty"`
	Silenced  bool      `json:"silenced,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	// URL is the dashboard view of the key; Summary one line for people.
	URL     string `json:"url,omitempty"`
	Summary string `json:"summary,omitempty"`
}

// maxCatchUp bounds how many minutes the loop evaluates after a stall (a
// suspended host): older minutes would page about the past.
const maxCatchUp = 60

// Evaluator evaluates the rules each minute on closed minutes.
type Evaluator struct {
	cfg    Configuration
	deps   Dependencies
	logger *slog.Logger

	writeMu sync.Mutex                     // one change of the rules at a time (ruleset.go)
	evalMu  sync.Mutex                     // one evaluation at a time
	mu      sync.Mutex                     // the fields below
	file    []Rule                         // the configuration file's rules
	api     []Rule                         // the API's rules
	rules   []Rule                         // file then api: the rules in force
	alerts  map[string]map[topn.Key]*alert // by rule name, then key
	short   map[string][]Status            // by rule name: keys whose history is too short
	sil     map[string]Silence
	silN    int

	baseHour  time.Time
	baseCache map[baselineKey]baseline
	memo      memo // one evaluation's reads, shared by its rules (memo.go); evalMu

	logged map[string]time.Time // rule name → last error logged

	lastEval  time.Time // the last closed minute evaluated (evalMu)
	lastPrune time.Time // the event log's last pruning (the loop's)

	evaluations, evalErrors, notifications prometheus.Counter
	evalSeconds                            prometheus.Gauge
	firing                                 map[string]prometheus.Gauge

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// alert is one rule and key's state: pending or firing.
type alert struct {
	state         State
	since         time.Time   // first true minute
	lastAt        time.Time   // last minute evaluated
	trueN, falseN int         // consecutive minutes
	lastSent      time.Time   // last firing or repeat notified
	notified      bool        // the firing was notified
	early         bool        // fired on its open minute's rate so far
	silencedNoted bool        // History has the silenced event of this silence
	obs           observation // last known figures
}

// observation is a rule's figures for one key at one minute.
type observation struct {
	key       topn.Key
	cond      tri
	value     float64 // lower bound
	err       float64 // value+err bounds the true rate
	threshold float64
	baseline  float64
	short     string // baseline history too short: the reason
}

type tri int8

const (
	unknown tri = iota
	isFalse
	isTrue
)

// New validates the configuration; it reads nothing and starts nothing.
func New(cfg Configuration, deps Dependencies) (*Evaluator, error) {
	if deps.Source == nil {
		return nil, errors.New("alerts: no source")
	}
	if cfg.Grace < 0 {
		return nil, fmt.Errorf("alerts: grace: %s is negative", cfg.Grace)
	}
	if cfg.EarlyEvery < time.Second {
		return nil, fmt.Errorf("alerts: early_every: %s is under a second", cfg.EarlyEvery)
	}
	if cfg.TopN <= 0 {
		return nil, fmt.Errorf("alerts: top_n: %d must be positive", cfg.TopN)
	}
	if cfg.HistoryRetention < 0 {
		return nil, fmt.Errorf("alerts: history_retention: %s is negative", cfg.HistoryRetention)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Notify == nil {
		deps.Notify = func([]string, Event) {}
	}
	e := &Evaluator{
		cfg: cfg, deps: deps, logger: deps.Logger,
		alerts: map[string]map[topn.Key]*alert{}, short: map[string][]Status{},
		sil: map[string]Silence{}, baseCache: map[baselineKey]baseline{}, logged: map[string]time.Time{},
		firing: map[string]prometheus.Gauge{},
	}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	if err := e.install(cfg.Rules, nil, false, false); err != nil {
		return nil, err
	}
	e.evaluations = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_alerts_evaluations_total", Help: "Minutes evaluated against the alert rules."})
	e.evalErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_alerts_evaluation_errors_total", Help: "Rule evaluations that failed (the rule's state is kept)."})
	e.notifications = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_alerts_notifications_total", Help: "Events handed to notification."})
	e.evalSeconds = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tmsd_alerts_evaluation_seconds", Help: "Time the last closed minute's evaluation of every rule took."})
	firing := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tmsd_alerts_firing", Help: "Alerts firing, per severity."}, []string{"severity"})
	for _, s := range Severities {
		e.firing[s] = firing.WithLabelValues(s)
	}
	if deps.Registry != nil {
		for _, c := range []prometheus.Collector{e.evaluations, e.evalErrors, e.notifications, e.evalSeconds, firing} {
			if err := deps.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("alerts: metrics: %w", err)
			}
		}
	}
	return e, nil
}

// lastClosed is the last minute closed at now: minute m is closed once
// now ≥ m + 1m + Grace.
func (e *Evaluator) lastClosed(now time.Time) time.Time {
	return now.Add(-time.Minute - e.cfg.Grace).Truncate(time.Minute).UTC()
}

// Start restores what the store kept (the API's rules, silences, the
// alerts' states) and evaluates, each minute, every closed minute not yet
// evaluated: from the one after the last evaluated before a restart (up to
// maxCatchUp back), else from the last closed minute: older history is not
// replayed.
func (e *Evaluator) Start() error {
	if e.stop != nil {
		return errors.New("alerts: started twice")
	}
	last, err := e.restore()
	if err != nil {
		return err
	}
	next := e.lastClosed(e.deps.Clock())
	if !last.IsZero() {
		next = last.Add(time.Minute) // run bounds the catch-up to maxCatchUp
	}
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	go e.run(next)
	return nil
}

func (e *Evaluator) run(next time.Time) {
	defer close(e.done)
	for {
		last := e.lastClosed(e.deps.Clock())
		if last.Sub(next) >= maxCatchUp*time.Minute {
			next = last.Add(-(maxCatchUp - 1) * time.Minute)
		}
		for ; !next.After(last); next = next.Add(time.Minute) {
			select {
			case <-e.stop:
				return
			default:
			}
			_ = e.EvaluateMinute(next) // errors are counted and logged there
		}
		e.prune(e.deps.Clock())
		// next closes at next + 1m + Grace; wake then (at most a minute
		// on, in case the clock jumped), or for the next early look.
		wait := min(max(next.Add(time.Minute+e.cfg.Grace).Sub(e.deps.Clock()), 0), time.Minute)
		if e.hasEarly() {
			_ = e.EvaluateOpen(e.deps.Clock())
			wait = min(wait, e.cfg.EarlyEvery)
		}
		t := time.NewTimer(wait)
		select {
		case <-e.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Stop ends the loop and waits for it.
func (e *Evaluator) Stop() error {
	if e.stop == nil {
		return nil
	}
	e.stopOnce.Do(func() { close(e.stop) })
	<-e.done
	return nil
}

func sameRule(a, b *Rule) bool { return definition(a) == definition(b) }

// Rules returns the rules in force, their defaults filled.
func (e *Evaluator) Rules() []Rule {
	e.mu.Lock()
	defer e.mu.Unlock()
	return cloneRules(e.rules)
}

// cloneRules copies rules deep enough that Validate's defaults and a
// caller's later edits do not reach each other.
func cloneRules(rules []Rule) []Rule {
	out := slices.Clone(rules)
	for i := range out {
		out[i].Labels = maps.Clone(out[i].Labels)
		out[i].Targets = slices.Clone(out[i].Targets)
		if b := out[i].Baseline; b != nil {
			c := *b
			out[i].Baseline = &c
		}
	}
	return out
}

// Alerts returns the alerts pending and firing, and the baseline rules'
// keys whose history is too short, by rule then key.
func (e *Evaluator) Alerts() []Status {
	now := e.deps.Clock()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Status
	for i := range e.rules {
		r := &e.rules[i]
		for k, a := range e.alerts[r.Name] {
			s := e.status(r, k, a.obs)
			s.State, s.Since, s.At = a.state, a.since, a.lastAt
			ev := e.event(r, a, KindFiring, k, a.lastAt)
			s.URL, s.Summary = ev.URL, ev.Summary
			s.Silenced = e.silencedLocked(r, k, now)
			out = append(out, s)
		}
		out = append(out, e.short[r.Name]...)
	}
	slices.SortStableFunc(out, func(a, b Status) int {
		return strings.Compare(a.Rule+"\x00"+a.Key, b.Rule+"\x00"+b.Key)
	})
	return out
}

func (e *Evaluator) status(r *Rule, k topn.Key, o observation) Status {
	return Status{Rule: r.Name, Severity: r.Severity, Scope: r.Scope, Dim: r.Dim, Key: r.keyString(k), Metric: r.p.unit,
		Value: o.value, Threshold: o.threshold, Baseline: o.baseline, Bounded: o.err > 0}
}

// keyString is the key as events and silences write it.
func (r *Rule) keyString(k topn.Key) string {
	if r.p.dim == 0 {
		return ""
	}
	return r.p.dim.Format(k)
}

// EvaluateMinute evaluates every rule on minute m (its start), which should
// be closed. A rule that fails keeps its state; the errors are returned joined.
func (e *Evaluator) EvaluateMinute(m time.Time) error {
	m = m.Truncate(time.Minute).UTC()
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	began := time.Now() // the process's clock: how long it took, whatever deps.Clock says
	e.mu.Lock()
	rules := e.rules
	e.mu.Unlock()

	var errs []error
	var events []sent
	for i := range rules {
		r := &rules[i]
		obs, err := e.observe(r, m, m.Add(time.Minute), true)
		if err != nil {
			e.evalErrors.Inc()
			e.logError(r.Name, m, err)
			errs = append(errs, fmt.Errorf("alerts: rule %q at %s: %w", r.Name, m.Format(time.RFC3339), err))
			continue
		}
		e.mu.Lock()
		events = append(events, e.apply(r, m, obs)...)
		e.mu.Unlock()
	}
	e.evaluations.Inc()
	e.evalSeconds.Set(time.Since(began).Seconds())
	e.updateFiring()
	e.send(m, events)
	if m.After(e.lastEval) {
		e.lastEval = m
	}
	e.saveState(e.lastEval)
	return errors.Join(errs...)
}

// send hands the events to Notify (unless silenced) and the event log.
func (e *Evaluator) send(m time.Time, events []sent) {
	for _, s := range events {
		if s.notify {
			e.notifications.Inc()
			e.deps.Notify(s.targets, s.ev)
		}
		if err := e.record(&s.ev); err != nil {
			e.logError("history", m, fmt.Errorf("logging an alert event: %w", err))
		}
	}
}

// logError logs a rule's failure at most every ten minutes: a store down
// would otherwise log every rule every minute.
func (e *Evaluator) logError(name string, m time.Time, err error) {
	e.mu.Lock()
	last, ok := e.logged[name]
	now := e.deps.Clock()
	if ok && now.Sub(last) < 10*time.Minute {
		e.mu.Unlock()
		return
	}
	e.logged[name] = now
	e.mu.Unlock()
	e.logger.Warn("alert rule evaluation failed (logged at most every 10 minutes)", "rule", name, "minute", m, "err", err)
}

func (e *Evaluator) updateFiring() {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := map[string]int{}
	for i := range e.rules {
		for _, a := range e.alerts[e.rules[i].Name] {
			if a.state == StateFiring {
				n[e.rules[i].Severity]++
			}
		}
	}
	for s, g := range e.firing {
		g.Set(float64(n[s]))
	}
}

// observe reads the rule's figures for minute m: one observation for a
// total or a key, one per row of the minute's top N for an any-key rule,
// plus one for each key it tracks that the top N no longer lists.
func (e *Evaluator) observe(r *Rule, m, to time.Time, tracked bool) ([]observation, error) {
	d := to.Sub(m)
	e.memo.begin(r, m, to)
	var obs []observation
	switch {
	case r.p.dim == 0 || !r.p.anyKey:
		var key *topn.Key
		if r.p.dim != 0 {
			key = &r.p.key
		}
		v, er, err := e.memo.point(e.deps.Source, r.p.scope, m, to, time.Minute, r.p.dim, key)
		if err != nil {
			return nil, err
		}
		obs = append(obs, observation{key: r.p.key, value: rate(v, r.p.metric, d), err: rate(er, r.p.metric, d)})
	default:
		t, err := e.memo.top(e.deps.Source, r.p.scope, r.p.dim, m, to, e.cfg.TopN, r.p.metric)
		if err != nil {
			return nil, err
		}
		seen := map[topn.Key]bool{}
		for _, en := range t.Entries {
			seen[en.Key] = true
			obs = append(obs, observation{key: en.Key, value: rate(en.Value, r.p.metric, d), err: rate(en.Error, r.p.metric, d)})
		}
		// A tracked key the top N does not list had at most the table's
		// threshold or, when the N rows cut it, as much as the last row.
		bound := rate(t.Threshold, r.p.metric, d)
		if n := len(t.Entries); n >= e.cfg.TopN {
			last := t.Entries[n-1]
			bound = max(bound, rate(last.Value, r.p.metric, d)+rate(last.Error, r.p.metric, d))
		}
		if !tracked {
			break
		}
		e.mu.Lock()
		for k := range e.alerts[r.Name] {
			if !seen[k] {
				obs = append(obs, observation{key: k, err: bound})
			}
		}
		e.mu.Unlock()
	}
	for i := range obs {
		if err := e.judge(r, m, &obs[i]); err != nil {
			return nil, err
		}
	}
	return obs, nil
}

// judge sets an observation's condition. The true rate lies in
// [value, value+err]: the condition is true or false when it is so over the
// whole interval, unknown otherwise (the alert keeps its state).
func (e *Evaluator) judge(r *Rule, m time.Time, o *observation) error {
	lo, hi := o.value, o.value+o.err
	if r.Baseline == nil {
		o.threshold = r.p.threshold
		o.cond = decide(r.p.op, lo, hi, o.threshold)
		return nil
	}
	if hi < r.p.minVolume {
		o.cond = isFalse // quiet: no history read
		return nil
	}
	var key *topn.Key
	if r.p.dim != 0 {
		key = &o.key
	}
	b, err := e.baseline(r, key, m)
	if err != nil {
		return err
	}
	if b.samples < r.Baseline.MinWeeks {
		o.short = fmt.Sprintf("history too short: %d of %d weeks", b.samples, r.Baseline.Weeks)
		o.cond = isFalse
		return nil
	}
	o.baseline, o.threshold = b.median, b.threshold(r.Baseline)
	o.cond = decide(">", lo, hi, o.threshold)
	if o.cond == isTrue && lo < r.p.minVolume {
		o.cond = unknown
	}
	return nil
}

func decide(op string, lo, hi, t float64) tri {
	test := func(v float64) bool {
		switch op {
		case ">=":
			return v >= t
		case "<":
			return v < t
		case "<=":
			return v <= t
		}
		return v > t
	}
	sure, maybe := lo, hi // what holds for the lowest rate decides above
	if op[0] == '<' {
		sure, maybe = hi, lo
	}
	switch {
	case test(sure):
		return isTrue
	case !test(maybe):
		return isFalse
	}
	return unknown
}

// sent is an event and whether it goes to the targets (not when silenced).
type sent struct {
	ev      Event
	targets []string
	notify  bool
}

// apply steps the rule's alerts with minute m's observations (e.mu held).
func (e *Evaluator) apply(r *Rule, m time.Time, obs []observation) []sent {
	states := e.alerts[r.Name]
	if states == nil {
		states = map[topn.Key]*alert{}
		e.alerts[r.Name] = states
	}
	var short []Status
	var out []sent
	emit := func(a *alert, k Kind, key topn.Key, notify bool) {
		out = append(out, sent{ev: e.event(r, a, k, key, m), targets: r.Targets, notify: notify})
	}
	for _, o := range obs {
		if o.short != "" {
			s := e.status(r, o.key, o)
			s.At, s.Reason = m, o.short
			short = append(short, s)
		}
		a := states[o.key]
		if a != nil && m.Before(a.since) {
			// A closed minute before an early alert's open one: not its business.
			continue
		}
		if a == nil {
			if o.cond != isTrue {
				continue
			}
			a = &alert{state: StatePending, since: m}
			states[o.key] = a
		}
		a.lastAt = m
		if o.cond != unknown {
			a.obs = o
		}
		silenced := e.silencedLocked(r, o.key, m)
		switch o.cond {
		case isTrue:
			a.falseN = 0
			if a.state == StatePending {
				if a.trueN++; a.trueN >= r.p.forN {
					a.state = StateFiring
				}
			}
		case isFalse:
			if a.state == StatePending {
				delete(states, o.key) // not held for long enough: nothing happened
				continue
			}
			if a.falseN++; a.falseN >= r.p.resolveN {
				if a.notified && !silenced {
					emit(a, KindResolved, o.key, true)
				}
				delete(states, o.key)
				continue
			}
		}
		if a.state != StateFiring {
			continue
		}
		switch {
		case silenced:
			if !a.silencedNoted {
				a.silencedNoted = true
				emit(a, KindSilenced, o.key, false)
			}
		case !a.notified:
			a.silencedNoted = false
			a.notified, a.lastSent = true, m
			emit(a, KindFiring, o.key, true)
		case r.p.repeat > 0 && o.cond == isTrue && m.Sub(a.lastSent) >= r.p.repeat:
			// Only on a minute over the threshold: a repeat while it is
			// resolving would say "still firing" with a value below it.
			a.silencedNoted = false
			a.lastSent = m
			emit(a, KindRepeat, o.key, true)
		default:
			a.silencedNoted = false
		}
	}
	e.short[r.Name] = short
	return out
}

// event builds the event of an alert's transition at minute m.
func (e *Evaluator) event(r *Rule, a *alert, k Kind, key topn.Key, m time.Time) Event {
	o := a.obs
	ev := Event{
		Kind: k, Rule: r.Name, Severity: r.Severity, Labels: maps.Clone(r.Labels), Scope: r.Scope,
		Dim: r.Dim, Key: r.keyString(key), Metric: r.p.unit,
		Value: o.value, Threshold: o.threshold, Baseline: o.baseline,
		Bounded: o.err > 0, Error: o.err, Since: a.since, At: m,
	}
	ev.Label = ev.Key
	if e.deps.Label != nil && r.p.dim != 0 {
		ev.Label = e.deps.Label(r.p.dim, key)
	}
	if k == KindResolved {
		// The condition stopped holding at the first of the false minutes.
		ev.EndsAt = m.Add(-time.Duration(a.falseN-1) * time.Minute)
	}
	ev.URL = e.url(r, ev)
	ev.Summary = summary(r, ev)
	if a.early && k == KindFiring {
		ev.Summary += " (early warning: the open minute's rate so far)"
	}
	return ev
}

func summary(r *Rule, ev Event) string {
	var b strings.Builder
	what := "total"
	if ev.Dim != "" {
		what = ev.Dim + " " + cmp.Or(ev.Label, ev.Key)
	}
	b.WriteString(r.Name + ": " + what)
	if r.Scope != "" {
		b.WriteString(" in " + r.Scope)
	}
	b.WriteString(" at ")
	if ev.Bounded {
		b.WriteString("≥ ")
	}
	b.WriteString(FormatRate(ev.Value, ev.Metric))
	if ev.Bounded {
		b.WriteString(" (≤ " + FormatRate(ev.Value+ev.Error, ev.Metric) + ")")
	}
	op := r.Op
	if r.Baseline != nil {
		op = ">"
	}
	b.WriteString(" " + op + " " + FormatRate(ev.Threshold, ev.Metric))
	if r.Baseline != nil {
		b.WriteString(" (baseline " + FormatRate(ev.Baseline, ev.Metric) + ")")
	}
	switch ev.Kind {
	case KindResolved:
		b.WriteString(", resolved after " + ev.EndsAt.Sub(ev.Since).String())
	default:
		b.WriteString(" since " + ev.Since.Format("15:04") + " UTC")
	}
	if ev.Kind == KindSilenced {
		b.WriteString(" (silenced)")
	}
	return b.String()
}

// url is the dashboard view of the key (or the scope's top, for a total)
// from an hour before the alert began to an hour after the minute.
func (e *Evaluator) url(r *Rule, ev Event) string {
	if e.deps.DashboardURL == "" {
		return ""
	}
	q := url.Values{}
	q.Set("from", ev.Since.Add(-time.Hour).Format(time.RFC3339))
	q.Set("to", ev.At.Add(time.Hour).Format(time.RFC3339))
	if sq, err := url.ParseQuery(r.Scope); err == nil {
		for k, v := range sq {
			q[k] = v
		}
	}
	view := "/#/top?"
	if ev.Dim != "" {
		q.Set("by", ev.Dim)
		if ev.Key != "" {
			q.Set("key", ev.Key)
			view = "/#/key?"
		}
	}
	return strings.TrimRight(e.deps.DashboardURL, "/") + view + q.Encode()
}

// minEarly is how much of the open minute must have passed before its rate
// so far means anything.
const minEarly = 10 * time.Second

func (e *Evaluator) hasEarly() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.rules {
		if e.rules[i].EarlyWarning {
			return true
		}
	}
	return false
}

// EvaluateOpen gives the rules with early_warning a look at the open minute
// (the one holding now) at its rate so far: a key already over the
// threshold fires now, At its open minute, rather than once the minute is
// closed. Validation keeps early warnings to rules with for 0 and a > or >=
// operator (or a baseline): the rate so far of a minute still arriving
// understates it, so it can only be late to cross upwards, never wrong. The
// closed minute then counts as for any alert: true keeps it firing, false
// starts its resolution. Nothing else changes state here.
func (e *Evaluator) EvaluateOpen(now time.Time) error {
	m := now.Truncate(time.Minute).UTC()
	if now.Sub(m) < minEarly {
		return nil
	}
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	e.mu.Lock()
	rules := e.rules
	e.mu.Unlock()
	var errs []error
	var events []sent
	for i := range rules {
		r := &rules[i]
		if !r.EarlyWarning {
			continue
		}
		obs, err := e.observe(r, m, now, false)
		if err != nil {
			e.evalErrors.Inc()
			e.logError(r.Name, m, err)
			errs = append(errs, fmt.Errorf("alerts: rule %q early at %s: %w", r.Name, now.Format(time.RFC3339), err))
			continue
		}
		e.mu.Lock()
		states := e.alerts[r.Name]
		if states == nil {
			states = map[topn.Key]*alert{}
			e.alerts[r.Name] = states
		}
		for _, o := range obs {
			if o.cond != isTrue || states[o.key] != nil {
				continue
			}
			a := &alert{state: StateFiring, since: m, lastAt: m, obs: o, early: true}
			states[o.key] = a
			if e.silencedLocked(r, o.key, m) {
				a.silencedNoted = true
				events = append(events, sent{ev: e.event(r, a, KindSilenced, o.key, m), targets: r.Targets})
				continue
			}
			a.notified, a.lastSent = true, m
			events = append(events, sent{ev: e.event(r, a, KindFiring, o.key, m), targets: r.Targets, notify: true})
		}
		e.mu.Unlock()
	}
	e.updateFiring()
	e.send(m, events)
	if len(events) > 0 {
		e.saveState(e.lastEval)
	}
	return errors.Join(errs...)
}
