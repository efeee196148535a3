package rollup

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// t0 is a day boundary, far from the wall clock: the tests' stores keep
// everything for a century so nothing expires under them.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

var (
	global    = topn.Scope{}
	exporterA = topn.Scope{Kind: topn.ScopeExporter, Exporter: flow.Addr{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 1}}
	dims      = []topn.Dim{topn.DimSrcIP, topn.DimApp}
)

const minuteK = 20

func storeConfig(path string) store.Configuration {
	cfg := store.DefaultConfiguration()
	cfg.Path = path
	cfg.InMemory = path == ""
	for _, t := range store.Tiers {
		cfg.Retention[t] = 100 * 365 * 24 * time.Hour
	}
	return cfg
}

// startStore starts a store (in memory when path is empty), stopped at cleanup.
func startStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.New(storeConfig(path), store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })
	return st
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func testConfig() Configuration {
	cfg := DefaultConfiguration()
	cfg.HourTopK, cfg.DayTopK = 2*minuteK, 2*minuteK
	return cfg
}

func newRollup(t *testing.T, cfg Configuration, st *store.Store, c *clock, usage func() (int64, error)) *Rollup {
	t.Helper()
	r, err := New(cfg, Dependencies{Store: st, Clock: c.now, Usage: usage, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Stop()) })
	return r
}

// gen is the traffic of key i in minute m of a scope: five heavy hitters in
// every minute, then a tail where each key shows up in about a third of the
// minutes, so cutting the minutes to K leaves thresholds and error bounds.
func gen(sc topn.Scope, m, i int) topn.Counters {
	h := fnv.New64a()
	fmt.Fprint(h, sc.String(), m, i)
	x := h.Sum64()
	var b uint64
	switch {
	case i < 5:
		b = 1_000_000/uint64(i+1) + x%1000
	case x%3 != 0:
		return topn.Counters{}
	default:
		b = 1 + x%5000
	}
	return topn.Counters{Bytes: b, Packets: b/100 + 1 + x%7, Flows: 1 + x%3}
}

// poolSize: the global scope has a long tail, exporterA fits in K (its tables stay exact).
func poolSize(sc topn.Scope) int {
	if sc == global {
		return 150
	}
	return 8
}

func dimKey(d topn.Dim, i int) topn.Key { return topn.Key{byte(d), byte(i), byte(i >> 8)} }

// truth holds the exact per-key traffic of each (scope, dim, interval).
type truthKey struct {
	tier  store.Tier
	sc    topn.Scope
	d     topn.Dim
	start time.Time
}

type truth map[truthKey]map[topn.Key]topn.Counters

func (tr truth) add(tier store.Tier, sc topn.Scope, d topn.Dim, start time.Time, k topn.Key, c topn.Counters) {
	tk := truthKey{tier, sc, d, start.Truncate(tier.Duration())}
	if tr[tk] == nil {
		tr[tk] = map[topn.Key]topn.Counters{}
	}
	v := tr[tk][k]
	v.Add(c)
	tr[tk][k] = v
}

// putMinutes writes minutes [from, to) (counted from t0) of both scopes, each
// table cut to minuteK as the aggregator cuts its minutes, and records the
// exact traffic per hour and per day in tr.
func putMinutes(t *testing.T, put func([]store.Interval) error, from, to int, tr truth) {
	t.Helper()
	var ivs []store.Interval
	for m := from; m < to; m++ {
		start := t0.Add(time.Duration(m) * time.Minute)
		for _, sc := range []topn.Scope{global, exporterA} {
			iv := store.Interval{Tier: store.TierMinute, Start: start, Scope: sc, Tables: map[topn.Dim]*topn.Table{}}
			for _, d := range dims {
				tab := &topn.Table{}
				for i := range poolSize(sc) {
					c := gen(sc, m, i)
					if c.IsZero() {
						continue
					}
					k := dimKey(d, i)
					tab.Entries = append(tab.Entries, topn.Entry{Key: k, Value: c})
					tab.Total.Add(c)
					if tr != nil {
						tr.add(store.TierHour, sc, d, start, k, c)
						tr.add(store.TierDay, sc, d, start, k, c)
					}
				}
				tab.Truncate(minuteK)
				iv.Tables[d] = tab
				iv.Total = tab.Total
			}
			ivs = append(ivs, iv)
		}
		if len(ivs) >= 120 || m == to-1 {
			require.NoError(t, put(ivs))
			ivs = nil
		}
	}
}

