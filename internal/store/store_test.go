package store

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// t0 is a minute boundary; tests pass now = t0 + a few minutes, far from the wall
// clock: TTLs are relative to now, so nothing expires under the test's feet.
var t0 = time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)

func minute(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

var (
	global    = topn.Scope{}
	exporterA = topn.Scope{Kind: topn.ScopeExporter, Exporter: flow.Addr{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 1}}
	protoTCP  = topn.Scope{Kind: topn.ScopeProto, Proto: 6}
)

func testConfig(t testing.TB) Configuration {
	cfg := DefaultConfiguration()
	cfg.Path = t.TempDir()
	return cfg
}

// startStore starts a store on cfg and stops it when the test ends.
func startStore(t testing.TB, cfg Configuration) *Store {
	t.Helper()
	s, err := New(cfg, Dependencies{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	return s
}

// table returns a small distinguishable table.
func table(seed uint64, n int) *topn.Table {
	t := &topn.Table{
		Total:     topn.Counters{Bytes: seed * 1000, Packets: seed * 10, Flows: seed},
		Threshold: topn.Counters{Bytes: seed},
	}
	for i := range n {
		t.Entries = append(t.Entries, topn.Entry{
			Key:   topn.PortKey(uint16(i+1), 6),
			Value: topn.Counters{Bytes: seed*100 + uint64(i), Packets: uint64(i), Flows: 1},
			Error: topn.Counters{Bytes: uint64(i % 2)},
		})
	}
	return t
}

func interval(start time.Time, scope topn.Scope, seed uint64, dims ...topn.Dim) Interval {
	iv := Interval{
		Tier: TierMinute, Start: start, Scope: scope,
		Total:  topn.Counters{Bytes: seed * 1000, Packets: seed * 10, Flows: seed},
		Tables: map[topn.Dim]*topn.Table{},
	}
	for i, d := range dims {
		iv.Tables[d] = table(seed+uint64(i), 3)
	}
	return iv
}

func put(t *testing.T, s *Store, ivs ...Interval) {
	t.Helper()
	w, sk, err := s.Put(minute(120), ivs)
	require.NoError(t, err)
	require.Equal(t, len(ivs), w)
	require.Zero(t, sk)
}

func TestPutGet(t *testing.T) {
	s := startStore(t, testConfig(t))
	ivs := []Interval{
		interval(minute(0), global, 1, topn.DimSrcIP, topn.DimDstPort),
		interval(minute(0), exporterA, 2, topn.DimSrcIP),
		interval(minute(0), protoTCP, 3, topn.DimApp),
		interval(minute(1), global, 4, topn.DimSrcIP),
	}
	put(t, s, ivs...)
	for _, iv := range ivs {
		for dim, want := range iv.Tables {
			got, ok, err := s.Get(TierMinute, iv.Scope, dim, iv.Start)
			require.NoError(t, err)
			require.True(t, ok, "%s %s %s", iv.Scope, dim, iv.Start)
			require.Equal(t, want, got)
		}
	}
	for _, q := range []struct {
		scope topn.Scope
		dim   topn.Dim
		start time.Time
	}{
		{global, topn.DimApp, minute(0)},        // dim not stored
		{exporterA, topn.DimDstPort, minute(0)}, // dim stored in another scope only
		{protoTCP, topn.DimApp, minute(1)},      // interval not stored
		{topn.Scope{Kind: topn.ScopeProto, Proto: 17}, topn.DimApp, minute(0)},
	} {
		got, ok, err := s.Get(TierMinute, q.scope, q.dim, q.start)
		require.NoError(t, err)
		require.False(t, ok)
		require.Nil(t, got)
	}
	_, ok, err := s.Get(TierHour, global, topn.DimSrcIP, minute(0))
	require.NoError(t, err)
	require.False(t, ok, "other tier")
}

func TestRange(t *testing.T) {
	s := startStore(t, testConfig(t))
	var ivs []Interval
	for m := range 10 {
		ivs = append(ivs,
			interval(minute(m), global, uint64(m+1), topn.DimSrcIP, topn.DimDstIP),
			interval(minute(m), exporterA, uint64(m+100), topn.DimSrcIP),
		)
	}
	// Same scope and dim in the hour tier, at t0 (which is also minute 0).
	hour := interval(t0, global, 999, topn.DimSrcIP)
	hour.Tier = TierHour
	ivs = append(ivs, hour)
	put(t, s, ivs...)

	collect := func(scope topn.Scope, dim topn.Dim, from, to time.Time) (starts []time.Time, totals []uint64) {
		require.NoError(t, s.Range(TierMinute, scope, dim, from, to, func(start time.Time, tab *topn.Table) error {
			starts = append(starts, start)
			totals = append(totals, tab.Total.Flows)
			return nil
		}))
		return
	}
	starts, seeds := collect(global, topn.DimSrcIP, minute(2), minute(7))
	require.Equal(t, []time.Time{minute(2), minute(3), minute(4), minute(5), minute(6)}, starts)
	require.Equal(t, []uint64{3, 4, 5, 6, 7}, seeds)
	require.Equal(t, time.UTC, starts[0].Location())

	_, seeds = collect(global, topn.DimDstIP, minute(0), minute(100))
	require.Equal(t, []uint64{2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, seeds, "dst tables are seeded +1")

	_, seeds = collect(exporterA, topn.DimSrcIP, minute(8), minute(100))
	require.Equal(t, []uint64{108, 109}, seeds)

	// Unaligned bounds: from rounds up, to stays exclusive.
	starts, _ = collect(global, topn.DimSrcIP, minute(2).Add(time.Second), minute(4).Add(time.Nanosecond))
	require.Equal(t, []time.Time{minute(3), minute(4)}, starts)

	starts, _ = collect(global, topn.DimSrcIP, minute(5), minute(5))
	require.Empty(t, starts)
	starts, _ = collect(global, topn.DimApp, minute(0), minute(10))
	require.Empty(t, starts)
	starts, _ = collect(protoTCP, topn.DimSrcIP, minute(0), minute(10))
	require.Empty(t, starts)

	var hourSeeds []uint64
	require.NoError(t, s.Range(TierHour, global, topn.DimSrcIP, t0.Add(-time.Hour), t0.Add(time.Hour), func(_ time.Time, tab *topn.Table) error {
		hourSeeds = append(hourSeeds, tab.Total.Flows)
		return nil
	}))
	require.Equal(t, []uint64{999}, hourSeeds)

	// fn's error stops the scan and comes back as is.
	stop := errorString("stop")
	n := 0
	err := s.Range(TierMinute, global, topn.DimSrcIP, minute(0), minute(10), func(time.Time, *topn.Table) error {
		n++
		return stop
	})
	require.Equal(t, stop, err)
	require.Equal(t, 1, n)
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestTotals(t *testing.T) {
	s := startStore(t, testConfig(t))
	put(t, s,
		interval(minute(0), global, 1),
		interval(minute(1), global, 2, topn.DimApp),
		interval(minute(2), global, 3),
		interval(minute(1), protoTCP, 50),
	)
	var got []topn.Counters
	var starts []time.Time
	require.NoError(t, s.Totals(TierMinute, global, minute(1), minute(3), func(start time.Time, c topn.Counters) error {
		starts = append(starts, start)
		got = append(got, c)
		return nil
	}))
	require.Equal(t, []time.Time{minute(1), minute(2)}, starts)
	require.Equal(t, []topn.Counters{{Bytes: 2000, Packets: 20, Flows: 2}, {Bytes: 3000, Packets: 30, Flows: 3}}, got)

	got = nil
	require.NoError(t, s.Totals(TierMinute, protoTCP, minute(0), minute(10), func(_ time.Time, c topn.Counters) error {
		got = append(got, c)
		return nil
	}))
	require.Equal(t, []topn.Counters{{Bytes: 50000, Packets: 500, Flows: 50}}, got)
}

func TestPutBeyondRetention(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = map[Tier]time.Duration{TierMinute: time.Hour}
	s := startStore(t, cfg)
	require.Equal(t, time.Hour, s.Retention(TierMinute))
	require.Equal(t, DefaultConfiguration().Retention[TierHour], s.Retention(TierHour), "defaults fill the rest")

	now := minute(120)
	old := interval(minute(59), global, 1, topn.DimApp)   // ended at minute(60): exactly retention old
	older := interval(minute(10), global, 2, topn.DimApp) // long gone
	fresh := interval(minute(60), global, 3, topn.DimApp)
	fresh2 := interval(minute(61), exporterA, 4, topn.DimApp)
	w, sk, err := s.Put(now, []Interval{old, fresh, older, fresh2})
	require.ErrorIs(t, err, ErrBeyondRetention)
	require.Equal(t, 2, w)
	require.Equal(t, 2, sk)

	for _, iv := range []Interval{old, older} {
		_, ok, err := s.Get(TierMinute, global, topn.DimApp, iv.Start)
		require.NoError(t, err)
		require.False(t, ok)
	}
	for _, iv := range []Interval{fresh, fresh2} {
		_, ok, err := s.Get(TierMinute, iv.Scope, topn.DimApp, iv.Start)
		require.NoError(t, err)
		require.True(t, ok)
	}
	w, sk, err = s.Put(now, []Interval{older})
	require.ErrorIs(t, err, ErrBeyondRetention)
	require.Equal(t, 0, w)
	require.Equal(t, 1, sk)
}

func TestPutReplaces(t *testing.T) {
	s := startStore(t, testConfig(t))
	put(t, s, interval(minute(0), global, 1, topn.DimSrcIP, topn.DimDstIP))
	put(t, s, interval(minute(0), global, 7, topn.DimSrcIP))
	got, ok, err := s.Get(TierMinute, global, topn.DimSrcIP, minute(0))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, table(7, 3), got)
	_, ok, err = s.Get(TierMinute, global, topn.DimDstIP, minute(0))
	require.NoError(t, err)
	require.False(t, ok, "a dim the new interval lacks is deleted")
	require.NoError(t, s.Totals(TierMinute, global, minute(0), minute(1), func(_ time.Time, c topn.Counters) error {
		require.EqualValues(t, 7, c.Flows)
		return nil
	}))
}

func TestReopen(t *testing.T) {
	cfg := testConfig(t)
	s, err := New(cfg, Dependencies{})
	require.NoError(t, err)
	require.NoError(t, s.Start())
	iv := interval(minute(3), exporterA, 5, topn.DimInIf)
	_, _, err = s.Put(minute(10), []Interval{iv, interval(minute(3), global, 6)})
	require.NoError(t, err)
	require.NoError(t, s.PutMeta("rollup/hour", []byte("2026-03-04T05:00:00Z")))
	require.NoError(t, s.Stop())
	require.NoError(t, s.Stop(), "stop twice")
	_, _, err = s.Get(TierMinute, exporterA, topn.DimInIf, minute(3))
	require.ErrorIs(t, err, ErrNotStarted)

	// Same Store restarted, then a new Store on the same directory.
	require.NoError(t, s.Start())
	got, ok, err := s.Get(TierMinute, exporterA, topn.DimInIf, minute(3))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, iv.Tables[topn.DimInIf], got)
	require.NoError(t, s.Stop())

	s2 := startStore(t, cfg)
	got, ok, err = s2.Get(TierMinute, exporterA, topn.DimInIf, minute(3))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, iv.Tables[topn.DimInIf], got)
	first, last, ok, err := s2.Bounds(TierMinute)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, minute(3), first)
	require.Equal(t, minute(3), last)
	v, ok, err := s2.GetMeta("rollup/hour")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "2026-03-04T05:00:00Z", string(v))
}

