package alerts

import (
	"fmt"
	"slices"
	"time"

	"github.com/tmsd/tmsd/internal/topn"
)

const week = 7 * 24 * time.Hour

// baseline is a key's history for one hour of the week.
type baseline struct {
	samples int // weeks with data
	median  float64
	mad     float64 // median absolute deviation from the median
}

// threshold is the rate above which the rule fires.
func (b baseline) threshold(cfg *Baseline) float64 {
	if cfg.Ratio != 0 {
		return b.median * cfg.Ratio
	}
	return b.median + cfg.Deviation*b.mad
}

type baselineKey struct {
	rule string
	key  topn.Key
}

// baseline reads the rule's key (key nil: the scope's total) over the same
// hour of the week as m in each of the last Weeks weeks, one hour point each
// (the hour tier serves it). A week whose hour has no traffic at all in the
// rule's scope is missing (nothing was collected, or it expired), not zero;
// a key absent while its scope had traffic is a sample of zero. The result is
// cached for m's hour: it only changes when the hour does.
func (e *Evaluator) baseline(r *Rule, key *topn.Key, m time.Time) (baseline, error) {
	hour := m.Truncate(time.Hour)
	if !hour.Equal(e.baseHour) {
		clear(e.baseCache)
		e.baseHour = hour
	}
	ck := baselineKey{rule: r.Name}
	if key != nil {
		ck.key = *key
	}
	if b, ok := e.baseCache[ck]; ok {
		return b, nil
	}
	var samples []float64
	for w := 1; w <= r.Baseline.Weeks; w++ {
		from := hour.Add(-time.Duration(w) * week)
		to := from.Add(time.Hour)
		// Through the memo: the rules of a scope share its totals and tables.
		v, _, err := e.memo.point(e.deps.Source, r.p.scope, from, to, time.Hour, 0, nil)
		if err != nil {
			return baseline{}, fmt.Errorf("baseline week -%d: %w", w, err)
		}
		if v.IsZero() {
			continue
		}
		if key != nil {
			if v, _, err = e.memo.point(e.deps.Source, r.p.scope, from, to, time.Hour, r.p.dim, key); err != nil {
				return baseline{}, fmt.Errorf("baseline week -%d: %w", w, err)
			}
		}
		samples = append(samples, rate(v, r.p.metric, time.Hour))
	}
	b := baseline{samples: len(samples)}
	if len(samples) > 0 {
		b.median = median(samples)
		dev := make([]float64, len(samples))
		for i, s := range samples {
			dev[i] = max(s-b.median, b.median-s)
		}
		b.mad = median(dev)
	}
	e.baseCache[ck] = b
	return b, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// rate is a metric's average rate over d: bits per second for bytes.
func rate(c topn.Counters, m topn.Metric, d time.Duration) float64 {
	v := float64(c.Get(m))
	if m == topn.Bytes {
		v *= 8
	}
	return v / d.Seconds()
}
