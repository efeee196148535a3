package aggregate

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/topn"
)

func TestNthLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	f := func(v []uint64) {
		t.Helper()
		want := slices.Clone(v)
		slices.Sort(want)
		slices.Reverse(want)
		for _, k := range []int{1, 2, len(v) / 3, len(v) / 2, len(v) - 1, len(v)} {
			if k < 1 || k > len(v) {
				continue
			}
			require.Equal(t, want[k-1], nthLargest(slices.Clone(v), k), "k=%d of %d", k, len(v))
		}
	}
	f([]uint64{5})
	f([]uint64{3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3})
	for _, n := range []int{2, 17, 100, 5000} {
		v := make([]uint64, n)
		for i := range v {
			v[i] = rng.Uint64N(uint64(n/4 + 1)) // many equal values
		}
		f(v)
	}
}

// compact halves each scope over the floor, keeping its heaviest keys by
// bytes, raises each scope's bound to the largest counters it dropped, and
// leaves a table that still counts; a scope at or under the floor keeps all.
func TestTableCompact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := func(sizes []int, floor int) {
		t.Helper()
		tab := newTable(8, true)
		all := map[uint64][]uint64{} // scope -> keys
		vals := map[uint64]topn.Counters{}
		for sc, n := range sizes {
			for i := range n {
				k := uint64(sc)<<valueBits | uint64(i)
				c := topn.Counters{Bytes: rng.Uint64N(50), Packets: rng.Uint64N(1000), Flows: 1 + rng.Uint64N(3)}
				require.True(t, tab.add(k, c))
				all[uint64(sc)] = append(all[uint64(sc)], k)
				vals[k] = c
			}
		}
		tab.compact(floor, -1, 0, true)
		kept := 0
		for sc, n := range sizes {
			keys := all[uint64(sc)]
			slices.SortStableFunc(keys, func(a, b uint64) int { return -cmpU(vals[a].Bytes, vals[b].Bytes) })
			want := n
			if n > floor {
				want = max(floor, n/2)
			}
			require.EqualValues(t, want, tab.scopeN[sc], "scope %d", sc)
			kept += want
			var wantDropped topn.Counters
			held := 0
			for _, k := range keys {
				if c, ok := tab.get(k); ok {
					held++
					require.Equal(t, vals[k], c)
				} else {
					wantDropped.Max(vals[k])
				}
			}
			require.Equal(t, want, held)
			require.Equal(t, wantDropped, tab.bound(uint64(sc)), "scope %d", sc)
			if want > 0 && want < n {
				cut := vals[keys[want-1]].Bytes
				for _, k := range keys {
					if _, ok := tab.get(k); !ok {
						require.LessOrEqual(t, vals[k].Bytes, cut)
					}
				}
			}
		}
		require.Equal(t, kept, tab.n)
		require.True(t, tab.add(1<<valueBits|999999, topn.Counters{Bytes: 1}))
	}
	f([]int{10}, 20)
	f([]int{100}, 10)
	f([]int{5000, 3, 700}, 16)
	f([]int{0, 40, 41}, 40)
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Compacting one scope (a scope past max_keys) deletes its lightest keys in
// place and leaves every other scope's keys and counts as they were, in a
// table whose probe runs wrap around the end of the slot array.
func TestTableCompactOneScope(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	f := func(sizes []int, only, keep int) {
		t.Helper()
		tab := newTable(8, true)
		vals := map[uint64]topn.Counters{}
		for sc, n := range sizes {
			for range n {
				k := uint64(sc)<<valueBits | rng.Uint64N(1<<32)
				if _, ok := vals[k]; ok {
					continue
				}
				c := topn.Counters{Bytes: rng.Uint64N(100), Packets: rng.Uint64N(1000), Flows: 1}
				tab.add(k, c)
				vals[k] = c
			}
		}
		before := int(tab.scopeN[only])
		got := tab.compact(0, int64(only), keep, false)
		require.Equal(t, -max(0, before-keep), got)
		var dropped topn.Counters
		var minKept uint64 = 1 << 63
		var maxDropped uint64
		held := map[uint64]int{}
		for k, c := range vals {
			sc := scopeOf(k)
			h, ok := tab.get(k)
			switch {
			case ok:
				require.Equal(t, c, h)
				held[sc]++
				if int(sc) == only {
					minKept = min(minKept, c.Bytes)
				}
			case int(sc) == only:
				dropped.Max(c)
				maxDropped = max(maxDropped, c.Bytes)
			default:
				t.Fatalf("key %x of scope %d lost", k, sc)
			}
		}
		require.Equal(t, min(before, keep), held[uint64(only)])
		require.EqualValues(t, held[uint64(only)], tab.scopeN[only])
		require.Equal(t, dropped, tab.bound(uint64(only)))
		if maxDropped > 0 {
			require.LessOrEqual(t, maxDropped, minKept, "the heaviest are kept")
		}
		n := 0
		for i := range tab.slots {
			if tab.slots[i].key != 0 {
				n++
			}
		}
		require.Equal(t, n, tab.n)
	}
	f([]int{3000}, 0, 1000)
	f([]int{500, 4000, 20}, 1, 1500)
	f([]int{500, 40, 20}, 1, 100)
	f([]int{500, 40, 20}, 2, 100) // under keep: nothing to forget
}

