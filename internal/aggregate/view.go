package aggregate

import (
	"time"

	"github.com/tmsd/tmsd/internal/topn"
)

// View is what a query sees of the minutes not yet in the store: those still
// counting in the shards and those being written. It is valid only inside View's callback.
type View struct{ a *Aggregator }

// View runs fn while no flush can move a minute between memory and the store,
// so fn may read both and neither misses nor double-counts a minute.
func (a *Aggregator) View(fn func(v View) error) error {
	a.viewMu.RLock()
	defer a.viewMu.RUnlock()
	return fn(View{a})
}

// inStore reports whether the final write of cm has written scope sc: from
// then on the store answers for it, and memory must not.
func (cm *closingMinute) inStore(sc topn.Scope) bool {
	for i := range cm.ivs {
		if cm.ivs[i].Scope == sc {
			return cm.written[i]
		}
	}
	return false
}

// each calls fn, per source of in-memory minutes (final writes under way, pending, then each shard
// under its lock), with the partitions of scope sc of every minute in [from, to).
func (v View) each(sc topn.Scope, from, to time.Time, fn func(start int64, m *minuteAgg, parts []partRef)) {
	if v.a == nil { // the zero View: nothing open
		return
	}
	f, t := from.Unix(), to.Unix()
	gather := func(start int64, m *minuteAgg) {
		if start < f || start >= t {
			return
		}
		var parts []partRef
		for k, p := range m.parts {
			if k.in(sc) {
				parts = append(parts, partRef{k, p})
			}
		}
		if len(parts) > 0 {
			fn(start, m, parts)
		}
	}
	for _, cm := range v.a.finals {
		if cm.inStore(sc) {
			continue
		}
		for _, m := range cm.shards {
			gather(cm.start, m)
		}
	}
	for _, cm := range v.a.pending {
		for _, m := range cm.shards {
			gather(cm.start, m)
		}
	}
	for _, s := range v.a.shards {
		s.mu.Lock()
		for start, m := range s.minutes {
			gather(start, m)
		}
		s.mu.Unlock()
	}
}

// Tables returns, per open minute in [from, to), the in-memory table of
// dimension d in scope sc: every key, unless the open minutes hold more keys
// than a checkpoint may write (a quarter of the memory budget: a flood of
// distinct addresses), when each partition's table is read cut to its
// heaviest keys by bytes with bounds on the rest (tableCut). The shard's lock
// is held while they are read: merging every key of a flooded minute held it
// for seconds (the cardinality runs' top by srcip timed out) with the ring
// overflowing meanwhile. Cutting ordinary minutes instead would put bounds on
// keys a partition cannot hold (443/tcp in a UDP partition): e2e's exactness
// check failed on every format. A minute is exact again once closed.
func (v View) Tables(sc topn.Scope, d topn.Dim, from, to time.Time) map[time.Time]*topn.Table {
	mergers := map[int64]*topn.Merger{}
	limit := 0
	if v.a != nil { // the zero View: nothing open
		limit = v.a.liveCap()
	}
	v.each(sc, from, to, func(start int64, m *minuteAgg, parts []partRef) {
		mg := mergers[start]
		if mg == nil {
			mg = topn.NewMerger(64)
			mergers[start] = mg
		}
		if sc.IsDrillDown() {
			mg.Add(drillScopeTable(sc, m, parts, d))
			return
		}
		mg.Add(scopeMerger(parts, d, limit).Table())
	})
	out := make(map[time.Time]*topn.Table, len(mergers))
	for start, mg := range mergers {
		out[time.Unix(start, 0).UTC()] = mg.Table()
	}
	return out
}

// Totals returns, per open minute in [from, to), the exact totals of scope sc.
func (v View) Totals(sc topn.Scope, from, to time.Time) map[time.Time]topn.Counters {
	out := map[time.Time]topn.Counters{}
	v.each(sc, from, to, func(start int64, _ *minuteAgg, parts []partRef) {
		t := time.Unix(start, 0).UTC()
		c := out[t]
		if sc.IsDrillDown() {
			c.Add(drillTotal(sc, parts))
		} else {
			for _, p := range parts {
				c.Add(p.t.total)
			}
		}
		out[t] = c
	})
	return out
}

// liveCap is the keys a partition's table gives a query of the open minutes:
// all of them (0) unless the shards hold more keys than a checkpoint may
// write; then the checkpoint's cut, at least 2 × top_k.
func (a *Aggregator) liveCap() int {
	held, tables := 0, 0
	for _, s := range a.shards {
		s.mu.Lock()
		held += s.keys
		for _, m := range s.minutes {
			tables += len(m.parts) * len(countedDims)
		}
		s.mu.Unlock()
	}
	return a.checkpointCap(held, tables)
}
