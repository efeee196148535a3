package geoip

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

const (
	countryTest = "testdata/GeoIP2-Country-Test.mmdb"
	asnTest     = "testdata/GeoLite2-ASN-Test.mmdb"
)

// files is a configuration of files only, no embedded database, no reloads.
func files(country, asn string) Configuration {
	cfg := DefaultConfiguration()
	cfg.Country, cfg.ASN, cfg.Embedded, cfg.ReloadInterval = country, asn, false, 0
	return cfg
}

func newGeoIP(t testing.TB, cfg Configuration) *GeoIP {
	t.Helper()
	g, err := New(cfg, Dependencies{Registry: prometheus.NewRegistry(), Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, g.Start())
	t.Cleanup(func() { require.NoError(t, g.Stop()) })
	return g
}

var quiet = slog.New(slog.DiscardHandler)

func cc(s string) [2]byte { return [2]byte{s[0], s[1]} }

// sourceEntry is one network of MaxMind's source JSON and its record.
type sourceEntry struct {
	prefix netip.Prefix
	rec    map[string]any
}

// readSource reads a source-data JSON file: a list of {"network": record}.
// IPv4 networks written as ::a.b.c.d/n are turned into IPv4.
func readSource(t *testing.T, path string) []sourceEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var raw []map[string]map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	var out []sourceEntry
	for _, e := range raw {
		for k, rec := range e {
			p, err := netip.ParsePrefix(k)
			require.NoError(t, err, k)
			p = p.Masked()
			if a := p.Addr(); a.Is6() && p.Bits() >= 96 && a.As16() == [16]byte{12: a.As16()[12], 13: a.As16()[13], 14: a.As16()[14], 15: a.As16()[15]} {
				b := a.As16()
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte(b[12:])), p.Bits()-96)
			}
			out = append(out, sourceEntry{p, rec})
		}
	}
	require.NotEmpty(t, out)
	return out
}

// lastAddr is the last address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func isoOf(rec map[string]any, field string) (code, name string) {
	m, _ := rec[field].(map[string]any)
	code, _ = m["iso_code"].(string)
	names, _ := m["names"].(map[string]any)
	name, _ = names["en"].(string)
	return
}

// special reports whether tmsd answers the address with a marker.
func special(a netip.Addr) bool {
	fa := flow.AddrFrom(a)
	return empty.lookup(&fa).special()
}

var empty = emptyTable()

// TestMaxMindCountry checks every network of MaxMind's GeoIP2-Country test
// database, at both ends, against the JSON it was built from.
func TestMaxMindCountry(t *testing.T) {
	g := newGeoIP(t, files(countryTest, ""))
	names := map[[2]byte][]string{}
	checked := 0
	for _, e := range readSource(t, "testdata/GeoIP2-Country-Test.json") {
		code, name := isoOf(e.rec, "country")
		if code == "" {
			code, name = isoOf(e.rec, "registered_country")
		}
		for _, a := range []netip.Addr{e.prefix.Addr(), lastAddr(e.prefix)} {
			if special(a) {
				continue
			}
			got, as := g.Lookup(a)
			want := [2]byte{}
			if code != "" {
				want = cc(code)
			}
			require.Equal(t, string(want[:]), string(got[:]), "%s (%s)", a, e.prefix)
			require.Zero(t, as, "no ASN database")
			checked++
		}
		if code != "" {
			names[cc(code)] = append(names[cc(code)], name)
		}
	}
	require.Greater(t, checked, 600)
	for code, ns := range names {
		require.Contains(t, ns, g.CountryName(code), string(code[:]))
	}

	// Some by hand, as the JSON has them.
	f := func(addr, want string) {
		t.Helper()
		got, _ := g.Lookup(netip.MustParseAddr(addr))
		require.Equal(t, want, strings.TrimRight(string(got[:]), "\x00"), addr)
	}
	f("2.125.160.216", "GB")
	f("81.2.69.142", "GB")
	f("89.160.20.112", "SE")
	f("67.43.156.1", "BT")
	f("214.1.1.1", "") // no country, no registered country
	f("2001:218::1", "JP")
	f("2001:220::1", "KR")
	f("2a02:d540::1", "GB")
	f("2a02:d500::1", "")
	f("8.8.8.8", "") // not in the test database
	require.Equal(t, "South Korea", g.CountryName(cc("KR")))
}

