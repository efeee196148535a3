package aggregate

import (
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tmsd/tmsd/internal/topn"
)

// valueBits is how many low bits of a key hold its value (an address, a port,
// an application, an interface id...); the high bits name the key's scope (a
// partition, an interface, an application), so that one table holds one
// dimension for every scope of a kind: 48 interfaces cost keys, not tables.
const valueBits = 40

const valueMask = 1<<valueBits - 1

func scopeOf(k uint64) uint64 { return k >> valueBits }

func valueOf(k uint64) uint64 { return k & valueMask }

// table is the engine's one table type: counters by uint64 key, in an
// open-addressing table with linear probing and Fibonacci hashing, the key and
// its counters inline in a 32-byte slot, two to a cache line.
//
// It forgets keys to stay within bounds: compact keeps each scope's heaviest
// keys by bytes and raises that scope's evicted bound to the largest counters
// it dropped. A kept key's true amount is at most its count plus its scope's
// bound, and a key absent had at most the bound: the bounds topn.Table carries.
type table struct {
	slots []slot // length a power of two, at most half full
	shift uint8  // 64 - log2(len(slots))
	n     int
	// scoped: a key's high bits are its scope, with its own key count and
	// bound; otherwise the table is one scope, 0 (the peer table's keys use
	// all 64 bits).
	scoped  bool
	scopeN  []int32
	evicted []topn.Counters
	// base is a bound of every scope, beyond its own: what a minute restored
	// without these tables (an older checkpoint) may have had in any of them.
	base topn.Counters
	// nonzero, in a table that leaves out value 0 (spec.elides), is what it
	// counted per scope: the scope's total less it is the zero row, exact.
	nonzero []topn.Counters
	// door and first: admission to a scope that has forgotten keys (see
	// admit). first is, per scope, the largest counters turned away since
	// the last settle; it is part of the scope's bound.
	door     []uint64
	doorBits int
	first    []topn.Counters
	// dropped, when set, sees each key compact forgets, before it goes:
	// an address table's country and AS rows are folded from its keys.
	dropped func(k uint64, c topn.Counters)
	// limit, once the shard's budget has compacted the table (shrink), is
	// the most slots it may grow to: there, at half full, it forgets the
	// lighter half of its scopes over floor keys in place (grow) rather
	// than double. In a flood of sources a compacted table grew back
	// through every doubling and was compacted again: rehash 23 % of the
	// CPU, and the arrays it dropped the collector's churn. compactions
	// counts those forgettings.
	limit, floor int
	compactions  *atomic.Uint64
	// gate, for an open minute's table, says whether the shard's budget
	// has room for a doubling: a big table that does not fit takes its
	// size as its limit instead (grow).
	gate *growGate
}

// growGate is a shard's budget, as its tables see it when they would grow.
type growGate struct {
	a *Aggregator
	s *shard
}

// fits says whether extra bytes more stay within the shard's limit. Called
// under the shard's lock (its tables grow only in its batches).
func (g *growGate) fits(extra int64) bool { return g.s.bytes+extra <= g.a.shardLimit() }

type slot struct {
	key uint64 // the key plus one: 0 is an empty slot
	c   topn.Counters
}

const slotBytes = 32

func newTable(hint int, scoped bool) *table {
	n := slotsFor(hint)
	return &table{slots: make([]slot, n), shift: shiftFor(n), scoped: scoped,
		scopeN: make([]int32, 1), evicted: make([]topn.Counters, 1)}
}

// slotsFor is the slot count of a table for hint keys: at most half full.
func slotsFor(hint int) int {
	n := 16
	for n < hint*2 {
		n <<= 1
	}
	return n
}

func shiftFor(n int) uint8 { return uint8(64 - bits.TrailingZeros(uint(n))) }

func (t *table) home(stored uint64) uint64 { return (stored * 0x9e3779b97f4a7c15) >> t.shift }

func (t *table) scope(k uint64) uint64 {
	if t.scoped {
		return scopeOf(k)
	}
	return 0
}

// add adds c to key k and reports whether k was new. The table grows at half
// full.
func (t *table) add(k uint64, c topn.Counters) bool {
	stored := k + 1
	mask := uint64(len(t.slots) - 1)
	for i := t.home(stored); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == stored {
			s.c.Bytes += c.Bytes
			s.c.Packets += c.Packets
			s.c.Flows += c.Flows
			return false
		}
		if s.key == 0 {
			t.place(i, stored, c)
			return true
		}
	}
}

