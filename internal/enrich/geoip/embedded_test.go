package geoip

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// embeddedGeoIP is one GeoIP on the embedded database, for the tests and
// benchmarks that read it (a Start costs most of a second).
var embeddedGeoIP = sync.OnceValues(func() (*GeoIP, error) {
	g, err := New(DefaultConfiguration(), Dependencies{Logger: quiet})
	if err != nil {
		return nil, err
	}
	return g, g.Start() // nothing to watch: no goroutine, no Stop needed
})

func embeddedFor(t testing.TB) *GeoIP {
	t.Helper()
	g, err := embeddedGeoIP()
	require.NoError(t, err)
	return g
}

func TestEmbedded(t *testing.T) {
	g := embeddedFor(t)
	f := func(addr, wantCC string, wantAS uint32, wantOrg string) {
		t.Helper()
		c, as := g.Lookup(netip.MustParseAddr(addr))
		require.Equal(t, wantCC, string(c[:]), addr)
		require.Equal(t, wantAS, as, addr)
		require.Contains(t, g.ASName(as), wantOrg, addr)
	}
	f("8.8.8.8", "US", 15169, "Google")
	f("8.8.4.4", "US", 15169, "Google")
	f("2001:4860:4860::8888", "US", 15169, "Google")
	f("1.1.1.1", "AU", 13335, "Cloudflare") // APNIC's registration of 1.1.1.0/24
	f("2606:4700:4700::1111", "US", 13335, "Cloudflare")
	f("9.9.9.9", "US", 19281, "Quad9")
	f("193.0.6.139", "NL", 3333, "RIPE")
	f("2001:67c:2e8::1", "NL", 3333, "RIPE")
	f("202.12.27.33", "JP", 7500, "WIDE")
	f("64:ff9b::808:808", "US", 15169, "Google") // NAT64 of 8.8.8.8
	f("10.0.0.1", "pv", 0, "")
	require.Equal(t, "United States", g.CountryName(cc("US")))
	require.Equal(t, "Google LLC", g.ASName(15169))

	in := g.Info()
	require.Len(t, in, 2)
	for _, i := range in {
		require.Equal(t, "embedded", i.Path)
		require.Equal(t, FormatTmsd, i.Format)
		require.Contains(t, i.License, "CC BY 4.0")
		require.Contains(t, i.License, "DB-IP")
		require.Greater(t, i.Networks, 500_000)
		require.Greater(t, i.BuildTime.Year(), 2025)
		t.Logf("%s: %d networks, %d ranges, loaded in %.2fs", i.Database, i.Networks, i.Ranges, i.LoadTime)
	}
}

// TestEmbeddedMatchesReader compares the flattened embedded database with
// maxminddb-golang's lookups of random addresses.
func TestEmbeddedMatchesReader(t *testing.T) {
	g := embeddedFor(t)
	data, err := embedded()
	require.NoError(t, err)
	r, err := maxminddb.OpenBytes(data)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20_000 {
		var a netip.Addr
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
		} else {
			var b [16]byte
			b[0] = 0x20 | byte(rng.IntN(16))
			for j := 1; j < 8; j++ {
				b[j] = byte(rng.Uint32())
			}
			a = netip.AddrFrom16(b)
		}
		if special(a) {
			continue
		}
		want := record{}
		if res := r.Lookup(a); res.Found() {
			want, err = decodeGeneric(res)
			require.NoError(t, err)
		}
		c, as := g.Lookup(a)
		require.Equal(t, [2]any{want.cc, want.as}, [2]any{c, as}, a)
	}
}

// TestEmbeddedCaptures: the public addresses of the flows in the test
// captures have a country in the embedded database.
func TestEmbeddedCaptures(t *testing.T) {
	g := embeddedFor(t)
	paths, err := filepath.Glob(filepath.Join("..", "..", "..", "testdata", "pcaps", "*.pcap"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	public := map[netip.Addr]bool{}
	records := 0
	for _, p := range paths {
		d, err := decode.New(decode.DefaultConfiguration())
		require.NoError(t, err)
		var out []flow.Record
		_, err = pcapsrc.Read(p, func(dg pcapsrc.Datagram) error {
			out, _ = d.Decode(dg.Src.Addr(), dg.Payload, dg.Time, out[:0]) // some captures start before their templates
			for _, r := range out {
				records++
				for _, a := range []flow.Addr{r.SrcAddr, r.DstAddr} {
					if !a.IsZero() && !special(a.Netip()) {
						public[a.Netip()] = true
					}
				}
			}
			return nil
		})
		require.NoError(t, err, p)
	}
	require.Positive(t, records)
	require.NotEmpty(t, public)
	var unknown, seen []string
	for a := range public {
		c, as := g.Lookup(a)
		if c == ([2]byte{}) {
			unknown = append(unknown, a.String())
		}
		seen = append(seen, fmt.Sprintf("%s=%s/AS%d", a, strings.TrimRight(string(c[:]), "\x00"), as))
	}
	slices.Sort(unknown)
	slices.Sort(seen)
	t.Log(strings.Join(seen, " "))
	known := len(public) - len(unknown)
	t.Logf("%d records; %d public addresses, %d with a country (%.1f%%); unknown: %s",
		records, len(public), known, 100*float64(known)/float64(len(public)), strings.Join(unknown, " "))
	require.GreaterOrEqual(t, float64(known)/float64(len(public)), 0.9)
}

// BenchmarkLoadEmbedded is the embedded database's part of Start:
// decompressing it and flattening it.
func BenchmarkLoadEmbedded(b *testing.B) {
	for b.Loop() {
		begin := time.Now()
		data, err := embedded()
		require.NoError(b, err)
		unzip := time.Since(begin)
		db, err := load(data)
		require.NoError(b, err)
		b.ReportMetric(unzip.Seconds(), "gunzip-s")
		b.ReportMetric((time.Since(begin) - unzip).Seconds(), "flatten-s")
		b.ReportMetric(float64(db.t.ranges()), "ranges")
	}
}
