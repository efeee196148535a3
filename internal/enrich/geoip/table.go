package geoip

import (
	"encoding/binary"

	"github.com/tmsd/tmsd/internal/flow"
)

// value is what an address range answers, packed: the country code in bits
// 0-15 (first letter low), the AS number in bits 16-47, and for a special
// range its sp* index in bits 48-55 (then no country code and no AS).
type value uint64

const (
	ccBits  value = 0xffff
	asBits  value = 0xffffffff << 16
	spShift       = 48
)

func pack(cc [2]byte, as uint32) value {
	return value(cc[0]) | value(cc[1])<<8 | value(as)<<16
}

func (v value) cc() [2]byte   { return [2]byte{byte(v), byte(v >> 8)} }
func (v value) as() uint32    { return uint32(v >> 16) }
func (v value) special() bool { return v>>spShift != 0 }

// spValue is the answer for each special range: its marker as the country.
var spValue = func() (t [spMore]value) {
	for sp := spPrivate; sp < spMore; sp++ {
		t[sp] = pack(spMarker[sp], 0) | value(sp)<<spShift
	}
	return t
}()

// u128 is an IPv6 address as a number.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// table is a database flattened: the whole IPv4 space and the whole IPv6
// space each cut into ranges, sorted by start, a range running to the next
// one's start, the first starting at 0 (unknown addresses are ranges of
// value 0). A lookup reads the index entry of the address's /16 (IPv6: its
// /20 in 2000::/4), which is the value itself when one range covers the
// /16, or else the ranges that meet it, binary-searched; a range's value
// is beside its start, in the cache line the search ends on.
//
// The cache (cache.go) answers most addresses before this; what reaches
// the table is the Zipf tail, random addresses whose loads miss the CPU
// caches, so the design counts dependent loads: one for a /16 one range
// covers (55 % of them in the embedded database), else the index, then
// the search, ending on the line that holds the value. Figures, ns per
// record (both ends), BenchmarkEnrich's workload without the cache: this
// table 106-135 (BenchmarkEnrichNoCache); a binary search of the whole
// IPv4 array, no index, 260-445 (BenchmarkEnrichNoIndex, IPv4 ends only);
// a MaxMind DB lookup per end with maxminddb-golang, 1,124-1,382
// (BenchmarkEnrichReader).
type table struct {
	e4 []span4
	i4 []uint64 // 1<<16, by /16: idxDirect|value, or the first and last entry that meet it

	e6 []span6
	i6 []uint64 // 1<<16, the /20s of 2000::/4, the same way
}

type span4 struct{ start, vlo, vhi uint32 }

type span6 struct {
	start u128
	v     value
}

func (e *span4) value() value { return value(e.vhi)<<32 | value(e.vlo) }

const idxDirect = 1 << 63

// lookup answers one address.
func (t *table) lookup(a *flow.Addr) value {
	hi := binary.BigEndian.Uint64(a[:8])
	lo := binary.BigEndian.Uint64(a[8:])
	if hi == 0 && lo>>32 == 0xffff { // IPv4, the common case
		return t.lookup4(uint32(lo))
	}
	return t.lookup6(hi, lo)
}

// lookup6 answers an address that is not IPv4-mapped.
func (t *table) lookup6(hi, lo uint64) value {
	sp, x, v4 := classify6(hi, lo)
	switch {
	case v4:
		return t.lookup4(x)
	case sp != spNone:
		return spValue[sp]
	case hi|lo == 0:
		return 0
	}
	return t.find6(hi, lo)
}

func (t *table) lookup4(x uint32) value {
	if sp := special4(x); sp != spNone {
		return spValue[sp]
	}
	return t.find4(x)
}

