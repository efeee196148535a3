package aggregate

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// Reading the tables: a scope's table of a dimension is made from one minute
// (one shard's tables, the shard that owns them) as a merged value table,
// then named and cut into a topn.Table. Close does this for every scope of
// the minute, in a pass per table; a query of the open minutes for the scope
// it asks.

// merged is one scope's table of one dimension in values of one minute's
// dictionaries: counters by value, and one bound, the error of every entry
// and what any absent value may have had (the sum of the bounds of the
// scopes and tables it merges).
type merged struct {
	vals  *table // unscoped, keyed by value
	bound topn.Counters
}

func newMerged(hint int) *merged { return &merged{vals: newTable(hint, false)} }

// addGroup merges the slots idx of table t, whose scope's bound is b.
func (mg *merged) addGroup(t *table, idx []int32, b topn.Counters) {
	for _, i := range idx {
		s := &t.slots[i]
		mg.vals.add(valueOf(s.key-1), s.c)
	}
	mg.bound.Add(b)
}

// sources are the specs a dimension of a kind is read from: one, or the
// source and destination tables of an either-side dimension.
func sources(k scopeKind, d topn.Dim) []int {
	var from []topn.Dim
	switch d {
	case topn.DimIP:
		from = []topn.Dim{topn.DimSrcIP, topn.DimDstIP}
	case topn.DimPort:
		from = []topn.Dim{topn.DimSrcPort, topn.DimDstPort}
	case topn.DimCountry:
		from = []topn.Dim{topn.DimSrcCountry, topn.DimDstCountry}
	case topn.DimAS:
		from = []topn.Dim{topn.DimSrcAS, topn.DimDstAS}
	case topn.DimAppGroup:
		from = []topn.Dim{topn.DimApp} // folded by group (byGroup)
	default:
		from = []topn.Dim{d}
	}
	out := make([]int, 0, len(from))
	for _, x := range from {
		if i := specIndex(k, x); i >= 0 {
			out = append(out, i)
		}
	}
	return out
}

// owner is the one of ms (a minute's, by shard) that holds table i.
func owner(ms []*minuteAgg, i int) *minuteAgg {
	for _, m := range ms {
		if m != nil && m.tables[i] != nil {
			return m
		}
	}
	return nil
}

// partFilter says which partitions of m a scope of the whole network, an
// exporter or a protocol is the union of.
func partFilter(m *minuteAgg, sc topn.Scope) func(pid uint64) bool {
	switch sc.Kind {
	case topn.ScopeExporter:
		return func(pid uint64) bool { e, _ := m.partScope(pid); return e == sc.Exporter }
	case topn.ScopeProto:
		return func(pid uint64) bool { _, p := m.partScope(pid); return p == sc.Proto }
	}
	return func(uint64) bool { return true }
}

// partMerged is dimension d of a partition-union scope in m.
func (m *minuteAgg) partMerged(sc topn.Scope, d topn.Dim, grouped func(i int) *scratch) *merged {
	in := partFilter(m, sc)
	keep := make([]bool, len(m.parts.keys))
	for pid := range keep {
		keep[pid] = in(uint64(pid))
	}
	switch d {
	case topn.DimExporter, topn.DimProto:
		// Constant in a partition: its rows are partition totals.
		t := m.tables[specIndex(scPart, 0)]
		mg := newMerged(len(keep))
		t.each(func(k uint64, c topn.Counters) {
			pid := scopeOf(k)
			if pid >= uint64(len(keep)) || !keep[pid] {
				return
			}
			e, p := m.partScope(pid)
			v := uint64(p)
			if d == topn.DimExporter {
				v = uint64(m.expIDs[e])
			}
			mg.vals.add(v, c)
		})
		return mg
	}
	src := sources(scPart, d)
	hint := 0
	for _, i := range src {
		t := m.tables[i]
		for pid, ok := range keep {
			if ok && pid < len(t.scopeN) {
				hint += int(t.scopeN[pid])
			}
		}
	}
	mg := newMerged(hint)
	for _, i := range src {
		t := m.tables[i]
		if grouped != nil {
			// A close reads every scope of the partitions: one grouping of
			// the table for all of them, not a scan each.
			g := grouped(i)
			for pid, ok := range keep {
				if ok && pid+1 < len(g.start) {
					mg.addGroup(t, g.idx[g.start[pid]:g.start[pid+1]], topn.Counters{})
				}
			}
		} else {
			t.each(func(k uint64, c topn.Counters) {
				if pid := scopeOf(k); pid < uint64(len(keep)) && keep[pid] {
					mg.vals.add(valueOf(k), c)
				}
			})
		}
		for pid, ok := range keep {
			if ok {
				mg.bound.Add(t.bound(uint64(pid)))
				m.addZeroRow(mg, i, scPart, uint64(pid))
			}
		}
	}
	return mg
}

