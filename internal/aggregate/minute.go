package aggregate

import (
	"encoding/binary"
	"math/bits"
	"unsafe"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// idDict gives dense ids to uint64 keys (partitions, interfaces): a small
// open-addressing table, cache-resident on any real network.
type idDict struct {
	slots []idSlot
	shift uint8
	keys  []uint64 // by id
}

type idSlot struct {
	key uint64 // key+1; 0: empty
	id  uint32
}

func (d *idDict) id(k uint64) uint32 {
	if d.slots == nil {
		d.slots, d.shift = make([]idSlot, 16), shiftFor(16)
	}
	stored := k + 1
	mask := uint64(len(d.slots) - 1)
	for i := (stored * 0x9e3779b97f4a7c15) >> d.shift; ; i = (i + 1) & mask {
		s := &d.slots[i]
		if s.key == stored {
			return s.id
		}
		if s.key == 0 {
			id := uint32(len(d.keys))
			d.keys = append(d.keys, k)
			s.key, s.id = stored, id
			if 2*len(d.keys) > len(d.slots) {
				d.grow()
			}
			return id
		}
	}
}

func (d *idDict) grow() {
	old := d.slots
	d.slots = make([]idSlot, 2*len(old))
	d.shift = uint8(64 - bits.TrailingZeros(uint(len(d.slots))))
	mask := uint64(len(d.slots) - 1)
	for _, s := range old {
		if s.key == 0 {
			continue
		}
		for i := (s.key * 0x9e3779b97f4a7c15) >> d.shift; ; i = (i + 1) & mask {
			if d.slots[i].key == 0 {
				d.slots[i] = s
				break
			}
		}
	}
}

func (d *idDict) bytes() int64 { return int64(cap(d.slots))*16 + int64(cap(d.keys))*8 }

// Address values: 32 bits. An IPv4 address is its own value, unless it is in
// 240.0.0.0/4 (reserved, never routed), whose values are those of the
// minute's IPv6 dictionary: 0xf0000000 | id. So an IPv4 flow, the common
// case, needs no dictionary at all.
const (
	v6Tag   = 0xf0000000
	maxV6ID = 1<<28 - 1
)

var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// minuteAgg is one minute of one shard: the tables it counts and the
// dictionaries their keys refer to.
type minuteAgg struct {
	tables [numSpecs]*table // nil: another shard's, or not kept
	exps   []flow.Addr      // by exporter id
	expIDs map[flow.Addr]uint32
	parts  idDict // exporter id << 8 | protocol
	ifs    idDict // exporter id << 32 | ifIndex
	v6     []flow.Addr
	v6IDs  map[flow.Addr]uint32
	// v6Full: the IPv6 dictionary is full (2^28 addresses in a minute):
	// further addresses share the last value, counted under it (a bound).
	v6Full bool
	// flowCount is the flows counted: it only grows, so an unchanged count
	// means an unchanged minute (checkpoints skip it).
	flowCount uint64
	// ends is what enrichment said of each address in this minute, the
	// country and AS tables' values to fold its rows into (spec.elides),
	// until direct: then those tables count every flow, as a checkpoint
	// restores them and as pending minutes hold them (materialize).
	ends   endDict
	direct bool
	keys   int       // keys held by all its tables
	bytes  int64     // memory held, tables and dictionaries
	keyBuf []uint64  // count's keys of a batch
	gate   *growGate // its shard's budget, while it is open in the shard (nil: restored, merged)
	// the exporter of the previous record: records come in runs of one datagram
	lastExp   flow.Addr
	lastExpID uint32
	haveLast  bool
}

// newMinuteAgg makes a shard's minute with the tables own, each sized like
// its table in prev (the shard's previous minute, may be nil): growing from
// 16 slots to a busy minute's size is a dozen rehashes per table, all at the
// start of the minute, while the previous one still takes late flows. The
// sizes are scaled down to fit room bytes: after a flood of sources, the
// previous minute's sizes are the whole budget, and presized to them the
// new minute left nothing to count in but empty slots.
func newMinuteAgg(own []int, prev *minuteAgg, room int64, gate *growGate) *minuteAgg {
	m := &minuteAgg{expIDs: map[flow.Addr]uint32{}, v6IDs: map[flow.Addr]uint32{}, gate: gate}
	var hints [numSpecs]int
	var want int64
	for _, i := range own {
		hints[i] = 8
		if prev != nil && prev.tables[i] != nil {
			hints[i] = max(hints[i], prev.tables[i].n)
		}
		want += int64(slotsFor(hints[i])) * slotBytes
	}
	for _, i := range own {
		hint := hints[i]
		if want > room {
			hint = max(8, int(float64(hint)*float64(max(room, 0))/float64(want)))
		}
		m.newTable(i, hint)
	}
	m.recount()
	return m
}

// newTable makes the minute's table i, sized for hint keys.
func (m *minuteAgg) newTable(i, hint int) *table {
	t := newTable(hint, specs[i].kind != scNone)
	t.gate = m.gate
	if spills[i] != nil {
		t.dropped = func(k uint64, c topn.Counters) {
			if !m.direct {
				m.fold(i, k, c)
			}
		}
	}
	m.tables[i] = t
	return t
}

// leaveShard detaches a minute swapped out of its shard from the shard's
// budget: its tables no longer grow against it.
func (m *minuteAgg) leaveShard() {
	m.gate = nil
	for _, t := range m.tables {
		if t != nil {
			t.gate = nil
		}
	}
}

// recount sums the keys and bytes held.
func (m *minuteAgg) recount() {
	m.keys, m.bytes = 0, m.parts.bytes()+m.ifs.bytes()+int64(cap(m.exps)+cap(m.v6))*40+m.ends.bytes()
	for _, t := range m.tables {
		if t != nil {
			m.keys += t.n
			m.bytes += t.bytes()
		}
	}
}

func (m *minuteAgg) exporter(a *flow.Addr) uint32 {
	if m.haveLast && *a == m.lastExp {
		return m.lastExpID
	}
	id, ok := m.expIDs[*a]
	if !ok {
		id = uint32(len(m.exps))
		m.exps = append(m.exps, *a)
		m.expIDs[*a] = id
	}
	m.lastExp, m.lastExpID, m.haveLast = *a, id, true
	return id
}

// addrValue is the 32-bit value of an address (see v6Tag).
func (m *minuteAgg) addrValue(a *flow.Addr) uint64 {
	if [12]byte(a[:12]) == v4Prefix {
		if v := binary.BigEndian.Uint32(a[12:]); v&v6Tag != v6Tag {
			return uint64(v)
		}
	}
	id, ok := m.v6IDs[*a]
	if !ok {
		if len(m.v6) > maxV6ID {
			m.v6Full = true
			return v6Tag | maxV6ID
		}
		id = uint32(len(m.v6))
		m.v6 = append(m.v6, *a)
		m.v6IDs[*a] = id
	}
	return v6Tag | uint64(id)
}

// addr is the address of a value.
func (m *minuteAgg) addr(v uint64) flow.Addr {
	if v&v6Tag != v6Tag {
		var a flow.Addr
		copy(a[:12], v4Prefix[:])
		binary.BigEndian.PutUint32(a[12:], uint32(v))
		return a
	}
	if id := v &^ v6Tag; id < uint64(len(m.v6)) {
		return m.v6[id]
	}
	return flow.Addr{}
}

// partScope is what a partition id stands for: exporter and protocol.
func (m *minuteAgg) partScope(id uint64) (flow.Addr, uint8) {
	k := m.parts.keys[id]
	return m.exps[k>>8], uint8(k)
}

// ifOf is what an interface id stands for: exporter and ifIndex.
func (m *minuteAgg) ifOf(id uint64) (flow.Addr, uint32) {
	k := m.ifs.keys[id]
	return m.exps[k>>32], uint32(k)
}

// keyOf turns a value of dimension d into the key the API shows.
func (m *minuteAgg) keyOf(d topn.Dim, v uint64, apps appKeys) topn.Key {
	switch d {
	case topn.DimSrcIP, topn.DimDstIP, topn.DimIP, topn.DimPeer:
		return topn.AddrKey(m.addr(v))
	case topn.DimSrcPort, topn.DimDstPort, topn.DimPort:
		if v>>8 == portRange {
			return topn.PortRangeKey(uint8(v))
		}
		return topn.PortKey(uint16(v>>8), uint8(v))
	case topn.DimApp:
		return apps.appKey(uint16(v))
	case topn.DimAppGroup:
		return apps.groupKey(v)
	case topn.DimProto:
		return topn.ProtoKey(uint8(v))
	case topn.DimInIf, topn.DimOutIf:
		e, i := m.ifOf(v)
		return topn.IfKey(e, i)
	case topn.DimSrcCountry, topn.DimDstCountry, topn.DimCountry:
		return topn.CountryKey([2]byte{byte(v >> 8), byte(v)})
	case topn.DimSrcAS, topn.DimDstAS, topn.DimAS:
		if v>>32 != 0 {
			return topn.SpecialASKey(topn.SpecialCode(uint8(v >> 32)))
		}
		return topn.ASKey(uint32(v))
	}
	return topn.Key{}
}

// appKeys names application ids.
type appKeys interface {
	appKey(id uint16) topn.Key
	groupKey(v uint64) topn.Key
}

// portRange is the port value of the dynamic range's row (topn.PortRangeKey):
// one past the ports, so that it is none of them.
const portRange = 1 << 16

// flowFields are one flow's fields (field order) and counters.
type flowFields struct {
	f [numFields]uint64
	c topn.Counters
}

// fields fills ff from r: only the fields in need (a bit per field).
func (m *minuteAgg) fields(r *flow.Record, need uint32, app uint16, ff *flowFields) {
	f := &ff.f
	ff.c = topn.Counters{Bytes: r.Bytes, Packets: r.Packets, Flows: 1}
	var e uint64
	if need&(1<<fPart|1<<fIn|1<<fOut) != 0 {
		e = uint64(m.exporter(&r.Exporter))
	}
	if need&(1<<fPart) != 0 {
		f[fPart] = uint64(m.parts.id(e<<8 | uint64(r.Proto)))
	}
	if need&(1<<fIn) != 0 {
		f[fIn] = uint64(m.ifs.id(e<<32 | uint64(r.InIf)))
	}
	if need&(1<<fOut) != 0 {
		f[fOut] = uint64(m.ifs.id(e<<32 | uint64(r.OutIf)))
	}
	f[fApp] = uint64(app)
	f[fProto] = uint64(r.Proto)
	if need&(1<<fSrc|1<<fDst|1<<fPeer) != 0 {
		f[fSrc], f[fDst] = m.addrValue(&r.SrcAddr), m.addrValue(&r.DstAddr)
		lo, hi := f[fSrc], f[fDst]
		if hi < lo {
			lo, hi = hi, lo
		}
		f[fPeer] = lo<<32 | hi
	}
	f[fSrcPort] = uint64(r.SrcPort)<<8 | uint64(r.Proto)
	f[fDstPort] = uint64(r.DstPort)<<8 | uint64(r.Proto)
	f[fSrcPortS], f[fDstPortS] = f[fSrcPort], f[fDstPort]
	if r.SrcPort >= topn.DynamicPorts {
		f[fSrcPortS] = portRange<<8 | uint64(r.Proto)
	}
	if r.DstPort >= topn.DynamicPorts {
		f[fDstPortS] = portRange<<8 | uint64(r.Proto)
	}
	f[fSrcCC] = uint64(r.SrcCountry[0])<<8 | uint64(r.SrcCountry[1])
	f[fDstCC] = uint64(r.DstCountry[0])<<8 | uint64(r.DstCountry[1])
	f[fSrcAS], f[fDstAS] = asValue(r.SrcAS, r.SrcCountry), asValue(r.DstAS, r.DstCountry)
}

// asValue is an AS field's value: the AS number, or for an address of a
// special range (a lower-case marker in place of its country) the marker
// number above it (topn.SpecialIndex; values have valueBits), so that
// private space is not "unknown".
func asValue(as uint32, cc [2]byte) uint64 {
	if as == 0 && cc[0] >= 'a' {
		return uint64(topn.SpecialIndex(cc)) << 32
	}
	return uint64(as)
}

// count adds a batch of one minute's flows to table i, table-major: one
// table's probes one after the other, its slots and code hot, rather than
// every table for one flow. It returns the keys added and calls over for a
// scope past maxKeys.
func (m *minuteAgg) count(i int, ffs []flowFields, maxKeys int, over func(t *table, scope uint64)) int {
	if specs[i].elides() && !m.direct {
		return 0 // folded from the address tables (spec.elides)
	}
	t := m.tables[i]
	sf, vf := specs[i].scope, specs[i].value
	keys := m.keyBuf[:len(ffs)]
	for j := range ffs {
		f := &ffs[j].f
		keys[j] = f[sf]<<valueBits | f[vf]
	}
	// A table past the caches gets its home slots asked for first
	// (prefetch), so that the misses of a batch overlap rather than come
	// one after the other: BenchmarkAdd/default, 2,000-2,200 → 1,480-1,670
	// cpu-ns/flow. A small one would only pay the extra pass.
	if len(t.slots) >= prefetchSlots {
		mask := uint64(len(t.slots) - 1)
		for _, k := range keys {
			prefetch(uintptr(unsafe.Pointer(&t.slots[t.home(k+1)&mask])))
		}
		// A flooded table's door too (admit): it is asked for most keys.
		if t.door != nil {
			for _, k := range keys {
				prefetch(uintptr(unsafe.Pointer(&t.door[t.doorWord(k+1)])))
			}
		}
	}
	elides := specs[i].elides()
	spill := spills[i] != nil && !m.direct
	added := 0
	for j, k := range keys {
		if elides {
			if valueOf(k) == 0 {
				continue // unknown: the zero row is derived (spec.elides)
			}
			t.addNonzero(scopeOf(k), ffs[j].c)
		}
		// add's probe, inlined: a hit (most updates) costs no call.
		stored := k + 1
		mask := uint64(len(t.slots) - 1)
		c := &ffs[j].c
		for x := t.home(stored); ; x = (x + 1) & mask {
			s := &t.slots[x]
			if s.key == stored {
				s.c.Bytes += c.Bytes
				s.c.Packets += c.Packets
				s.c.Flows += c.Flows
				break
			}
			if s.key == 0 {
				if !t.placeNew(x, stored, *c) {
					// Turned away (admit): its end's country and AS
					// rows count it now, as no row will fold it.
					if spill {
						added += m.spill(i, scopeOf(k), endOf(&ffs[j].f, specs[i].value), *c)
					}
					break
				}
				added++
				if sc := t.scope(k); int(t.scopeN[sc]) > maxKeys && specs[i].dim != 0 {
					over(t, sc)
				}
				break
			}
		}
	}
	return added
}

// prefetchSlots is the size from which a table is prefetched: 8,192 slots,
// 256 KiB, a tenth of the L2 cache of this machine's cores.
const prefetchSlots = 1 << 13

// largest is the table holding the most keys, and its index: what
// compaction can free (a presized table's empty slots it cannot).
func (m *minuteAgg) largest() (*table, int) {
	var big *table
	bi := -1
	for i, t := range m.tables {
		if t != nil && specs[i].dim != 0 && (big == nil || t.n > big.n) {
			big, bi = t, i
		}
	}
	return big, bi
}

// find is the id of k, without adding it.
func (d *idDict) find(k uint64) (uint32, bool) {
	if d.slots == nil {
		return 0, false
	}
	stored := k + 1
	mask := uint64(len(d.slots) - 1)
	for i := (stored * 0x9e3779b97f4a7c15) >> d.shift; ; i = (i + 1) & mask {
		s := &d.slots[i]
		if s.key == stored {
			return s.id, true
		}
		if s.key == 0 {
			return 0, false
		}
	}
}

// translator re-reads one minute's ids through another's dictionaries.
type translator struct {
	dst, src *minuteAgg
}

func (x translator) exporter(eid uint64) uint64 { return uint64(x.dst.exporter(&x.src.exps[eid])) }

func (x translator) part(pid uint64) uint64 {
	k := x.src.parts.keys[pid]
	return uint64(x.dst.parts.id(x.exporter(k>>8)<<8 | k&0xff))
}

func (x translator) iface(iid uint64) uint64 {
	k := x.src.ifs.keys[iid]
	return uint64(x.dst.ifs.id(x.exporter(k>>32)<<32 | k&0xffffffff))
}

func (x translator) addr(v uint64) uint64 {
	if v&v6Tag != v6Tag {
		return v
	}
	a := x.src.addr(v)
	return x.dst.addrValue(&a)
}

// scope translates a scope id of table kind k.
func (x translator) scope(k scopeKind, sc uint64) uint64 {
	switch k {
	case scPart:
		return x.part(sc)
	case scIn, scOut:
		return x.iface(sc)
	}
	return sc // applications' ids are global; the peer table has one scope
}

// value translates a value of field f.
func (x translator) value(f field, v uint64) uint64 {
	switch f {
	case fSrc, fDst:
		return x.addr(v)
	case fIn, fOut:
		return x.iface(v)
	case fPeer:
		lo, hi := x.addr(v>>32), x.addr(v&0xffffffff)
		if hi < lo {
			lo, hi = hi, lo
		}
		return lo<<32 | hi
	}
	return v
}

// mergeTable adds table i of src into m's, through m's dictionaries, with
// its bounds: restoring a checkpoint into the shard that owns the table now,
// and late flows of a minute waiting for the store. Unbounded: the shard's
// budget compacts it on its next batch if need be.
func (m *minuteAgg) mergeTable(src *minuteAgg, i int, maxKeys int) {
	st := src.tables[i]
	if st == nil {
		return
	}
	st.settle()
	dt := m.tables[i]
	if dt == nil {
		dt = m.newTable(i, st.n)
	}
	x := translator{dst: m, src: src}
	sp := specs[i]
	st.each(func(k uint64, c topn.Counters) {
		if sp.kind == scNone {
			dt.add(x.value(sp.value, k), c)
			return
		}
		dt.add(x.scope(sp.kind, scopeOf(k))<<valueBits|x.value(sp.value, valueOf(k)), c)
	})
	dt.base.Add(st.base)
	for sc, nz := range st.nonzero {
		if !nz.IsZero() {
			dt.addNonzero(x.scope(sp.kind, uint64(sc)), nz)
		}
	}
	for sc, e := range st.evicted {
		if e.IsZero() {
			continue
		}
		d := uint64(sc)
		if sp.kind != scNone {
			if (sp.kind == scPart && sc >= len(src.parts.keys)) || ((sp.kind == scIn || sp.kind == scOut) && sc >= len(src.ifs.keys)) {
				continue
			}
			d = x.scope(sp.kind, d)
		}
		if d >= uint64(len(dt.evicted)) {
			dt.growScopes(int(d))
		}
		dt.evicted[d].Add(e)
	}
}

// mergeFrom adds every table of src (the same shard's tables) into m.
// Both count their countries and ASes directly first: a row of src folded
// already would be folded again in m.
func (m *minuteAgg) mergeFrom(src *minuteAgg, maxKeys int) {
	m.materialize()
	src.materialize()
	for i := range src.tables {
		m.mergeTable(src, i, maxKeys)
	}
	m.flowCount += src.flowCount
	m.recount()
}

// endDict is a minute's ends: address value -> end value (endOf), the
// first a minute saw. An open-addressing table of 16-byte slots.
type endDict struct {
	slots []endSlot
	shift uint8
	n     int
}

type endSlot struct {
	key uint64 // address value plus one; 0: empty
	val uint64
}

func (d *endDict) bytes() int64 { return int64(cap(d.slots)) * 16 }

func (d *endDict) home(stored uint64) uint64 { return (stored * 0x9e3779b97f4a7c15) >> d.shift }

func (d *endDict) get(k uint64) (uint64, bool) {
	if d.n == 0 {
		return 0, false
	}
	stored := k + 1
	mask := uint64(len(d.slots) - 1)
	for i := d.home(stored); ; i = (i + 1) & mask {
		s := &d.slots[i]
		if s.key == stored {
			return s.val, true
		}
		if s.key == 0 {
			return 0, false
		}
	}
}

// put records v for k unless k has a value, and reports whether k's value
// is now v: false when the minute saw k with another.
func (d *endDict) put(k, v uint64) bool {
	if d.slots == nil {
		d.slots, d.shift = make([]endSlot, 1024), shiftFor(1024)
	}
	stored := k + 1
	mask := uint64(len(d.slots) - 1)
	for i := d.home(stored); ; i = (i + 1) & mask {
		s := &d.slots[i]
		if s.key == stored {
			return s.val == v
		}
		if s.key == 0 {
			s.key, s.val = stored, v
			if d.n++; 2*d.n > len(d.slots) {
				d.grow()
			}
			return true
		}
	}
}

func (d *endDict) grow() {
	old := d.slots
	d.slots = make([]endSlot, 2*len(old))
	d.shift = shiftFor(len(d.slots))
	mask := uint64(len(d.slots) - 1)
	for _, s := range old {
		if s.key == 0 {
			continue
		}
		for i := d.home(s.key); ; i = (i + 1) & mask {
			if d.slots[i].key == 0 {
				d.slots[i] = s
				break
			}
		}
	}
}

// endOf is the end value of a flow's source (f fSrc) or destination
// (fDst): its AS value << 16 | its country, what the fold needs of it.
func endOf(f *[numFields]uint64, end field) uint64 {
	if end == fSrc {
		return f[fSrcAS]<<16 | f[fSrcCC]
	}
	return f[fDstAS]<<16 | f[fDstCC]
}

// putEnds records the ends of a batch's flows, and reports whether the
// minute must count its countries and ASes directly (materialize): an
// address seen with two countries or ASes in one minute (a database
// reloaded, an exporter's own AS for some flows only), which a fold by
// address would misattribute, or more addresses than limit, the
// dictionary's share of the memory budget (a flood of sources).
func (m *minuteAgg) putEnds(ffs []flowFields, limit int) bool {
	d := &m.ends
	if d.slots != nil && len(d.slots) >= prefetchSlots {
		mask := uint64(len(d.slots) - 1)
		for j := range ffs {
			f := &ffs[j].f
			prefetch(uintptr(unsafe.Pointer(&d.slots[d.home(f[fSrc]+1)&mask])))
			prefetch(uintptr(unsafe.Pointer(&d.slots[d.home(f[fDst]+1)&mask])))
		}
	}
	for j := range ffs {
		f := &ffs[j].f
		if !d.put(f[fSrc], endOf(f, fSrc)) || !d.put(f[fDst], endOf(f, fDst)) {
			return true
		}
	}
	return d.n > limit
}

// spill counts c under end value e in the country and AS tables of address
// table i's end, in scope sc, and returns the keys it added. Unknown
// values (0) are left to the zero row (spec.elides).
func (m *minuteAgg) spill(i int, sc, e uint64, c topn.Counters) int {
	return spillTo(&m.tables, i, sc, e, c)
}

func spillTo(tabs *[numSpecs]*table, i int, sc, e uint64, c topn.Counters) int {
	added := 0
	for x, v := range [2]uint64{e & 0xffff, e >> 16} {
		t := tabs[spills[i][x]]
		if v == 0 || t == nil {
			continue
		}
		t.addNonzero(sc, c)
		if t.add(sc<<valueBits|v, c) {
			added++
		}
	}
	return added
}

// fold counts row k of address table i, whose counters are c, in its end's
// country and AS tables, by what the minute's ends say of its address.
func (m *minuteAgg) fold(i int, k uint64, c topn.Counters) int {
	if e, ok := m.ends.get(valueOf(k)); ok {
		return m.spill(i, scopeOf(k), e, c)
	}
	return 0
}

// materialize folds every address row into the country and AS tables,
// which from then on count each flow themselves (direct): when the minute
// leaves the shards (swapClosed), so that what close and checkpoints read
// is whole and a pending minute is never changed under a query, and when
// putEnds says a fold would be wrong or too big.
func (m *minuteAgg) materialize() {
	if m.direct {
		return
	}
	for i, sp := range spills {
		if t := m.tables[i]; sp != nil && t != nil {
			t.each(func(k uint64, c topn.Counters) { m.fold(i, k, c) })
		}
	}
	m.direct, m.ends = true, endDict{}
	m.recount()
}

// withDerived is m as a query of scope kind k reads it: the kind's country
// and AS tables as copies with the address rows folded in (of scope only
// alone, when >= 0), m unchanged.
func (m *minuteAgg) withDerived(k scopeKind, only int64) *minuteAgg {
	if m == nil || m.direct || m.ends.n == 0 {
		return m
	}
	c := *m
	for i, sp := range spills {
		t := m.tables[i]
		if sp == nil || t == nil || specs[i].kind != k {
			continue
		}
		for _, j := range sp {
			if c.tables[j] == m.tables[j] && m.tables[j] != nil {
				c.tables[j] = m.tables[j].clone()
			}
		}
		t.each(func(key uint64, cn topn.Counters) {
			if only < 0 || scopeOf(key) == uint64(only) {
				c.fold(i, key, cn)
			}
		})
	}
	return &c
}
