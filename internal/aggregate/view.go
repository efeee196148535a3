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

// each calls fn for every in-memory part of scope sc with a minute start in [from, to).
func (v View) each(sc topn.Scope, from, to time.Time, fn func(start int64, st *scopeTables)) {
	f, t := from.Unix(), to.Unix()
	for _, cm := range v.a.pending {
		if cm.start >= f && cm.start < t {
			for _, m := range cm.shards {
				if st := m.scopes[sc]; st != nil {
					fn(cm.start, st)
				}
			}
		}
	}
	for _, s := range v.a.shards {
		s.mu.Lock()
		for start, m := range s.minutes {
			if start >= f && start < t {
				if st := m.scopes[sc]; st != nil {
					fn(start, st)
				}
			}
		}
		s.mu.Unlock()
	}
}

// Tables returns, per open minute in [from, to), the in-memory table of
// dimension d in scope sc, merged over the shards (not truncated).
func (v View) Tables(sc topn.Scope, d topn.Dim, from, to time.Time) map[time.Time]*topn.Table {
	mergers := map[int64]*topn.Merger{}
	v.each(sc, from, to, func(start int64, st *scopeTables) {
		mg := mergers[start]
		if mg == nil {
			mg = topn.NewMerger(len(st.dims[d].counts))
			mergers[start] = mg
		}
		mg.Add(st.dims[d].table(st.total))
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
	v.each(sc, from, to, func(start int64, st *scopeTables) {
		t := time.Unix(start, 0).UTC()
		c := out[t]
		c.Add(st.total)
		out[t] = c
	})
	return out
}
