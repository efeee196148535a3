// Package query answers TopN and time-series questions over a time range by
// combining the stored minutes with the ones still open in the aggregator, under
// the aggregator's view lock so no minute is counted twice or missed.
package query

import (
	"fmt"
	"time"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// Store is the part of the store queries read.
type Store interface {
	Range(tier store.Tier, scope topn.Scope, dim topn.Dim, from, to time.Time, fn func(start time.Time, t *topn.Table) error) error
	Totals(tier store.Tier, scope topn.Scope, from, to time.Time, fn func(start time.Time, total topn.Counters) error) error
}

// Open is the part of the aggregator queries read.
type Open interface {
	View(fn func(v aggregate.View) error) error
}

// Engine answers queries.
type Engine struct {
	store Store
	open  Open
}

// New returns an engine reading st and the open minutes of open.
func New(st Store, open Open) *Engine { return &Engine{store: st, open: open} }

// Top returns the n largest keys by metric m of dimension d in scope sc,
// summed over the minutes in [from, to), with their error bounds, the exact
// total, and the threshold bounding any key not listed.
func (e *Engine) Top(sc topn.Scope, d topn.Dim, from, to time.Time, n int, m topn.Metric) (*topn.Table, error) {
	mg := topn.NewMerger(1 << 14)
	err := e.open.View(func(v aggregate.View) error {
		if err := e.store.Range(store.TierMinute, sc, d, from, to, func(_ time.Time, t *topn.Table) error {
			mg.Add(t)
			return nil
		}); err != nil {
			return fmt.Errorf("reading %s %s: %w", sc, d, err)
		}
		for _, t := range v.Tables(sc, d, from, to) {
			mg.Add(t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return mg.TopTable(n, m), nil
}

// Point is one step of a series: the traffic of [T, T+step).
type Point struct {
	T     time.Time
	Value topn.Counters
	// Error bounds the under-count of a key's series (0 for totals).
	Error topn.Counters
}

// Series returns the totals of scope sc (or, when key is set, of that key of
// dimension d) per step over [from, to). Steps are aligned to multiples of step
// since the epoch; steps with no traffic are present with zero values.
func (e *Engine) Series(sc topn.Scope, from, to time.Time, step time.Duration, d topn.Dim, key *topn.Key) ([]Point, error) {
	if step < time.Minute || step%time.Minute != 0 {
		return nil, fmt.Errorf("step must be a whole number of minutes")
	}
	first := from.Truncate(step)
	n := int((to.Sub(first) + step - 1) / step)
	points := make([]Point, n)
	for i := range points {
		points[i].T = first.Add(time.Duration(i) * step)
	}
	at := func(t time.Time) *Point {
		i := int(t.Sub(first) / step)
		if i < 0 || i >= n {
			return nil
		}
		return &points[i]
	}
	err := e.open.View(func(v aggregate.View) error {
		if key == nil {
			if err := e.store.Totals(store.TierMinute, sc, from, to, func(start time.Time, c topn.Counters) error {
				if p := at(start); p != nil {
					p.Value.Add(c)
				}
				return nil
			}); err != nil {
				return err
			}
			for start, c := range v.Totals(sc, from, to) {
				if p := at(start); p != nil {
					p.Value.Add(c)
				}
			}
			return nil
		}
		addKey := func(start time.Time, t *topn.Table) {
			p := at(start)
			if p == nil {
				return
			}
			if e, ok := t.Lookup(*key); ok {
				p.Value.Add(e.Value)
				p.Error.Add(e.Error)
			} else {
				p.Error.Add(t.Threshold)
			}
		}
		if err := e.store.Range(store.TierMinute, sc, d, from, to, func(start time.Time, t *topn.Table) error {
			addKey(start, t)
			return nil
		}); err != nil {
			return err
		}
		for start, t := range v.Tables(sc, d, from, to) {
			addKey(start, t)
		}
		return nil
	})
	return points, err
}
