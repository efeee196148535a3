package aggregate

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// benchRecords draws n flows with Zipf-distributed hosts and services, as a
// backbone's mix: a few heavy talkers, a long tail.
func benchRecords(n, hosts int, seed uint64) []flow.Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	zh := rand.NewZipf(rng, 1.1, 1, uint64(hosts-1))
	services := []uint16{443, 80, 53, 5432, 22, 3306, 8081, 123}
	zs := rand.NewZipf(rng, 1.3, 1, uint64(len(services)-1))
	host := func(i uint64) flow.Addr {
		return flow.AddrFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	exporters := []flow.Addr{flow.AddrFrom(netip.MustParseAddr("192.0.2.1")), flow.AddrFrom(netip.MustParseAddr("192.0.2.2"))}
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC).UnixMilli()
	recs := make([]flow.Record, n)
	for i := range recs {
		r := &recs[i]
		r.Exporter = exporters[i%2]
		r.SrcAddr, r.DstAddr = host(zh.Uint64()), host(zh.Uint64()+uint64(hosts))
		r.SrcPort, r.DstPort = uint16(32768+rng.IntN(28000)), services[zs.Uint64()]
		r.Proto = 6
		if r.DstPort == 53 || r.DstPort == 123 {
			r.Proto = 17
		}
		r.Bytes, r.Packets = uint64(64+rng.IntN(1400)), 1
		r.InIf, r.OutIf = uint32(1+i%8), uint32(10+i%4)
		r.Received, r.End = now+int64(i%50_000), now+int64(i%50_000)
	}
	return recs
}

func newBenchAggregator(b *testing.B, mod func(*Configuration)) *Aggregator {
	cls, err := apps.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfiguration()
	cfg.Shards = 1
	if mod != nil {
		mod(&cfg)
	}
	if testing.Short() {
		cfg.MaxKeys = 10_000_000
	}
	a, err := New(cfg, Dependencies{Ring: ring.New(1024), Store: nopStore{}, Classifier: cls})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkAdd is one shard counting flows into its minute tables: the
// aggregation cost per flow, without the ring. The sub-benchmarks turn the
// interface scopes and the drill-downs off, to show what each costs.
func BenchmarkAdd(b *testing.B) {
	recs := benchRecords(1<<16, 100_000, 1)
	for _, bc := range []struct {
		name string
		mod  func(*Configuration)
	}{
		{"default", nil},
		{"no-drill", func(c *Configuration) { c.DrillDowns = 0 }},
		{"no-interface", func(c *Configuration) { c.ScopeInterface = false }},
		{"neither", func(c *Configuration) { c.DrillDowns, c.ScopeInterface = 0, false }},
		// Tables of 20k keys at most: the srcip and dstip tables compact
		// every few thousand flows, as under a flood of distinct addresses.
		{"compacting", func(c *Configuration) { c.MaxKeys = 20_000 }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := newBenchAggregator(b, bc.mod)
			s := a.shards[0]
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.add(s, &recs[i&(len(recs)-1)])
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/flow")
		})
	}
}

type nopStore struct{}

func (nopStore) Get(store.Tier, topn.Scope, topn.Dim, time.Time) (*topn.Table, bool, error) {
	return nil, false, nil
}
func (nopStore) Retention(store.Tier) time.Duration              { return time.Hour }
func (nopStore) BeginFinal([]store.Interval) error               { return nil }
func (nopStore) PutInterval(time.Time, store.Interval) error     { return nil }
func (nopStore) EndFinal(store.Tier, time.Time) error            { return nil }
func (nopStore) PutCheckpoint(time.Time, []byte) error           { return nil }
func (nopStore) DeleteCheckpoint(time.Time) error                { return nil }
func (nopStore) Checkpoints(func(time.Time, []byte) error) error { return nil }
func (nopStore) Finals(func(store.Tier, time.Time, []store.Interval, error) error) error {
	return nil
}

// BenchmarkCheckpoint is the checkpoint of one minute holding 200k keys (two
// shards), encoded alone and encoded then written to an on-disk store.
func BenchmarkCheckpoint(b *testing.B) {
	cls, err := apps.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	scfg := store.DefaultConfiguration()
	scfg.Path = b.TempDir()
	scfg.MinFreeSpace = 0
	st, err := store.New(scfg, store.Dependencies{})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Stop() })
	cfg := DefaultConfiguration()
	cfg.Shards = 2
	a, err := New(cfg, Dependencies{Ring: ring.New(1024), Store: st, Classifier: cls})
	if err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(1<<20, 1_000_000, 2)
	keys := 0
	for i := 0; keys < 200_000; i++ {
		s := a.shards[i%2]
		a.add(s, &recs[i%len(recs)])
		keys = a.shards[0].keys + a.shards[1].keys
	}
	start := floorDiv(recs[0].End, 60_000) * 60
	if len(a.shards[0].minutes)+len(a.shards[1].minutes) != 2 {
		b.Fatal("want one minute per shard")
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = a.encodeCheckpoint(buf[:0], start)
		}
		b.ReportMetric(float64(len(buf)), "bytes/checkpoint")
	})
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(a.ckFlows)
			if err := a.checkpoint(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(a.ckBytes.Load()), "bytes/checkpoint")
	})
}

// BenchmarkCloseMinute is the minute flush's merge: one minute of two shards
// holding a spread of source addresses (about 400k keys over 2 exporters and
// 2 protocols), made into every scope's top-K tables. B/op is the transient
// memory a flood of distinct addresses costs at each minute boundary.
func BenchmarkCloseMinute(b *testing.B) {
	cfg := DefaultConfiguration()
	cfg.Shards = 2
	cls, err := apps.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(cfg, Dependencies{Ring: ring.New(1024), Store: nopStore{}, Classifier: cls})
	if err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(1<<20, 1_000_000, 3)
	for i := 0; a.shards[0].keys+a.shards[1].keys < 400_000; i++ {
		a.add(a.shards[i%2], &recs[i%len(recs)])
	}
	start := floorDiv(recs[0].End, 60_000) * 60
	cm := &closingMinute{start: start, shards: []*minuteAgg{a.shards[0].minutes[start], a.shards[1].minutes[start]}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.closeMinute(cm); err != nil {
			b.Fatal(err)
		}
	}
}