// TestMaxMindASN checks every network of MaxMind's GeoLite2-ASN test
// database against its JSON, and the organisation names.
func TestMaxMindASN(t *testing.T) {
	g := newGeoIP(t, files("", asnTest))
	orgs := map[uint32][]string{}
	entries := readSource(t, "testdata/GeoLite2-ASN-Test.json")
	for _, e := range entries {
		as := uint32(e.rec["autonomous_system_number"].(float64))
		if org, ok := e.rec["autonomous_system_organization"].(string); ok {
			orgs[as] = append(orgs[as], org)
		}
	}
	checked := 0
	for _, e := range entries {
		as := uint32(e.rec["autonomous_system_number"].(float64))
		for _, a := range []netip.Addr{e.prefix.Addr(), lastAddr(e.prefix)} {
			if special(a) {
				continue
			}
			gotCC, got := g.Lookup(a)
			require.Equal(t, as, got, "%s (%s)", a, e.prefix)
			require.Zero(t, gotCC, "no country database")
			checked++
		}
		if len(orgs[as]) == 0 {
			require.Empty(t, g.ASName(as), "AS%d", as)
		} else {
			require.Contains(t, orgs[as], g.ASName(as), "AS%d", as)
		}
	}
	require.Greater(t, checked, 1400)

	f := func(addr string, wantAS uint32, wantOrg string) {
		t.Helper()
		_, as := g.Lookup(netip.MustParseAddr(addr))
		require.Equal(t, wantAS, as, addr)
		require.True(t, strings.HasPrefix(g.ASName(as), wantOrg), "%s: %q", addr, g.ASName(as))
	}
	f("1.128.0.0", 1221, "Telstra Pty Ltd")
	f("1.0.0.1", 15169, "Google Inc.")
	f("12.81.92.1", 7018, "AT&T Services")
	f("12.81.96.1", 7018, "AT&T Services") // a record without the name: the AS's name all the same
	f("2001:1700::1", 6730, "Sunrise Communications AG")
	f("2001:2000::1", 1299, "TeliaSonera International Carrier")
	f("2001:4600::1", 2119, "Telenor Norge AS")
	f("9.9.9.9", 0, "")
	require.Empty(t, g.ASName(0))
}

// TestFlattenMatchesReader compares the flattened tables with
// maxminddb-golang's own lookups, address by address, around every network
// boundary of the test databases.
func TestFlattenMatchesReader(t *testing.T) {
	for _, path := range []string{countryTest, asnTest} {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		db, err := load(data)
		require.NoError(t, err)
		r, err := maxminddb.OpenBytes(data)
		require.NoError(t, err)
		dec, _, err := decoderFor(data)
		require.NoError(t, err)
		var probes []netip.Addr
		for res := range r.Networks() {
			p := res.Prefix()
			first, last := p.Addr(), lastAddr(p)
			probes = append(probes, first, last, first.Prev(), last.Next())
		}
		for _, a := range probes {
			if !a.IsValid() || special(a) {
				continue
			}
			want := record{}
			res := r.Lookup(a)
			require.NoError(t, res.Err())
			if res.Found() {
				want, err = dec(res)
				require.NoError(t, err)
			}
			fa := flow.AddrFrom(a)
			v := db.t.lookup(&fa)
			require.Equal(t, pack(want.cc, want.as), v, "%s: %s", path, a)
		}
	}
}

