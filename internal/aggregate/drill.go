package aggregate

import (
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// Drill-downs. A drill-down scope (topn.ScopeApp, topn.ScopeIP) is one key's
// slice of the traffic: one application's hosts, one address's applications and
// peers. Counting a table per application and per address would multiply the
// state by their number, so each partition counts composite keys instead, in
// six tables bounded like the others (compaction with an evicted bound, the
// shard's key budget): application×srcip, application×dstip,
// application×srcport, application×dstport, address×application (a flow under
// both its ends) and the unordered address pair (a flow's peer either way),
// per shard and minute rather than per partition (the scopes span them all).
// At minute close the top DrillDowns applications and addresses of the minute
// (by bytes, from the app and ip tables) get drill-down tables, sliced out of
// the composite tables in one pass; the others get none.
//
// Cost (BenchmarkAdd, 100k Zipf hosts, one shard, the shared 2-core VM at
// load ~1): ~1,500 ns/flow with drill-downs, ~590 without (interface scopes
// only), ~480 with neither, 0 allocs/flow in all; the seven composite updates
// miss the cache in tables of 100k+ keys. drill_downs: 0 turns them off.
// Counting composite keys only for candidate keys (e.g. the previous minute's
// top addresses) would cut the address part, at the price of partial first minutes.
//
// Error bounds: a composite key's count is under by at most its table's
// evicted, as in dimTable; a drill-down table carries it as its Threshold and
// each entry's Error. Its Total is the key's own row in the minute's app or ip
// table: exact unless that table compacted.

// wideKey is a composite key: two topn.Key prefixes of fixed offsets (see the drill* layouts).
type wideKey [40]byte

// The composite tables of a partition, and their key layouts.
const (
	drillAppSrcIP   = iota // app (24) | srcip (16)
	drillAppDstIP          // app (24) | dstip (16)
	drillAppSrcPort        // app (24) | PortKey (3)
	drillAppDstPort        // app (24) | PortKey (3)
	drillIPApp             // address (16) | app (24)
	drillPeer              // lower address (16) | higher address (16)
	numDrill
)

// wideTable is counterTable for wide keys (a copy, not a generic: the narrow
// table is the hot path's, and a generic's hash call through its dictionary costs there).
type wideTable struct {
	slots []wideSlot
	mask  uint64
	n     int
}

type wideSlot struct {
	key wideKey
	c   topn.Counters
	tag uint32
}

func newWideTable(sizeHint int) *wideTable {
	n := 16
	for n < sizeHint*2 {
		n <<= 1
	}
	return &wideTable{slots: make([]wideSlot, n), mask: uint64(n - 1)}
}

func hashWide(k *wideKey) uint64 {
	w := func(i int) uint64 { return binary.LittleEndian.Uint64(k[i*8:]) }
	hi, lo := bits.Mul64(w(0)^0xa0761d6478bd642f, w(1)^0xe7037ed1a0b428db)
	h := hi ^ lo
	hi, lo = bits.Mul64(h^w(2)^0x8ebc6af09c88c6e3, w(3)^0x589965cc75374cc3)
	h = hi ^ lo
	hi, lo = bits.Mul64(h^w(4)^0x1d8e4e27c47d124f, 0x589965cc75374cc3)
	return hi ^ lo
}

func (t *wideTable) add(k *wideKey, c topn.Counters) bool {
	h := hashWide(k)
	tag := tagOf(h)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.tag == 0 {
			s.key, s.c, s.tag = *k, c, tag
			t.n++
			if t.n*2 > len(t.slots) {
				t.grow()
			}
			return true
		}
		if s.tag == tag && s.key == *k {
			s.c.Add(c)
			return false
		}
	}
}

func (t *wideTable) grow() {
	old := t.slots
	t.slots = make([]wideSlot, 2*len(old))
	t.mask = uint64(len(t.slots) - 1)
	t.n = 0
	for i := range old {
		if old[i].tag != 0 {
			for j := hashWide(&old[i].key) & t.mask; ; j = (j + 1) & t.mask {
				if t.slots[j].tag == 0 {
					t.slots[j] = old[i]
					t.n++
					break
				}
			}
		}
	}
}

// drillTable is one composite table of a partition: dimTable's discipline on wide keys.
type drillTable struct {
	counts  *wideTable
	evicted topn.Counters
}

func newDrillTable(sizeHint int) *drillTable { return &drillTable{counts: newWideTable(sizeHint)} }

func (t *drillTable) add(k *wideKey, c topn.Counters, maxKeys int) int {
	if !t.counts.add(k, c) {
		return 0
	}
	if t.counts.n > maxKeys {
		return 1 + t.compact(maxKeys/2)
	}
	return 1
}

func (t *drillTable) len() int { return t.counts.n }

