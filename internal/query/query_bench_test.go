package query

import (
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/rollup"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// noOpen is an aggregator with no open minutes.
type noOpen struct{}

func (noOpen) View(fn func(v aggregate.View) error) error { return fn(aggregate.View{}) }

// benchTable is one interval's srcip table of k keys: the first heavy keys are
// shared by every interval (the heavy hitters), the others are the interval's
// own (the churning tail), numbered from tail.
func benchTable(k, heavy int, tail uint32) *topn.Table {
	t := &topn.Table{Total: topn.Counters{Bytes: 1 << 40, Packets: 1 << 30, Flows: 1 << 20}, Threshold: topn.Counters{Bytes: 100, Packets: 1, Flows: 1}}
	t.Entries = make([]topn.Entry, 0, k)
	for i := 0; i < k; i++ {
		var key topn.Key
		id := uint32(i)
		if i >= heavy {
			id = tail + uint32(i)
		}
		binary.BigEndian.PutUint32(key[12:], id)
		key[10], key[11] = 0xff, 0xff
		t.Entries = append(t.Entries, topn.Entry{Key: key, Value: topn.Counters{Bytes: uint64(1e9 / (i + 1)), Packets: uint64(1e6 / (i + 1)), Flows: 10}})
	}
	return t
}

func benchStore(b *testing.B, path string) *store.Store {
	cfg := store.DefaultConfiguration()
	cfg.Path = path
	cfg.InMemory = path == ""
	for _, t := range store.Tiers {
		cfg.Retention[t] = 100 * 365 * 24 * time.Hour
	}
	st, err := store.New(cfg, store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Stop() })
	return st
}

func putMinuteRange(b *testing.B, st *store.Store, from time.Time, minutes int) {
	for m := 0; m < minutes; m += 60 {
		var ivs []store.Interval
		for i := m; i < min(m+60, minutes); i++ {
			start := from.Add(time.Duration(i) * time.Minute)
			t := benchTable(1000, 500, uint32(start.Unix()/60)*1000)
			ivs = append(ivs, store.Interval{Tier: store.TierMinute, Start: start, Tables: map[topn.Dim]*topn.Table{topn.DimSrcIP: t}, Total: t.Total})
		}
		if _, _, err := st.Put(time.Now(), ivs); err != nil {
			b.Fatal(err)
		}
	}
}

func benchTop(b *testing.B, e *Engine, from, to time.Time, n int, tiers int) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := e.Top(topn.Scope{}, topn.DimSrcIP, from, to, n, topn.Bytes)
		if err != nil {
			b.Fatal(err)
		}
		if rows, _ := res.Table.Top(topn.DimSrcIP, n, topn.Bytes); len(rows) != n || len(res.Tiers) != tiers {
			b.Fatalf("short answer: %d rows from %v", len(rows), res.Tiers)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/query")
}

// BenchmarkTop24h answers a 24-hour top at a ragged time of day, [00:30,
// 24:30), over stored minutes of K=1000 keys each, half of the keys shared by
// every minute (the heavy hitters) and half changing (the tail). "minutes"
// reads its 1,440 minutes; "tiers" reads the 23 whole hours from the hour tier
// (rolled up by the rollup component, K=2000) and only the 60 edge minutes.
func BenchmarkTop24h(b *testing.B) {
	st := benchStore(b, b.TempDir())
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	putMinuteRange(b, st, start, 25*60)
	cfg := rollup.DefaultConfiguration()
	cfg.MaxPerPass = 100
	r, err := rollup.New(cfg, rollup.Dependencies{Store: st, Clock: func() time.Time { return start.Add(25*time.Hour + cfg.Delay) },
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Pass(); err != nil {
		b.Fatal(err)
	}
	from, to := start.Add(30*time.Minute), start.Add(24*time.Hour+30*time.Minute)
	b.Run("minutes", func(b *testing.B) { benchTop(b, New(st, noOpen{}), from, to, 10, 1) })
	b.Run("tiers", func(b *testing.B) { benchTop(b, New(st, noOpen{}, WithProgress(r)), from, to, 10, 2) })
}

// BenchmarkTop30d answers a 30-day top, [day 0 10:17, day 30 10:17), over a
// rolled-up in-memory store: 43 + 17 minutes at the edges (K=1000), 23 hours
// (K=2000: 500 heavy keys shared by all and 1,500 of the hour's own, as an
// hour rolled up from churning minutes keeps) and 29 days, each the merge of
// its 24 hours cut to K=2000 as the rollup cuts it.
func BenchmarkTop30d(b *testing.B) {
	st := benchStore(b, "")
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	const days, k = 31, 2000
	for d := 0; d < days; d++ {
		mg := topn.NewMerger(24 * k)
		var hours []store.Interval
		for h := 0; h < 24; h++ {
			hs := start.Add(time.Duration(d*24+h) * time.Hour)
			t := benchTable(k, 500, uint32(hs.Unix()/3600)*k)
			mg.Add(t)
			hours = append(hours, store.Interval{Tier: store.TierHour, Start: hs, Tables: map[topn.Dim]*topn.Table{topn.DimSrcIP: t}, Total: t.Total})
		}
		day := mg.Table()
		day.Truncate(k)
		hours = append(hours, store.Interval{Tier: store.TierDay, Start: start.Add(time.Duration(d) * 24 * time.Hour),
			Tables: map[topn.Dim]*topn.Table{topn.DimSrcIP: day}, Total: day.Total})
		if _, _, err := st.Put(time.Now(), hours); err != nil {
			b.Fatal(err)
		}
	}
	putMinuteRange(b, st, start.Add(10*time.Hour), 60)
	putMinuteRange(b, st, start.Add(30*24*time.Hour+10*time.Hour), 60)
	end := start.Add(days * 24 * time.Hour)
	e := New(st, noOpen{}, WithProgress(marks{store.TierHour: end, store.TierDay: end}))
	from := start.Add(10*time.Hour + 17*time.Minute)
	to := from.Add(30 * 24 * time.Hour)
	b.Run("n=10", func(b *testing.B) { benchTop(b, e, from, to, 10, 3) })
	b.Run("n=1000", func(b *testing.B) { benchTop(b, e, from, to, 1000, 3) })
}
