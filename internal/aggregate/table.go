package aggregate

import (
	"slices"

	"github.com/tmsd/tmsd/internal/topn"
)

// dimTable counts one dimension of one scope for one minute in one shard.
// It holds at most maxKeys keys. When full it compacts: it keeps the half with the
// most bytes and forgets the rest, adding the largest forgotten amount (per metric)
// to evicted. A key's true amount is therefore at most its count plus evicted, and
// a key absent from the map had at most evicted: the bounds topn.Table carries.
type dimTable struct {
	counts  map[topn.Key]topn.Counters
	evicted topn.Counters
}

func newDimTable(sizeHint int) *dimTable {
	return &dimTable{counts: make(map[topn.Key]topn.Counters, sizeHint)}
}

func (t *dimTable) add(k topn.Key, c topn.Counters, maxKeys int) {
	v, ok := t.counts[k]
	if !ok && len(t.counts) >= maxKeys {
		t.compact(maxKeys / 2)
	}
	v.Add(c)
	t.counts[k] = v
}

// compact keeps the keep keys with the most bytes.
func (t *dimTable) compact(keep int) {
	type kv struct {
		k topn.Key
		v topn.Counters
	}
	all := make([]kv, 0, len(t.counts))
	for k, v := range t.counts {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int {
		switch {
		case a.v.Bytes > b.v.Bytes:
			return -1
		case a.v.Bytes < b.v.Bytes:
			return 1
		}
		return 0
	})
	var maxEvicted topn.Counters
	for _, e := range all[keep:] {
		maxEvicted.Max(e.v)
		delete(t.counts, e.k)
	}
	t.evicted.Add(maxEvicted)
}

// table returns every key the dimTable holds as a topn.Table (not truncated).
func (t *dimTable) table(total topn.Counters) *topn.Table {
	out := &topn.Table{Total: total, Threshold: t.evicted, Entries: make([]topn.Entry, 0, len(t.counts))}
	for k, v := range t.counts {
		out.Entries = append(out.Entries, topn.Entry{Key: k, Value: v, Error: t.evicted})
	}
	return out
}

// scopeTables is one scope's minute in one shard: its exact total and a table per dimension.
type scopeTables struct {
	total topn.Counters
	dims  [topn.NumDims]*dimTable
}

func newScopeTables() *scopeTables {
	s := &scopeTables{}
	for _, d := range topn.Dims {
		s.dims[d] = newDimTable(64)
	}
	return s
}

// minuteAgg is one minute in one shard, keyed by scope.
type minuteAgg struct {
	scopes map[topn.Scope]*scopeTables
}

func newMinuteAgg() *minuteAgg { return &minuteAgg{scopes: make(map[topn.Scope]*scopeTables, 8)} }

func (m *minuteAgg) scope(s topn.Scope) *scopeTables {
	st := m.scopes[s]
	if st == nil {
		st = newScopeTables()
		m.scopes[s] = st
	}
	return st
}
