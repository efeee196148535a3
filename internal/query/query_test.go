package query

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/rollup"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// t0 is a day boundary far from the wall clock; test stores keep everything for a century.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

var (
	// exact: a dozen keys, never cut, so every tier is exact.
	exact = topn.Scope{}
	// cut: a long tail cut at every tier, so figures carry error bounds.
	cut = topn.Scope{Kind: topn.ScopeExporter, Exporter: flow.Addr{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 1}}
)

const (
	minuteK = 10
	coarseK = 50
)

func at(day, hour, minute int) time.Time {
	return t0.Add(time.Duration(day)*24*time.Hour + time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute)
}

func pool(sc topn.Scope) int {
	if sc == exact {
		return 12
	}
	return 200
}

func key(i int) topn.Key { return topn.Key{1, byte(i), byte(i >> 8)} }

// traffic of key i in minute m: a few heavy keys always, the tail now and then.
func traffic(sc topn.Scope, m, i int) topn.Counters {
	h := fnv.New64a()
	fmt.Fprint(h, sc.String(), m, i)
	x := h.Sum64()
	if i >= 4 && x%4 != 0 {
		return topn.Counters{}
	}
	b := 1 + x%10_000
	if i < 4 {
		b += 1_000_000 / uint64(i+1)
	}
	return topn.Counters{Bytes: b, Packets: b/500 + 1, Flows: 1 + x%4}
}

type truth map[topn.Scope]map[int]map[topn.Key]topn.Counters // scope → minute → key

// rolledStore writes three days of minutes, rolls up every hour and day, and
// returns the store, the rollup (the engine's progress) and the exact traffic.
func rolledStore(t testing.TB) (*store.Store, *rollup.Rollup, truth) {
	cfg := store.DefaultConfiguration()
	cfg.InMemory = true
	for _, tier := range store.Tiers {
		cfg.Retention[tier] = 100 * 365 * 24 * time.Hour
	}
	st, err := store.New(cfg, store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })
	tr := truth{exact: {}, cut: {}}
	var ivs []store.Interval
	for m := range 3 * 24 * 60 {
		for _, sc := range []topn.Scope{exact, cut} {
			tab := &topn.Table{}
			tr[sc][m] = map[topn.Key]topn.Counters{}
			for i := range pool(sc) {
				if c := traffic(sc, m, i); !c.IsZero() {
					tab.Entries = append(tab.Entries, topn.Entry{Key: key(i), Value: c})
					tab.Total.Add(c)
					tr[sc][m][key(i)] = c
				}
			}
			tab.Truncate(minuteK)
			ivs = append(ivs, store.Interval{Tier: store.TierMinute, Start: at(0, 0, m), Scope: sc, Total: tab.Total,
				Tables: map[topn.Dim]*topn.Table{topn.DimSrcIP: tab}})
		}
		if len(ivs) >= 240 {
			_, _, err := st.Put(t0, ivs)
			require.NoError(t, err)
			ivs = nil
		}
	}
	rcfg := rollup.DefaultConfiguration()
	rcfg.HourTopK, rcfg.DayTopK, rcfg.MaxPerPass = coarseK, coarseK, 100
	r, err := rollup.New(rcfg, rollup.Dependencies{Store: st, Clock: func() time.Time { return at(3, 0, 0).Add(rcfg.Delay) },
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, r.Pass())
	require.Equal(t, at(3, 0, 0), r.Rolled(store.TierHour))
	require.Equal(t, at(3, 0, 0), r.Rolled(store.TierDay))
	return st, r, tr
}

// A ragged range is read as minutes + hours + a day + hours + minutes, and,
// where nothing was cut, gives exactly the minutes-only answer.
func TestRaggedRangeEqualsMinutesOnly(t *testing.T) {
	st, r, tr := rolledStore(t)
	tiered, minutes := New(st, noOpen{}, WithProgress(r)), New(st, noOpen{})
	from, to := at(0, 10, 17), at(2, 13, 42)

	p, err := tiered.plan(from, to, 0)
	require.NoError(t, err)
	require.Equal(t, []segment{
		{store.TierMinute, from, at(0, 11, 0)},
		{store.TierHour, at(0, 11, 0), at(1, 0, 0)},
		{store.TierDay, at(1, 0, 0), at(2, 0, 0)},
		{store.TierHour, at(2, 0, 0), at(2, 13, 0)},
		{store.TierMinute, at(2, 13, 0), to},
	}, p.segs)

	got, err := tiered.Top(exact, topn.DimSrcIP, from, to, 0, topn.Bytes)
	require.NoError(t, err)
	want, err := minutes.Top(exact, topn.DimSrcIP, from, to, 0, topn.Bytes)
	require.NoError(t, err)
	require.Equal(t, want.Table, got.Table)
	require.Equal(t, []string{"minute", "hour", "day"}, got.Tiers)
	require.Equal(t, []string{"minute"}, want.Tiers)
	require.True(t, got.Exact)
	require.Equal(t, from, got.From)
	require.Equal(t, to, got.To)
	require.Len(t, got.Table.Entries, pool(exact))

	// Where tables were cut, the tiers' answer still has exact totals and
	// bounds that hold the true figures.
	first, last := int(from.Sub(t0)/time.Minute), int(to.Sub(t0)/time.Minute)
	res, err := tiered.Top(cut, topn.DimSrcIP, from, to, 0, topn.Bytes)
	require.NoError(t, err)
	require.False(t, res.Exact)
	exactSums := map[topn.Key]topn.Counters{}
	var total topn.Counters
	for m := first; m < last; m++ {
		for k, c := range tr[cut][m] {
			v := exactSums[k]
			v.Add(c)
			exactSums[k] = v
			total.Add(c)
		}
	}
	require.Equal(t, total, res.Table.Total)
	for k, c := range exactSums {
		e, ok := res.Table.Lookup(k)
		if !ok {
			require.LessOrEqual(t, c.Bytes, res.Table.Threshold.Bytes)
			continue
		}
		require.LessOrEqual(t, e.Value.Bytes, c.Bytes)
		require.GreaterOrEqual(t, e.Value.Bytes+e.Error.Bytes, c.Bytes)
	}
	rows, _ := res.Table.Top(topn.DimSrcIP, 4, topn.Bytes)
	for i, row := range rows {
		require.Equal(t, key(i), row.Key, "the heavy keys lead")
	}
}