// find4 is the value of the range holding x.
func (t *table) find4(x uint32) value {
	e := t.i4[x>>16]
	if e&idxDirect != 0 {
		return value(e &^ idxDirect)
	}
	s := t.e4[uint32(e) : e>>32+1]
	// The last start <= x; s[0]'s holds.
	base, n := 0, len(s)
	for n > 1 {
		half := n >> 1
		if s[base+half].start <= x {
			base += half
		}
		n -= half
	}
	return s[base].value()
}

func (t *table) find6(xh, xl uint64) value {
	s := t.e6
	if xh>>60 == 2 {
		e := t.i6[xh>>44&0xffff]
		if e&idxDirect != 0 {
			return value(e &^ idxDirect)
		}
		s = s[uint32(e) : e>>32+1]
	} // else no global unicast: rare, the whole array
	base, n := 0, len(s)
	for n > 1 {
		half := n >> 1
		if m := s[base+half].start; m.hi < xh || m.hi == xh && m.lo <= xl {
			base += half
		}
		n -= half
	}
	return s[base].v
}

// ranges counts the table's ranges, IPv4 and IPv6.
func (t *table) ranges() int { return len(t.e4) + len(t.e6) }

// flat4 and flat6 are the table's ranges again, as starts and values.
func (t *table) flat4() ([]uint32, []value) {
	s, v := make([]uint32, len(t.e4)), make([]value, len(t.e4))
	for i := range t.e4 {
		s[i], v[i] = t.e4[i].start, t.e4[i].value()
	}
	return s, v
}

func (t *table) flat6() ([]u128, []value) {
	s, v := make([]u128, len(t.e6)), make([]value, len(t.e6))
	for i, e := range t.e6 {
		s[i], v[i] = e.start, e.v
	}
	return s, v
}

// newTable indexes sorted ranges (s4[0] == 0, s6[0] == ::).
func newTable(s4 []uint32, v4 []value, s6 []u128, v6 []value) *table {
	t := &table{e4: make([]span4, len(s4)), e6: make([]span6, len(s6)),
		i4: make([]uint64, 1<<16), i6: make([]uint64, 1<<16)}
	for i, s := range s4 {
		t.e4[i] = span4{s, uint32(v4[i]), uint32(v4[i] >> 32)}
	}
	for i, s := range s6 {
		t.e6[i] = span6{s, v6[i]}
	}
	// The entry holding each /16's first address, then its last.
	first := 0
	for k := range 1 << 16 {
		for first+1 < len(s4) && s4[first+1] <= uint32(k)<<16 {
			first++
		}
		last := first
		for last+1 < len(s4) && s4[last+1] <= uint32(k)<<16|0xffff {
			last++
		}
		t.i4[k] = index(first, last, v4[first])
	}
	first = 0
	for k := range 1 << 16 {
		a := u128{2<<60 | uint64(k)<<44, 0}
		for first+1 < len(s6) && !a.less(s6[first+1]) {
			first++
		}
		end := u128{a.hi | (1<<44 - 1), ^uint64(0)}
		last := first
		for last+1 < len(s6) && !end.less(s6[last+1]) {
			last++
		}
		t.i6[k] = index(first, last, v6[first])
	}
	return t
}

func index(first, last int, v value) uint64 {
	if first == last {
		return idxDirect | uint64(v)
	}
	return uint64(last)<<32 | uint64(first)
}

// emptyTable answers 0 everywhere.
func emptyTable() *table { return newTable([]uint32{0}, []value{0}, []u128{{}}, []value{0}) }

// ranges4 and ranges6 collect a database's networks, in address order, into
// the contiguous ranges of a table, joining neighbours of equal value.
type ranges4 struct {
	s    []uint32
	v    []value
	next uint64 // the first address not covered yet
}

func (r *ranges4) push(s uint32, v value) {
	if n := len(r.s); n > 0 && r.s[n-1] == s {
		r.s, r.v = r.s[:n-1], r.v[:n-1]
	}
	if n := len(r.v); n > 0 && r.v[n-1] == v {
		return
	}
	r.s, r.v = append(r.s, s), append(r.v, v)
}