// place puts a new key (stored: plus one) in the empty slot i, growing the
// table at half full.
func (t *table) place(i, stored uint64, c topn.Counters) {
	t.slots[i] = slot{key: stored, c: c}
	t.n++
	sc := t.scope(stored - 1)
	if sc >= uint64(len(t.scopeN)) {
		t.growScopes(int(sc))
	}
	t.scopeN[sc]++
	if t.n*2 > len(t.slots) {
		t.grow()
	}
}

// grow makes room at half full: the slot array doubles, unless the table is
// at its limit, where it forgets keys instead, halving its scopes over the
// floor and lowering the floor (down to shrinkFloor) until a quarter of its
// keys have gone; if even that cannot free them, it doubles after all.
func (t *table) grow() {
	// A big table whose doubling would take the shard past its budget stops
	// here rather than grow and then be compacted with the others: in a
	// flood the shards reached the budget within 3 s of start-up and their
	// compaction bursts (sweeps, and the slot arrays reallocated smaller)
	// cost 3,536–18,689 datagrams at the sockets. Small tables still grow:
	// capped, a quiet scope's keys would be cut to the floor.
	if t.limit == 0 && t.gate != nil && len(t.slots) >= bigTableSlots && !t.gate.fits(int64(len(t.slots))*slotBytes) {
		t.limit, t.floor, t.compactions = len(t.slots), t.gate.a.cfg.TopK, &t.gate.a.compactions
	}
	if t.limit > 0 && len(t.slots) >= t.limit {
		// Forget at least a quarter of the keys, lowering the floor until
		// that much goes: a compaction that freed a few slots was followed
		// by another at the next key (a 1M-source flood: 102,960
		// compactions, each a sweep of the table, and 4.3 % of the flows
		// lost).
		for floor := t.floor; ; floor = max(shrinkFloor, floor/2) {
			if t.compact(floor, -1, 0, false) < 0 && t.compactions != nil {
				t.compactions.Add(1)
			}
			if t.n*8 <= len(t.slots)*3 {
				t.floor = floor
				return
			}
			if floor == shrinkFloor {
				break
			}
		}
		t.limit = 0 // too little to forget: it grows, and the budget decides again
	}
	t.rehash(2 * len(t.slots))
}

// placeNew is count's path for a key not held: stored (the key plus one),
// whose probe ended at the empty slot i. It places the key unless a flooded
// scope turns it away (admit), and reports whether it did.
func (t *table) placeNew(i, stored uint64, c topn.Counters) bool {
	if sc := t.scope(stored - 1); t.flooded(sc) && !t.admit(stored, sc, c) {
		return false
	}
	t.place(i, stored, c)
	return true
}

// get returns the counters of k and whether the table holds it.
func (t *table) get(k uint64) (topn.Counters, bool) {
	stored := k + 1
	mask := uint64(len(t.slots) - 1)
	for i := t.home(stored); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == stored {
			return s.c, true
		}
		if s.key == 0 {
			return topn.Counters{}, false
		}
	}
}

func (t *table) growScopes(sc int) {
	n := max(2*len(t.scopeN), sc+1)
	t.scopeN = append(t.scopeN, make([]int32, n-len(t.scopeN))...)
	t.evicted = append(t.evicted, make([]topn.Counters, n-len(t.evicted))...)
}

// addNonzero counts c as counted in scope sc (spec.elides).
func (t *table) addNonzero(sc uint64, c topn.Counters) {
	if sc >= uint64(len(t.nonzero)) {
		t.nonzero = append(t.nonzero, make([]topn.Counters, max(int(sc)+1, 2*len(t.nonzero))-len(t.nonzero))...)
	}
	t.nonzero[sc].Add(c)
}

// zeroRow is the zero row of scope sc, whose total is total, in a table that
// leaves it out.
func (t *table) zeroRow(sc uint64, total topn.Counters) topn.Counters {
	if sc < uint64(len(t.nonzero)) {
		total.Sub(t.nonzero[sc])
	}
	return total
}

func (t *table) rehash(n int) {
	old := t.slots
	t.slots, t.shift, t.n = make([]slot, n), shiftFor(n), 0
	for i := range old {
		if old[i].key != 0 {
			t.insert(&old[i])
		}
	}
}

