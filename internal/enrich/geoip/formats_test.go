package geoip

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/stretchr/testify/require"
)

func netipxPrefix(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// fixture writes a database of the given type, each network with its record.
func fixture(t testing.TB, typ string, nets map[string]mmdbtype.Map) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: typ, BuildEpoch: 1_700_000_000,
		Description: map[string]string{"en": typ + " fixture"}})
	require.NoError(t, err)
	for p, rec := range nets {
		require.NoError(t, w.Insert(netipxPrefix(netip.MustParsePrefix(p)), rec))
	}
	return writeDB(t, w)
}

type S = mmdbtype.String

// TestFormats reads each format's record shape, country and AS, names too.
func TestFormats(t *testing.T) {
	google4, google6, cloudflare := "8.8.8.0/24", "2001:4860::/32", "1.1.1.0/24"
	type shape func(cc, ccName string, as uint32, org string) mmdbtype.Map
	cases := []struct {
		name, typ, format string
		country, asn      bool
		rec               shape
		names             bool // the database names countries
	}{
		{"ip-location-db country", "country ipvAll", FormatIPLocDB, true, false,
			func(cc, _ string, _ uint32, _ string) mmdbtype.Map { return mmdbtype.Map{"country_code": S(cc)} }, false},
		{"ip-location-db asn", "asn ipvAll", FormatIPLocDB, false, true,
			func(_, _ string, as uint32, org string) mmdbtype.Map {
				return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(as), "autonomous_system_organization": S(org)}
			}, false},
		{"IPinfo Lite", "ipinfo lite.mmdb", FormatIPinfo, true, true,
			func(cc, ccName string, as uint32, org string) mmdbtype.Map {
				return mmdbtype.Map{"country_code": S(cc), "country": S(ccName), "asn": S("AS" + itoa(as)),
					"as_name": S(org), "as_domain": S("example.com"), "continent": S("Somewhere")}
			}, true},
		{"IPinfo country_asn", "ipinfo country_asn.mmdb", FormatIPinfo, true, true,
			func(cc, ccName string, as uint32, org string) mmdbtype.Map {
				return mmdbtype.Map{"country": S(cc), "country_name": S(ccName), "asn": S("AS" + itoa(as)), "as_name": S(org)}
			}, true},
		{"DB-IP country lite", "DBIP-Country-Lite", FormatMaxMind, true, false,
			func(cc, ccName string, _ uint32, _ string) mmdbtype.Map {
				return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": S(cc), "names": mmdbtype.Map{"en": S(ccName)}},
					"continent": mmdbtype.Map{"code": S("XX")}}
			}, true},
		{"DB-IP ASN lite", "DBIP-ASN-Lite (compat=GeoLite2-ASN)", FormatMaxMind, false, true,
			func(_, _ string, as uint32, org string) mmdbtype.Map {
				return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(as), "autonomous_system_organization": S(org)}
			}, false},
		{"GeoLite2-City, registered country only", "GeoLite2-City", FormatMaxMind, true, false,
			func(cc, ccName string, _ uint32, _ string) mmdbtype.Map {
				return mmdbtype.Map{"registered_country": mmdbtype.Map{"iso_code": S(cc), "names": mmdbtype.Map{"en": S(ccName)}},
					"city": mmdbtype.Map{"names": mmdbtype.Map{"en": S("Town")}}}
			}, true},
		{"other, GeoIP2 shape", "Acme-Country-ASN", FormatGeneric, true, true,
			func(cc, ccName string, as uint32, org string) mmdbtype.Map {
				return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": S(cc), "names": mmdbtype.Map{"en": S(ccName)}},
					"autonomous_system_number": mmdbtype.Uint64(uint64(as)), "autonomous_system_organization": S(org)}
			}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := fixture(t, c.typ, map[string]mmdbtype.Map{
				google4:    c.rec("US", "Test States", 15169, "Google LLC"),
				google6:    c.rec("US", "Test States", 15169, "Google LLC"),
				cloudflare: c.rec("au", "Test Australia", 13335, "Cloudflare, Inc."),
			})
			cfg := files("", "")
			if c.country {
				cfg.Country = path
			}
			if c.asn {
				cfg.ASN = path
			}
			g := newGeoIP(t, cfg)
			f := func(addr, wantCC string, wantAS uint32) {
				t.Helper()
				got, as := g.Lookup(netip.MustParseAddr(addr))
				if !c.country {
					wantCC = "\x00\x00"
				}
				if !c.asn {
					wantAS = 0
				}
				require.Equal(t, wantCC, string(got[:]), addr)
				require.Equal(t, wantAS, as, addr)
			}
			f("8.8.8.8", "US", 15169)
			f("::ffff:8.8.8.4", "US", 15169)
			f("2001:4860:4860::8888", "US", 15169)
			f("1.1.1.1", "AU", 13335)
			f("9.9.9.9", "\x00\x00", 0)
			f("2001:4861::1", "\x00\x00", 0)
			if c.asn {
				require.Equal(t, "Google LLC", g.ASName(15169))
				require.Equal(t, "Cloudflare, Inc.", g.ASName(13335))
			}
			if c.country {
				want := "United States"
				if c.names {
					want = "Test States"
				}
				require.Equal(t, want, g.CountryName(cc("US")))
			}
			for _, in := range g.Info() {
				require.Equal(t, c.format, in.Format)
				require.Equal(t, c.typ, in.Type)
				require.Equal(t, c.typ+" fixture", in.Source)
				require.Equal(t, int64(1_700_000_000), in.BuildTime.Unix())
			}
		})
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// TestCombine: the country of one database and the AS of another, with
// different network boundaries.
func TestCombine(t *testing.T) {
	country := fixture(t, "country ipvAll", map[string]mmdbtype.Map{
		"10.0.0.0/7":   {"country_code": S("FR")}, // special in part: 11/8 is not
		"1.0.0.0/17":   {"country_code": S("DE")},
		"1.0.128.0/17": {"country_code": S("NL")},
		"2a00::/16":    {"country_code": S("GB")},
	})
	asn := fixture(t, "asn ipvAll", map[string]mmdbtype.Map{
		"1.0.64.0/18":  {"autonomous_system_number": mmdbtype.Uint32(64501)},
		"1.0.192.0/18": {"autonomous_system_number": mmdbtype.Uint32(64502)},
		"11.0.0.0/8":   {"autonomous_system_number": mmdbtype.Uint32(64503)},
		"2a00:1::/32":  {"autonomous_system_number": mmdbtype.Uint32(64504)},
		"2a01::/16":    {"autonomous_system_number": mmdbtype.Uint32(64505)},
	})
	g := newGeoIP(t, files(country, asn))
	f := func(addr, wantCC string, wantAS uint32) {
		t.Helper()
		got, as := g.Lookup(netip.MustParseAddr(addr))
		require.Equal(t, wantCC, string(got[:]), addr)
		require.Equal(t, wantAS, as, addr)
	}
	f("1.0.0.1", "DE", 0)
	f("1.0.64.1", "DE", 64501)
	f("1.0.127.255", "DE", 64501)
	f("1.0.128.0", "NL", 0)
	f("1.0.192.0", "NL", 64502)
	f("1.0.255.255", "NL", 64502)
	f("1.1.0.0", "\x00\x00", 0)
	f("10.0.0.1", "pv", 0)
	f("11.1.1.1", "FR", 64503)
	f("2a00::1", "GB", 0)
	f("2a00:1::1", "GB", 64504)
	f("2a00:2::1", "GB", 0)
	f("2a01::1", "\x00\x00", 64505)

	// The embedded ASN database under a country file.
	cfg := files(country, "")
	cfg.Embedded = true
	g = newGeoIP(t, cfg)
	f("1.0.0.1", "DE", 13335) // 1.0.0.0/24 is Cloudflare's
	f("8.8.8.8", "\x00\x00", 15169)
	require.Equal(t, []string{"country", "asn"}, []string{g.Info()[0].Database, g.Info()[1].Database})
	require.Equal(t, "embedded", g.Info()[1].Path)
	require.NotEmpty(t, g.Info()[1].License)
}
