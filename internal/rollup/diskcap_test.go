package rollup

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dgraph-io/badger/v4/y"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/store"
)

// A store on disk that holds little, under the smallest cap that works and
// measured for real (store.DiskUsage), keeps every tier: 26 hours of minutes
// rolled into hours and a day, and nothing evicted. It runs in a bubble whose
// clock passes the minutes after which Badger refreshes its own measure of its
// files, which counted the preallocated value log (268 MB) and evicted.
func TestSmallStoreUnderSmallCapKeepsEveryTier(t *testing.T) {
	zstdOutsideBubble(t)
	synctest.Test(t, func(t *testing.T) {
		st := startStore(t, t.TempDir())
		putMinutes(t, storePut(st), 0, 26*60, nil)

		cfg := testConfig()
		cfg.MaxPerPass = 100
		cfg.MaxDisk = MinMaxDisk()
		began := time.Now()
		clock := func() time.Time { return t0.Add(26*time.Hour + cfg.Delay + time.Since(began)) }
		r, err := New(cfg, Dependencies{Store: st, Clock: clock, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, r.Stop()) })
		for range 3 {
			require.NoError(t, r.Pass())
			time.Sleep(2 * time.Minute)
		}
		require.Equal(t, t0.Add(26*time.Hour), r.Rolled(store.TierHour))
		require.Equal(t, t0.Add(24*time.Hour), r.Rolled(store.TierDay))

		used, err := st.DiskUsage()
		require.NoError(t, err)
		t.Logf("disk %d bytes under a cap of %d", used, cfg.MaxDisk)
		for _, tier := range store.Tiers {
			require.Zero(t, testutil.ToFloat64(r.metrics.evictedIntervals[tier]), "%s evicted (disk %d, cap %d)", tier, used, cfg.MaxDisk)
			first, _, ok, err := st.Bounds(tier)
			require.NoError(t, err)
			require.True(t, ok, tier.String())
			require.Equal(t, t0, first, "%s from the first minute on", tier)
		}
	})
}

// zstdOutsideBubble creates Badger's process-wide ZSTD encoder and decoder
// (level 1, as the store's options ask) outside a synctest bubble: created
// inside one, they would belong to it and fail every later test using them.
func zstdOutsideBubble(t testing.TB) {
	t.Helper()
	c, err := y.ZSTDCompress(nil, []byte("warm up"), 1)
	require.NoError(t, err)
	_, err = y.ZSTDDecompress(nil, c)
	require.NoError(t, err)
}