// insert places a slot whose key is not held.
func (t *table) insert(s *slot) {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(s.key); ; i = (i + 1) & mask {
		if t.slots[i].key == 0 {
			t.slots[i] = *s
			t.n++
			return
		}
	}
}

// clone is a copy of t holding its own memory, without its hook.
func (t *table) clone() *table {
	c := *t
	c.slots, c.scopeN, c.evicted = slices.Clone(t.slots), slices.Clone(t.scopeN), slices.Clone(t.evicted)
	c.nonzero, c.first, c.door = slices.Clone(t.nonzero), slices.Clone(t.first), slices.Clone(t.door)
	// A copy (a checkpoint's, a query's) grows freely: the limit and the
	// budget are the original's.
	c.dropped, c.gate, c.limit = nil, nil, 0
	return &c
}

// bytes is what the table holds in memory.
func (t *table) bytes() int64 {
	return int64(cap(t.slots))*slotBytes + int64(cap(t.scopeN))*4 + int64(cap(t.evicted)+cap(t.nonzero)+cap(t.first))*24 + int64(cap(t.door))*8
}

// bound is the bound of scope sc: what any of its keys may be under-counted by.
func (t *table) bound(sc uint64) topn.Counters {
	b := t.base
	if sc < uint64(len(t.evicted)) {
		b.Add(t.evicted[sc])
	}
	if sc < uint64(len(t.first)) {
		b.Add(t.first[sc])
	}
	return b
}

// maxBound is the largest bound of any scope.
func (t *table) maxBound() topn.Counters {
	var m topn.Counters
	for s := range t.evicted {
		m.Max(t.bound(uint64(s)))
	}
	m.Max(t.base)
	return m
}

// Admission. Under a flood of distinct addresses most keys are seen once in
// a scope: counting each took a slot, and the slot array then grew, was
// compacted and grew again (BenchmarkAddFlood/spread-1M: rehash 22% and
// compact 18% of the CPU). So a scope that has forgotten keys, whose
// counts are bounds already, admits a new key only on its second sighting:
// the first sets a bit in door, a bitset keyed by the whole key, and its
// counters go only to the scope's bound (first), as an evicted key's do. A
// key loses at most its first flow per door epoch (a bit is cleared only
// when the whole door is), so the bound adds, per epoch, the largest
// counters turned away; settle folds them into evicted at an epoch's end.
// Quiet scopes, never compacted, count every key exactly.

// doorBits is the door's size for a table of n slots: 4 bits a slot (the
// door is 1/64 of the slot array's memory), 4 Ki to 4 Mi bits (512 KiB). It
// is cleared when half set: an epoch spans about 2n distinct one-off keys.
func doorBits(n int) int { return min(max(4*n, 1<<12), 1<<22) }

// doorBit is key stored's bit in the door: the high bits of a second
// multiplicative hash, independent of the slot's home (the first's).
func (t *table) doorBit(stored uint64) uint64 {
	return (stored * 0xc2b2ae3d27d4eb4f) >> (64 - bits.TrailingZeros(uint(len(t.door)*64)))
}

func (t *table) doorWord(stored uint64) uint64 { return t.doorBit(stored) >> 6 }

// flooded says whether scope sc has forgotten keys, so that admit applies.
func (t *table) flooded(sc uint64) bool {
	return sc < uint64(len(t.evicted)) && t.evicted[sc].Flows != 0
}

// admit reports whether the new key stored (in scope sc, flooded) is
// counted: on its second sighting in the door's epoch, or when a different
// key shares its bit. Turned away, c raises the scope's bound.
func (t *table) admit(stored, sc uint64, c topn.Counters) bool {
	if t.door == nil {
		t.door = make([]uint64, doorBits(len(t.slots))/64)
	}
	h := t.doorBit(stored)
	w, bit := h>>6, uint64(1)<<(h&63)
	if t.door[w]&bit != 0 {
		return true
	}
	t.door[w] |= bit
	if sc >= uint64(len(t.first)) {
		t.first = append(t.first, make([]topn.Counters, max(int(sc)+1, 2*len(t.first))-len(t.first))...)
	}
	t.first[sc].Max(c)
	if t.doorBits++; t.doorBits > len(t.door)*32 {
		t.settle()
		if n := doorBits(len(t.slots)) / 64; n != len(t.door) {
			t.door = make([]uint64, n)
		} else {
			clear(t.door)
		}
		t.doorBits = 0
	}
	return false
}