func (t *drillTable) compact(keep int) int {
	before := t.counts.n
	rows := make([]wideSlot, 0, t.counts.n)
	for i := range t.counts.slots {
		if t.counts.slots[i].tag != 0 {
			rows = append(rows, t.counts.slots[i])
		}
	}
	slices.SortFunc(rows, func(a, b wideSlot) int {
		switch {
		case a.c.Bytes > b.c.Bytes:
			return -1
		case a.c.Bytes < b.c.Bytes:
			return 1
		}
		return 0
	})
	var maxEvicted topn.Counters
	for _, r := range rows[keep:] {
		maxEvicted.Max(r.c)
	}
	t.evicted.Add(maxEvicted)
	t.counts = newWideTable(2 * keep)
	for i := range rows[:keep] {
		t.counts.add(&rows[i].key, rows[i].c)
	}
	return t.counts.n - before
}

// countDrill counts one flow of application app in the minute's composite tables.
func (p *minuteAgg) countDrill(r *flow.Record, app *topn.Key, c topn.Counters, maxKeys int) int {
	var k wideKey
	copy(k[:24], app[:])
	copy(k[24:], r.SrcAddr[:])
	added := p.drill[drillAppSrcIP].add(&k, c, maxKeys)
	copy(k[24:], r.DstAddr[:])
	added += p.drill[drillAppDstIP].add(&k, c, maxKeys)
	clear(k[24:])
	binary.BigEndian.PutUint16(k[24:26], r.SrcPort)
	k[26] = r.Proto
	added += p.drill[drillAppSrcPort].add(&k, c, maxKeys)
	binary.BigEndian.PutUint16(k[24:26], r.DstPort)
	added += p.drill[drillAppDstPort].add(&k, c, maxKeys)
	copy(k[:16], r.SrcAddr[:])
	copy(k[16:], app[:])
	added += p.drill[drillIPApp].add(&k, c, maxKeys)
	copy(k[:16], r.DstAddr[:])
	added += p.drill[drillIPApp].add(&k, c, maxKeys)
	lo, hi := &r.SrcAddr, &r.DstAddr
	if addrLess(hi, lo) {
		lo, hi = hi, lo
	}
	copy(k[:16], lo[:])
	copy(k[16:32], hi[:])
	clear(k[32:])
	if *lo == *hi {
		// A flow between an address and itself is in the address's ip row,
		// its scope's total, twice (once per end, as nfdump -s ip counts it)
		// and in its app rows twice (above): its peer row counts it twice
		// too, so the peers add up to the total.
		c = c.Times(2)
	}
	return added + p.drill[drillPeer].add(&k, c, maxKeys)
}

func addrLess(a, b *flow.Addr) bool {
	ah, bh := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	if ah != bh {
		return ah < bh
	}
	return binary.BigEndian.Uint64(a[8:]) < binary.BigEndian.Uint64(b[8:])
}

// drillSpec says where the drill-down tables of a scope kind come from: for
// each of its dimensions, the composite tables whose rows it is made of.
type drillSpec struct {
	dim  topn.Dim
	from []int
}

var drillSpecs = map[topn.ScopeKind][]drillSpec{
	topn.ScopeApp: {
		{topn.DimSrcIP, []int{drillAppSrcIP}},
		{topn.DimDstIP, []int{drillAppDstIP}},
		{topn.DimIP, []int{drillAppSrcIP, drillAppDstIP}},
		{topn.DimSrcPort, []int{drillAppSrcPort}},
		{topn.DimDstPort, []int{drillAppDstPort}},
		{topn.DimPort, []int{drillAppSrcPort, drillAppDstPort}},
	},
	topn.ScopeIP: {
		{topn.DimApp, []int{drillIPApp}},
		{topn.DimPeer, []int{drillPeer}},
	},
}

// drillRows are one partition's rows of the drill-down scopes asked, by
// scope and composite table: what a pass over the composite tables gathers.
type drillRows map[topn.Scope]*[numDrill][]topn.Entry