func TestExportASPolicy(t *testing.T) {
	both := files(countryTest, asnTest)
	telstra := flow.AddrFrom(netip.MustParseAddr("1.128.0.1"))
	unknown := flow.AddrFrom(netip.MustParseAddr("9.9.9.9"))
	private := flow.AddrFrom(netip.MustParseAddr("10.1.2.3"))
	f := func(exportAS bool, addr flow.Addr, exported, want uint32) {
		t.Helper()
		cfg := both
		cfg.ExportAS = exportAS
		g := newGeoIP(t, cfg)
		recs := []flow.Record{{SrcAddr: addr, DstAddr: addr, SrcAS: exported, DstAS: exported}}
		g.Enrich(recs)
		require.Equal(t, want, recs[0].SrcAS)
		require.Equal(t, want, recs[0].DstAS)
	}
	f(true, telstra, 64500, 64500) // the exporter's AS wins
	f(true, telstra, 0, 1221)      // none exported: the database's
	f(false, telstra, 64500, 1221) // the database wins where it knows
	f(false, unknown, 64500, 64500)
	f(true, unknown, 0, 0)
	f(true, private, 64500, 0) // special: AS 0 whatever the exporter said
	f(false, private, 64500, 0)
}

// TestEnrich fills both ends of records, countries and ASes, from two files.
func TestEnrich(t *testing.T) {
	g := newGeoIP(t, files(countryTest, asnTest))
	a := func(s string) flow.Addr { return flow.AddrFrom(netip.MustParseAddr(s)) }
	recs := []flow.Record{
		{SrcAddr: a("2.125.160.216"), DstAddr: a("1.128.0.1")},
		{SrcAddr: a("192.168.1.1"), DstAddr: a("2001:218::1")},
		{SrcAddr: a("::ffff:81.2.69.142"), DstAddr: a("fe80::1")},
		{}, // unset addresses stay unknown
	}
	g.Enrich(recs)
	got := func(r flow.Record) [4]any {
		return [4]any{string(r.SrcCountry[:]), r.SrcAS, string(r.DstCountry[:]), r.DstAS}
	}
	require.Equal(t, [4]any{"GB", uint32(0), "\x00\x00", uint32(1221)}, got(recs[0]))
	require.Equal(t, [4]any{"pv", uint32(0), "JP", uint32(0)}, got(recs[1]))
	require.Equal(t, [4]any{"GB", uint32(0), "ll", uint32(0)}, got(recs[2]))
	require.Equal(t, [4]any{"\x00\x00", uint32(0), "\x00\x00", uint32(0)}, got(recs[3]))
	require.Zero(t, testing.AllocsPerRun(100, func() { g.Enrich(recs) }))
}

func TestNilAndOff(t *testing.T) {
	rec := flow.Record{SrcAddr: flow.AddrFrom(netip.MustParseAddr("10.0.0.1")),
		DstAddr: flow.AddrFrom(netip.MustParseAddr("8.8.8.8")), SrcAS: 7, DstAS: 9}
	check := func(g *GeoIP) {
		t.Helper()
		recs := []flow.Record{rec}
		g.Enrich(recs)
		require.Equal(t, rec, recs[0])
		c, as := g.Lookup(netip.MustParseAddr("8.8.8.8"))
		require.Zero(t, c)
		require.Zero(t, as)
		require.Empty(t, g.ASName(15169))
		require.Empty(t, g.Info())
	}
	var g *GeoIP
	check(g)
	require.Empty(t, g.CountryName(cc("US")))

	off := DefaultConfiguration()
	off.Embedded = false
	check(newGeoIP(t, off))

	// Before Start, nothing either.
	g, err := New(DefaultConfiguration(), Dependencies{})
	require.NoError(t, err)
	check(g)
	require.NoError(t, g.Stop())
}

func TestCountryName(t *testing.T) {
	off := DefaultConfiguration()
	off.Embedded = false
	g := newGeoIP(t, off)
	f := func(code, want string) {
		t.Helper()
		require.Equal(t, want, g.CountryName(cc(code)), code)
	}
	f("KR", "South Korea")
	f("US", "United States")
	f("MK", "North Macedonia")
	f("XK", "Kosovo")
	f("pv", "private")
	f("cg", "cgnat")
	f("rs", "reserved")
	f("zz", "")
	f("ZZ", "")
	f("Us", "")
	f("\x00\x00", "")
	for _, m := range [][2]byte{topn.SpecialPrivate, topn.SpecialCGNAT, topn.SpecialDocumentation, topn.SpecialLoopback,
		topn.SpecialLinkLocal, topn.SpecialMulticast, topn.SpecialReserved} {
		name, _ := topn.SpecialName(m)
		require.Equal(t, name, g.CountryName(m))
	}
}

