package query

import (
	"fmt"
	"time"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// coverageResult says whether a drill-down scope's tables hold all of its
// key's traffic over a range.
type coverageResult struct {
	partial, uncertain bool
}

func (c coverageResult) apply(a *Answer) {
	a.Partial = c.partial
	a.Exact = a.Exact && !c.partial && !c.uncertain
}

// coverage checks a drill-down scope against its key's rows in the
// whole-network tables, per bucket (a step of a series, or the whole range):
// a drill-down's total is its key's row in the app or ip table of its
// minute, and the rollups sum both alike, so over any set of intervals the two
// are equal exactly when every interval kept the drill-down. Fewer in the
// drill-down means a minute did not keep one: the answer is partial. Where the
// global table itself bounds the key only (not listed, or with an error), the
// check cannot be exact, and neither is the answer.
func (e *Engine) coverage(p plan, sc topn.Scope, bucket func(time.Time) int, n int) (coverageResult, error) {
	d, k := topn.DimApp, sc.App
	if sc.Kind == topn.ScopeIP {
		d, k = topn.DimIP, topn.AddrKey(sc.IP)
	}
	drill := make([]topn.Counters, n)
	key := make([]topn.Counters, n)
	var res coverageResult
	err := e.open.View(func(v aggregate.View) error {
		for _, s := range p.segs {
			err := e.store.Totals(s.tier, sc, s.from, s.to, func(start time.Time, c topn.Counters) error {
				if i := bucket(start); i >= 0 {
					drill[i].Add(c)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("reading %s totals of %s: %w", s.tier, sc, err)
			}
			if s.tier == store.TierMinute {
				for start, c := range v.Totals(sc, s.from, s.to) {
					if i := bucket(start); i >= 0 {
						drill[i].Add(c)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	err = e.read(p, topn.Scope{}, d, func(_ int, start time.Time, t *topn.Table) {
		i := bucket(start)
		if i < 0 {
			return
		}
		if en, ok := t.Lookup(k); ok {
			key[i].Add(en.Value)
			res.uncertain = res.uncertain || !en.Error.IsZero()
		} else if !t.Threshold.IsZero() {
			res.uncertain = true
		}
	})
	if err != nil {
		return res, err
	}
	for i := range drill {
		if drill[i] != key[i] {
			res.partial = true
		}
	}
	return res, nil
}
