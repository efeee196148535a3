package query

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// noOpen is an aggregator with no open minutes.
type noOpen struct{}

func (noOpen) View(fn func(v aggregate.View) error) error { return fn(aggregate.View{}) }

// BenchmarkTop24h answers a 24-hour top over 1,440 stored minutes of K=1000
// keys each, half of the keys shared by every minute (the heavy hitters) and
// half changing (the tail): the "24-hour top in under 50 ms" case.
func BenchmarkTop24h(b *testing.B) {
	cfg := store.DefaultConfiguration()
	cfg.Path = b.TempDir()
	cfg.Retention[store.TierMinute] = 100 * 365 * 24 * time.Hour
	st, err := store.New(cfg, store.Dependencies{})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Start(); err != nil {
		b.Fatal(err)
	}
	defer st.Stop()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for m := 0; m < 1440; m += 60 {
		var ivs []store.Interval
		for i := m; i < m+60; i++ {
			t := &topn.Table{Total: topn.Counters{Bytes: 1 << 40, Packets: 1 << 30, Flows: 1 << 20}, Threshold: topn.Counters{Bytes: 100, Packets: 1, Flows: 1}}
			for k := 0; k < 1000; k++ {
				var key topn.Key
				id := uint32(k)
				if k >= 500 {
					id = uint32(i*1000 + k)
				}
				binary.BigEndian.PutUint32(key[12:], id)
				key[10], key[11] = 0xff, 0xff
				t.Entries = append(t.Entries, topn.Entry{Key: key, Value: topn.Counters{Bytes: uint64(1e9 / (k + 1)), Packets: uint64(1e6 / (k + 1)), Flows: 10}})
			}
			ivs = append(ivs, store.Interval{Tier: store.TierMinute, Start: start.Add(time.Duration(i) * time.Minute), Tables: map[topn.Dim]*topn.Table{topn.DimSrcIP: t}, Total: t.Total})
		}
		if _, _, err := st.Put(time.Now(), ivs); err != nil {
			b.Fatal(err)
		}
	}
	e := New(st, noOpen{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, err := e.Top(topn.Scope{}, topn.DimSrcIP, start, start.Add(24*time.Hour), 10, topn.Bytes)
		if err != nil {
			b.Fatal(err)
		}
		if rows, _ := t.Top(10, topn.Bytes); len(rows) != 10 {
			b.Fatal("short answer")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/query")
}
