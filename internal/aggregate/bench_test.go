package aggregate

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// benchRecords draws n flows of a backbone's mix: Zipf (s=1.1) over 100,000
// source and 10,000 destination addresses, 50 services with ephemeral client
// ports (half the flows are the server's answer), 48 interfaces a side drawn
// independently, 4 exporters, one protocol in five UDP. The benchmarks give
// every pass over them fresh client ports, so that flows do not repeat: in
// the real captures of testdata/pcaps each NetFlow or IPFIX flow is one of a
// kind within its minute (1.00 flows per exporter, interfaces and 5-tuple).
func benchRecords(n int, seed uint64) []flow.Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	zs := rand.NewZipf(rng, 1.1, 1, 100_000-1)
	zd := rand.NewZipf(rng, 1.1, 1, 10_000-1)
	zp := rand.NewZipf(rng, 1.1, 1, 49)
	host := benchHost
	var exps [4]flow.Addr
	for i := range exps {
		exps[i] = flow.AddrFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)}))
	}
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC).UnixMilli()
	recs := make([]flow.Record, n)
	exp := exps[0]
	for i := range recs {
		r := &recs[i]
		if i%30 == 0 { // a datagram's records: one exporter
			exp = exps[rng.IntN(4)]
		}
		r.Exporter = exp
		r.SrcAddr, r.DstAddr = host(zs.Uint64(), 10), host(zd.Uint64(), 172)
		r.SrcPort, r.DstPort = uint16(32768+rng.IntN(28000)), uint16(1+zp.Uint64()*37)
		r.Proto = 6
		if rng.IntN(5) == 0 {
			r.Proto = 17
		}
		if rng.IntN(2) == 0 {
			r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort = r.DstAddr, r.SrcAddr, r.DstPort, r.SrcPort
		}
		r.Bytes, r.Packets = uint64(64+rng.IntN(1400)), uint64(1+rng.IntN(20))
		r.InIf, r.OutIf = uint32(1+rng.IntN(48)), uint32(1+rng.IntN(48))
		r.Received, r.End = now+int64(i%50_000), now+int64(i%50_000)
	}
	return recs
}

// benchHost is address i of benchRecords' hosts under the first octet hi.
func benchHost(i uint64, hi byte) flow.Addr {
	i = (i*0x9e3779b1 + 12345) & 0xffffff
	return flow.AddrFrom(netip.AddrFrom4([4]byte{hi, byte(i >> 16), byte(i >> 8), byte(i)}))
}

// classified names the records' applications, as ingest does
// (flow.Record.App).
func classified(recs []flow.Record) []flow.Record {
	cls, _ := apps.New(nil)
	for i := range recs {
		recs[i].App = cls.ClassifyID(&recs[i])
	}
	return recs
}

// enriched gives the records countries and ASes as enrichment would: each
// host's /24 in one of ~5,000 ASes (Zipf, as routing tables are: a few
// networks hold most addresses) and each AS in one of ~200 countries.
func enriched(recs []flow.Record) []flow.Record {
	end := func(a flow.Addr) (uint32, [2]byte) {
		b := a
		h := (uint64(b[12])<<16 | uint64(b[13])<<8 | uint64(b[14])) * 0x9e3779b97f4a7c15
		h ^= h >> 29
		as := uint32(h%5000)*uint32(h>>40%5000)/5000 + 1 // skewed to low numbers
		c := as * 2654435761 % 200
		return 64512 + as, [2]byte{'A' + byte(c/26), 'A' + byte(c%26)}
	}
	for i := range recs {
		r := &recs[i]
		r.SrcAS, r.SrcCountry = end(r.SrcAddr)
		r.DstAS, r.DstCountry = end(r.DstAddr)
	}
	return recs
}

// freshPorts gives pass p over recs new client ports (the higher port of
// each flow), so that no flow repeats one of an earlier pass.
func freshPorts(recs []flow.Record, p int) {
	for i := range recs {
		r := &recs[i]
		if r.SrcPort > r.DstPort {
			r.SrcPort = uint16(32768 + (int(r.SrcPort)-32768+p*7919)%28000)
		} else {
			r.DstPort = uint16(32768 + (int(r.DstPort)-32768+p*7919)%28000)
		}
	}
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
	a, err := New(cfg, Dependencies{Ring: ring.NewBroadcast(1024, Shards(cfg)), Store: nopStore{}, Classifier: cls})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkAdd is the aggregation cost per flow, without the ring: every
// shard counting a batch of 256 flows of benchRecords into its tables, one
// after the other, so ns/flow is the CPU a flow costs all shards together.
// The sub-benchmarks turn the interface scopes and the drill-downs off, to
// show what each costs. Records are classified at ingest (flow.Record.App),
// as the pipeline does.
func BenchmarkAdd(b *testing.B) {
	const pass = 1 << 18
	recs := classified(benchRecords(pass, 1))
	for _, bc := range []struct {
		name string
		mod  func(*Configuration)
	}{
		{"default", nil},
		{"default-2shards", func(c *Configuration) { c.Shards = 2 }},
		{"no-drill", func(c *Configuration) { c.DrillDowns = 0 }},
		{"no-interface", func(c *Configuration) { c.ScopeInterface = false }},
		{"neither", func(c *Configuration) { c.DrillDowns, c.ScopeInterface = 0, false }},
		{"enriched", nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := newBenchAggregator(b, bc.mod)
			rs := recs
			if bc.name == "enriched" {
				rs = enriched(slices.Clone(recs))
			}
			cpu := addLoop(b, a, rs, nil)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/flow")
			// CPU time, not wall time: on a shared machine the wall clock
			// also counts the time the benchmark waited for a core.
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/flow")
			var keys, bytes int
			for _, s := range a.shards {
				for _, m := range s.minutes {
					keys += m.keys
				}
				bytes += int(s.bytes)
			}
			b.ReportMetric(float64(keys), "keys")
			b.ReportMetric(float64(bytes)/float64(max(keys, 1)), "B/key")
		})
	}
}

