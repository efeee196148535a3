package query

import (
	"fmt"
	"math"
	"time"

	"github.com/tmsd/tmsd/internal/store"
)

// segment is a part of a query's range read from one tier.
type segment struct {
	tier     store.Tier
	from, to time.Time
}

// plan is how a range is read: segments in time order, and the range they cover.
type plan struct {
	segs     []segment
	from, to time.Time
}

// answer describes the plan for a result.
func (p plan) answer(exact bool) Answer {
	a := Answer{Exact: exact, From: p.from, To: p.to}
	for _, t := range store.Tiers {
		for _, s := range p.segs {
			if s.tier == t {
				a.Tiers = append(a.Tiers, t.String())
				break
			}
		}
	}
	return a
}

// intervals is how many intervals the plan reads (at most).
func (p plan) intervals() int {
	n := 0
	for _, s := range p.segs {
		n += s.intervals()
	}
	return n
}

// intervals is how many intervals of its tier the segment reads (at most).
func (s segment) intervals() int {
	d := s.tier.Duration()
	return int((s.to.Sub(s.from) + d - 1) / d)
}

// coarseFirst is the order the planner tries the tiers in.
var coarseFirst = []store.Tier{store.TierDay, store.TierHour, store.TierMinute}

// planner splits [from, to) over the tiers. A coarse tier (day, hour) serves
// the whole intervals of it that lie inside the range, that the step is a
// multiple of (so an interval never straddles two points of a series) and that
// are rolled up (below the tier's watermark: above it a coarse table may be
// missing or stale). The rest, the ragged edges and what is not rolled up yet,
// goes to the next finer tier, down to minutes.
//
// An edge the finer tier no longer has (it starts before the finer tier's first
// stored interval: expired or evicted) is read from the coarse interval holding
// it, when that one is rolled up and stored: the figures then cover a range
// wider than asked, which the plan reports, rather than silently missing the edge.
type planner struct {
	st    Store
	mark  [4]time.Time // by tier; zero: the tier is not used
	first [4]*time.Time
	err   error
	p     plan
}

// plan plans [from, to) for a step (0: no step, as for a top).
func (e *Engine) plan(from, to time.Time, step time.Duration) (plan, error) {
	pl := planner{st: e.store, p: plan{from: from, to: to}}
	if e.progress != nil {
		for _, t := range []store.Tier{store.TierHour, store.TierDay} {
			if step == 0 || step%t.Duration() == 0 {
				pl.mark[t] = e.progress.Rolled(t).Truncate(t.Duration())
			}
		}
	}
	pl.cover(0, from, to)
	return pl.p, pl.err
}

func (pl *planner) add(tier store.Tier, from, to time.Time) {
	if n := len(pl.p.segs); n > 0 && pl.p.segs[n-1].tier == tier && pl.p.segs[n-1].to.Equal(from) {
		pl.p.segs[n-1].to = to
		return
	}
	pl.p.segs = append(pl.p.segs, segment{tier, from, to})
}

// firstStored is the start of the tier's first stored interval (the far
// future when it has none: it lacks everything).
func (pl *planner) firstStored(tier store.Tier) time.Time {
	if pl.first[tier] == nil {
		first, _, ok, err := pl.st.Bounds(tier)
		if err != nil && pl.err == nil {
			pl.err = fmt.Errorf("query plan: %w", err)
		}
		if !ok {
			first = time.Unix(math.MaxInt32, 0)
		}
		pl.first[tier] = &first
	}
	return *pl.first[tier]
}

// cover covers [a, b) with coarseFirst[i] and finer tiers.
func (pl *planner) cover(i int, a, b time.Time) {
	if !a.Before(b) {
		return
	}
	tier := coarseFirst[i]
	if tier == store.TierMinute {
		pl.add(tier, a, b)
		return
	}
	mark := pl.mark[tier]
	if mark.IsZero() {
		pl.cover(i+1, a, b)
		return
	}
	d := tier.Duration()
	s := ceilTo(a, d)
	e := b.Truncate(d)
	if mark.Before(e) {
		e = mark
	}
	if !s.Before(e) {
		pl.edge(i, a, b)
		return
	}
	pl.edge(i, a, s)
	pl.add(tier, s, e)
	pl.edge(i, e, b)
}

// edge covers [a, b), which holds no whole rolled-up interval of
// coarseFirst[i], with the finer tiers, or with the one coarse interval holding
// it when the finer tier lacks part of it.
func (pl *planner) edge(i int, a, b time.Time) {
	if !a.Before(b) {
		return
	}
	tier := coarseFirst[i]
	d := tier.Duration()
	c := a.Truncate(d)
	within := !b.After(c.Add(d)) && !c.Add(d).After(pl.mark[tier])
	if within && pl.firstStored(coarseFirst[i+1]).After(a) && !pl.firstStored(tier).After(c) {
		pl.add(tier, c, c.Add(d))
		if c.Before(pl.p.from) {
			pl.p.from = c
		}
		if c.Add(d).After(pl.p.to) {
			pl.p.to = c.Add(d)
		}
		return
	}
	pl.cover(i+1, a, b)
}

// ceilTo rounds t up to a multiple of d.
func ceilTo(t time.Time, d time.Duration) time.Time {
	if f := t.Truncate(d); !f.Equal(t) {
		return f.Add(d)
	}
	return t
}