// settle folds what admission turned away into evicted, where the bound of
// each scope is a sum: a checkpoint and a merge then see only evicted. It
// may be called at any time: it only loosens the bound of the door's epoch
// (two maxima for one).
func (t *table) settle() {
	for s, f := range t.first {
		if !f.IsZero() {
			if s >= len(t.evicted) {
				t.growScopes(s)
			}
			t.evicted[s].Add(f)
		}
	}
	clear(t.first)
}

// each calls fn on every key held, in slot order.
func (t *table) each(fn func(k uint64, c topn.Counters)) {
	for i := range t.slots {
		if s := &t.slots[i]; s.key != 0 {
			fn(s.key-1, s.c)
		}
	}
}

// scratch holds the buffers of grouping and compaction between calls.
type scratch struct {
	idx   []int32  // slot indices grouped by scope
	start []int32  // scope sc's indices are idx[start[sc]:start[sc+1]]
	vals  []uint64 // bytes of one group, for selection
	cuts  []cut    // compact's cut per scope
	ties  []int    // and its count of ties still to keep
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// group fills sc.idx and sc.start with the table's slot indices by scope: a
// counting sort, two passes over the slots.
func (t *table) group(sc *scratch) {
	ns := len(t.scopeN)
	sc.start = slices.Grow(sc.start[:0], ns+1)[:ns+1]
	pos := int32(0)
	for i, n := range t.scopeN {
		sc.start[i] = pos
		pos += n
	}
	sc.start[ns] = pos
	sc.idx = slices.Grow(sc.idx[:0], t.n)[:t.n]
	// start[i] is used as the fill cursor, then shifted back.
	for i := range t.slots {
		if k := t.slots[i].key; k != 0 {
			s := t.scope(k - 1)
			sc.idx[sc.start[s]] = int32(i)
			sc.start[s]++
		}
	}
	copy(sc.start[1:], sc.start[:ns])
	sc.start[0] = 0
}

// cut is the limit heaviest keys by bytes of one group of slots: the bytes of
// the last one kept, and how many keys of exactly that many bytes are kept
// (the first in the group's order), with the largest counters of those left
// out.
type cut struct {
	all     bool
	at      uint64
	atCut   int
	dropped topn.Counters
}

// cutOf is the cut keeping the keep largest of vals (keep < len(vals)),
// reordering vals; its dropped is left for the caller to fill.
func cutOf(vals []uint64, keep int) cut {
	c := cut{at: nthLargest(vals, keep), atCut: keep}
	for _, v := range vals {
		if v > c.at {
			c.atCut--
		}
	}
	return c
}

// cutGroup selects the keep heaviest slots of idx (all when keep >= len(idx)).
func (t *table) cutGroup(idx []int32, keep int, sc *scratch) cut {
	if keep >= len(idx) {
		return cut{all: true}
	}
	vals := sc.vals[:0]
	for _, i := range idx {
		vals = append(vals, t.slots[i].c.Bytes)
	}
	sc.vals = vals
	c := cutOf(vals, keep)
	ties := c.atCut
	for _, i := range idx {
		if !c.keeps(&t.slots[i], &ties) {
			c.dropped.Max(t.slots[i].c)
		}
	}
	return c
}

// keeps says whether slot s, met in the group's order, is among those kept;
// ties counts down the keys at the cut still to keep.
func (c cut) keeps(s *slot, ties *int) bool {
	switch {
	case c.all || s.c.Bytes > c.at:
		return true
	case s.c.Bytes == c.at && *ties > 0:
		*ties--
		return true
	}
	return false
}

// bigTableSlots is the size from which a table that would outgrow its
// shard's budget is held at its size (grow): 2^18 slots, 8 MiB.
const bigTableSlots = 1 << 18

// compact forgets keys: each scope holding more than floor keys keeps its
// heaviest half by bytes, but at least floor (only >= 0: that scope alone,
// down to keep keys). It returns the change in keys held (0 or negative).
// The keys forgotten are deleted in place (sweep); a budget compaction
// (only < 0, free) then shrinks the slot array to the keys kept, to free memory,
// while a scope over max_keys refills what it lost, and rebuilding the
// whole table to forget one scope's keys reinserted every other scope's
// (the flood's profile: compact 22% of the CPU, half of it reinsertion).
func (t *table) compact(floor int, only int64, keep int, free bool) int {
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	var cuts []cut
	dropped := 0
	if only >= 0 {
		// One scope: its bytes in one pass, no grouping of the others.
		if only >= int64(len(t.scopeN)) || int(t.scopeN[only]) <= keep {
			return 0
		}
		vals := sc.vals[:0]
		for i := range t.slots {
			if k := t.slots[i].key; k != 0 && int64(t.scope(k-1)) == only {
				vals = append(vals, t.slots[i].c.Bytes)
			}
		}
		sc.vals = vals
		dropped = int(t.scopeN[only]) - keep
		t.scopeN[only] = int32(keep)
		cuts = slices.Grow(sc.cuts[:0], int(only)+1)[:only+1]
		for s := range cuts {
			cuts[s] = cut{all: true}
		}
		cuts[only] = cutOf(vals, keep)
	} else {
		t.group(sc)
		cuts = slices.Grow(sc.cuts[:0], len(t.scopeN))[:len(t.scopeN)]
		for s := range t.scopeN {
			g := sc.idx[sc.start[s]:sc.start[s+1]]
			k := len(g)
			if len(g) > floor {
				k = max(floor, len(g)/2)
			}
			cuts[s] = t.cutGroup(g, k, sc)
			if !cuts[s].all {
				dropped += len(g) - k
				t.scopeN[s] = int32(k)
			}
		}
	}
	sc.cuts = cuts
	if dropped == 0 {
		return 0
	}
	// The ties at a cut are kept in the sweep's order, and what is dropped
	// (its largest counters: the scope's new bound) is taken there too.
	ties := sc.ties[:0]
	for x := range cuts {
		ties = append(ties, cuts[x].atCut)
		cuts[x].dropped = topn.Counters{}
	}
	sc.ties = ties
	t.sweep(func(s *slot) bool {
		x := t.scope(s.key - 1)
		if x < uint64(len(cuts)) && !cuts[x].keeps(s, &ties[x]) {
			cuts[x].dropped.Max(s.c)
			if t.dropped != nil {
				t.dropped(s.key-1, s.c)
			}
			return true
		}
		return false
	})
	for x := range cuts {
		if !cuts[x].all {
			t.evicted[x].Add(cuts[x].dropped)
		}
	}
	if only < 0 && free {
		if n := slotsFor(t.n); n < len(t.slots) {
			t.rehash(n)
		}
	}
	return -dropped
}

// sweep deletes, in place, the slots for which drop is true, moving each
// slot kept back to the first empty slot of its probe path: one pass over
// the array, in slot order from an empty slot, so that every run of full
// slots (none crosses an empty one) is met from its start. drop sees each
// key once.
func (t *table) sweep(drop func(*slot) bool) {
	mask := uint64(len(t.slots) - 1)
	start := uint64(0)
	for t.slots[start].key != 0 { // at most half full: there is an empty slot
		start++
	}
	for step := uint64(1); step <= mask; step++ {
		i := (start + step) & mask
		s := &t.slots[i]
		if s.key == 0 {
			continue
		}
		if drop(s) {
			*s = slot{}
			t.n--
			continue
		}
		for j := t.home(s.key); j != i; j = (j + 1) & mask {
			if t.slots[j].key == 0 {
				t.slots[j] = *s
				*s = slot{}
				break
			}
		}
	}
}

// nthLargest returns the k-th largest of v (1 <= k <= len(v)), reordering v:
// a quickselect with a three-way partition, so runs of equal values (common:
// many flows of one size) do not make it quadratic.
func nthLargest(v []uint64, k int) uint64 {
	lo, hi, target := 0, len(v), k-1 // target: the index in descending order
	for {
		if hi-lo <= 16 {
			sub := v[lo:hi]
			slices.Sort(sub)
			return sub[len(sub)-1-(target-lo)]
		}
		a, b, c := v[lo], v[(lo+hi)/2], v[hi-1]
		pivot := max(min(a, b), min(max(a, b), c)) // median of three
		// v[lo:lt] > pivot, v[lt:gt] == pivot, v[gt:hi] < pivot
		lt, i, gt := lo, lo, hi
		for i < gt {
			switch {
			case v[i] > pivot:
				v[lt], v[i] = v[i], v[lt]
				lt++
				i++
			case v[i] < pivot:
				gt--
				v[i], v[gt] = v[gt], v[i]
			default:
				i++
			}
		}
		switch {
		case target < lt:
			hi = lt
		case target >= gt:
			lo = gt
		default:
			return pivot
		}
	}
}