// addZeroRow adds to mg the zero row of scope id in table i, when the table
// leaves it out (spec.elides): the scope's total less what the table counted.
func (m *minuteAgg) addZeroRow(mg *merged, i int, k scopeKind, id uint64) {
	if !specs[i].elides() {
		return
	}
	if z := m.tables[i].zeroRow(id, m.total(k, id)); !z.IsZero() {
		mg.vals.add(0, z)
	}
}

// scopeMerged is dimension d of scope id of a scoped kind (an interface, an
// application) in m, by a scan of its tables.
func (m *minuteAgg) scopeMerged(k scopeKind, id uint64, d topn.Dim) *merged {
	src := sources(k, d)
	hint := 1
	for _, i := range src {
		if t := m.tables[i]; id < uint64(len(t.scopeN)) {
			hint += int(t.scopeN[id])
		}
	}
	mg := newMerged(hint)
	for _, i := range src {
		t := m.tables[i]
		t.each(func(key uint64, c topn.Counters) {
			if scopeOf(key) == id {
				mg.vals.add(valueOf(key), c)
			}
		})
		mg.bound.Add(t.bound(id))
		m.addZeroRow(mg, i, k, id)
	}
	return mg
}

// total is the total of scope id of kind k in m (its totals table's row).
func (m *minuteAgg) total(k scopeKind, id uint64) topn.Counters {
	c, _ := m.tables[specIndex(k, 0)].get(id << valueBits)
	return c
}

// named makes a merged table a topn.Table of dimension d: its keys named,
// cut to the union of the top limit by each metric (0: every key), the
// bound the error of each entry, the threshold the bound or the most a
// dropped key had.
func (m *minuteAgg) named(mg *merged, d topn.Dim, total topn.Counters, limit int, a *Aggregator) *topn.Table {
	return m.namedBy(mg, d, total, limit, allMetrics, a)
}

var (
	allMetrics = []topn.Metric{topn.Bytes, topn.Packets, topn.Flows}
	byBytes    = []topn.Metric{topn.Bytes}
)

// namedBy is named, cut by the given metrics (a query of a flooded open
// minute cuts by bytes alone, as a checkpoint does).
func (m *minuteAgg) namedBy(mg *merged, d topn.Dim, total topn.Counters, limit int, metrics []topn.Metric, a *Aggregator) *topn.Table {
	t := mg.vals
	idx := make([]int32, 0, t.n)
	for i := range t.slots {
		if t.slots[i].key != 0 {
			idx = append(idx, int32(i))
		}
	}
	return m.namedIdx(t, idx, mg.bound, d, total, limit, metrics, a)
}

// namedIdx makes the slots idx of t (a merged table's, or one scope's group
// of a table whose values are unique in it) a topn.Table of dimension d, as
// named does.
func (m *minuteAgg) namedIdx(t *table, idx []int32, bound topn.Counters, d topn.Dim, total topn.Counters, limit int, metrics []topn.Metric, a *Aggregator) *topn.Table {
	out := &topn.Table{Total: total, Threshold: bound}
	keep := topIdx(t, idx, limit, metrics)
	n := len(idx)
	if keep != nil {
		n = min(n, limit*len(metrics))
	}
	out.Entries = make([]topn.Entry, 0, n)
	var dropped topn.Counters
	for j, i := range idx {
		s := &t.slots[i]
		if keep != nil && !keep[j] {
			dropped.Max(s.c)
			continue
		}
		out.Entries = append(out.Entries, topn.Entry{Key: m.keyOfValue(d, valueOf(s.key-1), a), Value: s.c, Error: bound})
	}
	if len(out.Entries) < len(idx) {
		dropped.Add(bound)
		out.Threshold.Max(dropped)
	}
	return out
}

