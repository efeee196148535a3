package alerts

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tmsd/tmsd/internal/topn"
)

// ErrUnknownSilence is an Unsilence of an ID no silence has.
var ErrUnknownSilence = errors.New("unknown silence")

// SilenceError is a refused silence: the field at fault and why.
type SilenceError struct {
	Field string
	Err   error
}

func (e *SilenceError) Error() string { return "silence: " + e.Field + ": " + e.Err.Error() }
func (e *SilenceError) Unwrap() error { return e.Err }

// Silence mutes a rule's alerts (of one key, or all: Key "" or "*") until
// Until: their states still change, but nothing is notified; the event log
// gets one KindSilenced event per alert. A minute is silenced when it starts
// before Until. Silences are kept in the store: a restart keeps them.
type Silence struct {
	ID      string    `json:"id"`
	Rule    string    `json:"rule"`
	Key     string    `json:"key,omitempty"`
	Until   time.Time `json:"until"`
	Comment string    `json:"comment,omitempty"`
}

// Silence adds a silence, or replaces the one of the same ID, and returns it
// as kept. An empty ID is given the next free number.
func (e *Evaluator) Silence(s Silence) (Silence, error) {
	if s.Rule == "" {
		return Silence{}, &SilenceError{"rule", errors.New("missing")}
	}
	if !s.Until.After(e.deps.Clock()) {
		return Silence{}, &SilenceError{"until", fmt.Errorf("%s is not in the future", s.Until.Format(time.RFC3339))}
	}
	if s.Key == "*" {
		s.Key = ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.Key != "" {
		// Canonical, as the rule's events write the key, when the rule is known.
		for i := range e.rules {
			r := &e.rules[i]
			if r.Name != s.Rule || r.p.dim == 0 {
				continue
			}
			k, err := r.p.dim.ParseKey(s.Key)
			if err != nil {
				return Silence{}, &SilenceError{"key", err}
			}
			s.Key = r.p.dim.Format(k)
		}
	}
	if s.ID == "" {
		e.silN++
		s.ID = strconv.Itoa(e.silN)
		for e.sil[s.ID].ID != "" {
			e.silN++
			s.ID = strconv.Itoa(e.silN)
		}
	}
	old, had := e.sil[s.ID]
	e.sil[s.ID] = s
	if err := e.saveSilencesLocked(); err != nil {
		if had {
			e.sil[s.ID] = old
		} else {
			delete(e.sil, s.ID)
		}
		return Silence{}, err
	}
	return s, nil
}

// Silences returns the silences in force, by ID; expired ones are dropped.
func (e *Evaluator) Silences() []Silence {
	now := e.deps.Clock()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Silence, 0, len(e.sil))
	for id, s := range e.sil {
		if !s.Until.After(now) {
			delete(e.sil, id)
			continue
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Silence) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Unsilence removes a silence.
func (e *Evaluator) Unsilence(id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.sil[id]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSilence, id)
	}
	s := e.sil[id]
	delete(e.sil, id)
	if err := e.saveSilencesLocked(); err != nil {
		e.sil[id] = s
		return err
	}
	return nil
}

// silencedLocked reports whether a silence covers the rule's key at t (e.mu held).
func (e *Evaluator) silencedLocked(r *Rule, k topn.Key, t time.Time) bool {
	ks := r.keyString(k)
	for _, s := range e.sil {
		if s.Rule == r.Name && (s.Key == "" || s.Key == ks) && t.Before(s.Until) {
			return true
		}
	}
	return false
}
