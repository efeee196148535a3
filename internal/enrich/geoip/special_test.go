package geoip

import (
	"net/netip"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// specialCases are addresses and their marker; "" is an ordinary address.
var specialCases = []struct {
	addr string
	want [2]byte
}{
	{"10.1.2.3", topn.SpecialPrivate},
	{"10.255.255.255", topn.SpecialPrivate},
	{"172.16.0.1", topn.SpecialPrivate},
	{"172.31.255.255", topn.SpecialPrivate},
	{"192.168.1.1", topn.SpecialPrivate},
	{"fd00::1", topn.SpecialPrivate},
	{"fc00::1", topn.SpecialPrivate},
	{"64:ff9b:1::1", topn.SpecialPrivate},
	{"100.64.1.1", topn.SpecialCGNAT},
	{"100.127.255.255", topn.SpecialCGNAT},
	{"192.0.2.1", topn.SpecialDocumentation},
	{"198.51.100.7", topn.SpecialDocumentation},
	{"203.0.113.200", topn.SpecialDocumentation},
	{"2001:db8::1", topn.SpecialDocumentation},
	{"3fff:fff::1", topn.SpecialDocumentation},
	{"127.0.0.1", topn.SpecialLoopback},
	{"127.255.0.1", topn.SpecialLoopback},
	{"::1", topn.SpecialLoopback},
	{"169.254.1.1", topn.SpecialLinkLocal},
	{"fe80::1", topn.SpecialLinkLocal},
	{"febf::1", topn.SpecialLinkLocal},
	{"224.0.0.5", topn.SpecialMulticast},
	{"239.255.255.250", topn.SpecialMulticast},
	{"ff02::1", topn.SpecialMulticast},
	{"0.0.0.0", topn.SpecialReserved},
	{"0.1.2.3", topn.SpecialReserved},
	{"240.0.0.1", topn.SpecialReserved},
	{"255.255.255.255", topn.SpecialReserved},
	{"192.0.0.8", topn.SpecialReserved},
	{"192.88.99.1", topn.SpecialReserved},
	{"198.18.0.1", topn.SpecialReserved},
	{"198.19.255.255", topn.SpecialReserved},
	{"::2", topn.SpecialReserved},
	{"::1.2.3.4", topn.SpecialReserved},
	{"100::1", topn.SpecialReserved},
	{"100:0:0:1::1", topn.SpecialReserved},
	{"2001:2::1", topn.SpecialReserved},
	{"2001:1::4", topn.SpecialReserved},
	{"2001:1ff::1", topn.SpecialReserved},
	{"5f00::1", topn.SpecialReserved},
	{"10.1.2.3", topn.SpecialPrivate},
	// Through the IPv4 address they carry.
	{"::ffff:10.1.2.3", topn.SpecialPrivate},
	{"64:ff9b::a01:203", topn.SpecialPrivate},
	{"2002:c0a8:101::1", topn.SpecialPrivate}, // 6to4 of 192.168.1.1
	{"2002:7f00:1::1", topn.SpecialLoopback},
	// Ordinary: their neighbours, and the globally reachable exceptions.
	{"8.8.8.8", [2]byte{}},
	{"9.255.255.255", [2]byte{}},
	{"11.0.0.0", [2]byte{}},
	{"100.63.255.255", [2]byte{}},
	{"100.128.0.0", [2]byte{}},
	{"126.255.255.255", [2]byte{}},
	{"128.0.0.0", [2]byte{}},
	{"169.253.255.255", [2]byte{}},
	{"169.255.0.0", [2]byte{}},
	{"172.15.255.255", [2]byte{}},
	{"172.32.0.0", [2]byte{}},
	{"192.0.0.9", [2]byte{}},
	{"192.0.0.10", [2]byte{}},
	{"192.0.1.1", [2]byte{}},
	{"192.0.3.0", [2]byte{}},
	{"192.31.196.1", [2]byte{}},
	{"192.52.193.1", [2]byte{}},
	{"192.167.255.255", [2]byte{}},
	{"192.169.0.0", [2]byte{}},
	{"192.175.48.1", [2]byte{}},
	{"198.17.255.255", [2]byte{}},
	{"198.20.0.0", [2]byte{}},
	{"198.51.101.0", [2]byte{}},
	{"203.0.112.255", [2]byte{}},
	{"223.255.255.255", [2]byte{}},
	{"2001::1", [2]byte{}},         // Teredo
	{"2001:1::1", [2]byte{}},       // PCP anycast
	{"2001:3::1", [2]byte{}},       // AMT
	{"2001:4:112::1", [2]byte{}},   // AS112
	{"2001:20::1", [2]byte{}},      // ORCHIDv2
	{"2001:30::1", [2]byte{}},      // drone remote ID
	{"2001:200::1", [2]byte{}},     // just past 2001::/23
	{"2001:db9::1", [2]byte{}},     // just past documentation
	{"2620:4f:8000::1", [2]byte{}}, // AS112 direct delegation
	{"2a00:1450::1", [2]byte{}},
	{"fec0::1", [2]byte{}}, // deprecated site-local: left to the database
	{"64:ff9b::808:808", [2]byte{}},
	{"2002:808:808::1", [2]byte{}},
	{"::", [2]byte{}}, // unset, not an address
}

func TestSpecialRanges(t *testing.T) {
	tab := emptyTable()
	for _, c := range specialCases {
		a := netip.MustParseAddr(c.addr)
		fa := flow.AddrFrom(a)
		v := tab.lookup(&fa)
		got := v.cc()
		require.Equal(t, string(c.want[:]), string(got[:]), c.addr)
		require.Zero(t, v.as(), c.addr)
		require.Equal(t, c.want != [2]byte{}, v.special(), c.addr)
		if c.want != [2]byte{} {
			_, ok := topn.SpecialName(c.want)
			require.True(t, ok)
		}
	}
}

// TestSpecialNeverLookedUp: a database that has every address, special
// ones included, still gives the markers and AS 0.
func TestSpecialNeverLookedUp(t *testing.T) {
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-Country", IncludeReservedNetworks: true,
		DisableIPv4Aliasing: true})
	require.NoError(t, err)
	rec := mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("FR")}}
	for _, p := range []string{"0.0.0.0/0", "::/0"} {
		require.NoError(t, w.Insert(netipxPrefix(netip.MustParsePrefix(p)), rec))
	}
	path := writeDB(t, w)
	g := newGeoIP(t, files(path, ""))
	for _, c := range specialCases {
		a := netip.MustParseAddr(c.addr)
		got, as := g.Lookup(a)
		want := c.want
		switch {
		case c.addr == "::":
		case want == [2]byte{}:
			want = cc("FR")
		}
		require.Equal(t, string(want[:]), string(got[:]), c.addr)
		require.Zero(t, as)
	}
}

func writeDB(t testing.TB, w *mmdbwriter.Tree) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "*.mmdb")
	require.NoError(t, err)
	_, err = w.WriteTo(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return f.Name()
}