func TestCorruptValue(t *testing.T) {
	s := startStore(t, testConfig(t))
	put(t, s, interval(minute(0), global, 1, topn.DimApp), interval(minute(1), global, 2, topn.DimApp))
	key := appendStart(tablePrefix(TierMinute, global, topn.DimApp), uint64(minute(1).Unix()))
	require.NoError(t, s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(key, []byte("not a table at all"))
	}))
	_, _, err := s.Get(TierMinute, global, topn.DimApp, minute(1))
	require.ErrorIs(t, err, ErrCorrupt)
	n := 0
	err = s.Range(TierMinute, global, topn.DimApp, minute(0), minute(2), func(time.Time, *topn.Table) error {
		n++
		return nil
	})
	require.ErrorIs(t, err, ErrCorrupt)
	require.Equal(t, 1, n, "the good table before the bad one")

	totalsKey := appendStart(totalsPrefix(TierMinute, global), uint64(minute(0).Unix()))
	require.NoError(t, s.db.Update(func(txn *badger.Txn) error { return txn.Set(totalsKey, []byte{1, 2}) }))
	err = s.Totals(TierMinute, global, minute(0), minute(2), func(time.Time, topn.Counters) error { return nil })
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestTTL(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = map[Tier]time.Duration{TierMinute: 2 * time.Second}
	s := startStore(t, cfg)
	wall := time.Now()
	start := wall.Truncate(time.Minute).Add(-time.Minute)
	end := start.Add(time.Minute)
	iv := interval(start, global, 1, topn.DimApp)
	w, _, err := s.Put(end, []Interval{iv}) // the interval ends "now"
	require.NoError(t, err)
	require.Equal(t, 1, w)
	for _, key := range [][]byte{
		appendStart(tablePrefix(TierMinute, global, topn.DimApp), uint64(start.Unix())),
		appendStart(totalsPrefix(TierMinute, global), uint64(start.Unix())),
	} {
		require.NoError(t, s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(key)
			require.NoError(t, err)
			require.InDelta(t, wall.Add(2*time.Second).Unix(), int64(item.ExpiresAt()), 1)
			return nil
		}))
	}
	// Ended a second before now: a second left.
	iv.Scope = protoTCP
	_, _, err = s.Put(end.Add(time.Second), []Interval{iv})
	require.NoError(t, err)
	require.NoError(t, s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(appendStart(totalsPrefix(TierMinute, protoTCP), uint64(start.Unix())))
		require.NoError(t, err)
		require.InDelta(t, wall.Add(time.Second).Unix(), int64(item.ExpiresAt()), 1)
		return nil
	}))
	// Ended a minute before now: beyond retention, not written.
	iv.Start = start.Add(-time.Minute)
	_, _, err = s.Put(end, []Interval{iv})
	require.ErrorIs(t, err, ErrBeyondRetention)
	_, ok, err := s.Get(TierMinute, protoTCP, topn.DimApp, iv.Start)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestBounds(t *testing.T) {
	s := startStore(t, testConfig(t))
	_, _, ok, err := s.Bounds(TierMinute)
	require.NoError(t, err)
	require.False(t, ok)
	put(t, s,
		interval(minute(5), global, 1),
		interval(minute(2), global, 1),
		interval(minute(9), global, 1),
		interval(minute(1), exporterA, 1), // other scopes do not count
		interval(minute(30), protoTCP, 1),
	)
	first, last, ok, err := s.Bounds(TierMinute)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, minute(2), first)
	require.Equal(t, minute(9), last)
	_, _, ok, err = s.Bounds(TierHour)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestMeta(t *testing.T) {
	s := startStore(t, testConfig(t))
	_, ok, err := s.GetMeta("templates")
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, s.PutMeta("templates", []byte{1, 2, 3}))
	require.NoError(t, s.PutMeta("templates", []byte{4}))
	v, ok, err := s.GetMeta("templates")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []byte{4}, v)
	require.ErrorIs(t, s.PutMeta("", nil), ErrInvalid)
}

