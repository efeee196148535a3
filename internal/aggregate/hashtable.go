package aggregate

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"sync"

	"github.com/tmsd/tmsd/internal/topn"
)

// counterTable is an open-addressing hash table from key to counters, with the
// counters inline in the slot: a hit costs one cache miss, where a Go map
// from key to an index into a row slice costs two (map slot, then row).
// BenchmarkAdd: 560 ns/flow with map+rows, 325 ns/flow with this table.
type counterTable struct {
	slots []counterSlot // length a power of two
	mask  uint64
	n     int
}

type counterSlot struct {
	key topn.Key
	c   topn.Counters
	tag uint32 // high hash bits, never 0 in a used slot: most mismatches end here
}

func tagOf(h uint64) uint32 { return uint32(h>>32) | 1 }

func newCounterTable(sizeHint int) *counterTable {
	n := slotsFor(sizeHint)
	return &counterTable{slots: make([]counterSlot, n), mask: uint64(n - 1)}
}

// slotsFor is the slot count of a new table for sizeHint keys: at most half full.
func slotsFor(sizeHint int) int {
	n := 16
	for n < sizeHint*2 {
		n <<= 1
	}
	return n
}

// hashKey mixes the key's three words (wyhash's multiply-fold).
func hashKey(k *topn.Key) uint64 {
	w0 := binary.LittleEndian.Uint64(k[0:8])
	w1 := binary.LittleEndian.Uint64(k[8:16])
	w2 := binary.LittleEndian.Uint64(k[16:24])
	hi, lo := bits.Mul64(w0^0xa0761d6478bd642f, w1^0xe7037ed1a0b428db)
	h := hi ^ lo
	hi, lo = bits.Mul64(h^w2^0x8ebc6af09c88c6e3, 0x589965cc75374cc3)
	return hi ^ lo
}

// add adds c to key k and reports whether k was new. The table grows at half
// full: under tmsd's load (flowgen v9 at 2M flows/s) probing at 3/4 full was
// 58% of the CPU profile.
func (t *counterTable) add(k *topn.Key, c topn.Counters) bool {
	h := hashKey(k)
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

func (t *counterTable) grow() {
	old := t.slots
	t.slots = make([]counterSlot, 2*len(old))
	t.mask = uint64(len(t.slots) - 1)
	t.n = 0
	for i := range old {
		if old[i].tag != 0 {
			t.insert(&old[i])
		}
	}
}

// insert places a slot known not to be present.
func (t *counterTable) insert(src *counterSlot) {
	for i := hashKey(&src.key) & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i].tag == 0 {
			t.slots[i] = *src
			t.n++
			return
		}
	}
}

// get returns the counters of k and whether it is held.
func (t *counterTable) get(k *topn.Key) (topn.Counters, bool) {
	h := hashKey(k)
	tag := tagOf(h)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.tag == 0 {
			return topn.Counters{}, false
		}
		if s.tag == tag && s.key == *k {
			return s.c, true
		}
	}
}

// each calls fn for every key held.
func (t *counterTable) each(fn func(k topn.Key, c topn.Counters)) {
	for i := range t.slots {
		if t.slots[i].tag != 0 {
			fn(t.slots[i].key, t.slots[i].c)
		}
	}
}

// compactScratch holds compact's buffers between calls.
type compactScratch struct {
	bytes []uint64
	kept  []counterSlot
}

var compactScratches = sync.Pool{New: func() any { return new(compactScratch) }}

// compact keeps the keep keys with the most bytes (ties broken by slot order)
// and returns the largest counters, per metric, of the keys it drops. It
// selects the cut instead of sorting, and refills the slot array in place
// when it is the size a new table for 2*keep keys would have (the usual case:
// a table compacts when full and refills to full). Under a flood of distinct
// addresses tables compact several times a second; sorting a copy of the
// entries into a new array each time was ~43 MB of garbage per 200k-key
// compaction, and the collector could not keep RSS near the live heap.
func (t *counterTable) compact(keep int) (dropped topn.Counters) {
	if keep >= t.n {
		return dropped
	}
	sc := compactScratches.Get().(*compactScratch)
	defer compactScratches.Put(sc)
	cut, atCut := t.cutOf(keep, sc)
	kept := sc.kept[:0]
	for i := range t.slots {
		switch s := &t.slots[i]; {
		case s.tag == 0:
		case isKept(s, cut, &atCut):
			kept = append(kept, *s)
		default:
			dropped.Max(s.c)
		}
	}
	sc.kept = kept
	if n := slotsFor(2 * keep); n == len(t.slots) {
		clear(t.slots)
	} else {
		t.slots, t.mask = make([]counterSlot, n), uint64(n-1)
	}
	t.n = 0
	for i := range kept {
		t.insert(&kept[i])
	}
	return dropped
}

// cutOf returns the bytes of the keep-th heaviest key (keep < t.n), and how
// many keys of exactly that many bytes are kept with those above it: ties go
// to the first in slot order.
func (t *counterTable) cutOf(keep int, sc *compactScratch) (cut uint64, atCut int) {
	vals := sc.bytes[:0]
	for i := range t.slots {
		if t.slots[i].tag != 0 {
			vals = append(vals, t.slots[i].c.Bytes)
		}
	}
	sc.bytes = vals
	cut = nthLargest(vals, keep)
	atCut = keep
	for _, v := range vals {
		if v > cut {
			atCut--
		}
	}
	return cut, atCut
}

// isKept says whether used slot s, met in slot order, is among the keys cutOf
// keeps; atCut counts down the ties still to keep.
func isKept(s *counterSlot, cut uint64, atCut *int) bool {
	switch {
	case s.c.Bytes > cut:
		return true
	case s.c.Bytes == cut && *atCut > 0:
		*atCut--
		return true
	}
	return false
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
