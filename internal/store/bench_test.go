package store

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// benchTable is a realistic srcip table: K IPv4 keys (16 bytes), heavy-tailed
// counters, an error bound on a third of the entries.
func benchTable(r *rand.Rand, k int) *topn.Table {
	t := &topn.Table{Entries: make([]topn.Entry, k)}
	for i := range t.Entries {
		var a flow.Addr
		a[10], a[11] = 0xff, 0xff
		binary.BigEndian.PutUint32(a[12:], 0x0a000000|r.Uint32N(1<<24))
		bytes := uint64(1e9) / uint64(i+1)
		e := topn.Entry{Key: topn.AddrKey(a), Value: topn.Counters{Bytes: bytes, Packets: bytes / 800, Flows: bytes/100000 + 1}}
		if i%3 == 0 {
			e.Error = topn.Counters{Bytes: 5000, Packets: 5, Flows: 1}
		}
		t.Entries[i] = e
		t.Total.Add(e.Value)
	}
	t.Threshold = topn.Counters{Bytes: 5000, Packets: 5, Flows: 1}
	return t
}

// BenchmarkRange1440 reads a day of minute tables of one dimension (K=1000), the
// core of a 24-hour TopN query, from a store reopened so the data is in SSTables.
func BenchmarkRange1440(b *testing.B) {
	const minutes, k = 1440, 1000
	cfg := testConfig(b)
	s, err := New(cfg, Dependencies{})
	require.NoError(b, err)
	require.NoError(b, s.Start())
	r := rand.New(rand.NewPCG(7, 8))
	var encoded int
	for m := 0; m < minutes; m += 60 {
		ivs := make([]Interval, 60)
		for i := range ivs {
			t := benchTable(r, k)
			encoded += len(EncodeTable(t))
			ivs[i] = Interval{Tier: TierMinute, Start: t0.Add(time.Duration(m+i) * time.Minute), Scope: topn.Scope{},
				Total: t.Total, Tables: map[topn.Dim]*topn.Table{topn.DimSrcIP: t}}
		}
		_, _, err := s.Put(t0.Add(minutes*time.Minute), ivs)
		require.NoError(b, err)
	}
	require.NoError(b, s.Stop())
	s = startStore(b, cfg)

	from, to := t0, t0.Add(minutes*time.Minute)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		n := 0
		err := s.Range(TierMinute, topn.Scope{}, topn.DimSrcIP, from, to, func(_ time.Time, t *topn.Table) error {
			n += len(t.Entries)
			return nil
		})
		if err != nil || n != minutes*k {
			b.Fatalf("range: %v, %d entries", err, n)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/op")
	b.ReportMetric(float64(encoded)/minutes, "B/table")
}

// BenchmarkDecodeTable decodes one K=1000 table (fresh allocation, as Range does).
func BenchmarkDecodeTable(b *testing.B) {
	enc := EncodeTable(benchTable(rand.New(rand.NewPCG(9, 10)), 1000))
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeTable(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeTableInto decodes one K=1000 table into a reused one.
func BenchmarkDecodeTableInto(b *testing.B) {
	enc := EncodeTable(benchTable(rand.New(rand.NewPCG(9, 10)), 1000))
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	var t topn.Table
	for b.Loop() {
		if err := DecodeTableInto(&t, enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFinalWrite is the final write of one minute on disk as the
// aggregator does it (BeginFinal, a PutInterval per scope, EndFinal): 50
// scopes of 7 tables of K=1000, ~6 MB encoded, so the memtables flush and the
// value log (the redo record) rotates as in a large deployment. The Badger
// options (memtable and value log file sizes) weigh on it.
func BenchmarkFinalWrite(b *testing.B) {
	const scopes, k = 50, 1000
	cfg := testConfig(b)
	cfg.MinFreeSpace = 0
	s := startStore(b, cfg)
	r := rand.New(rand.NewPCG(7, 8))
	dims := []topn.Dim{topn.DimSrcIP, topn.DimDstIP, topn.DimSrcPort, topn.DimDstPort, topn.DimApp, topn.DimInIf, topn.DimOutIf}
	ivs := make([]Interval, scopes)
	var encoded int
	for i := range ivs {
		var ex flow.Addr
		ex[10], ex[11], ex[15] = 0xff, 0xff, byte(i+1)
		sc := topn.Scope{}
		if i > 0 {
			sc = topn.Scope{Kind: topn.ScopeExporter, Exporter: ex}
		}
		ivs[i] = Interval{Tier: TierMinute, Scope: sc, Tables: map[topn.Dim]*topn.Table{}}
		for _, d := range dims {
			t := benchTable(r, k)
			ivs[i].Tables[d], ivs[i].Total = t, t.Total
			encoded += len(EncodeTable(t))
		}
	}
	m := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := t0.Add(time.Duration(m) * time.Minute)
		m++
		for i := range ivs {
			ivs[i].Start = start
		}
		require.NoError(b, s.BeginFinal(ivs))
		for _, iv := range ivs {
			require.NoError(b, s.PutInterval(start.Add(time.Minute), iv))
		}
		require.NoError(b, s.EndFinal(TierMinute, start))
	}
	b.SetBytes(int64(encoded))
}