// Metas lists one component's entries, in name order, and only them.
func TestMetas(t *testing.T) {
	s := startStore(t, testConfig(t))
	for _, name := range []string{"import/b", "rollup/hour", "import/a", "importer", "import/c"} {
		require.NoError(t, s.PutMeta(name, []byte("v-"+name)))
	}
	f := func(prefix string, want ...string) {
		t.Helper()
		var got []string
		require.NoError(t, s.Metas(prefix, func(name string, v []byte) error {
			got = append(got, name+"="+string(v))
			return nil
		}))
		require.Equal(t, want, got, prefix)
	}
	f("import/", "import/a=v-import/a", "import/b=v-import/b", "import/c=v-import/c")
	f("rollup/", "rollup/hour=v-rollup/hour")
	f("nothing/")
	stop := errors.New("stop")
	n := 0
	err := s.Metas("import/", func(string, []byte) error { n++; return stop })
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n, "an error from fn ends the scan")
}

func TestInvalid(t *testing.T) {
	s := startStore(t, testConfig(t))
	good := interval(minute(0), global, 1, topn.DimApp)
	for name, mod := range map[string]func(*Interval){
		"tier":         func(iv *Interval) { iv.Tier = 0 },
		"tier 4":       func(iv *Interval) { iv.Tier = 4 },
		"unaligned":    func(iv *Interval) { iv.Start = iv.Start.Add(time.Second) },
		"unaligned ns": func(iv *Interval) { iv.Start = iv.Start.Add(1) },
		"hour":         func(iv *Interval) { iv.Tier = TierHour; iv.Start = minute(1) },
		"before epoch": func(iv *Interval) { iv.Start = time.Unix(-60, 0) },
		"scope kind":   func(iv *Interval) { iv.Scope = topn.Scope{Kind: 99} },
		"scope fields": func(iv *Interval) { iv.Scope = topn.Scope{Proto: 6} },
		"dim":          func(iv *Interval) { iv.Tables = map[topn.Dim]*topn.Table{0: table(1, 1)} },
	} {
		bad := good
		mod(&bad)
		w, sk, err := s.Put(minute(10), []Interval{good, bad})
		require.ErrorIs(t, err, ErrInvalid, name)
		require.Zero(t, w+sk, name)
	}
	_, ok, err := s.Get(TierMinute, global, topn.DimApp, minute(0))
	require.NoError(t, err)
	require.False(t, ok, "nothing written")
	_, _, err = s.Get(TierMinute, global, topn.Dim(200), minute(0))
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorIs(t, s.Range(Tier(9), global, topn.DimApp, minute(0), minute(1), nil), ErrInvalid)

	for name, cfg := range map[string]Configuration{
		"path":      {ValueLogGCInterval: time.Minute},
		"gc":        {Path: "x"},
		"tier":      {Path: "x", ValueLogGCInterval: time.Minute, Retention: map[Tier]time.Duration{7: time.Hour}},
		"retention": {Path: "x", ValueLogGCInterval: time.Minute, Retention: map[Tier]time.Duration{TierDay: 0}},
	} {
		_, err := New(cfg, Dependencies{})
		require.ErrorIs(t, err, ErrInvalid, name)
	}
}