// keyOfValue names a value of dimension d (exporter values are exporter ids).
func (m *minuteAgg) keyOfValue(d topn.Dim, v uint64, a *Aggregator) topn.Key {
	if d == topn.DimExporter {
		return topn.AddrKey(m.exps[v])
	}
	return m.keyOf(d, v, a)
}

// topIdx marks the slots idx of t among the top limit by each of metrics
// (keep[j] for idx[j]; nil: all, limit <= 0 or no more keys than it). Ties
// at the cut go to the lower key, so the choice does not depend on slot order.
func topIdx(t *table, idx []int32, limit int, metrics []topn.Metric) []bool {
	if limit <= 0 || len(idx) <= limit {
		return nil
	}
	keep := make([]bool, len(idx))
	vals := make([]uint64, len(idx))
	var ties []int
	for _, metric := range metrics {
		for j, i := range idx {
			vals[j] = t.slots[i].c.Get(metric)
		}
		cut := nthLargest(vals, limit)
		left := limit
		ties = ties[:0]
		for j, i := range idx {
			switch v := t.slots[i].c.Get(metric); {
			case v > cut:
				keep[j] = true
				left--
			case v == cut:
				ties = append(ties, j)
			}
		}
		slices.SortFunc(ties, func(x, y int) int {
			a, b := t.slots[idx[x]].key, t.slots[idx[y]].key
			switch {
			case a < b:
				return -1
			case a > b:
				return 1
			}
			return 0
		})
		for _, j := range ties[:min(left, len(ties))] {
			keep[j] = true
		}
	}
	return keep
}

// scopeTable is dimension d of scope sc in one minute's shards ms, for a
// query of the open minutes (limit: the keys by bytes a table gives it, 0 all). Nil when the minute holds no table of it.
func (a *Aggregator) scopeTable(ms []*minuteAgg, sc topn.Scope, d topn.Dim, limit int, metrics []topn.Metric) *topn.Table {
	if isGeoDim(d) {
		// An open minute's countries and ASes are folded from its address
		// tables when read (spec.elides).
		k := scPart
		if sc.Kind == topn.ScopeInterface {
			k = scIn
			if sc.Dir == topn.DirOut {
				k = scOut
			}
		}
		derived := make([]*minuteAgg, len(ms))
		for i, m := range ms {
			only := int64(-1)
			if m != nil && k != scPart {
				only = 1 << 62 // no such interface: nothing to fold
				if id, ok := m.ifID(sc.Exporter, sc.IfIndex); ok {
					only = int64(id)
				}
			}
			derived[i] = m.withDerived(k, only)
		}
		ms = derived
	}
	switch sc.Kind {
	case topn.ScopeAll, topn.ScopeExporter, topn.ScopeProto:
		if sc.Kind == topn.ScopeAll && isPortDim(d) {
			src := sources(scAll, d)
			m, tm := owner(ms, src[0]), owner(ms, specIndex(scPart, 0))
			if m == nil || tm == nil {
				return nil
			}
			return m.namedBy(m.scopeMerged(scAll, 0, d), d, tm.partTotal(sc), limit, metrics, a)
		}
		first := specIndex(scPart, 0)
		if d != topn.DimExporter && d != topn.DimProto {
			src := sources(scPart, d)
			if len(src) == 0 {
				return nil
			}
			first = src[0]
		}
		m, tm := owner(ms, first), owner(ms, specIndex(scPart, 0))
		if m == nil || tm == nil {
			return nil
		}
		return m.namedBy(a.byGroup(d, m.partMerged(sc, d, nil)), d, tm.partTotal(sc), limit, metrics, a)
	case topn.ScopeInterface:
		k := scIn
		if sc.Dir == topn.DirOut {
			k = scOut
		}
		src := sources(k, d)
		if len(src) == 0 {
			return nil
		}
		m, tm := owner(ms, src[0]), owner(ms, specIndex(k, 0))
		if m == nil || tm == nil {
			return nil
		}
		id, ok := m.ifID(sc.Exporter, sc.IfIndex)
		tid, tok := tm.ifID(sc.Exporter, sc.IfIndex)
		if !ok || !tok {
			return &topn.Table{}
		}
		return m.namedBy(a.byGroup(d, m.scopeMerged(k, id, d)), d, tm.total(k, tid), limit, metrics, a)
	case topn.ScopeApp:
		src := sources(scApp, d)
		if len(src) == 0 {
			return nil
		}
		m := owner(ms, src[0])
		if m == nil {
			return nil
		}
		id, ok := a.appID(sc.App)
		total := a.appTotal(ms, sc.App)
		if !ok {
			return &topn.Table{Total: total}
		}
		return m.namedBy(m.scopeMerged(scApp, id, d), d, total, limit, metrics, a)
	case topn.ScopeIP:
		return a.ipScopeTable(ms, sc.IP, d, limit, metrics)
	}
	return nil
}

