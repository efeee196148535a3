// Package alerts owns alerting: rules (thresholds and baselines on any TopN
// key, or any key of a dimension), their evaluation each minute on closed
// minutes with pending → firing → resolved states, silences, and the events
// they emit, which internal/alerts/notify delivers (docs/ALERTS.md).
package alerts

import "time"

// State is where an alert of one rule and key stands.
type State string

// States. An alert is pending while its condition holds for less than the
// rule's duration, firing once it has held that long, and resolved once the
// condition has been false for the rule's resolve duration.
const (
	StatePending  State = "pending"
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Kind is what an event says happened.
type Kind string

// Event kinds: one notification per state change, repeats while firing.
const (
	KindFiring   Kind = "firing"
	KindResolved Kind = "resolved"
	KindRepeat   Kind = "repeat"   // still firing, after the rule's repeat interval
	KindSilenced Kind = "silenced" // a silence began covering a firing alert
)

// Event is one notification's content: everything a target shows, in the
// fields of the generic JSON webhook (docs/ALERTS.md documents the schema).
type Event struct {
	Kind     Kind              `json:"kind"`
	Rule     string            `json:"rule"`
	Severity string            `json:"severity,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Scope is the rule's scope as the API writes it ("" for the whole
	// network, "exporter=192.0.2.1", "if=192.0.2.1:3&dir=in", "proto=udp").
	Scope string `json:"scope,omitempty"`
	// Dim and Key name the key (Key "" for a rule on the scope's total);
	// Label is its name as the API labels it ("443/tcp https", "AS4766 Korea Telecom").
	Dim   string `json:"dim,omitempty"`
	Key   string `json:"key,omitempty"`
	Label string `json:"label,omitempty"`
	// Metric is bps, pps or flows/s; Value the minute's rate that decided
	// the event; Threshold the rule's threshold, or for a baseline rule the
	// baseline times its ratio (Baseline the baseline itself).
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Baseline  float64 `json:"baseline,omitempty"`
	// Bounded: the key's row had an error bound (an any-key rule over a
	// minute's top-K): Value is a lower bound, the true rate at most
	// Value + Error.
	Bounded bool    `json:"bounded,omitempty"`
	Error   float64 `json:"error,omitempty"`
	// Since is when the alert began (its first minute over the threshold);
	// At the minute evaluated (its start); EndsAt, for a resolved event,
	// when it resolved.
	Since  time.Time `json:"since"`
	At     time.Time `json:"at"`
	EndsAt time.Time `json:"ends_at,omitzero"`
	// URL is the dashboard view of the key over the alert's range.
	URL string `json:"url,omitempty"`
	// Summary is one line for people: "https on seoul-bb1 xe-0/0/1 in at 8.4 Gbps > 8 Gbps for 5m".
	Summary string `json:"summary"`
}

// Fingerprint identifies the alert an event is about: its rule and key, so a
// receiver groups an alert's firing, repeats and resolution.
func (e *Event) Fingerprint() string {
	return e.Rule + "\x00" + e.Scope + "\x00" + e.Dim + "\x00" + e.Key
}
