package query

import (
	"fmt"
	"time"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// Span is a range [From, To) of whole intervals.
type Span struct{ From, To time.Time }

// union is the smallest span holding s and o (the other one when one is zero).
func (s Span) union(o Span) Span {
	switch {
	case s.From.IsZero():
		return o
	case o.From.IsZero():
		return s
	}
	if o.From.Before(s.From) {
		s.From = o.From
	}
	if o.To.After(s.To) {
		s.To = o.To
	}
	return s
}

// within narrows a coarse tier's span s (intervals of d) to the finer span
// fine where its first or last interval holds fine's edge: that interval's
// traffic is (at least) the finer one's, and the day tier's first day must
// not move the data's start to midnight when its minutes begin at 19:47.
func (s Span) within(d time.Duration, fine Span) Span {
	if fine.From.IsZero() {
		return s
	}
	if !s.From.After(fine.From) && s.From.Add(d).After(fine.From) {
		s.From = fine.From
	}
	if !s.To.Before(fine.To) && s.To.Add(-d).Before(fine.To) {
		s.To = fine.To
	}
	return s
}

// DataBounds is where the data is: per stored tier, in the aggregator's open
// minutes, and overall. A tier or the open minutes without data are absent.
type DataBounds struct {
	Tiers map[store.Tier]Span
	Open  *Span
	// All holds every tier and the open minutes, each coarse tier's edge
	// narrowed to the finer tiers' where its interval holds theirs; zero
	// when nothing is stored or open.
	All Span
}

// Bounds tells where the data is, so that a client whose range is empty can
// say when there is traffic (an import of a capture from last week) and go
// there. A tier's span runs from the start of its first stored interval to
// the end of its last; the open minutes are read in the aggregator's view, as
// a query reads them, so a minute being written is counted once.
func (e *Engine) Bounds() (DataBounds, error) {
	b := DataBounds{Tiers: map[store.Tier]Span{}}
	for _, t := range store.Tiers {
		first, last, ok, err := e.store.Bounds(t)
		if err != nil {
			return DataBounds{}, fmt.Errorf("query bounds: %w", err)
		}
		if ok {
			b.Tiers[t] = Span{first.UTC(), last.Add(t.Duration()).UTC()}
		}
	}
	// Every open minute, whatever its time: an import's are hours or days old.
	err := e.open.View(func(v aggregate.View) error {
		var open Span
		for start := range v.Totals(topn.Scope{}, time.Unix(0, 0), time.Unix(1<<40, 0)) {
			open = open.union(Span{start.UTC(), start.Add(time.Minute).UTC()})
		}
		if !open.From.IsZero() {
			b.Open = &open
		}
		return nil
	})
	if err != nil {
		return DataBounds{}, err
	}
	if b.Open != nil {
		b.All = *b.Open
	}
	for _, t := range store.Tiers { // finest first
		if s, ok := b.Tiers[t]; ok {
			b.All = s.within(t.Duration(), b.All).union(b.All)
		}
	}
	return b, nil
}