// partTotal is the total of a partition-union scope in m (its totals table).
func (m *minuteAgg) partTotal(sc topn.Scope) topn.Counters {
	in := partFilter(m, sc)
	var c topn.Counters
	m.tables[specIndex(scPart, 0)].each(func(k uint64, v topn.Counters) {
		if in(scopeOf(k)) {
			c.Add(v)
		}
	})
	return c
}

// ifID is the interface id of (exporter, ifIndex) in m, if it saw it.
func (m *minuteAgg) ifID(e flow.Addr, ifIndex uint32) (uint64, bool) {
	eid, ok := m.expIDs[e]
	if !ok {
		return 0, false
	}
	id, ok := m.ifs.find(uint64(eid)<<32 | uint64(ifIndex))
	return uint64(id), ok
}

// appID is the id of an application key (apps' ids are the same in every
// minute): found by name among the ids the classifier has.
func (a *Aggregator) appID(k topn.Key) (uint64, bool) {
	a.appIDsOnce.Do(func() {
		a.appIDs = map[topn.Key]uint16{}
		for id := uint16(1); id != 0; id++ {
			key, ok := a.deps.Classifier.AppKey(id)
			if !ok {
				break
			}
			if _, dup := a.appIDs[key]; !dup {
				a.appIDs[key] = id
			}
		}
	})
	id, ok := a.appIDs[k]
	return uint64(id), ok
}

// appTotal is an application's traffic in a minute: its row of the whole
// network's app table, exact unless a partition's app table compacted it.
func (a *Aggregator) appTotal(ms []*minuteAgg, app topn.Key) topn.Counters {
	i := specIndex(scPart, topn.DimApp)
	m := owner(ms, i)
	id, ok := a.appID(app)
	if m == nil || !ok {
		return topn.Counters{}
	}
	var c topn.Counters
	m.tables[i].each(func(k uint64, v topn.Counters) {
		if valueOf(k) == id {
			c.Add(v)
		}
	})
	return c
}

// ipTotal is an address's traffic in a minute, as the ip dimension counts
// it (a flow under both ends): its rows of the srcip and dstip tables.
func (a *Aggregator) ipTotal(ms []*minuteAgg, ip flow.Addr) topn.Counters {
	var c topn.Counters
	for _, i := range sources(scPart, topn.DimIP) {
		m := owner(ms, i)
		if m == nil {
			continue
		}
		v, ok := m.addrValueOf(&ip)
		if !ok {
			continue
		}
		m.tables[i].each(func(k uint64, x topn.Counters) {
			if valueOf(k) == v {
				c.Add(x)
			}
		})
	}
	return c
}

// addrValueOf is the value of an address in m without adding it to its
// dictionary: false for an IPv6 address it never saw.
func (m *minuteAgg) addrValueOf(a *flow.Addr) (uint64, bool) {
	if [12]byte(a[:12]) == v4Prefix {
		if v := uint64(binaryBE32(a[12:])); v&v6Tag != v6Tag {
			return v, true
		}
	}
	id, ok := m.v6IDs[*a]
	return v6Tag | uint64(id), ok
}

func binaryBE32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// ipScopeTable is dimension d (app or peer) of the drill-down of address ip.
func (a *Aggregator) ipScopeTable(ms []*minuteAgg, ip flow.Addr, d topn.Dim, limit int, metrics []topn.Metric) *topn.Table {
	first := specIndex(scApp, topn.DimSrcIP)
	switch d {
	case topn.DimPeer:
		first = specIndex(scNone, topn.DimPeer)
	case topn.DimApp:
	default:
		return nil
	}
	m := owner(ms, first)
	if m == nil {
		return nil
	}
	t := m.ipTables([]flow.Addr{ip}, d, limit, metrics, a)[ip]
	t.Total = a.ipTotal(ms, ip)
	return t
}

