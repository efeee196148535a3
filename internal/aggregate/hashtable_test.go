package aggregate

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/topn"
)

// entries lists a table's keys with their counters and error bound.
func (t *dimTable) entries() []topn.Entry {
	out := make([]topn.Entry, 0, t.counts.n)
	t.counts.each(func(k topn.Key, c topn.Counters) {
		out = append(out, topn.Entry{Key: k, Value: c, Error: t.evicted})
	})
	return out
}

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

// compact keeps the keep keys with the most bytes, reports the largest
// dropped counters per metric, and leaves a table that still counts.
func TestCounterTableCompact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := func(n, keep int) {
		t.Helper()
		tab := newCounterTable(8)
		var all []topn.Entry
		for i := range n {
			k := topn.Key{byte(i), byte(i >> 8), byte(i >> 16), 1}
			c := topn.Counters{Bytes: rng.Uint64N(50), Packets: rng.Uint64N(1000), Flows: 1 + rng.Uint64N(3)}
			tab.add(&k, c)
			all = append(all, topn.Entry{Key: k, Value: c})
		}
		slices.SortStableFunc(all, func(a, b topn.Entry) int { return -cmpU(a.Value.Bytes, b.Value.Bytes) })
		dropped := tab.compact(keep)
		want := min(keep, n)
		require.Equal(t, want, tab.n)
		var wantDropped topn.Counters
		for _, e := range all[want:] {
			wantDropped.Max(e.Value)
		}
		require.Equal(t, wantDropped, dropped)
		// Every kept key is held with its counters; no dropped key beats the cut.
		cut := all[want-1].Value.Bytes
		held := 0
		for _, e := range all {
			c, ok := tab.get(&e.Key)
			if ok {
				held++
				require.Equal(t, e.Value, c)
				require.GreaterOrEqual(t, c.Bytes, cut)
			} else {
				require.LessOrEqual(t, e.Value.Bytes, cut)
			}
		}
		require.Equal(t, want, held)
		k := topn.Key{9, 9, 9, 9}
		require.True(t, tab.add(&k, topn.Counters{Bytes: 1}))
		require.Equal(t, want+1, tab.n)
	}
	f(10, 20)
	f(100, 50)
	f(5000, 1000)
	f(5000, 2500)
	f(40, 1)
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
