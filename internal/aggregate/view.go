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

// each calls fn with every in-memory minute in [from, to), as its shards'
// minutes (by shard): final writes under way, pending, then the open ones,
// read with every shard's lock held (a scope's tables and its totals may be
// in different shards).
func (v View) each(sc topn.Scope, from, to time.Time, fn func(start int64, ms []*minuteAgg)) {
	if v.a == nil { // the zero View: nothing open
		return
	}
	f, t := from.Unix(), to.Unix()
	in := func(start int64) bool { return start >= f && start < t }
	for _, cm := range v.a.finals {
		if cm.shards != nil && in(cm.start) && !cm.inStore(sc) {
			fn(cm.start, cm.shards)
		}
	}
	for _, cm := range v.a.pending {
		if in(cm.start) {
			fn(cm.start, cm.shards)
		}
	}
	for _, s := range v.a.shards {
		s.mu.Lock()
	}
	defer func() {
		for _, s := range v.a.shards {
			s.mu.Unlock()
		}
	}()
	starts := map[int64]bool{}
	for _, s := range v.a.shards {
		for start := range s.minutes {
			if in(start) {
				starts[start] = true
			}
		}
	}
	ms := make([]*minuteAgg, len(v.a.shards))
	for start := range starts {
		for i, s := range v.a.shards {
			ms[i] = s.minutes[start]
		}
		fn(start, ms)
	}
}

// Tables returns, per in-memory minute in [from, to), its table of dimension
// d in scope sc: every key, or, with cut, the table cut as its close will cut
// it (top_k heaviest by each metric, bounds on the rest). A query whose
// stored part is already bounded (hours, closed minutes of a busy network)
// asks for the cut: naming every key of the open minutes, 10^5 sources at 1M
// flows/s, under the shards' locks, was most of a 24-hour top's time (median
// 76.4 ms under ingest, 24.5 ms without); an answer exact so far stays exact.
// When the minutes hold more than a checkpoint may write (a flood of distinct
// addresses), each scope's table is cut further, by bytes (checkpointCap):
// merging a flooded minute's keys held the locks for seconds with the ring
// overflowing meanwhile.
func (v View) Tables(sc topn.Scope, d topn.Dim, from, to time.Time, cut bool) map[time.Time]*topn.Table {
	out := map[time.Time]*topn.Table{}
	limit, metrics := 0, allMetrics
	if v.a != nil {
		if limit = v.a.liveCap(); limit > 0 {
			metrics = byBytes
		} else if cut {
			limit = v.a.cfg.TopK
		}
	}
	v.each(sc, from, to, func(start int64, ms []*minuteAgg) {
		t := v.a.scopeTable(ms, sc, d, limit, metrics)
		if t == nil {
			return
		}
		key := time.Unix(start, 0).UTC()
		if prev := out[key]; prev != nil {
			mg := topn.NewMerger(len(prev.Entries) + len(t.Entries))
			mg.Add(prev)
			mg.Add(t)
			t = mg.Table()
		}
		out[key] = t
	})
	return out
}

// Totals returns, per in-memory minute in [from, to), the exact totals of scope sc.
func (v View) Totals(sc topn.Scope, from, to time.Time) map[time.Time]topn.Counters {
	out := map[time.Time]topn.Counters{}
	v.each(sc, from, to, func(start int64, ms []*minuteAgg) {
		c, ok := v.a.scopeTotal(ms, sc)
		if !ok {
			return
		}
		key := time.Unix(start, 0).UTC()
		x := out[key]
		x.Add(c)
		out[key] = x
	})
	return out
}

// scopeTotal is the total of scope sc in one minute's shards.
func (a *Aggregator) scopeTotal(ms []*minuteAgg, sc topn.Scope) (topn.Counters, bool) {
	switch sc.Kind {
	case topn.ScopeAll, topn.ScopeExporter, topn.ScopeProto:
		if m := owner(ms, specIndex(scPart, 0)); m != nil {
			return m.partTotal(sc), true
		}
	case topn.ScopeInterface:
		k := scIn
		if sc.Dir == topn.DirOut {
			k = scOut
		}
		if i := specIndex(k, 0); i >= 0 {
			if m := owner(ms, i); m != nil {
				if id, ok := m.ifID(sc.Exporter, sc.IfIndex); ok {
					return m.total(k, id), true
				}
				return topn.Counters{}, true
			}
		}
	case topn.ScopeApp:
		if owner(ms, specIndex(scApp, topn.DimSrcIP)) != nil {
			return a.appTotal(ms, sc.App), true
		}
	case topn.ScopeIP:
		if owner(ms, specIndex(scApp, topn.DimSrcIP)) != nil {
			return a.ipTotal(ms, sc.IP), true
		}
	}
	return topn.Counters{}, false
}

// liveCap is the keys a scope's table gives a query of the open minutes:
// all of them (0) unless the minutes hold more than a checkpoint may write.
func (a *Aggregator) liveCap() int {
	keys, scopes := 0, 0
	for _, s := range a.shards {
		s.mu.Lock()
		for _, m := range s.minutes {
			k, sc := m.census()
			keys += k
			scopes += sc
		}
		s.mu.Unlock()
	}
	return a.checkpointCap(keys, scopes)
}

// census is the keys the minute's tables hold and the scopes they hold them in.
func (m *minuteAgg) census() (keys, scopes int) {
	for i, t := range m.tables {
		if t == nil || specs[i].dim == 0 {
			continue
		}
		keys += t.n
		for _, n := range t.scopeN {
			if n > 0 {
				scopes++
			}
		}
	}
	return keys, scopes
}
