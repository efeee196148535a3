package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tmsd/tmsd/internal/topn"
)

func TestScopes(t *testing.T) {
	s := startStore(t, testConfig(t))
	hour := interval(t0, exporterA, 9, topn.DimInIf)
	hour.Tier = TierHour
	put(t, s,
		interval(minute(0), global, 1, topn.DimApp, topn.DimSrcIP),
		interval(minute(1), exporterA, 2, topn.DimSrcIP),
		interval(minute(3), global, 3, topn.DimDstPort),
		interval(minute(5), protoTCP, 4, topn.DimApp),
		hour,
	)
	f := func(tier Tier, from, to time.Time, want ...ScopeDims) {
		t.Helper()
		got, err := s.Scopes(tier, from, to)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	f(TierMinute, minute(0), minute(2),
		ScopeDims{global, []topn.Dim{topn.DimApp, topn.DimSrcIP}},
		ScopeDims{exporterA, []topn.Dim{topn.DimSrcIP}})
	// A series with keys before and after the range: only the range counts.
	f(TierMinute, minute(1), minute(4),
		ScopeDims{global, []topn.Dim{topn.DimDstPort}},
		ScopeDims{exporterA, []topn.Dim{topn.DimSrcIP}})
	f(TierMinute, minute(4), minute(60), ScopeDims{protoTCP, []topn.Dim{topn.DimApp}})
	f(TierMinute, minute(6), minute(60))
	f(TierMinute, minute(2), minute(2))
	f(TierHour, t0, t0.Add(time.Hour), ScopeDims{exporterA, []topn.Dim{topn.DimInIf}})
	f(TierDay, t0, t0.Add(24*time.Hour))
	_, err := s.Scopes(Tier(9), t0, minute(1))
	require.ErrorIs(t, err, ErrInvalid)
}

func TestDeleteBefore(t *testing.T) {
	s := startStore(t, testConfig(t))
	var ivs []Interval
	for m := range 5 {
		ivs = append(ivs, interval(minute(m), global, uint64(m+1), topn.DimSrcIP, topn.DimApp),
			interval(minute(m), exporterA, uint64(m+10), topn.DimSrcIP))
	}
	hour := interval(t0, global, 99, topn.DimSrcIP)
	hour.Tier = TierHour
	put(t, s, append(ivs, hour)...)

	n, size, err := s.DeleteBefore(TierMinute, minute(3))
	require.NoError(t, err)
	require.Equal(t, 3, n, "intervals of the global scope")
	require.Positive(t, size)

	first, last, ok, err := s.Bounds(TierMinute)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, minute(3), first)
	require.Equal(t, minute(4), last)
	for _, sc := range []topn.Scope{global, exporterA} {
		var starts []time.Time
		require.NoError(t, s.Range(TierMinute, sc, topn.DimSrcIP, minute(0), minute(10), func(start time.Time, _ *topn.Table) error {
			starts = append(starts, start)
			return nil
		}))
		require.Equal(t, []time.Time{minute(3), minute(4)}, starts, sc.String())
		starts = nil
		require.NoError(t, s.Totals(TierMinute, sc, minute(0), minute(10), func(start time.Time, _ topn.Counters) error {
			starts = append(starts, start)
			return nil
		}))
		require.Equal(t, []time.Time{minute(3), minute(4)}, starts, sc.String())
	}
	_, ok, err = s.Get(TierHour, global, topn.DimSrcIP, t0)
	require.NoError(t, err)
	require.True(t, ok, "another tier is untouched")

	n, _, err = s.DeleteBefore(TierMinute, minute(3))
	require.NoError(t, err)
	require.Zero(t, n, "nothing left before the cut")
}
