package geoip

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

// publicPool is n random public addresses: one in ten IPv6 (from RIR
// blocks 2001::/16, 2400::/12, 2600::/12, 2a00::/12), the rest IPv4 outside
// the special ranges.
func publicPool(rng *rand.Rand, n int) []flow.Addr {
	out := make([]flow.Addr, 0, n)
	v6 := [][2]byte{{0x20, 0x01}, {0x24, 0x00}, {0x26, 0x00}, {0x2a, 0x00}}
	for len(out) < n {
		if rng.IntN(10) == 0 {
			var b [16]byte
			p := v6[rng.IntN(len(v6))]
			b[0], b[1] = p[0], p[1]|byte(rng.IntN(16))
			if p[1] == 0x01 {
				b[1] = 0x01
			}
			for j := 2; j < 16; j++ {
				b[j] = byte(rng.Uint32())
			}
			a := netip.AddrFrom16(b)
			if !special(a) {
				out = append(out, flow.AddrFrom(a))
			}
			continue
		}
		x := rng.Uint32()
		if special4(x) == spNone {
			out = append(out, flow.AddrFrom(netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})))
		}
	}
	return out
}

// benchRecords is the workload of the aggregation engine's benchmarks:
// Zipf (s = 1.1) over 100,000 sources and 10,000 destinations, here public
// addresses, half the flows the answer (ends swapped).
func benchRecords(tb testing.TB, n int, seed uint64) []flow.Record {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	srcs, dsts := publicPool(rng, 100_000), publicPool(rng, 10_000)
	zs := rand.NewZipf(rng, 1.1, 1, uint64(len(srcs)-1))
	zd := rand.NewZipf(rng, 1.1, 1, uint64(len(dsts)-1))
	recs := make([]flow.Record, n)
	for i := range recs {
		r := &recs[i]
		r.SrcAddr, r.DstAddr = srcs[zs.Uint64()], dsts[zd.Uint64()]
		if rng.IntN(2) == 0 {
			r.SrcAddr, r.DstAddr = r.DstAddr, r.SrcAddr
		}
	}
	return recs
}

// privateRecords is an enterprise's mix: most flows between or from
// private addresses (10/8, 172.16/12, 192.168/16, some CGNAT and
// link-local), a third with a public end, a few public on both ends.
func privateRecords(tb testing.TB, n int, seed uint64) []flow.Record {
	tb.Helper()
	recs := benchRecords(tb, n, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	zi := rand.NewZipf(rng, 1.1, 1, 20_000-1)
	inside := func() flow.Addr {
		i := zi.Uint64()
		var b [4]byte
		switch {
		case i%10 < 6:
			b = [4]byte{10, byte(i >> 8), byte(i), byte(i * 7)}
		case i%10 < 8:
			b = [4]byte{192, 168, byte(i >> 4), byte(i)}
		case i%10 < 9:
			b = [4]byte{172, 16 + byte(i%16), byte(i >> 8), byte(i)}
		case i%20 == 9:
			b = [4]byte{100, 64 + byte(i%64), byte(i >> 8), byte(i)}
		default:
			b = [4]byte{169, 254, byte(i >> 8), byte(i)}
		}
		return flow.AddrFrom(netip.AddrFrom4(b))
	}
	for i := range recs {
		r := &recs[i]
		switch k := rng.IntN(10); {
		case k < 6: // east-west
			r.SrcAddr, r.DstAddr = inside(), inside()
		case k < 9: // to or from the internet
			if rng.IntN(2) == 0 {
				r.SrcAddr = inside()
			} else {
				r.DstAddr = inside()
			}
		}
	}
	return recs
}

// runEnrich reports ns per record (both ends): an op is one record,
// enriched in batches of 256 as the socket readers hand them over.
func runEnrich(b *testing.B, g *GeoIP, recs []flow.Record) {
	const batch = 256
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := threadCPU()
	off := 0
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		if off+n > len(recs) {
			off = 0
		}
		g.Enrich(recs[off : off+n])
		off += n
	}
	if cpu != 0 {
		b.ReportMetric(float64(threadCPU()-cpu)/float64(b.N), "cpu-ns/record")
	}
}

// BenchmarkEnrich: the embedded database, public addresses.
func BenchmarkEnrich(b *testing.B) {
	g := embeddedFor(b)
	runEnrich(b, g, benchRecords(b, 1<<18, 1))
}

// BenchmarkEnrichPrivate: the embedded database, an enterprise's mix.
func BenchmarkEnrichPrivate(b *testing.B) {
	g := embeddedFor(b)
	runEnrich(b, g, privateRecords(b, 1<<18, 1))
}

// BenchmarkEnrichReader is what a MaxMind DB lookup per end would cost on
// the same workload (maxminddb-golang's Lookup and a decode of the two
// fields, IPv4-mapped addresses unmapped first): the design's comparison.
func BenchmarkEnrichReader(b *testing.B) {
	data, err := embedded()
	require.NoError(b, err)
	r, err := maxminddb.OpenBytes(data)
	require.NoError(b, err)
	recs := benchRecords(b, 1<<18, 1)
	var rec struct {
		Country struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"country"`
		AS uint32 `maxminddb:"autonomous_system_number"`
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x := &recs[i%len(recs)]
		for _, a := range []*flow.Addr{&x.SrcAddr, &x.DstAddr} {
			if err := r.Lookup(a.Netip()).Decode(&rec); err != nil {
				b.Fatal(err)
			}
			if len(rec.Country.ISOCode) == 2 {
				x.SrcCountry = [2]byte{rec.Country.ISOCode[0], rec.Country.ISOCode[1]}
			}
			x.SrcAS = rec.AS
		}
	}
}

// BenchmarkEnrichNoCache is Enrich without the cache: every end searched
// in the table.
func BenchmarkEnrichNoCache(b *testing.B) {
	g := embeddedFor(b)
	s := g.cur.Load()
	recs := benchRecords(b, 1<<18, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &recs[i%len(recs)]
		v := s.t.lookup(&r.SrcAddr)
		r.SrcCountry, r.SrcAS = v.cc(), s.pick(r.SrcAS, v.as(), v.special())
		v = s.t.lookup(&r.DstAddr)
		r.DstCountry, r.DstAS = v.cc(), s.pick(r.DstAS, v.as(), v.special())
	}
}

// BenchmarkEnrichNoIndex is BenchmarkEnrichNoCache's IPv4 ends searched in
// the whole range array, without the /16 index.
func BenchmarkEnrichNoIndex(b *testing.B) {
	g := embeddedFor(b)
	t := g.cur.Load().t
	recs := benchRecords(b, 1<<18, 1)
	var xs []uint32
	for _, r := range recs {
		for _, a := range []flow.Addr{r.SrcAddr, r.DstAddr} {
			if a.Is4() {
				b4 := a.Netip().As4()
				xs = append(xs, uint32(b4[0])<<24|uint32(b4[1])<<16|uint32(b4[2])<<8|uint32(b4[3]))
			}
		}
	}
	s4, v4 := t.flat4()
	find := func(x uint32) value {
		base, n := 0, len(s4)
		for n > 1 {
			half := n >> 1
			if s4[base+half] <= x {
				base += half
			}
			n -= half
		}
		return v4[base]
	}
	var sink value
	b.ResetTimer()
	for i := 0; i < b.N; i++ { // an op is two IPv4 ends, as a record
		sink ^= find(xs[(2*i)%len(xs)]) ^ find(xs[(2*i+1)%len(xs)])
	}
	b.StopTimer()
	for i, x := range xs[:1000] {
		require.Equal(b, t.find4(x), find(x), i)
	}
	_ = sink
}