func TestSeriesFromTiersEqualsMinutesOnly(t *testing.T) {
	st, r, _ := rolledStore(t)
	tiered, minutes := New(st, noOpen{}, WithProgress(r)), New(st, noOpen{})
	from, to := at(0, 10, 17), at(2, 13, 42)
	k := key(2)
	f := func(step time.Duration, k *topn.Key, tiers ...string) {
		t.Helper()
		got, err := tiered.Series(exact, from, to, step, topn.DimSrcIP, k)
		require.NoError(t, err)
		want, err := minutes.Series(exact, from, to, step, topn.DimSrcIP, k)
		require.NoError(t, err)
		require.Equal(t, want.Points, got.Points, step)
		require.Equal(t, tiers, got.Tiers, step)
		require.True(t, got.Exact)
	}
	f(time.Hour, nil, "minute", "hour")
	f(24*time.Hour, nil, "minute", "hour", "day")
	f(5*time.Minute, nil, "minute")
	f(time.Hour, &k, "minute", "hour")
	f(24*time.Hour, &k, "minute", "hour", "day")

	_, err := tiered.Series(exact, from, to, 90*time.Second, 0, nil)
	require.ErrorIs(t, err, ErrInvalid)
}

// KeySeries gives, in one pass, what Series gives key by key, and the totals.
func TestKeySeries(t *testing.T) {
	st, r, _ := rolledStore(t)
	e := New(st, noOpen{}, WithProgress(r))
	from, to := at(0, 10, 17), at(2, 13, 42)
	keys := []topn.Key{key(0), key(3), key(57), key(199), {0xee}} // heavy, heavy, tail, tail, never seen
	for _, step := range []time.Duration{time.Minute, 5 * time.Minute, time.Hour, 24 * time.Hour} {
		for _, sc := range []topn.Scope{exact, cut} {
			res, err := e.KeySeries(sc, topn.DimSrcIP, keys, from, to, step)
			require.NoError(t, err)
			require.Len(t, res.Keys, len(keys))
			exactAll := true
			for i, k := range keys {
				one, err := e.Series(sc, from, to, step, topn.DimSrcIP, &k)
				require.NoError(t, err)
				require.Equal(t, one.Points, res.Keys[i], "%s %s key %d", step, sc, i)
				exactAll = exactAll && one.Exact
				require.Equal(t, one.Tiers, res.Tiers)
			}
			totals, err := e.Series(sc, from, to, step, 0, nil)
			require.NoError(t, err)
			require.Equal(t, totals.Points, res.Total, "%s %s totals", step, sc)
			require.Equal(t, exactAll, res.Exact)
			require.Equal(t, sc == exact, res.Exact, "%s %s", step, sc)
		}
	}
	_, err := e.KeySeries(exact, topn.DimSrcIP, []topn.Key{key(1), key(1)}, from, to, time.Hour)
	require.ErrorIs(t, err, ErrInvalid)
}

// fakeBounds is a store for planning: only Bounds answers.
type fakeBounds struct {
	Store
	first map[store.Tier]time.Time
}

func (f fakeBounds) Bounds(tier store.Tier) (time.Time, time.Time, bool, error) {
	t, ok := f.first[tier]
	return t, t, ok, nil
}

type marks map[store.Tier]time.Time

func (m marks) Rolled(tier store.Tier) time.Time { return m[tier] }