// add covers [start, end]; false when it starts before the last one ended.
func (r *ranges4) add(start, end uint32, v value) bool {
	if uint64(start) < r.next {
		return false
	}
	if uint64(start) > r.next || len(r.s) == 0 {
		r.push(uint32(r.next), 0)
	}
	r.push(start, v)
	r.next = uint64(end) + 1
	return true
}

func (r *ranges4) done() ([]uint32, []value) {
	if r.next <= 0xffffffff {
		r.push(uint32(r.next), 0)
	}
	return r.s, r.v
}

type ranges6 struct {
	s    []u128
	v    []value
	next u128
	full bool // the last range ran to the end of the space
}

func (r *ranges6) push(s u128, v value) {
	if n := len(r.s); n > 0 && r.s[n-1] == s {
		r.s, r.v = r.s[:n-1], r.v[:n-1]
	}
	if n := len(r.v); n > 0 && r.v[n-1] == v {
		return
	}
	r.s, r.v = append(r.s, s), append(r.v, v)
}

func (r *ranges6) add(start, end u128, v value) bool {
	if r.full || start.less(r.next) {
		return false
	}
	if r.next.less(start) || len(r.s) == 0 {
		r.push(r.next, 0)
	}
	r.push(start, v)
	if end.lo == ^uint64(0) && end.hi == ^uint64(0) {
		r.full = true
	} else if end.lo == ^uint64(0) {
		r.next = u128{end.hi + 1, 0}
	} else {
		r.next = u128{end.hi, end.lo + 1}
	}
	return true
}

func (r *ranges6) done() ([]u128, []value) {
	if !r.full {
		r.push(r.next, 0)
	}
	return r.s, r.v
}

// combine makes one table of two: the country of c, the AS of a. Either may
// be nil (that role has no database); both the same table is that table.
func combine(c, a *table) *table {
	switch {
	case c == a && c != nil:
		return c
	case c == nil && a == nil:
		return emptyTable()
	case c == nil:
		return mask(a, asBits)
	case a == nil:
		return mask(c, ccBits)
	}
	cs4, cv4 := c.flat4()
	as4, av4 := a.flat4()
	cs6, cv6 := c.flat6()
	as6, av6 := a.flat6()
	s4, v4 := merge(cs4, cv4, as4, av4, func(x, y uint32) bool { return x < y })
	s6, v6 := merge(cs6, cv6, as6, av6, u128.less)
	return newTable(s4, v4, s6, v6)
}

// mask keeps only some bits of a table's values.
func mask(t *table, m value) *table {
	var r4 ranges4
	for _, e := range t.e4 {
		r4.push(e.start, e.value()&m)
	}
	var r6 ranges6
	for _, e := range t.e6 {
		r6.push(e.start, e.v&m)
	}
	return newTable(r4.s, r4.v, r6.s, r6.v)
}

// merge overlays two range lists that both start at 0: the country bits of
// the first, the AS bits of the second.
func merge[S comparable](sa []S, va []value, sb []S, vb []value, less func(S, S) bool) ([]S, []value) {
	var out []S
	var vals []value
	push := func(s S, v value) {
		if n := len(out); n > 0 && out[n-1] == s {
			out, vals = out[:n-1], vals[:n-1]
		}
		if n := len(vals); n > 0 && vals[n-1] == v {
			return
		}
		out, vals = append(out, s), append(vals, v)
	}
	i, j := 0, 0
	for {
		s := sa[i]
		if less(s, sb[j]) {
			s = sb[j]
		}
		push(s, va[i]&ccBits|vb[j]&asBits)
		ni, nj := i+1 < len(sa), j+1 < len(sb)
		switch {
		case !ni && !nj:
			return out, vals
		case !nj || ni && less(sa[i+1], sb[j+1]):
			i++
		case !ni || less(sb[j+1], sa[i+1]):
			j++
		default:
			i, j = i+1, j+1
		}
	}
}