func storePut(st *store.Store) func([]store.Interval) error {
	return func(ivs []store.Interval) error {
		_, _, err := st.Put(t0, ivs)
		return err
	}
}

// checkRolled checks the interval of tier at start in every scope and dim: it
// is the merge of its source tables cut to the tier's K, its totals are exact,
// and every key's true traffic lies within its bounds (value ≤ true ≤ value +
// error for a kept key, true ≤ threshold for a dropped one).
func checkRolled(t *testing.T, st *store.Store, tier store.Tier, start time.Time, k int, tr truth) {
	t.Helper()
	end := start.Add(tier.Duration())
	for _, sc := range []topn.Scope{global, exporterA} {
		for _, d := range dims {
			got, ok, err := st.Get(tier, sc, d, start)
			require.NoError(t, err)
			require.True(t, ok, "%s %s %s %s", tier, start, sc, d)

			mg := topn.NewMerger(0)
			require.NoError(t, st.Range(source(tier), sc, d, start, end, func(_ time.Time, tab *topn.Table) error {
				mg.Add(tab)
				return nil
			}))
			want := mg.Table()
			want.Truncate(k)
			require.Equal(t, want, got, "%s %s %s %s is the merge of its sources", tier, start, sc, d)

			exact := tr[truthKey{tier, sc, d, start}]
			var total topn.Counters
			for key, c := range exact {
				total.Add(c)
				e, kept := got.Lookup(key)
				for _, m := range []topn.Metric{topn.Bytes, topn.Packets, topn.Flows} {
					if kept {
						require.LessOrEqual(t, e.Value.Get(m), c.Get(m), "%s %x %s: value is a lower bound", sc, key[:3], m)
						require.GreaterOrEqual(t, e.Value.Get(m)+e.Error.Get(m), c.Get(m), "%s %x %s: value+error is an upper bound", sc, key[:3], m)
					} else {
						require.LessOrEqual(t, c.Get(m), got.Threshold.Get(m), "%s %x %s: a dropped key is under the threshold", sc, key[:3], m)
					}
				}
			}
			require.Equal(t, total, got.Total, "totals are exact")
			for i := range 5 {
				_, kept := got.Lookup(dimKey(d, i))
				require.True(t, kept, "heavy hitter %d kept", i)
			}
			if sc == exporterA {
				require.True(t, got.Exact(), "nothing was ever cut: exact")
				require.Len(t, got.Entries, len(exact))
			}
		}
		var sum topn.Counters
		require.NoError(t, st.Totals(tier, sc, start, end, func(_ time.Time, c topn.Counters) error { sum.Add(c); return nil }))
		var want topn.Counters
		for _, c := range tr[truthKey{tier, sc, dims[0], start}] {
			want.Add(c)
		}
		require.Equal(t, want, sum, "interval totals")
	}
}

func TestHoursAndDayEqualTheMergeOfTheirSources(t *testing.T) {
	st := startStore(t, "")
	tr := truth{}
	putMinutes(t, storePut(st), 0, 25*60, tr)
	cfg := testConfig()
	cfg.MaxPerPass = 30
	c := &clock{t: t0.Add(25*time.Hour + cfg.Delay)}
	r := newRollup(t, cfg, st, c, nil)
	require.NoError(t, r.Pass())

	require.Equal(t, t0.Add(25*time.Hour), r.Rolled(store.TierHour))
	require.Equal(t, t0.Add(24*time.Hour), r.Rolled(store.TierDay))
	for h := range 25 {
		checkRolled(t, st, store.TierHour, t0.Add(time.Duration(h)*time.Hour), cfg.HourTopK, tr)
	}
	checkRolled(t, st, store.TierDay, t0, cfg.DayTopK, tr)

	// The minute cut left bounds that the hours and the day carry.
	day, _, err := st.Get(store.TierDay, global, topn.DimSrcIP, t0)
	require.NoError(t, err)
	require.False(t, day.Exact())
	withError := 0
	for _, e := range day.Entries {
		if !e.Error.IsZero() {
			withError++
		}
	}
	require.Positive(t, withError)
	require.Equal(t, 25.0, testutil.ToFloat64(r.metrics.rolled[store.TierHour]))
	require.Equal(t, 1.0, testutil.ToFloat64(r.metrics.rolled[store.TierDay]))
}

