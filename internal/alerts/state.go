package alerts

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tmsd/tmsd/internal/topn"
)

// What outlives a restart, kept in the store: the rules the API wrote, the
// silences, the alerts' states with the last minute evaluated (so a firing
// alert stays firing and is not notified again, and the minutes missed are
// evaluated once), and the event log. States are written after each
// minute's notifications are queued: a crash between the two repeats a
// notification rather than losing it.

// Store is where the evaluator keeps what outlives a restart: *store.Store.
type Store interface {
	PutMeta(name string, value []byte) error
	GetMeta(name string) ([]byte, bool, error)
	PutEvent(at time.Time, value []byte) error
	Events(from, to time.Time, fn func(at time.Time, value []byte) error) error
	DeleteEventsBefore(t time.Time) (int, error)
}

// Metadata names in the store.
const (
	metaRules    = "alerts/rules"
	metaSilences = "alerts/silences"
	metaState    = "alerts/state"
)

// stateVersion is the version of the saved state's format: another one is
// ignored (the alerts start afresh) rather than misread.
const stateVersion = 1

type savedState struct {
	Version int                  `json:"version"`
	Last    time.Time            `json:"last"` // the last minute evaluated
	Rules   map[string]savedRule `json:"rules"`
}

type savedRule struct {
	// Def is the rule's definition: a rule changed while tmsd was down
	// starts afresh, as SetRules does.
	Def    string       `json:"def"`
	Alerts []savedAlert `json:"alerts"`
}

type savedAlert struct {
	Key           string    `json:"key"` // hex of topn.Key
	State         State     `json:"state"`
	Since         time.Time `json:"since"`
	LastAt        time.Time `json:"last_at"`
	TrueN         int       `json:"true_n"`
	FalseN        int       `json:"false_n"`
	LastSent      time.Time `json:"last_sent,omitzero"`
	Notified      bool      `json:"notified,omitempty"`
	Early         bool      `json:"early,omitempty"`
	SilencedNoted bool      `json:"silenced_noted,omitempty"`
	Value         float64   `json:"value"`
	Err           float64   `json:"err,omitempty"`
	Threshold     float64   `json:"threshold,omitempty"`
	Baseline      float64   `json:"baseline,omitempty"`
}

type savedSilences struct {
	Next     int       `json:"next"`
	Silences []Silence `json:"silences"`
}

// definition is a rule as sameRule compares it.
func definition(r *Rule) string {
	x := *r
	x.p, x.Origin = parsed{}, ""
	b, _ := json.Marshal(x) // a Rule always marshals
	return string(b)
}

// saveState writes the alerts' states after minute last (e.mu not held).
func (e *Evaluator) saveState(last time.Time) {
	if e.deps.Store == nil {
		return
	}
	e.mu.Lock()
	st := savedState{Version: stateVersion, Last: last, Rules: map[string]savedRule{}}
	for i := range e.rules {
		r := &e.rules[i]
		as := e.alerts[r.Name]
		if len(as) == 0 {
			continue
		}
		sr := savedRule{Def: definition(r), Alerts: make([]savedAlert, 0, len(as))}
		for k, a := range as {
			sr.Alerts = append(sr.Alerts, savedAlert{
				Key: hex.EncodeToString(k[:]), State: a.state, Since: a.since, LastAt: a.lastAt,
				TrueN: a.trueN, FalseN: a.falseN, LastSent: a.lastSent, Notified: a.notified,
				Early: a.early, SilencedNoted: a.silencedNoted,
				Value: a.obs.value, Err: a.obs.err, Threshold: a.obs.threshold, Baseline: a.obs.baseline,
			})
		}
		st.Rules[r.Name] = sr
	}
	e.mu.Unlock()
	b, err := json.Marshal(st)
	if err == nil {
		err = e.deps.Store.PutMeta(metaState, b)
	}
	if err != nil {
		e.logError("state", last, fmt.Errorf("saving the alerts' states: %w", err))
	}
}

