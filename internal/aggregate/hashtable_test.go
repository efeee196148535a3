package aggregate

import (
	"math/rand/v2"
	"slices"
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
		tab.compact(floor, -1, 0)
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