// gatherDrill returns the rows of p's composite tables that belong to a scope
// of wanted (a pass over each table, a map lookup per row).
func gatherDrill(p *minuteAgg, wanted map[topn.Scope]bool) drillRows {
	rows := drillRows{}
	if p.drill[0] == nil {
		return rows
	}
	var apps, ips bool
	for sc := range wanted {
		apps = apps || sc.Kind == topn.ScopeApp
		ips = ips || sc.Kind == topn.ScopeIP
	}
	each := func(table int, fn func(k *wideKey) (topn.Scope, topn.Key, topn.Scope, topn.Key)) {
		t := p.drill[table]
		for i := range t.counts.slots {
			sl := &t.counts.slots[i]
			if sl.tag == 0 {
				continue
			}
			s1, k1, s2, k2 := fn(&sl.key)
			for _, x := range [2]struct {
				sc topn.Scope
				k  topn.Key
			}{{s1, k1}, {s2, k2}} {
				if x.sc.Kind == topn.ScopeAll {
					continue
				}
				if !wanted[x.sc] {
					continue
				}
				r := rows[x.sc]
				if r == nil {
					r = new([numDrill][]topn.Entry)
					rows[x.sc] = r
				}
				r[table] = append(r[table], topn.Entry{Key: x.k, Value: sl.c, Error: t.evicted})
			}
		}
	}
	appScope := func(k *wideKey) topn.Scope { return topn.Scope{Kind: topn.ScopeApp, App: topn.Key(k[:24])} }
	ipScope := func(b []byte) topn.Scope { return topn.Scope{Kind: topn.ScopeIP, IP: flow.Addr(b)} }
	if apps {
		for _, table := range []int{drillAppSrcIP, drillAppDstIP} {
			each(table, func(k *wideKey) (topn.Scope, topn.Key, topn.Scope, topn.Key) {
				var key topn.Key
				copy(key[:16], k[24:40])
				return appScope(k), key, topn.Scope{}, topn.Key{}
			})
		}
		for _, table := range []int{drillAppSrcPort, drillAppDstPort} {
			each(table, func(k *wideKey) (topn.Scope, topn.Key, topn.Scope, topn.Key) {
				var key topn.Key
				copy(key[:3], k[24:27])
				return appScope(k), key, topn.Scope{}, topn.Key{}
			})
		}
	}
	if ips {
		each(drillIPApp, func(k *wideKey) (topn.Scope, topn.Key, topn.Scope, topn.Key) {
			return ipScope(k[:16]), topn.Key(k[16:40]), topn.Scope{}, topn.Key{}
		})
		each(drillPeer, func(k *wideKey) (topn.Scope, topn.Key, topn.Scope, topn.Key) {
			var lo, hi topn.Key
			copy(lo[:16], k[:16])
			copy(hi[:16], k[16:32])
			if lo == hi { // flows between an address and itself: one peer row, counted twice (countDrill)
				return ipScope(k[:16]), hi, topn.Scope{}, topn.Key{}
			}
			return ipScope(k[:16]), hi, ipScope(k[16:32]), lo
		})
	}
	return rows
}

// drillTotal is the total of drill-down scope sc in parts: its key's rows in
// their app tables, or srcip and dstip tables (an address under both ends of
// a flow, as the ip dimension counts it). A partition that compacted the key
// away under-counts it.
func drillTotal(sc topn.Scope, parts []partRef) topn.Counters {
	var total topn.Counters
	for _, p := range parts {
		switch sc.Kind {
		case topn.ScopeApp:
			c, _ := p.t.dims[topn.DimApp].counts.get(&sc.App)
			total.Add(c)
		case topn.ScopeIP:
			k := topn.AddrKey(sc.IP)
			c, _ := p.t.dims[topn.DimSrcIP].counts.get(&k)
			total.Add(c)
			c, _ = p.t.dims[topn.DimDstIP].counts.get(&k)
			total.Add(c)
		}
	}
	return total
}

// drillScopeTable is dimension d of drill-down scope sc in minute m, as a
// query of an open minute sees it: any key has one there, top or not.
func drillScopeTable(sc topn.Scope, m *minuteAgg, parts []partRef, d topn.Dim) *topn.Table {
	rows := gatherDrill(m, map[topn.Scope]bool{sc: true})[sc]
	t := drillTables(sc, []*minuteAgg{m}, []*[numDrill][]topn.Entry{rows}, drillTotal(sc, parts))[d]
	if t == nil {
		t = &topn.Table{}
	}
	return t
}

// drillTables builds the tables of drill-down scope sc from the rows its
// minutes (one per shard) gave (rows[i] from aggs[i]), with the given total.
func drillTables(sc topn.Scope, aggs []*minuteAgg, rows []*[numDrill][]topn.Entry, total topn.Counters) map[topn.Dim]*topn.Table {
	out := map[topn.Dim]*topn.Table{}
	for _, spec := range drillSpecs[sc.Kind] {
		mg := topn.NewMerger(64)
		for i, m := range aggs {
			for _, table := range spec.from {
				ev := m.drillEvicted(table)
				var entries []topn.Entry
				if rows[i] != nil {
					entries = rows[i][table]
				}
				if len(entries) == 0 && ev.IsZero() {
					continue
				}
				mg.Add(&topn.Table{Threshold: ev, Entries: entries})
			}
		}
		t := mg.Table()
		t.Total = total
		out[spec.dim] = t
	}
	return out
}

// drillEvicted is the bound on what composite table i of m forgot; a
// minute without composite tables (restored from a checkpoint written
// without them) may have had all its traffic anywhere.
func (m *minuteAgg) drillEvicted(i int) topn.Counters {
	if m.drill[0] == nil {
		return m.total()
	}
	return m.drill[i].evicted
}

// total is the minute's traffic, all partitions.
func (m *minuteAgg) total() topn.Counters {
	var c topn.Counters
	for _, p := range m.parts {
		c.Add(p.total)
	}
	return c
}