func TestHourWaitsForItsDelay(t *testing.T) {
	st := startStore(t, "")
	putMinutes(t, storePut(st), 0, 120, nil)
	cfg := testConfig()
	c := &clock{t: t0.Add(time.Hour + cfg.Delay - time.Second)}
	r := newRollup(t, cfg, st, c, nil)
	require.NoError(t, r.Pass())
	require.Equal(t, t0, r.Rolled(store.TierHour), "hour 0 is not final yet")
	_, ok, err := st.Get(store.TierHour, global, topn.DimSrcIP, t0)
	require.NoError(t, err)
	require.False(t, ok)

	c.set(t0.Add(time.Hour + cfg.Delay))
	require.NoError(t, r.Pass())
	require.Equal(t, t0.Add(time.Hour), r.Rolled(store.TierHour))
	require.True(t, r.Rolled(store.TierDay).Equal(t0), "the day waits for its 24 hours")
}

// A tmsd killed mid-catch-up, with an hour written but its progress not, then
// restarted long after: every hour gets rolled up, in order, none skipped.
func TestRestartResumesWithoutMissingAnHour(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.MaxPerPass = 2
	tr := truth{}

	st, err := store.New(storeConfig(dir), store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	putMinutes(t, storePut(st), 0, 6*60, tr)
	c := &clock{t: t0.Add(6*time.Hour + cfg.Delay)}
	r1, err := New(cfg, Dependencies{Store: st, Clock: c.now, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, r1.Pass())
	require.Equal(t, t0.Add(2*time.Hour), r1.Rolled(store.TierHour), "bounded: two hours per pass")
	// The kill: hour 2 half written (a stray table), its progress never saved.
	stray := store.Interval{Tier: store.TierHour, Start: t0.Add(2 * time.Hour), Scope: global,
		Total: topn.Counters{Bytes: 1}, Tables: map[topn.Dim]*topn.Table{topn.DimSrcIP: {Total: topn.Counters{Bytes: 1}}}}
	_, _, err = st.Put(t0, []store.Interval{stray})
	require.NoError(t, err)
	require.NoError(t, st.Stop())

	st = startStore(t, dir)
	c.set(t0.Add(72 * time.Hour))
	r2 := newRollup(t, cfg, st, c, nil)
	require.NoError(t, r2.Start())
	for pass := 0; r2.Rolled(store.TierHour).Before(t0.Add(6*time.Hour)) && pass < 10; pass++ {
		require.NoError(t, r2.Pass())
	}
	require.NoError(t, r2.Stop())
	require.False(t, r2.Rolled(store.TierHour).Before(t0.Add(6*time.Hour)))
	for h := range 6 {
		checkRolled(t, st, store.TierHour, t0.Add(time.Duration(h)*time.Hour), cfg.HourTopK, tr)
	}
	var starts []time.Time
	require.NoError(t, st.Totals(store.TierHour, global, t0, t0.Add(72*time.Hour), func(s time.Time, _ topn.Counters) error {
		starts = append(starts, s)
		return nil
	}))
	require.Len(t, starts, 6)
}

// A minute written into an hour already rolled up (an import, a very late
// flow) lowers the watermarks; the next pass rolls the hour up again with it.
func TestLateMinuteRollsItsHourAgain(t *testing.T) {
	st := startStore(t, "")
	tr := truth{}
	putMinutes(t, storePut(st), 0, 24*60+60, tr)
	cfg := testConfig()
	cfg.MaxPerPass = 30
	c := &clock{t: t0.Add(25*time.Hour + cfg.Delay)}
	r := newRollup(t, cfg, st, c, nil)
	require.NoError(t, r.Pass())
	require.Equal(t, t0.Add(24*time.Hour), r.Rolled(store.TierDay))

	late := t0.Add(3*time.Hour + 17*time.Minute)
	newKey := topn.Key{0xee}
	old, ok, err := st.Get(store.TierMinute, global, topn.DimSrcIP, late)
	require.NoError(t, err)
	require.True(t, ok)
	merged := &topn.Table{Total: old.Total, Threshold: old.Threshold, Entries: append(old.Entries, topn.Entry{Key: newKey, Value: topn.Counters{Bytes: 5e6, Packets: 1, Flows: 1}})}
	merged.Total.Add(topn.Counters{Bytes: 5e6, Packets: 1, Flows: 1})
	w := r.MinuteWriter()
	_, _, err = w.Put(t0, []store.Interval{{Tier: store.TierMinute, Start: late, Scope: global, Total: merged.Total,
		Tables: map[topn.Dim]*topn.Table{topn.DimSrcIP: merged}}})
	require.NoError(t, err)
	require.Equal(t, t0.Add(3*time.Hour), r.Rolled(store.TierHour), "the hour is no longer rolled up")
	require.Equal(t, t0, r.Rolled(store.TierDay), "nor its day")

	for pass := 0; r.Rolled(store.TierDay).Before(t0.Add(24*time.Hour)) && pass < 10; pass++ {
		require.NoError(t, r.Pass())
	}
	require.Equal(t, t0.Add(25*time.Hour), r.Rolled(store.TierHour))
	for _, tier := range []store.Tier{store.TierHour, store.TierDay} {
		got, _, err := st.Get(tier, global, topn.DimSrcIP, late.Truncate(tier.Duration()))
		require.NoError(t, err)
		e, kept := got.Lookup(newKey)
		require.True(t, kept, tier.String())
		require.Equal(t, uint64(5e6), e.Value.Bytes)
	}
}

// The disk cap evicts the finest tier first, oldest first, and only what is
// rolled up into the next tier; the newest day stays.
func TestDiskCapEvictionOrder(t *testing.T) {
	st := startStore(t, "")
	// Two days and a half-hour of minutes, one scope: all hours but the last final.
	var ivs []store.Interval
	for m := range 48*60 + 30 {
		tab := &topn.Table{Total: topn.Counters{Bytes: 10, Packets: 1, Flows: 1}, Entries: []topn.Entry{{Key: topn.Key{1}, Value: topn.Counters{Bytes: 10, Packets: 1, Flows: 1}}}}
		ivs = append(ivs, store.Interval{Tier: store.TierMinute, Start: t0.Add(time.Duration(m) * time.Minute), Total: tab.Total,
			Tables: map[topn.Dim]*topn.Table{topn.DimSrcIP: tab}})
	}
	_, _, err := st.Put(t0, ivs)
	require.NoError(t, err)

	cfg := testConfig()
	cfg.MaxPerPass = 100
	cfg.MaxDisk = 10
	cfg.Settle = time.Second // the hour 48 must not become final during the test
	var used int64           // the cap needs a couple of bytes freed at each pass
	c := &clock{t: t0.Add(48*time.Hour + cfg.Delay)}
	r := newRollup(t, cfg, st, c, func() (int64, error) { return used, nil })
	require.NoError(t, r.Pass())
	require.Equal(t, t0.Add(48*time.Hour), r.Rolled(store.TierHour))
	require.Equal(t, t0.Add(48*time.Hour), r.Rolled(store.TierDay))

	first := func(tier store.Tier) time.Time {
		f, _, ok, err := st.Bounds(tier)
		require.NoError(t, err)
		require.True(t, ok, tier.String())
		return f
	}
	evicted := func() [numTiers]float64 {
		var out [numTiers]float64
		for _, tier := range store.Tiers {
			out[tier] = testutil.ToFloat64(r.metrics.evictedIntervals[tier])
		}
		return out
	}
	used = 11
	var order []string
	for pass := 0; pass < 60; pass++ {
		before := evicted()
		c.set(c.now().Add(cfg.Settle))
		require.NoError(t, r.Pass())
		after := evicted()
		var tiers []string
		for _, tier := range store.Tiers {
			if after[tier] > before[tier] {
				tiers = append(tiers, tier.String())
			}
		}
		if len(tiers) == 0 {
			break
		}
		require.Len(t, tiers, 1, "one chunk per pass when a little is needed")
		order = append(order, tiers[0])
		if pass == 0 {
			require.Equal(t, t0.Add(time.Hour), first(store.TierMinute), "the oldest hour of minutes goes first")
			require.Equal(t, t0, first(store.TierHour))
		}
	}
	var want []string
	for range 48 {
		want = append(want, "minute")
	}
	want = append(want, "hour", "hour", "day")
	require.Equal(t, want, order)
	require.Equal(t, t0.Add(48*time.Hour), first(store.TierMinute), "minutes not rolled up yet stay")
	_, _, ok, err := st.Bounds(store.TierHour)
	require.NoError(t, err)
	require.False(t, ok, "hours all rolled into days")
	require.Equal(t, t0.Add(24*time.Hour), first(store.TierDay), "the newest day stays")
	require.Equal(t, [numTiers]float64{0, 48 * 60, 48, 1}, evicted())

	// Under the cap: nothing more, even much later.
	used = 9
	c.set(c.now().Add(time.Hour))
	require.NoError(t, r.Pass())
	require.Equal(t, [numTiers]float64{0, 48 * 60, 48, 1}, evicted())
}

func TestSettleWaitsBeforeMeasuringAgain(t *testing.T) {
	st := startStore(t, "")
	putMinutes(t, storePut(st), 0, 180, nil)
	cfg := testConfig()
	cfg.MaxDisk = 10
	c := &clock{t: t0.Add(3*time.Hour + cfg.Delay)}
	r := newRollup(t, cfg, st, c, func() (int64, error) { return 11, nil })
	require.NoError(t, r.Pass())
	require.Equal(t, 60.0, testutil.ToFloat64(r.metrics.evictedIntervals[store.TierMinute]))
	c.set(c.now().Add(cfg.Settle - time.Second))
	require.NoError(t, r.Pass())
	require.Equal(t, 60.0, testutil.ToFloat64(r.metrics.evictedIntervals[store.TierMinute]), "settling")
	c.set(c.now().Add(time.Second))
	require.NoError(t, r.Pass())
	require.Equal(t, 120.0, testutil.ToFloat64(r.metrics.evictedIntervals[store.TierMinute]))
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	st, err := store.New(storeConfig(""), store.Dependencies{})
	require.NoError(t, err)
	f := func(mod func(*Configuration)) {
		t.Helper()
		cfg := DefaultConfiguration()
		mod(&cfg)
		_, err := New(cfg, Dependencies{Store: st})
		require.ErrorIs(t, err, ErrConfig)
	}
	f(func(c *Configuration) { c.Interval = 0 })
	f(func(c *Configuration) { c.Delay = -time.Second })
	f(func(c *Configuration) { c.HourTopK = 0 })
	f(func(c *Configuration) { c.DayTopK = -1 })
	f(func(c *Configuration) { c.MaxPerPass = 0 })
	f(func(c *Configuration) { c.MaxDisk = -1 })
	_, err = New(DefaultConfiguration(), Dependencies{})
	require.ErrorIs(t, err, ErrConfig)
}

// The background loop and a direct Pass take turns; Stop waits for the loop.
func TestStartPassStop(t *testing.T) {
	st := startStore(t, "")
	putMinutes(t, storePut(st), 0, 120, nil)
	cfg := testConfig()
	cfg.Interval = time.Hour
	c := &clock{t: t0.Add(2*time.Hour + cfg.Delay)}
	r := newRollup(t, cfg, st, c, nil)
	require.NoError(t, r.Start())
	require.NoError(t, r.Pass())
	require.Equal(t, t0.Add(2*time.Hour), r.Rolled(store.TierHour))
	require.NoError(t, r.Stop())
	require.NoError(t, r.Stop(), "a second Stop is a no-op")
}

// The background loop catches up a backlog a slice a second, not a slice an
// Interval: eight hours at two a pass, with an Interval of an hour, are
// rolled up in seconds.
func TestBackgroundCatchesUpABacklog(t *testing.T) {
	st := startStore(t, "")
	putMinutes(t, storePut(st), 0, 8*60, nil)
	cfg := testConfig()
	cfg.Interval, cfg.MaxPerPass = time.Hour, 2
	c := &clock{t: t0.Add(8*time.Hour + cfg.Delay)}
	r := newRollup(t, cfg, st, c, nil)
	require.NoError(t, r.Start())
	require.Eventually(t, func() bool { return r.Rolled(store.TierHour).Equal(t0.Add(8 * time.Hour)) },
		20*time.Second, 50*time.Millisecond, "rolled up to %s", r.Rolled(store.TierHour))
}