// closeMinute builds every scope's tables from one minute's shards, cuts
// each to the top K, and merges it with what the store already holds for
// that minute (flows that arrived after an earlier flush).
func (a *Aggregator) closeMinute(cm *closingMinute) ([]store.Interval, error) {
	start := time.Unix(cm.start, 0).UTC()
	out := newIntervals(start)
	// The shards build their tables at once, each its own.
	var wg sync.WaitGroup
	parts := make([]*intervals, len(cm.shards))
	for i, m := range cm.shards {
		if m == nil {
			continue
		}
		parts[i] = newIntervals(start)
		wg.Go(func() { a.closeShard(m, parts[i]) })
	}
	wg.Wait()
	for _, p := range parts {
		if p != nil {
			out.absorb(p)
		}
	}
	// The drill-downs of the minute's top applications and addresses, from
	// the whole network's tables just built.
	if a.cfg.DrillDowns > 0 {
		scopes := a.drillScopes(out)
		for i, m := range cm.shards {
			if m == nil {
				continue
			}
			parts[i] = newIntervals(start)
			wg.Go(func() { a.closeDrills(cm.shards, m, scopes, parts[i]) })
		}
		wg.Wait()
		for _, p := range parts {
			if p != nil {
				out.absorb(p)
			}
		}
	}
	return a.finishIntervals(out, start)
}

// intervals gathers a minute's tables by scope.
type intervals struct {
	start  time.Time
	scopes map[topn.Scope]*store.Interval
	order  []topn.Scope
	// totals are the scopes' totals, from the shards holding the totals
	// tables (a drill-down's total is its tables' own).
	totals map[topn.Scope]topn.Counters
}

func newIntervals(start time.Time) *intervals {
	return &intervals{start: start, scopes: map[topn.Scope]*store.Interval{}, totals: map[topn.Scope]topn.Counters{}}
}

func (iv *intervals) get(sc topn.Scope) *store.Interval {
	x := iv.scopes[sc]
	if x == nil {
		x = &store.Interval{Tier: store.TierMinute, Start: iv.start, Scope: sc, Tables: map[topn.Dim]*topn.Table{}}
		iv.scopes[sc] = x
		iv.order = append(iv.order, sc)
	}
	return x
}

func (iv *intervals) put(sc topn.Scope, d topn.Dim, t *topn.Table) { iv.get(sc).Tables[d] = t }

func (iv *intervals) absorb(o *intervals) {
	for _, sc := range o.order {
		src := o.scopes[sc]
		dst := iv.get(sc)
		for d, t := range src.Tables {
			dst.Tables[d] = t
		}
	}
	for sc, c := range o.totals {
		iv.get(sc)
		iv.totals[sc] = c
	}
}

// scopeKindOf names the scope kinds a table kind's scopes are stored as.
func (a *Aggregator) partScopes(m *minuteAgg) []topn.Scope {
	scopes := []topn.Scope{{}}
	seen := map[topn.Scope]bool{}
	for pid := range m.parts.keys {
		e, p := m.partScope(uint64(pid))
		for _, sc := range []topn.Scope{{Kind: topn.ScopeExporter, Exporter: e}, {Kind: topn.ScopeProto, Proto: p}} {
			if seen[sc] || (sc.Kind == topn.ScopeExporter && !a.cfg.ScopeExporter) || (sc.Kind == topn.ScopeProto && !a.cfg.ScopeProto) {
				continue
			}
			seen[sc] = true
			scopes = append(scopes, sc)
		}
	}
	return scopes
}

