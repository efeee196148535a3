package aggregate

import (
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// dimTable counts one dimension of one partition for one minute in one shard.
//
// It holds at most maxKeys keys. When full it compacts: it keeps the half with
// the most bytes and forgets the rest, adding the largest forgotten amount (per
// metric) to evicted. A key's true amount is therefore at most its count plus
// evicted, and a key absent from the table had at most evicted: the bounds
// topn.Table carries.
type dimTable struct {
	counts  *counterTable
	evicted topn.Counters
}

func newDimTable(sizeHint int) *dimTable {
	return &dimTable{counts: newCounterTable(sizeHint)}
}

// add counts c under k and returns by how many the keys held changed.
func (t *dimTable) add(k topn.Key, c topn.Counters, maxKeys int) int {
	if !t.counts.add(&k, c) {
		return 0
	}
	if t.counts.n > maxKeys {
		return 1 + t.compact(maxKeys/2)
	}
	return 1
}

func (t *dimTable) len() int { return t.counts.n }

// compact keeps the keep keys with the most bytes and returns the change in
// keys held (negative).
func (t *dimTable) compact(keep int) int {
	before := t.counts.n
	t.evicted.Add(t.counts.compact(keep))
	return t.counts.n - before
}

// tableCut is a table's limit heaviest keys by bytes, as a reader that must
// not hold every key (a checkpoint, a query of the open minutes) takes it:
// bound is what any key it leaves out may have had, the table's evicted plus
// their largest counters, exactly as a compaction would leave it.
type tableCut struct {
	all   bool // every key: the table holds no more than the limit
	n     int  // keys kept
	cut   uint64
	atCut int // keys of exactly cut bytes kept, first in slot order
	bound topn.Counters
}

// cutTo takes the limit heaviest keys of t (limit <= 0: all of them).
func (t *dimTable) cutTo(limit int) tableCut {
	ct := t.counts
	if limit <= 0 || ct.n <= limit {
		return tableCut{all: true, n: ct.n, bound: t.evicted}
	}
	sc := compactScratches.Get().(*compactScratch)
	defer compactScratches.Put(sc)
	c := tableCut{n: limit, bound: t.evicted}
	c.cut, c.atCut = ct.cutOf(limit, sc)
	var dropped topn.Counters
	ties := c.atCut
	for i := range ct.slots {
		if sl := &ct.slots[i]; sl.tag != 0 && !isKept(sl, c.cut, &ties) {
			dropped.Max(sl.c)
		}
	}
	c.bound.Add(dropped)
	return c
}

// each calls fn on the kept keys of t, which must not have changed since cutTo.
func (c tableCut) each(t *dimTable, fn func(sl *counterSlot)) {
	ties := c.atCut
	for i := range t.counts.slots {
		if sl := &t.counts.slots[i]; sl.tag != 0 && (c.all || isKept(sl, c.cut, &ties)) {
			fn(sl)
		}
	}
}

// partKey names a partition: the flows of one exporter, IP protocol and pair
// of interfaces. Each flow is counted in exactly one partition; the stored
// scopes (all, per exporter, per protocol, per interface and direction) are
// unions of partitions, built at minute close. Counting a flow once, in 7
// tables, instead of once per scope in 13 (39 map updates) cut BenchmarkAdd
// from ~5,000 to ~560 ns/flow; the interfaces in the key make the interface
// scopes exact at no cost per flow but partitions (a lookup when consecutive
// flows change interfaces). The drill-down scopes come from the minute's
// composite tables instead (drill.go).
type partKey struct {
	exporter    flow.Addr
	inIf, outIf uint32
	proto       uint8
	// noIf marks a partition restored from a checkpoint that did not split by
	// interface: it belongs to no interface scope.
	noIf bool
}

func (p partKey) in(s topn.Scope) bool {
	switch s.Kind {
	case topn.ScopeExporter:
		return p.exporter == s.Exporter
	case topn.ScopeProto:
		return p.proto == s.Proto
	case topn.ScopeInterface:
		if p.noIf || p.exporter != s.Exporter {
			return false
		}
		if s.Dir == topn.DirIn {
			return p.inIf == s.IfIndex
		}
		return p.outIf == s.IfIndex
	}
	return true // all, and the drill-downs: every partition has rows of them
}

// countedDims are counted per flow. The others are derived at close: proto and
// exporter are constant within a partition; ip and port are srcip+dstip and
// srcport+dstport, a flow under both of its ends, as nfdump -s ip counts.
var countedDims = []topn.Dim{topn.DimApp, topn.DimSrcIP, topn.DimDstIP, topn.DimSrcPort, topn.DimDstPort, topn.DimInIf, topn.DimOutIf}

// partTables is one partition's minute in one shard.
type partTables struct {
	total topn.Counters
	dims  [topn.NumDims]*dimTable // only countedDims are set
}

// newPartTables makes a partition's tables, sized like prev's (the same
// partition's previous minute) when there is one: growing from 64 slots to a
// busy minute's size is about ten rehashes per table, all at the start of the
// minute, when the previous one is still taking late flows.
//
// New partitions start small (8 keys a table): with interfaces in the
// partition key a busy switch has thousands of them, most holding a few keys.
func newPartTables(prev *partTables) *partTables {
	p := &partTables{}
	for _, d := range countedDims {
		hint := 8
		if prev != nil {
			hint = max(hint, prev.dims[d].len())
		}
		p.dims[d] = newDimTable(hint)
	}
	return p
}

// table is a table the shard's memory budget may compact.
type table interface {
	len() int
	compact(keep int) int
}

// minuteAgg is one minute in one shard.
type minuteAgg struct {
	parts map[partKey]*partTables
	// drill are the composite tables of the drill-downs (drill.go), for all
	// the minute's partitions: per partition they would hold a host once per
	// interface pair it used. Nil when drill-downs are off.
	drill [numDrill]*drillTable
	keys  int // keys held by all its tables, for the shard's memory budget
}

// largest returns the table holding the most keys.
func (m *minuteAgg) largest() table {
	var big table
	for _, p := range m.parts {
		for _, d := range countedDims {
			if t := p.dims[d]; big == nil || t.len() > big.len() {
				big = t
			}
		}
	}
	for _, t := range m.drill {
		if t != nil && (big == nil || t.len() > big.len()) {
			big = t
		}
	}
	return big
}

// countKeys recounts the keys held.
func (m *minuteAgg) countKeys() int {
	n := 0
	for _, p := range m.parts {
		for _, d := range countedDims {
			n += p.dims[d].len()
		}
	}
	for _, t := range m.drill {
		if t != nil {
			n += t.len()
		}
	}
	return n
}

// flows is the number of flows counted in the minute: it only grows, so an
// unchanged count means an unchanged minute.
func (m *minuteAgg) flows() uint64 {
	var n uint64
	for _, p := range m.parts {
		n += p.total.Flows
	}
	return n
}

// newMinuteAgg makes a minute, with composite tables for the drill-downs
// when drill is set, sized like prev's (the shard's previous minute, may be nil).
func newMinuteAgg(drill bool, prev *minuteAgg) *minuteAgg {
	m := &minuteAgg{parts: make(map[partKey]*partTables, 8)}
	if drill {
		for i := range m.drill {
			hint := 64
			if prev != nil && prev.drill[i] != nil {
				hint = max(hint, prev.drill[i].len())
			}
			m.drill[i] = newDrillTable(hint)
		}
	}
	return m
}

// part returns partition k, making it sized like k in prev (may be nil).
func (m *minuteAgg) part(k partKey, prev *minuteAgg) *partTables {
	p := m.parts[k]
	if p == nil {
		var hint *partTables
		if prev != nil {
			hint = prev.parts[k]
		}
		p = newPartTables(hint)
		m.parts[k] = p
	}
	return p
}

// partRef is a partition with its key, as gathered for a scope.
type partRef struct {
	key partKey
	t   *partTables
}

// scopeTable builds dimension d of the scope made of parts: untruncated, with
// the error bounds of every compaction in them.
func scopeTable(parts []partRef, d topn.Dim) *topn.Table {
	return scopeMerger(parts, d, 0).Table()
}

// scopeMerger merges dimension d of the scope made of parts, each table cut to
// its limit heaviest keys (0: whole), for the caller to take whole (Table) or
// cut (Truncated).
func scopeMerger(parts []partRef, d topn.Dim, limit int) *topn.Merger {
	var total topn.Counters
	for _, p := range parts {
		total.Add(p.t.total)
	}
	switch d {
	case topn.DimProto, topn.DimExporter:
		sums := map[topn.Key]topn.Counters{}
		for _, p := range parts {
			k := topn.ProtoKey(p.key.proto)
			if d == topn.DimExporter {
				k = topn.AddrKey(p.key.exporter)
			}
			c := sums[k]
			c.Add(p.t.total)
			sums[k] = c
		}
		t := &topn.Table{Total: total, Entries: make([]topn.Entry, 0, len(sums))}
		for k, c := range sums {
			t.Entries = append(t.Entries, topn.Entry{Key: k, Value: c})
		}
		mg := topn.NewMerger(len(t.Entries))
		mg.Add(t)
		return mg
	}
	from := []topn.Dim{d}
	switch d {
	case topn.DimIP:
		from = []topn.Dim{topn.DimSrcIP, topn.DimDstIP}
	case topn.DimPort:
		from = []topn.Dim{topn.DimSrcPort, topn.DimDstPort}
	}
	// Sized for every key of every part, an upper bound: growing the merger's
	// map and rows by doubling allocated twice as much (BenchmarkCloseMinute,
	// 400k keys: 730 MB a close, 370 MB presized).
	hint := 0
	for _, p := range parts {
		for _, fd := range from {
			n := p.t.dims[fd].len()
			if limit > 0 {
				n = min(n, limit)
			}
			hint += n
		}
	}
	mg := topn.NewMerger(hint)
	for _, p := range parts {
		for i, fd := range from {
			// ip and port list each flow under both ends; the total counts it once.
			t, tot := p.t.dims[fd], p.t.total
			if i > 0 {
				tot = topn.Counters{}
			}
			c := t.cutTo(limit)
			mg.AddEach(tot, c.bound, t.evicted, func(fn func(topn.Key, topn.Counters)) {
				c.each(t, func(sl *counterSlot) { fn(sl.key, sl.c) })
			})
		}
	}
	return mg
}