// A tier's size counts its own keys and values only.
func TestTierSize(t *testing.T) {
	cfg := testConfig(t)
	s := startStore(t, cfg)
	var ivs []Interval
	for m := range 200 {
		ivs = append(ivs, interval(minute(m), global, uint64(m), topn.DimApp, topn.DimSrcIP))
	}
	put(t, s, ivs...)
	s.scanTierSizes(s.db)
	require.Positive(t, s.tierSize(TierMinute))
	require.Zero(t, s.tierSize(TierHour))
	require.Zero(t, s.tierSize(TierDay))
}

func TestInMemoryAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Configuration{InMemory: true}, Dependencies{Registry: reg})
	require.NoError(t, err)
	_, _, err = s.Put(minute(10), []Interval{interval(minute(0), global, 1)})
	require.ErrorIs(t, err, ErrNotStarted)
	require.NoError(t, s.Start())
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	require.Error(t, s.Start(), "already started")
	put(t, s, interval(minute(0), global, 1, topn.DimApp), interval(minute(1), global, 1))
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	require.Equal(t, map[string]float64{
		"tmsd_store_writes_total":       2,
		"tmsd_store_write_errors_total": 0,
		"tmsd_store_write_failing":      0,
		"tmsd_store_size_bytes/lsm":     0, // in memory
		"tmsd_store_size_bytes/vlog":    0,
		"tmsd_store_tier_bytes/minute":  0,
		"tmsd_store_tier_bytes/hour":    0,
		"tmsd_store_tier_bytes/day":     0,
	}, got)

	_, err = New(Configuration{InMemory: true}, Dependencies{Registry: reg})
	require.Error(t, err, "metrics registered twice")
}