// closeShard builds, from one shard's minute, the tables of every scope and
// dimension whose tables it holds, but the drill-downs'.
func (a *Aggregator) closeShard(m *minuteAgg, out *intervals) {
	dimsOf := func(k scopeKind, sc topn.Scope) []topn.Dim {
		var ds []topn.Dim
		for _, d := range sc.Dims() {
			var first int
			switch {
			case k == scPart && (d == topn.DimExporter || d == topn.DimProto):
				first = specIndex(scPart, 0)
			default:
				src := sources(k, d)
				if len(src) == 0 {
					continue
				}
				first = src[0]
			}
			if m.tables[first] != nil {
				ds = append(ds, d)
			}
		}
		return ds
	}
	if hasAny(m, scAll) {
		for _, d := range []topn.Dim{topn.DimSrcPort, topn.DimDstPort, topn.DimPort} {
			out.put(topn.Scope{}, d, m.named(m.scopeMerged(scAll, 0, d), d, topn.Counters{}, a.cfg.TopK, a))
		}
	}
	if hasAny(m, scPart) {
		pt := specIndex(scPart, 0)
		groups := map[int]*scratch{}
		defer func() {
			for _, g := range groups {
				scratches.Put(g)
			}
		}()
		grouped := func(i int) *scratch {
			g := groups[i]
			if g == nil {
				g = scratches.Get().(*scratch)
				m.tables[i].group(g)
				groups[i] = g
			}
			return g
		}
		for _, sc := range a.partScopes(m) {
			for _, d := range dimsOf(scPart, sc) {
				if sc.Kind == topn.ScopeAll && isPortDim(d) {
					continue // the whole network's own tables (scAll)
				}
				out.put(sc, d, m.named(a.byGroup(d, m.partMerged(sc, d, grouped)), d, topn.Counters{}, a.cfg.TopK, a))
			}
			if m.tables[pt] != nil {
				out.totals[sc] = m.partTotal(sc)
			}
		}
	}
	for _, k := range []scopeKind{scIn, scOut} {
		if !hasAny(m, k) {
			continue
		}
		dir := topn.DirIn
		if k == scOut {
			dir = topn.DirOut
		}
		for id := range m.ifs.keys {
			e, ifIndex := m.ifOf(uint64(id))
			sc := topn.Scope{Kind: topn.ScopeInterface, Exporter: e, IfIndex: ifIndex, Dir: dir}
			if tt := m.tables[specIndex(k, 0)]; tt != nil {
				if c, ok := tt.get(uint64(id) << valueBits); ok { // else: of the other direction only
					out.totals[sc] = c
				}
			}
		}
		a.closeGrouped(m, k, out, func(id uint64) (topn.Scope, bool) {
			e, ifIndex := m.ifOf(id)
			return topn.Scope{Kind: topn.ScopeInterface, Exporter: e, IfIndex: ifIndex, Dir: dir}, true
		})
	}
}

func hasAny(m *minuteAgg, k scopeKind) bool {
	for i, s := range specs {
		if s.kind == k && m.tables[i] != nil {
			return true
		}
	}
	return false
}

// closeGrouped builds the tables of every scope of kind k in m, a pass over
// each table grouped by scope (a counting sort), for the scopes scopeOf
// names (false: skip it).
func (a *Aggregator) closeGrouped(m *minuteAgg, k scopeKind, out *intervals, scopeOf func(id uint64) (topn.Scope, bool)) {
	done := map[topn.Dim]bool{}
	for i, s := range specs {
		if s.kind != k || s.dim == 0 || m.tables[i] == nil {
			continue
		}
		for _, d := range outputDims(k, s.dim) {
			if done[d] {
				continue
			}
			done[d] = true
			src := sources(k, d)
			tabs := make([]*table, 0, len(src))
			scs := make([]*scratch, 0, len(src))
			for _, j := range src {
				sc := scratches.Get().(*scratch)
				m.tables[j].group(sc)
				tabs, scs = append(tabs, m.tables[j]), append(scs, sc)
			}
			ids := len(tabs[0].scopeN)
			if len(tabs) > 1 {
				ids = max(ids, len(tabs[1].scopeN))
			}
			elides := specs[src[0]].elides()
			if elides {
				ids = max(ids, len(m.tables[specIndex(k, 0)].scopeN))
			}
			for id := 0; id < ids; id++ {
				n := 0
				for x := range tabs {
					if id+1 < len(scs[x].start) {
						n += int(scs[x].start[id+1] - scs[x].start[id])
					}
				}
				if n == 0 && (!elides || m.total(k, uint64(id)).IsZero()) {
					continue
				}
				sc, ok := scopeOf(uint64(id))
				if !ok {
					continue
				}
				if len(tabs) == 1 && !elides && d != topn.DimAppGroup {
					// One table, whose values are unique in a scope: its
					// group is the scope's rows, with no merge.
					t := tabs[0]
					g := scs[0].idx[scs[0].start[id]:scs[0].start[id+1]]
					out.put(sc, d, m.namedIdx(t, g, t.bound(uint64(id)), d, topn.Counters{}, a.cfg.TopK, allMetrics, a))
					continue
				}
				mg := newMerged(n + 1)
				for x, t := range tabs {
					if id+1 < len(scs[x].start) {
						mg.addGroup(t, scs[x].idx[scs[x].start[id]:scs[x].start[id+1]], t.bound(uint64(id)))
					} else {
						mg.bound.Add(t.bound(uint64(id)))
					}
					m.addZeroRow(mg, src[x], k, uint64(id))
				}
				out.put(sc, d, m.named(a.byGroup(d, mg), d, topn.Counters{}, a.cfg.TopK, a))
			}
			for _, sc := range scs {
				scratches.Put(sc)
			}
		}
	}
}

