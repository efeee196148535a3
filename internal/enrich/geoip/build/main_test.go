package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/stretchr/testify/require"
)

func TestPrefixes(t *testing.T) {
	f := func(start, end string, want ...string) {
		t.Helper()
		s, e := netip.MustParseAddr(start), netip.MustParseAddr(end)
		var got []string
		for _, p := range prefixes(fromAddr(s), fromAddr(e), s.Is4()) {
			got = append(got, p.String())
		}
		require.Equal(t, want, got)
	}
	f("1.0.0.0", "1.0.0.255", "1.0.0.0/24")
	f("1.0.0.1", "1.0.0.6", "1.0.0.1/32", "1.0.0.2/31", "1.0.0.4/31", "1.0.0.6/32")
	f("0.0.0.0", "255.255.255.255", "0.0.0.0/0")
	f("255.255.255.255", "255.255.255.255", "255.255.255.255/32")
	f("2001:200::", "2001:218:2000:51:ffff:ffff:ffff:ffff",
		"2001:200::/28", "2001:210::/29", "2001:218::/35", "2001:218:2000::/58",
		"2001:218:2000:40::/60", "2001:218:2000:50::/63")
	f("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0")
}

func TestMerge(t *testing.T) {
	r := func(start, end string, cc string, asn uint32) row {
		return row{start: fromAddr(netip.MustParseAddr(start)), end: fromAddr(netip.MustParseAddr(end)), cc: cc, asn: asn}
	}
	cc := []row{r("1.0.0.0", "1.0.0.255", "AU", 0), r("1.0.1.0", "1.0.3.255", "CN", 0), r("1.0.8.0", "1.0.8.255", "CN", 0)}
	as := []row{r("1.0.0.0", "1.0.1.255", "", 13335), r("1.0.4.0", "1.0.8.127", "", 38803)}
	var got []string
	for _, m := range merge(cc, as) {
		got = append(got, m.start.addr(true).String()+"-"+m.end.addr(true).String()+" "+m.cc+" "+itoa(m.asn))
	}
	require.Equal(t, []string{
		"1.0.0.0-1.0.0.255 AU 13335",
		"1.0.1.0-1.0.1.255 CN 13335",
		"1.0.2.0-1.0.3.255 CN 0",
		"1.0.4.0-1.0.7.255  38803",
		"1.0.8.0-1.0.8.127 CN 38803",
		"1.0.8.128-1.0.8.255 CN 0",
	}, got)
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestDisjoint(t *testing.T) {
	r := func(start, end string, asn uint32) row {
		return row{start: fromAddr(netip.MustParseAddr(start)), end: fromAddr(netip.MustParseAddr(end)), asn: asn}
	}
	// The overlap of the ASN CSV: 214.95.0.0-215.0.255.255 then 215.0.0.0-215.1.3.255.
	got, clipped := disjoint([]row{r("214.95.0.0", "215.0.255.255", 749), r("215.0.0.0", "215.1.3.255", 721)})
	require.Equal(t, 1, clipped)
	require.Equal(t, []row{r("214.95.0.0", "214.255.255.255", 749), r("215.0.0.0", "215.1.3.255", 721)}, got)
}

// TestBuild builds a database from small CSVs twice: the same bytes, and
// the answers of the CSVs.
func TestBuild(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	asn4 := write("asn4.csv", "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n8.8.8.0,8.8.8.255,15169,Google LLC\n")
	asn6 := write("asn6.csv", "2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC\n2001::,2001::ffff:ffff:ffff:ffff:ffff:ffff,6939,Hurricane Electric LLC\n")
	cc4 := write("cc4.csv", "1.0.0.0,1.0.0.255,AU\n8.0.0.0,8.255.255.255,US\n")
	cc6 := write("cc6.csv", "2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,US\n")
	var outs [2][]byte
	for i := range outs {
		out := filepath.Join(dir, "out.mmdb.gz")
		st, err := build(asn4, asn6, cc4, cc6, 1_781_722_800, "test", out)
		require.NoError(t, err)
		require.Equal(t, 1, st.aliased, "2001::/32 is Teredo, aliased to the IPv4 tree")
		outs[i], err = os.ReadFile(out)
		require.NoError(t, err)
	}
	require.Equal(t, outs[0], outs[1])
	zr, err := gzip.NewReader(bytes.NewReader(outs[0]))
	require.NoError(t, err)
	require.Empty(t, zr.Name)
	require.True(t, zr.ModTime.IsZero() || zr.ModTime.Unix() == 0)
	data, err := io.ReadAll(zr)
	require.NoError(t, err)
	r, err := maxminddb.OpenBytes(data)
	require.NoError(t, err)
	require.Equal(t, "tmsd-Country-ASN", r.Metadata.DatabaseType)
	require.Equal(t, uint(1_781_722_800), r.Metadata.BuildEpoch)
	type rec struct {
		Country struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"country"`
		ASN uint32 `maxminddb:"autonomous_system_number"`
		Org string `maxminddb:"autonomous_system_organization"`
	}
	f := func(addr, cc string, asn uint32, org string) {
		t.Helper()
		var got rec
		require.NoError(t, r.Lookup(netip.MustParseAddr(addr)).Decode(&got))
		require.Equal(t, rec{struct {
			ISOCode string `maxminddb:"iso_code"`
		}{cc}, asn, org}, got, addr)
	}
	f("1.0.0.1", "AU", 13335, "Cloudflare, Inc.")
	f("8.8.8.8", "US", 15169, "Google LLC")
	f("8.8.4.4", "US", 0, "")
	f("9.9.9.9", "", 0, "")
	f("2001:4860:4860::8888", "US", 15169, "Google LLC")
}