// restore reads what the store kept (Start): the API's rules, the silences
// and the alerts' states. It returns the last minute evaluated (zero: none
// saved). A rule of the API that the file now defines too is dropped, with
// a warning: the file wins.
func (e *Evaluator) restore() (time.Time, error) {
	if e.deps.Store == nil {
		return time.Time{}, nil
	}
	var api []Rule
	if b, ok, err := e.deps.Store.GetMeta(metaRules); err != nil {
		return time.Time{}, fmt.Errorf("alerts: reading the API's rules: %w", err)
	} else if ok {
		if err := json.Unmarshal(b, &api); err != nil {
			return time.Time{}, fmt.Errorf("alerts: reading the API's rules: %w", err)
		}
	}
	e.mu.Lock()
	file := e.file
	e.mu.Unlock()
	kept := api[:0]
	for _, r := range api {
		if findRule(file, r.Name) >= 0 {
			e.logger.Warn("an alert rule written through the API is now in the configuration file: the file's is in force", "rule", r.Name)
			continue
		}
		if err := r.Validate(); err != nil {
			e.logger.Warn("an alert rule written through the API no longer validates: dropped", "rule", r.Name, "err", err)
			continue
		}
		kept = append(kept, r)
	}
	if err := e.install(file, kept, false, false); err != nil {
		return time.Time{}, err
	}

	if b, ok, err := e.deps.Store.GetMeta(metaSilences); err != nil {
		return time.Time{}, fmt.Errorf("alerts: reading the silences: %w", err)
	} else if ok {
		var ss savedSilences
		if err := json.Unmarshal(b, &ss); err != nil {
			return time.Time{}, fmt.Errorf("alerts: reading the silences: %w", err)
		}
		e.mu.Lock()
		e.silN = ss.Next
		for _, s := range ss.Silences {
			e.sil[s.ID] = s
		}
		e.mu.Unlock()
	}

	b, ok, err := e.deps.Store.GetMeta(metaState)
	if err != nil {
		return time.Time{}, fmt.Errorf("alerts: reading the alerts' states: %w", err)
	}
	if !ok {
		return time.Time{}, nil
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil || st.Version != stateVersion {
		e.logger.Warn("the saved alert states are unreadable: the alerts start afresh", "err", err, "version", st.Version)
		return time.Time{}, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.rules {
		r := &e.rules[i]
		sr, ok := st.Rules[r.Name]
		if !ok || sr.Def != definition(r) {
			continue
		}
		as := map[topn.Key]*alert{}
		for _, sa := range sr.Alerts {
			var k topn.Key
			if n, err := hex.Decode(k[:], []byte(sa.Key)); err != nil || n != len(k) {
				continue
			}
			as[k] = &alert{
				state: sa.State, since: sa.Since, lastAt: sa.LastAt, trueN: sa.TrueN, falseN: sa.FalseN,
				lastSent: sa.LastSent, notified: sa.Notified, early: sa.Early, silencedNoted: sa.SilencedNoted,
				obs: observation{key: k, cond: isTrue, value: sa.Value, err: sa.Err, threshold: sa.Threshold, baseline: sa.Baseline},
			}
		}
		e.alerts[r.Name] = as
	}
	return st.Last, nil
}

// saveRulesLocked writes the API's rules (evalMu held).
func (e *Evaluator) saveRules(api []Rule) error {
	if e.deps.Store == nil {
		return nil
	}
	out := cloneRules(api)
	for i := range out {
		out[i].Origin = ""
	}
	b, err := json.Marshal(out)
	if err == nil {
		err = e.deps.Store.PutMeta(metaRules, b)
	}
	if err != nil {
		return fmt.Errorf("alerts: saving the API's rules: %w", err)
	}
	return nil
}

// saveSilencesLocked writes the silences (e.mu held).
func (e *Evaluator) saveSilencesLocked() error {
	if e.deps.Store == nil {
		return nil
	}
	ss := savedSilences{Next: e.silN, Silences: make([]Silence, 0, len(e.sil))}
	for _, s := range e.sil {
		ss.Silences = append(ss.Silences, s)
	}
	b, err := json.Marshal(ss)
	if err == nil {
		err = e.deps.Store.PutMeta(metaSilences, b)
	}
	if err != nil {
		return fmt.Errorf("alerts: saving the silences: %w", err)
	}
	return nil
}

// record appends an event to the log.
func (e *Evaluator) record(ev *Event) error {
	if e.deps.Store == nil {
		return nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return e.deps.Store.PutEvent(ev.At, b)
}

// pruneEvery is how often the event log is cut to its retention.
const pruneEvery = time.Hour

// prune drops the events older than the history's retention, at most once
// every pruneEvery (the evaluation loop calls it each minute).
func (e *Evaluator) prune(now time.Time) {
	if e.deps.Store == nil || e.cfg.HistoryRetention <= 0 || now.Sub(e.lastPrune) < pruneEvery {
		return
	}
	e.lastPrune = now
	if _, err := e.deps.Store.DeleteEventsBefore(now.Add(-e.cfg.HistoryRetention)); err != nil {
		e.logError("history", now, fmt.Errorf("pruning the alert history: %w", err))
	}
}

// ErrNoHistory is a history query of an evaluator that keeps none.
var ErrNoHistory = errors.New("alerts: no store: no history is kept")

// HistoryQuery selects events of the log.
type HistoryQuery struct {
	From, To time.Time // events whose minute At is in [From, To)
	Kind     Kind      // "": every kind
	Rule     string    // "": every rule
	Limit    int       // at most this many, the most recent (0: all)
}

// History returns the logged events the query selects, oldest first, and
// whether Limit cut older ones.
func (e *Evaluator) History(q HistoryQuery) ([]Event, bool, error) {
	if e.deps.Store == nil {
		return nil, false, ErrNoHistory
	}
	var out []Event
	cut := false
	err := e.deps.Store.Events(q.From, q.To, func(_ time.Time, v []byte) error {
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return fmt.Errorf("alerts: a logged event is unreadable: %w", err)
		}
		if (q.Kind != "" && ev.Kind != q.Kind) || (q.Rule != "" && ev.Rule != q.Rule) {
			return nil
		}
		out = append(out, ev)
		if q.Limit > 0 && len(out) >= 2*q.Limit {
			// Keep memory bounded over a long range: drop the oldest half-window.
			out = append(out[:0], out[len(out)-q.Limit:]...)
			cut = true
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
		cut = true
	}
	return out, cut, nil
}