// byGroup is mg, an application table, summed by the applications' groups
// when d is appgroup (mg itself otherwise): a group's rows are its
// applications', so it is read off the app tables rather than counted. An
// application may be under-counted by mg's bound, a group by as many bounds
// as the classifier has applications.
func (a *Aggregator) byGroup(d topn.Dim, mg *merged) *merged {
	if d != topn.DimAppGroup {
		return mg
	}
	out := newMerged(8)
	mg.vals.each(func(v uint64, c topn.Counters) { out.vals.add(a.groupValue(uint16(v)), c) })
	if !mg.bound.IsZero() {
		out.bound = mg.bound.Times(max(1, a.deps.Classifier.Apps()))
	}
	return out
}

// isGeoDim says whether d is a country or AS dimension.
func isGeoDim(d topn.Dim) bool {
	switch d {
	case topn.DimSrcCountry, topn.DimDstCountry, topn.DimCountry, topn.DimSrcAS, topn.DimDstAS, topn.DimAS:
		return true
	}
	return false
}

func isPortDim(d topn.Dim) bool {
	return d == topn.DimSrcPort || d == topn.DimDstPort || d == topn.DimPort
}

// outputDims are the dimensions a table of dimension d feeds: itself, and
// its either-side dimension.
func outputDims(k scopeKind, d topn.Dim) []topn.Dim {
	switch d {
	case topn.DimSrcIP, topn.DimDstIP:
		if k == scApp || k == scIn || k == scOut || k == scPart {
			return []topn.Dim{d, topn.DimIP}
		}
	case topn.DimSrcPort, topn.DimDstPort:
		return []topn.Dim{d, topn.DimPort}
	case topn.DimSrcCountry, topn.DimDstCountry:
		return []topn.Dim{d, topn.DimCountry}
	case topn.DimSrcAS, topn.DimDstAS:
		return []topn.Dim{d, topn.DimAS}
	case topn.DimApp:
		if k != scApp {
			return []topn.Dim{d, topn.DimAppGroup}
		}
	}
	return []topn.Dim{d}
}

// drillScopes are the minute's top DrillDowns applications and addresses by
// bytes, from the whole network's app and ip tables.
func (a *Aggregator) drillScopes(out *intervals) []topn.Scope {
	all := out.scopes[topn.Scope{}]
	if all == nil {
		return nil
	}
	var scopes []topn.Scope
	for _, d := range []topn.Dim{topn.DimApp, topn.DimIP} {
		t := all.Tables[d]
		if t == nil {
			continue
		}
		cp := *t
		cp.Entries = slices.Clone(t.Entries)
		rows, _ := cp.Top(d, a.cfg.DrillDowns, topn.Bytes)
		for _, e := range rows {
			if d == topn.DimApp {
				scopes = append(scopes, topn.Scope{Kind: topn.ScopeApp, App: e.Key})
			} else {
				scopes = append(scopes, topn.Scope{Kind: topn.ScopeIP, IP: e.Key.Addr()})
			}
		}
	}
	return scopes
}

// closeDrills builds the drill-down scopes' tables whose tables m holds:
// the applications' in a pass per table grouped by application, the
// addresses' in a pass over the tables picking their rows.
func (a *Aggregator) closeDrills(ms []*minuteAgg, m *minuteAgg, scopes []topn.Scope, out *intervals) {
	apps := map[uint64]topn.Scope{}
	var ips []flow.Addr
	for _, sc := range scopes {
		switch sc.Kind {
		case topn.ScopeApp:
			if id, ok := a.appID(sc.App); ok {
				apps[id] = sc
			}
			out.totals[sc] = a.appTotal(ms, sc.App)
		case topn.ScopeIP:
			ips = append(ips, sc.IP)
			out.totals[sc] = a.ipTotal(ms, sc.IP)
		}
	}
	if hasAny(m, scApp) {
		a.closeGrouped(m, scApp, out, func(id uint64) (topn.Scope, bool) {
			sc, ok := apps[id]
			return sc, ok
		})
	}
	for _, d := range []topn.Dim{topn.DimApp, topn.DimPeer} {
		first := specIndex(scApp, topn.DimSrcIP)
		if d == topn.DimPeer {
			first = specIndex(scNone, topn.DimPeer)
		}
		if m.tables[first] == nil || len(ips) == 0 {
			continue
		}
		for ip, t := range m.ipTables(ips, d, a.cfg.TopK, allMetrics, a) {
			out.put(topn.Scope{Kind: topn.ScopeIP, IP: ip}, d, t)
		}
	}
}