func TestTierText(t *testing.T) {
	for _, tier := range Tiers {
		b, err := tier.MarshalText()
		require.NoError(t, err)
		var got Tier
		require.NoError(t, got.UnmarshalText(b))
		require.Equal(t, tier, got)
	}
	require.Equal(t, time.Minute, TierMinute.Duration())
	require.Equal(t, 24*time.Hour, TierDay.Duration())
	var bad Tier
	require.ErrorIs(t, bad.UnmarshalText([]byte("week")), ErrInvalid)
}

// Range reuses one table: each call must still see exactly its interval's table,
// however many entries the previous one had.
func TestRangeReusedTable(t *testing.T) {
	s := startStore(t, testConfig(t))
	sizes := []int{5, 0, 3, 7, 1, 0, 2}
	want := make([]*topn.Table, len(sizes))
	for m, n := range sizes {
		iv := interval(minute(m), global, uint64(m+1))
		want[m] = table(uint64(m+1), n)
		iv.Tables[topn.DimApp] = want[m]
		iv.Tables[topn.DimProto] = nil // nil means none
		put(t, s, iv)
	}
	m := 0
	require.NoError(t, s.Range(TierMinute, global, topn.DimApp, minute(0), minute(len(sizes)), func(start time.Time, got *topn.Table) error {
		require.Equal(t, minute(m), start)
		require.Equal(t, want[m].Total, got.Total)
		require.Equal(t, want[m].Threshold, got.Threshold)
		require.Len(t, got.Entries, sizes[m])
		for i := range got.Entries {
			require.Equal(t, want[m].Entries[i], got.Entries[i])
		}
		m++
		return nil
	}))
	require.Equal(t, len(sizes), m)
	_, ok, err := s.Get(TierMinute, global, topn.DimProto, minute(0))
	require.NoError(t, err)
	require.False(t, ok)
}