func TestNewAndStartErrors(t *testing.T) {
	_, err := New(Configuration{ReloadInterval: -1}, Dependencies{})
	require.Error(t, err)

	reg := prometheus.NewRegistry()
	_, err = New(DefaultConfiguration(), Dependencies{Registry: reg})
	require.NoError(t, err)
	_, err = New(DefaultConfiguration(), Dependencies{Registry: reg})
	require.Error(t, err, "the metrics are registered once")

	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	require.NoError(t, os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 100), 0o644))
	f := func(cfg Configuration, want ...string) {
		t.Helper()
		g, err := New(cfg, Dependencies{Logger: quiet})
		require.NoError(t, err)
		err = g.Start()
		require.Error(t, err)
		for _, w := range want {
			require.Contains(t, err.Error(), w)
		}
		require.Empty(t, g.Info())
		require.NoError(t, g.Stop())
	}
	missing := filepath.Join(dir, "missing.mmdb")
	f(files(missing, ""), "country database", missing, "no such file")
	f(files("", missing), "asn database", missing)
	f(files(garbage, ""), garbage, "MaxMind DB")
	f(files(asnTest, ""), asnTest, "no country") // an ASN database as the country one
	f(files("", countryTest), countryTest, "no AS number")
	f(files(dir, ""), "not a regular file")
	cfg := DefaultConfiguration()
	cfg.Country = missing // with the embedded one for the ASN
	f(cfg, missing)
}

func TestInfo(t *testing.T) {
	g := newGeoIP(t, files(countryTest, asnTest))
	in := g.Info()
	require.Len(t, in, 2)
	require.Equal(t, "country", in[0].Database)
	require.Equal(t, countryTest, in[0].Path)
	require.Equal(t, "GeoIP2-Country", in[0].Type)
	require.Equal(t, FormatMaxMind, in[0].Format)
	require.Equal(t, "asn", in[1].Database)
	require.Equal(t, "GeoLite2-ASN", in[1].Type)
	for _, i := range in {
		require.NotZero(t, i.Networks)
		require.NotZero(t, i.Ranges)
		require.False(t, i.BuildTime.IsZero())
		require.NotEmpty(t, i.Source)
		require.Empty(t, i.License)
	}
}

// TestConcurrentEnrich runs Enrich from several goroutines while the
// database is swapped (go test -race).
func TestConcurrentEnrich(t *testing.T) {
	g := newGeoIP(t, files(countryTest, asnTest))
	recs := benchRecords(t, 2000, 1)
	var wg sync.WaitGroup
	for range 4 {
		own := append([]flow.Record(nil), recs...)
		wg.Go(func() {
			for range 20 {
				g.Enrich(own)
			}
		})
	}
	for range 20 {
		g.mu.Lock()
		g.publish()
		g.mu.Unlock()
	}
	wg.Wait()
}

func TestMetricsNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, err := New(files(countryTest, ""), Dependencies{Registry: reg, Logger: quiet})
	require.NoError(t, err)
	n, err := testutil.GatherAndCount(reg, "tmsd_geoip_reloads_total", "tmsd_geoip_reload_errors_total")
	require.NoError(t, err)
	require.Equal(t, 4, n) // two databases each
	require.Zero(t, testutil.ToFloat64(g.reloadErrors.WithLabelValues("country")))
}

// TestRegionTable: regions.go is what golang.org/x/text says; regenerate
// it (see its first line) when x/text moves.
func TestRegionTable(t *testing.T) {
	namer := display.English.Regions()
	n := 0
	for a := byte('A'); a <= 'Z'; a++ {
		for b := byte('A'); b <= 'Z'; b++ {
			code := [2]byte{a, b}
			want := ""
			if r, err := language.ParseRegion(string(code[:])); err == nil && code != cc("ZZ") {
				want = namer.Name(r)
			}
			require.Equal(t, want, regionTable[code], string(code[:]))
			if want != "" {
				n++
			}
		}
	}
	require.Equal(t, n, len(regionTable))
}
