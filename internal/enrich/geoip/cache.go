package geoip

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"

	"github.com/tmsd/tmsd/internal/flow"
)

// cache holds the answers for recently seen IPv4 addresses, in front of
// the table: flow ends follow a Zipf law, and a hit is one load from a
// 512 KiB array where a table search is two or three dependent loads from
// 11 MB that miss the CPU caches. Figures, ns per record (both ends) on
// this project's 2-core KVM machine (AMD EPYC, 2 GHz, shared with other
// work): BenchmarkEnrich 46-57 with the cache (five runs),
// BenchmarkEnrichNoCache 106-135 without. The cache answers 89 % of that
// workload's IPv4 ends with 2^16 slots; 87 % with 2^15 and 84 % with
// 2^14, each halving 5-10 ns a record slower.
//
// Direct-mapped, one atomic word an entry, so that concurrent Enrich calls
// share it without a lock and without a data race; a lost store only costs
// a search later. It lives in the state: a new database starts it empty.
//
// The key is the address byte-swapped (as it lies in a flow.Addr, read
// little-endian), multiplied by an odd constant: a bijection, whose top
// cacheBits bits pick the slot and whose other bits are the entry's tag.
// An entry: bit 63 set when valid; bits 42-57 the tag; bits 32-41 the code
// of the country or special range (codeOf); bits 0-31 the AS.
type cache [cacheSlots]atomic.Uint64

const (
	cacheBits  = 16
	cacheSlots = 1 << cacheBits
	tagBits    = 32 - cacheBits
	tagMask    = 1<<tagBits - 1
	hashMul    = 0x9e3779b1 // odd: x*hashMul mod 2^32 is a bijection
)

// Codes of the 10-bit field: 0 none, 1-676 the letter pairs AA-ZZ, then
// the special ranges.
const codeSpecial = 1 + 26*26

// codeOf is the 10-bit code of a value's country or special range.
func codeOf(v value) uint64 {
	if v.special() {
		return codeSpecial + uint64(v>>spShift) - 1
	}
	c := v.cc()
	if c[0] == 0 {
		return 0
	}
	return 1 + uint64(c[0]-'A')*26 + uint64(c[1]-'A')
}

// codeValue is the value of each code, AS aside.
var codeValue = func() (t [codeSpecial + int(spMore) - 1]value) {
	for a := byte('A'); a <= 'Z'; a++ {
		for b := byte('A'); b <= 'Z'; b++ {
			t[1+int(a-'A')*26+int(b-'A')] = pack([2]byte{a, b}, 0)
		}
	}
	for sp := spPrivate; sp < spMore; sp++ {
		t[codeSpecial+int(sp)-1] = spValue[sp]
	}
	return t
}()

// codeCC is the country field of each code.
var codeCC = func() (t [len(codeValue)][2]byte) {
	for i, v := range codeValue {
		t[i] = v.cc()
	}
	return t
}()

// cache6 is the same for IPv6 addresses, which do not fit a word with
// their answer: an entry is a seqlock of four words, the sequence odd
// while a writer fills it; a reader takes the answer only if the sequence
// was even and the same before and after it read the key and value. On
// BenchmarkEnrich's one end in ten that is IPv6, the search it saves was
// a quarter of Enrich's time.
type cache6 [cache6Slots]entry6

type entry6 struct{ seq, hi, lo, val atomic.Uint64 }

const (
	cache6Bits  = 12
	cache6Slots = 1 << cache6Bits
)

