package aggregate

import (
	"encoding/binary"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// Checkpoints of formats 1 and 2, written by the engine before this one
// (tables per partition of exporter, protocol and, from format 2, the pair
// of interfaces; composite tables for the drill-downs), are converted on
// restore, so an upgrade loses nothing:
//
//	format 1/2: 0x01|0x02 | start (8) | section… | crc32c (4)
//	section:   nparts (uvarint) | nparts × part | (format 2) drill (1) | drill × 6 × table
//	part:      exporter (16) | proto (1) | (format 2) in_if (4 BE) | out_if (4 BE) | flags (1) |
//	           total (3 uvarint) | 7 × table (app, srcip, dstip, srcport, dstport, in_if, out_if)
//	table:     evicted (3 uvarint) | n (uvarint) | n × (key length (1) | key | counters (3 uvarint))
//
// A partition's tables feed its (exporter, protocol) partition's and, when it
// was split by interface (flags bit 0 clear), its two interface scopes'; a
// composite table feeds the drill-down table of the same key, but the
// address×application one, which this engine reads off the others.
var legacyDims = []topn.Dim{topn.DimApp, topn.DimSrcIP, topn.DimDstIP, topn.DimSrcPort, topn.DimDstPort, topn.DimInIf, topn.DimOutIf}

const legacyNoIf = 1 << 0

// legacy drill-down tables, by their index in a format 2 section
const (
	legacyAppSrcIP = iota
	legacyAppDstIP
	legacyAppSrcPort
	legacyAppDstPort
	legacyIPApp
	legacyPeer
	numLegacyDrill
)

// decodeLegacy decodes a format 1 or 2 checkpoint (body without its crc) into
// one minute per section holding every table of this engine.
func (a *Aggregator) decodeLegacy(body []byte, start int64, corrupt func(string) error) ([]*minuteAgg, error) {
	format := body[0]
	all := make([]int, 0, numSpecs)
	for i := range specs {
		all = append(all, i)
	}
	d := decoder{b: body[9:]}
	var out []*minuteAgg
	for len(d.b) > 0 {
		nparts := d.uvarint()
		if d.bad || nparts > uint64(len(d.b)/(17+3+len(legacyDims)*4)) {
			return nil, corrupt("bad partition count")
		}
		m := newMinuteAgg(all, nil, 0, nil)
		seen := map[[26]byte]bool{}
		for range nparts {
			hdr := 17
			if format == checkpointFormatV2 {
				hdr = 26
			}
			if len(d.b) < hdr {
				return nil, corrupt("truncated partition")
			}
			var id [26]byte
			copy(id[:], d.b[:hdr])
			if seen[id] {
				return nil, corrupt("duplicate partition")
			}
			seen[id] = true
			e := flow.Addr(d.b[:16])
			proto := d.b[16]
			var inIf, outIf uint32
			noIf := true
			if format == checkpointFormatV2 {
				inIf, outIf = binary.BigEndian.Uint32(d.b[17:21]), binary.BigEndian.Uint32(d.b[21:25])
				if d.b[25]&^legacyNoIf != 0 {
					return nil, corrupt("unknown partition flags")
				}
				noIf = d.b[25]&legacyNoIf != 0
			}
			d.b = d.b[hdr:]
			total := d.counters()
			eid := uint64(m.exporter(&e))
			pid := uint64(m.parts.id(eid<<8 | uint64(proto)))
			in := uint64(m.ifs.id(eid<<32 | uint64(inIf)))
			out := uint64(m.ifs.id(eid<<32 | uint64(outIf)))
			m.legacyAdd(scPart, 0, pid, 0, total, topn.Counters{})
			if !noIf {
				m.legacyAdd(scIn, 0, in, 0, total, topn.Counters{})
				m.legacyAdd(scOut, 0, out, 0, total, topn.Counters{})
				m.legacyAdd(scIn, topn.DimProto, in, uint64(proto), total, topn.Counters{})
				m.legacyAdd(scOut, topn.DimProto, out, uint64(proto), total, topn.Counters{})
			}
			for _, dim := range legacyDims {
				evicted := d.counters()
				n := d.uvarint()
				if d.bad || n > uint64(len(d.b))/4 {
					return nil, corrupt("bad key count")
				}
				m.legacyBound(scPart, dim, pid, evicted)
				if !noIf && dim != topn.DimInIf {
					m.legacyBound(scIn, dim, in, evicted)
				}
				if !noIf && dim != topn.DimOutIf {
					m.legacyBound(scOut, dim, out, evicted)
				}
				for range n {
					var k topn.Key
					if !d.key(k[:]) {
						return nil, corrupt("bad key")
					}
					c := d.counters()
					if d.bad {
						return nil, corrupt("truncated key")
					}
					v := a.legacyValue(m, dim, k)
					m.legacyAdd(scPart, dim, pid, v, c, topn.Counters{})
					if !noIf && dim != topn.DimInIf {
						m.legacyAdd(scIn, dim, in, v, c, topn.Counters{})
					}
					if !noIf && dim != topn.DimOutIf {
						m.legacyAdd(scOut, dim, out, v, c, topn.Counters{})
					}
				}
			}
			m.flowCount += total.Flows
		}
		if format == checkpointFormatV2 {
			if len(d.b) == 0 || d.b[0] > 1 {
				return nil, corrupt("bad drill-down flag")
			}
			hasDrill := d.b[0] == 1
			d.b = d.b[1:]
			for i := 0; hasDrill && i < numLegacyDrill; i++ {
				evicted := d.counters()
				n := d.uvarint()
				if d.bad || n > uint64(len(d.b))/4 {
					return nil, corrupt("bad drill-down key count")
				}
				for range n {
					var k [40]byte
					if !d.key(k[:]) {
						return nil, corrupt("bad drill-down key")
					}
					c := d.counters()
					if d.bad {
						return nil, corrupt("truncated drill-down key")
					}
					a.legacyDrill(m, i, &k, c)
				}
				a.legacyDrillBound(m, i, evicted)
			}
			if !hasDrill {
				m.legacyNoDrill()
			}
		} else {
			m.legacyNoDrill()
		}
		m.recount()
		out = append(out, m)
	}
	return out, nil
}

// key reads a length-prefixed key into dst, whose tail stays zero (keys are
// stored trimmed of trailing zeros); false when it is longer than dst or
// truncated (counters must still follow it).
func (d *decoder) key(dst []byte) bool {
	if d.bad || len(d.b) == 0 || int(d.b[0]) > len(dst) || int(d.b[0]) >= len(d.b) {
		return false
	}
	n := int(d.b[0])
	copy(dst, d.b[1:1+n])
	d.b = d.b[1+n:]
	return true
}

// legacyValue is the value in m of a legacy key of dimension dim.
func (a *Aggregator) legacyValue(m *minuteAgg, dim topn.Dim, k topn.Key) uint64 {
	switch dim {
	case topn.DimApp:
		id, _ := a.appID(k)
		return id
	case topn.DimSrcIP, topn.DimDstIP:
		ad := k.Addr()
		return m.addrValue(&ad)
	case topn.DimSrcPort, topn.DimDstPort:
		p, proto := k.Port()
		return uint64(p)<<8 | uint64(proto)
	case topn.DimInIf, topn.DimOutIf:
		e := k.Addr()
		return uint64(m.ifs.id(uint64(m.exporter(&e))<<32 | uint64(k.IfIndex())))
	}
	return 0
}

func (m *minuteAgg) legacyAdd(k scopeKind, dim topn.Dim, scope, value uint64, c, _ topn.Counters) {
	if i := specIndex(k, dim); i >= 0 {
		m.tables[i].add(scope<<valueBits|value, c)
	}
}

func (m *minuteAgg) legacyBound(k scopeKind, dim topn.Dim, scope uint64, b topn.Counters) {
	if i := specIndex(k, dim); i >= 0 && !b.IsZero() {
		t := m.tables[i]
		if scope >= uint64(len(t.scopeN)) {
			t.growScopes(int(scope))
		}
		t.evicted[scope].Add(b)
	}
}

// legacyDrill adds a row of legacy composite table i.
func (a *Aggregator) legacyDrill(m *minuteAgg, i int, k *[40]byte, c topn.Counters) {
	app := func() uint64 { id, _ := a.appID(topn.Key(k[:24])); return id }
	addrAt := func(off int) uint64 { ad := flow.Addr(k[off : off+16]); return m.addrValue(&ad) }
	switch i {
	case legacyAppSrcIP:
		m.tables[specIndex(scApp, topn.DimSrcIP)].add(app()<<valueBits|addrAt(24), c)
	case legacyAppDstIP:
		m.tables[specIndex(scApp, topn.DimDstIP)].add(app()<<valueBits|addrAt(24), c)
	case legacyAppSrcPort, legacyAppDstPort:
		d := topn.DimSrcPort
		if i == legacyAppDstPort {
			d = topn.DimDstPort
		}
		v := uint64(binary.BigEndian.Uint16(k[24:26]))<<8 | uint64(k[26])
		m.tables[specIndex(scApp, d)].add(app()<<valueBits|v, c)
	case legacyPeer:
		lo, hi := addrAt(0), addrAt(16)
		if hi < lo {
			lo, hi = hi, lo
		}
		m.tables[specIndex(scNone, topn.DimPeer)].add(lo<<32|hi, c)
	}
}

// legacyDrillBound carries a legacy composite table's bound, which was the
// whole table's: to every scope of its drill-down table.
func (a *Aggregator) legacyDrillBound(m *minuteAgg, i int, b topn.Counters) {
	d := map[int]topn.Dim{legacyAppSrcIP: topn.DimSrcIP, legacyAppDstIP: topn.DimDstIP,
		legacyAppSrcPort: topn.DimSrcPort, legacyAppDstPort: topn.DimDstPort}
	switch dim, ok := d[i]; {
	case ok:
		m.tables[specIndex(scApp, dim)].base.Add(b)
	case i == legacyPeer:
		m.tables[specIndex(scNone, topn.DimPeer)].base.Add(b)
	}
}

// legacyNoDrill marks a minute restored without composite tables: any of
// its traffic may be anywhere in the drill-down tables, so their bounds are
// its total.
func (m *minuteAgg) legacyNoDrill() {
	var total topn.Counters
	m.tables[specIndex(scPart, 0)].each(func(_ uint64, c topn.Counters) { total.Add(c) })
	for _, d := range []topn.Dim{topn.DimSrcIP, topn.DimDstIP, topn.DimSrcPort, topn.DimDstPort} {
		m.tables[specIndex(scApp, d)].base.Add(total)
	}
	m.tables[specIndex(scNone, topn.DimPeer)].base.Add(total)
}
