package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// TestSeedStore reopens a seeded data directory as tmsd would and reads back
// its minutes: every minute with its total, K srcip keys (half shared by all
// minutes, half its own) and the app table.
func TestSeedStore(t *testing.T) {
	dir := t.TempDir()
	first := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	const minutes, k = 3, 10
	require.NoError(t, seedStore(dir, first, minutes, k))

	cfg := store.DefaultConfiguration()
	cfg.Path = dir
	st, err := store.New(cfg, store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { st.Stop() })

	to := first.Add(minutes * time.Minute)
	var total topn.Counters
	n := 0
	require.NoError(t, st.Totals(store.TierMinute, topn.Scope{}, first, to, func(_ time.Time, c topn.Counters) error {
		total.Add(c)
		n++
		return nil
	}))
	require.Equal(t, minutes, n)
	require.Equal(t, seedTotal.Flows*minutes, total.Flows)

	seen := map[string]int{}
	var starts []time.Time
	require.NoError(t, st.Range(store.TierMinute, topn.Scope{}, topn.DimSrcIP, first, to, func(start time.Time, tb *topn.Table) error {
		starts = append(starts, start)
		require.Len(t, tb.Entries, k)
		require.Equal(t, seedTotal, tb.Total)
		require.False(t, tb.Exact(), "a seeded minute has dropped keys: a threshold")
		for _, e := range tb.Entries {
			seen[topn.DimSrcIP.Format(e.Key)]++
		}
		return nil
	}))
	require.Equal(t, []time.Time{first, first.Add(time.Minute), first.Add(2 * time.Minute)}, starts)
	require.Equal(t, minutes, seen["10.0.0.0"], "heavy hitters are in every minute")
	require.Len(t, seen, k/2+minutes*k/2, "each minute has its own tail")

	apps, ok, err := st.Get(store.TierMinute, topn.Scope{}, topn.DimApp, first)
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, apps.Entries, k)
	require.Equal(t, "https", topn.DimApp.Format(apps.Entries[0].Key))
}