func (c *cache6) lookup6(t *table, hi, lo uint64) value {
	h := (hi ^ lo*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	e := &c[h>>(64-cache6Bits)]
	s := e.seq.Load()
	if s != 0 && s&1 == 0 && e.hi.Load() == hi && e.lo.Load() == lo {
		v := value(e.val.Load())
		if e.seq.Load() == s {
			return v
		}
	}
	v := t.lookup6(hi, lo)
	if s&1 == 0 && e.seq.CompareAndSwap(s, s+1) {
		e.hi.Store(hi)
		e.lo.Store(lo)
		e.val.Store(uint64(v))
		e.seq.Store(s + 2)
	}
	return v
}

// enrich fills the records' ends, missChunk records at a time: the cache
// answers what it has, and the IPv4 ends it misses go to the table together,
// so that their loads overlap (BenchmarkEnrich with 2^15 cache slots: 57-63
// ns a record one end after the other, 53 so).
func (s *state) enrich(recs []flow.Record) {
	var miss [2 * missChunk]pending
	for len(recs) > 0 {
		c := recs[:min(len(recs), missChunk)]
		n := 0
		for i := range c {
			r := &c[i]
			if w, ok := s.cache.get(&r.SrcAddr); ok {
				code := w >> 32 & 0x3ff
				r.SrcCountry, r.SrcAS = codeCC[code], s.pick(r.SrcAS, uint32(w), code >= codeSpecial)
			} else if x, ok := ipv4(&r.SrcAddr); ok {
				miss[n] = pending{x: x, rec: uint16(i)}
				n++
			} else {
				v := s.miss(&r.SrcAddr)
				r.SrcCountry, r.SrcAS = v.cc(), s.pick(r.SrcAS, v.as(), v.special())
			}
			if w, ok := s.cache.get(&r.DstAddr); ok {
				code := w >> 32 & 0x3ff
				r.DstCountry, r.DstAS = codeCC[code], s.pick(r.DstAS, uint32(w), code >= codeSpecial)
			} else if x, ok := ipv4(&r.DstAddr); ok {
				miss[n] = pending{x: x, rec: uint16(i), dst: true}
				n++
			} else {
				v := s.miss(&r.DstAddr)
				r.DstCountry, r.DstAS = v.cc(), s.pick(r.DstAS, v.as(), v.special())
			}
		}
		// The misses go to the table, the Zipf tail whose loads all miss
		// the CPU caches: first the index entries and the first probes of
		// all of them, loads independent of each other whose misses
		// overlap, then the searches.
		t := s.t
		for j := range miss[:n] {
			m := &miss[j]
			m.e = t.i4[m.x>>16]
			if m.e&idxDirect == 0 {
				m.probe = t.e4[(uint32(m.e)+uint32(m.e>>32))/2].start
			}
		}
		for _, m := range miss[:n] {
			v := t.lookup4(m.x)
			h := bits.ReverseBytes32(m.x) * hashMul
			s.cache[h>>tagBits].Store(1<<63 | uint64(h&tagMask)<<42 | codeOf(v)<<32 | uint64(v.as()))
			r := &c[m.rec]
			if m.dst {
				r.DstCountry, r.DstAS = v.cc(), s.pick(r.DstAS, v.as(), v.special())
			} else {
				r.SrcCountry, r.SrcAS = v.cc(), s.pick(r.SrcAS, v.as(), v.special())
			}
		}
		recs = recs[len(c):]
	}
}

// missChunk is how many records enrich answers from the cache before it
// takes their misses to the table together.
const missChunk = 64

// pending is an IPv4 end the cache did not answer.
type pending struct {
	e     uint64 // its index entry
	x     uint32
	probe uint32 // touched, not used: the search's first load
	rec   uint16
	dst   bool
}

// ipv4 is the IPv4 address of an IPv4-mapped end.
func ipv4(a *flow.Addr) (uint32, bool) {
	lo := binary.BigEndian.Uint64(a[8:])
	return uint32(lo), binary.BigEndian.Uint64(a[:8]) == 0 && lo>>32 == 0xffff
}

// get is the cache word of an IPv4 end, ok false when not cached. The
// address is read little-endian, as it lies: the cache key is the IPv4
// address byte-swapped, which hashes as well and saves the swaps.
func (c *cache) get(a *flow.Addr) (uint64, bool) {
	lo := binary.LittleEndian.Uint64(a[8:])
	if binary.LittleEndian.Uint64(a[:8]) != 0 || uint32(lo) != 0xffff0000 {
		return 0, false
	}
	h := uint32(lo>>32) * hashMul
	w := c[h>>tagBits].Load()
	return w, w>>63 != 0 && uint32(w>>42)&tagMask == h&tagMask
}

// pick is the AS of an end: 0 in a special range, else the exporter's or
// the database's as Configuration.ExportAS says.
func (s *state) pick(export, db uint32, special bool) uint32 {
	switch {
	case special:
		return 0
	case s.exportAS && export != 0:
		return export
	case db != 0:
		return db
	}
	return export
}

// lookup answers one address through the caches.
func (s *state) lookup(a *flow.Addr) value {
	if w, ok := s.cache.get(a); ok {
		return codeValue[w>>32&0x3ff] | value(uint32(w))<<16
	}
	return s.miss(a)
}

// miss answers an address that the cache did not, from the table, and
// caches it.
//
//go:noinline
func (s *state) miss(a *flow.Addr) value {
	hi := binary.BigEndian.Uint64(a[:8])
	lo := binary.BigEndian.Uint64(a[8:])
	if hi != 0 || lo>>32 != 0xffff {
		return s.cache6.lookup6(s.t, hi, lo)
	}
	x := uint32(lo)
	h := bits.ReverseBytes32(x) * hashMul
	v := s.t.lookup4(x)
	s.cache[h>>tagBits].Store(1<<63 | uint64(h&tagMask)<<42 | codeOf(v)<<32 | uint64(v.as()))
	return v
}