// ipTables are dimension d (app or peer) of the drill-downs of addresses
// ips, from a pass over m's tables of it.
func (m *minuteAgg) ipTables(ips []flow.Addr, d topn.Dim, limit int, metrics []topn.Metric, a *Aggregator) map[flow.Addr]*topn.Table {
	byValue := make(map[uint64]*merged, len(ips))
	addrOf := make(map[uint64]flow.Addr, len(ips))
	var src []int
	if d == topn.DimApp {
		src = []int{specIndex(scApp, topn.DimSrcIP), specIndex(scApp, topn.DimDstIP)}
	} else {
		src = []int{specIndex(scNone, topn.DimPeer)}
	}
	var bound topn.Counters
	for _, i := range src {
		t := m.tables[i]
		if d == topn.DimPeer {
			bound.Add(t.bound(0))
		} else {
			// Any application may have had up to its bound with the address.
			bound.Add(t.maxBound())
		}
	}
	for _, ip := range ips {
		if v, ok := m.addrValueOf(&ip); ok {
			byValue[v] = newMerged(64)
			addrOf[v] = ip
		}
	}
	for _, i := range src {
		m.tables[i].each(func(k uint64, c topn.Counters) {
			if d == topn.DimApp {
				if mg := byValue[valueOf(k)]; mg != nil {
					mg.vals.add(scopeOf(k), c)
				}
				return
			}
			lo, hi := k>>32, k&0xffffffff
			if lo == hi {
				if mg := byValue[lo]; mg != nil {
					mg.vals.add(lo, c.Times(2))
				}
				return
			}
			if mg := byValue[lo]; mg != nil {
				mg.vals.add(hi, c)
			}
			if mg := byValue[hi]; mg != nil {
				mg.vals.add(lo, c)
			}
		})
	}
	out := make(map[flow.Addr]*topn.Table, len(ips))
	for _, ip := range ips {
		mg := &merged{vals: newTable(1, false)}
		if v, ok := m.addrValueOf(&ip); ok {
			mg = byValue[v]
		}
		mg.bound = bound
		out[ip] = m.namedBy(mg, d, topn.Counters{}, limit, metrics, a)
	}
	return out
}

// finishIntervals merges the minute's tables with what the store holds of it
// (a minute closed before: late flows) and cuts each to the top K.
func (a *Aggregator) finishIntervals(out *intervals, start time.Time) ([]store.Interval, error) {
	var errs []error
	// Every final write includes the whole-network scope, so when the store
	// has none of it, it has no scope of the minute and the lookups per scope
	// and dimension are skipped.
	_, stored, err := a.deps.Store.Get(store.TierMinute, topn.Scope{}, topn.DimProto, start)
	if err != nil {
		stored = true // look each up, and report what fails
	}
	ivs := make([]store.Interval, 0, len(out.order))
	for _, sc := range out.order {
		iv := out.scopes[sc]
		total, ok := out.totals[sc]
		iv.Total = total
		for _, d := range sc.Dims() {
			t := iv.Tables[d]
			if t == nil {
				t = &topn.Table{}
			}
			if ok {
				t.Total = total
			}
			if stored {
				old, ok, err := a.deps.Store.Get(store.TierMinute, sc, d, start)
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("minute %s %s %s: %w", start.Format(time.RFC3339), sc, d, err))
				case ok:
					mg := topn.NewMerger(len(t.Entries) + len(old.Entries))
					mg.Add(t)
					mg.Add(old)
					t = mg.Truncated(a.cfg.TopK)
				}
			}
			iv.Tables[d] = t
			iv.Total = t.Total
		}
		ivs = append(ivs, *iv)
	}
	return ivs, errors.Join(errs...)
}