// A scope that has forgotten keys admits a new key on its second sighting:
// the first only raises its bound, so that a key's true count stays within
// its count plus the bound, while a scope never compacted counts every key.
func TestTableAdmission(t *testing.T) {
	tab := newTable(8, true)
	put := func(k uint64, c topn.Counters) {
		stored := k + 1
		mask := uint64(len(tab.slots) - 1)
		for i := tab.home(stored); ; i = (i + 1) & mask {
			if s := &tab.slots[i]; s.key == stored {
				s.c.Add(c)
				return
			} else if s.key == 0 {
				tab.placeNew(i, stored, c)
				return
			}
		}
	}
	truth := map[uint64]topn.Counters{}
	for i := range uint64(400) {
		for sc := range uint64(2) {
			c := topn.Counters{Bytes: 10 + i%7, Packets: 1, Flows: 1}
			put(sc<<valueBits|i, c)
			truth[sc<<valueBits|i] = c
		}
	}
	tab.compact(0, 1, 100, false) // scope 1 forgets 300 keys
	require.True(t, tab.flooded(1))
	require.False(t, tab.flooded(0))
	for round := range uint64(3) {
		for i := range uint64(5000) {
			for sc := range uint64(2) {
				k := sc<<valueBits | (1000 + i)
				c := topn.Counters{Bytes: 1 + round, Packets: 1, Flows: 1}
				put(k, c)
				tc := truth[k]
				tc.Add(c)
				truth[k] = tc
			}
		}
	}
	turned := 0
	for k, want := range truth {
		got, ok := tab.get(k)
		if scopeOf(k) == 0 {
			require.True(t, ok)
			require.Equal(t, want, got, "scope 0 is exact")
			continue
		}
		b := tab.bound(1)
		require.LessOrEqual(t, got.Bytes, want.Bytes)
		require.GreaterOrEqual(t, got.Bytes+b.Bytes, want.Bytes, "key %x", k)
		require.GreaterOrEqual(t, got.Flows+b.Flows, want.Flows, "key %x", k)
		if ok && got != want && valueOf(k) >= 1000 {
			turned++
		}
	}
	require.Positive(t, turned, "first sightings were turned away")
	tab.settle()
	b := tab.bound(1)
	require.Equal(t, tab.evicted[1], b, "settled: the bound is all in evicted")
}

// A table at its limit (set once the budget has compacted it) forgets the
// lighter half of its scopes in place rather than grow: its slot array stays,
// every key it holds keeps its exact counters, and every key's true amount is
// within its scope's bound of what the table says (0 for a key it dropped).
func TestTableLimitCompactsInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tab := newTable(8, true)
	truth := map[uint64]topn.Counters{}
	add := func(n int) {
		for range n {
			sc := rng.Uint64N(4)
			k := sc<<valueBits | rng.Uint64N(1<<20)
			c := topn.Counters{Bytes: 1 + rng.Uint64N(1500), Packets: 1, Flows: 1}
			tab.add(k, c)
			tc := truth[k]
			tc.Add(c)
			truth[k] = tc
		}
	}
	add(3000)
	var compactions atomic.Uint64
	tab.limit, tab.floor, tab.compactions = len(tab.slots), 64, &compactions
	slots := len(tab.slots)
	add(20000)
	require.Equal(t, slots, len(tab.slots), "a table at its limit keeps its slot array")
	require.NotZero(t, compactions.Load())
	require.LessOrEqual(t, tab.n*2, len(tab.slots))
	for k, want := range truth {
		got, _ := tab.get(k)
		b := tab.bound(tab.scope(k))
		require.LessOrEqual(t, got.Bytes, want.Bytes, "key %x", k)
		require.LessOrEqual(t, want.Bytes, got.Bytes+b.Bytes, "key %x: %d held, bound %d, truth %d", k, got.Bytes, b.Bytes, want.Bytes)
	}
}

// A big open-minute table whose doubling would take its shard past the
// budget stays at its size and forgets in place; while the budget has room
// it grows.
func TestTableGrowsWithinItsShardsBudget(t *testing.T) {
	a := &Aggregator{cfg: Configuration{TopK: 100}, shardBudget: 64 << 20}
	s := &shard{}
	a.shards = []*shard{s}
	tab := newTable(bigTableSlots/2, true)
	tab.gate = &growGate{a: a, s: s}
	rng := rand.New(rand.NewPCG(5, 6))
	add := func(n int) {
		for range n {
			tab.add(rng.Uint64N(8)<<valueBits|rng.Uint64N(1<<30), topn.Counters{Bytes: 1 + rng.Uint64N(100), Packets: 1, Flows: 1})
		}
	}
	require.Equal(t, bigTableSlots, len(tab.slots))
	s.bytes = tab.bytes()
	add(bigTableSlots * 3 / 4) // past half full: 8 MiB more fit in 64
	require.Equal(t, 2*bigTableSlots, len(tab.slots), "grown")
	require.Zero(t, tab.limit)

	s.bytes = 60 << 20 // another doubling (16 MiB more) would not fit
	add(2 * bigTableSlots)
	require.Equal(t, 2*bigTableSlots, len(tab.slots), "held at its size")
	require.Equal(t, 2*bigTableSlots, tab.limit)
	require.NotZero(t, a.compactions.Load())
	require.LessOrEqual(t, tab.n*2, len(tab.slots))
}