func TestPlan(t *testing.T) {
	allStored := map[store.Tier]time.Time{store.TierMinute: at(0, 0, 0), store.TierHour: at(0, 0, 0), store.TierDay: at(0, 0, 0)}
	type seg = segment
	f := func(name string, first map[store.Tier]time.Time, m marks, from, to time.Time, step time.Duration, want []segment, wantFrom, wantTo time.Time) {
		t.Helper()
		var opts []Option
		if m != nil {
			opts = append(opts, WithProgress(m))
		}
		p, err := New(fakeBounds{first: first}, noOpen{}, opts...).plan(from, to, step)
		require.NoError(t, err)
		require.Equal(t, want, p.segs, name)
		require.Equal(t, wantFrom, p.from, name)
		require.Equal(t, wantTo, p.to, name)
	}
	rolled := marks{store.TierHour: at(9, 0, 0), store.TierDay: at(9, 0, 0)}
	from, to := at(1, 10, 17), at(3, 13, 42)
	f("no rollups: minutes", allStored, nil, from, to, 0, []seg{{store.TierMinute, from, to}}, from, to)
	f("ragged", allStored, rolled, from, to, 0, []seg{
		{store.TierMinute, from, at(1, 11, 0)}, {store.TierHour, at(1, 11, 0), at(2, 0, 0)}, {store.TierDay, at(2, 0, 0), at(3, 0, 0)},
		{store.TierHour, at(3, 0, 0), at(3, 13, 0)}, {store.TierMinute, at(3, 13, 0), to}}, from, to)
	f("aligned", allStored, rolled, at(1, 0, 0), at(4, 0, 0), 0, []seg{{store.TierDay, at(1, 0, 0), at(4, 0, 0)}}, at(1, 0, 0), at(4, 0, 0))
	f("inside one hour", allStored, rolled, at(1, 10, 17), at(1, 10, 42), 0, []seg{{store.TierMinute, at(1, 10, 17), at(1, 10, 42)}}, at(1, 10, 17), at(1, 10, 42))
	f("only what is rolled up is read coarse", allStored, marks{store.TierHour: at(3, 5, 0), store.TierDay: at(3, 0, 0)}, from, at(3, 13, 42), 0, []seg{
		{store.TierMinute, from, at(1, 11, 0)}, {store.TierHour, at(1, 11, 0), at(2, 0, 0)}, {store.TierDay, at(2, 0, 0), at(3, 0, 0)},
		{store.TierHour, at(3, 0, 0), at(3, 5, 0)}, {store.TierMinute, at(3, 5, 0), at(3, 13, 42)}}, from, at(3, 13, 42))
	f("day not rolled up yet: hours", allStored, marks{store.TierHour: at(9, 0, 0), store.TierDay: at(2, 0, 0)}, from, to, 0, []seg{
		{store.TierMinute, from, at(1, 11, 0)}, {store.TierHour, at(1, 11, 0), at(3, 13, 0)}, {store.TierMinute, at(3, 13, 0), to}}, from, to)
	f("step 5m: minutes", allStored, rolled, from, to, 5*time.Minute, []seg{{store.TierMinute, from, to}}, from, to)
	f("step 1h: no days", allStored, rolled, from, to, time.Hour, []seg{
		{store.TierMinute, from, at(1, 11, 0)}, {store.TierHour, at(1, 11, 0), at(3, 13, 0)}, {store.TierMinute, at(3, 13, 0), to}}, from, to)
	f("step 2d: days", allStored, rolled, from, to, 48*time.Hour, []seg{
		{store.TierMinute, from, at(1, 11, 0)}, {store.TierHour, at(1, 11, 0), at(2, 0, 0)}, {store.TierDay, at(2, 0, 0), at(3, 0, 0)},
		{store.TierHour, at(3, 0, 0), at(3, 13, 0)}, {store.TierMinute, at(3, 13, 0), to}}, from, to)

	// Minutes before day 3 are gone: the left edge comes from its whole hour
	// and the range is widened to it; the right edge still has its minutes.
	expired := map[store.Tier]time.Time{store.TierMinute: at(3, 0, 0), store.TierHour: at(0, 0, 0), store.TierDay: at(0, 0, 0)}
	f("expired minutes: widened to the hour", expired, rolled, from, to, 0, []seg{
		{store.TierHour, at(1, 10, 0), at(2, 0, 0)}, {store.TierDay, at(2, 0, 0), at(3, 0, 0)},
		{store.TierHour, at(3, 0, 0), at(3, 13, 0)}, {store.TierMinute, at(3, 13, 0), to}}, at(1, 10, 0), to)
	// Hours gone too before day 2: the left partial day comes from the day.
	f("expired hours: widened to the day", map[store.Tier]time.Time{store.TierMinute: at(3, 0, 0), store.TierHour: at(2, 0, 0), store.TierDay: at(0, 0, 0)},
		rolled, from, to, 0, []seg{{store.TierDay, at(1, 0, 0), at(3, 0, 0)},
			{store.TierHour, at(3, 0, 0), at(3, 13, 0)}, {store.TierMinute, at(3, 13, 0), to}}, at(1, 0, 0), to)
	// A step of 5 minutes cannot take a whole hour: no widening, the edge is what the minutes have.
	f("expired minutes, 5m steps", expired, rolled, from, to, 5*time.Minute, []seg{{store.TierMinute, from, to}}, from, to)
}