// addLoop counts b.N flows of recs into a's shards, 256 at a time, each
// shard in turn, and returns the CPU nanoseconds it took. Every pass over
// recs after the first gets fresh client ports, then prep's changes (nil:
// none), outside the timer.
func addLoop(b *testing.B, a *Aggregator, recs []flow.Record, prep func()) int64 {
	const batch = 256
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i += batch {
		j := i % len(recs)
		if j == 0 && (i > 0 || prep != nil) {
			b.StopTimer()
			freshPorts(recs, i/len(recs))
			if prep != nil {
				prep()
			}
			b.StartTimer()
		}
		for _, s := range a.shards {
			a.addBatch(s, recs[j:j+batch])
		}
	}
	return cpuTime() - cpu0
}

type nopStore struct{}

func (nopStore) Get(store.Tier, topn.Scope, topn.Dim, time.Time) (*topn.Table, bool, error) {
	return nil, false, nil
}
func (nopStore) Retention(store.Tier) time.Duration              { return time.Hour }
func (nopStore) BeginFinal([]store.Interval) error               { return nil }
func (nopStore) PutInterval(time.Time, store.Interval) error     { return nil }
func (nopStore) EndFinal(store.Tier, time.Time) error            { return nil }
func (nopStore) PutCheckpoints([]store.Checkpoint, []byte) error { return nil }
func (nopStore) DeleteCheckpoint(time.Time) error                { return nil }
func (nopStore) Checkpoints(func(time.Time, []byte) error) error { return nil }
func (nopStore) Finals(func(store.Tier, time.Time, []store.Interval, error) error) error {
	return nil
}

// cpuTime is the process's user and system CPU time, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// fillBench counts n flows of benchRecords into a's shards, one minute.
func fillBench(a *Aggregator, n int) {
	recs := classified(benchRecords(1<<18, 2))
	for i := 0; i < n; i += 256 {
		j := i % len(recs)
		if j == 0 && i > 0 {
			freshPorts(recs, i/len(recs))
		}
		for _, s := range a.shards {
			a.addBatch(s, recs[j:j+256])
		}
	}
}

// BenchmarkCheckpoint is the checkpoint of one minute of 2M flows of
// benchRecords (two shards, every default table), encoded alone and encoded
// then written to an on-disk store.
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
	a, err := New(cfg, Dependencies{Ring: ring.NewBroadcast(1024, 2), Store: st, Classifier: cls})
	if err != nil {
		b.Fatal(err)
	}
	fillBench(a, 2_000_000)
	var start int64
	for s := range a.shards[0].minutes {
		start = s
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

// BenchmarkCloseMinute is the minute flush's build: one minute of 2M flows
// of benchRecords in two shards (every default table), made into every
// scope's top-K tables. B/op is the transient memory it costs at each minute
// boundary.
func BenchmarkCloseMinute(b *testing.B) {
	cfg := DefaultConfiguration()
	cfg.Shards = 2
	cls, err := apps.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(cfg, Dependencies{Ring: ring.NewBroadcast(1024, 2), Store: nopStore{}, Classifier: cls})
	if err != nil {
		b.Fatal(err)
	}
	fillBench(a, 2_000_000)
	var cm *closingMinute
	for start := range a.shards[0].minutes {
		cm = &closingMinute{start: start, shards: []*minuteAgg{a.shards[0].minutes[start], a.shards[1].minutes[start]}}
	}
	b.ReportAllocs()
	var scopes int
	for b.Loop() {
		ivs, err := a.closeMinute(cm)
		if err != nil {
			b.Fatal(err)
		}
		scopes = len(ivs)
	}
	b.ReportMetric(float64(scopes), "scopes")
}

// BenchmarkAddFlood is BenchmarkAdd's default tables under a flood of
// distinct sources, as `flowgen -spread` sends it: every flow but those of
// the 100 most popular sources gets a fresh source address, cycling through
// spread of them, so a minute of 1M flows/s holds 1M (or 10M) sources and
// the tables run against max_keys and max_memory: ns/flow is then mostly
// what forgetting keys costs.
func BenchmarkAddFlood(b *testing.B) {
	const pass = 1 << 18
	recs := classified(benchRecords(pass, 1))
	for _, spread := range []uint32{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("spread-%dM", spread/1_000_000), func(b *testing.B) {
			a := newBenchAggregator(b, func(c *Configuration) { c.Shards = 2 })
			popular := map[flow.Addr]bool{}
			for i := range 100 {
				popular[benchHost(uint64(i), 10)] = true
			}
			next := uint32(0)
			cpu := addLoop(b, a, recs, func() {
				for k := range recs {
					r := &recs[k]
					if (r.SrcAddr[12] == 10 || r.SrcAddr[12] == 11) && !popular[r.SrcAddr] {
						next = (next + 1) % spread
						r.SrcAddr = flow.AddrFrom(netip.AddrFrom4([4]byte{11, byte(next >> 16), byte(next >> 8), byte(next)}))
					}
				}
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/flow")
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/flow")
			var bytes int64
			for _, s := range a.shards {
				bytes += s.bytes
			}
			b.ReportMetric(float64(bytes)/(1<<20), "MiB")
			b.ReportMetric(float64(a.compactions.Load()), "compactions")
		})
	}
}
