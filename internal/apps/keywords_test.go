package apps

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

// fl is a flow for the keyword tests; the zero exporter is 192.0.2.1.
type fl struct {
	proto   uint8
	src     string
	sport   uint16
	dst     string
	dport   uint16
	exp     string
	in, out uint32
	tos     uint8
}

func (f fl) rec() *flow.Record {
	if f.exp == "" {
		f.exp = "192.0.2.1"
	}
	return &flow.Record{
		Exporter: flow.AddrFrom(netip.MustParseAddr(f.exp)),
		SrcAddr:  flow.AddrFrom(netip.MustParseAddr(f.src)), SrcPort: f.sport,
		DstAddr: flow.AddrFrom(netip.MustParseAddr(f.dst)), DstPort: f.dport,
		Proto: f.proto, InIf: f.in, OutIf: f.out, TOS: f.tos,
	}
}

func (f fl) String() string {
	return fmt.Sprintf("%d %s:%d→%s:%d exp %s if %d→%d tos %#x", f.proto, f.src, f.sport, f.dst, f.dport, f.exp, f.in, f.out, f.tos)
}

// Every keyword, matching and not, alone and with others. Each case's rules are
// the whole configuration; a flow no rule takes gets the table's name.
func TestKeywordRules(t *testing.T) {
	const (
		a, b   = "192.0.2.7", "198.51.100.1"
		ef     = 46 << 2
		af41   = 34 << 2
		client = 50000
	)
	tests := []struct {
		name  string
		rules []string
		flows []fl
		want  []string
	}{
		{"src", []string{"net = src=10.1.0.0/16"}, []fl{
			{proto: 6, src: "10.1.2.3", sport: client, dst: b, dport: 443},
			{proto: 6, src: b, sport: 443, dst: "10.1.2.3", dport: client}, // 10.1.x is the destination
			{proto: 1, src: "10.1.0.1", dst: b},                            // any protocol
			{proto: 6, src: "10.2.0.1", sport: client, dst: b, dport: 443},
		}, []string{"net", "https", "net", "https"}},
		{"src alternatives, IPv4 and IPv6", []string{"net = src=10.1.0.0/16,2001:db8:1::/48"}, []fl{
			{proto: 17, src: "2001:db8:1::9", sport: client, dst: "2001:db8:2::1", dport: 53},
			{proto: 17, src: "10.1.9.9", sport: client, dst: b, dport: 53},
			{proto: 17, src: "2001:db8:2::1", sport: client, dst: "2001:db8:1::9", dport: 53},
			{proto: 17, src: "::ffff:10.1.9.9", sport: client, dst: b, dport: 53}, // mapped is IPv4
		}, []string{"net", "net", "dns", "net"}},
		{"dst", []string{"srv = dst=10.9.0.0/16, 10.8.0.0/16"}, []fl{
			{proto: 6, src: a, sport: client, dst: "10.9.0.1", dport: 22},
			{proto: 6, src: a, sport: client, dst: "10.8.0.1", dport: 22},
			{proto: 6, src: "10.9.0.1", sport: 22, dst: a, dport: client},
		}, []string{"srv", "srv", "ssh"}},
		{"src and dst together", []string{"repl = src=10.1.0.0/16 dst=10.2.0.0/16"}, []fl{
			{proto: 6, src: "10.1.0.1", sport: client, dst: "10.2.0.1", dport: 873},
			{proto: 6, src: "10.2.0.1", sport: 873, dst: "10.1.0.1", dport: client}, // the other way round
			{proto: 6, src: "10.1.0.1", sport: client, dst: "10.3.0.1", dport: 873},
		}, []string{"repl", "rsync", "rsync"}},
		{"srcport", []string{"feed = srcport=tcp/5000-5010"}, []fl{
			{proto: 6, src: a, sport: 5000, dst: b, dport: client},
			{proto: 6, src: a, sport: 5010, dst: b, dport: client},
			{proto: 6, src: a, sport: 5011, dst: b, dport: client},
			{proto: 6, src: a, sport: client, dst: b, dport: 5005}, // the destination's port
			{proto: 17, src: a, sport: 5005, dst: b, dport: client},
		}, []string{"feed", "feed", Other, Other, Other}},
		{"srcport bare: port-carrying protocols only", []string{"any = srcport=7777,8888-8889"}, []fl{
			{proto: 17, src: a, sport: 7777, dst: b, dport: client},
			{proto: 132, src: a, sport: 8889, dst: b, dport: client},
			{proto: 1, src: a, sport: 7777, dst: b},
		}, []string{"any", "any", "icmp"}},
		{"dstport", []string{"dns2 = dstport=udp/53,tcp/53"}, []fl{
			{proto: 17, src: a, sport: client, dst: b, dport: 53},
			{proto: 6, src: a, sport: client, dst: b, dport: 53},
			{proto: 17, src: b, sport: 53, dst: a, dport: client}, // the answer: 53 is the source's
		}, []string{"dns2", "dns2", "dns"}},
		{"srcport and dstport", []string{"p2p = srcport=6881-6889 dstport=6881-6889"}, []fl{
			{proto: 6, src: a, sport: 6881, dst: b, dport: 6889},
			{proto: 6, src: a, sport: 6881, dst: b, dport: 443},
		}, []string{"p2p", "https"}},
		{"proto", []string{"tunnel = proto=gre,ipsec-esp,4", "quic = proto=udp dstport=443"}, []fl{
			{proto: 47, src: a, dst: b},
			{proto: 50, src: a, dst: b},
			{proto: 4, src: a, dst: b},
			{proto: 41, src: a, dst: b},
			{proto: 17, src: a, sport: client, dst: b, dport: 443},
			{proto: 6, src: a, sport: client, dst: b, dport: 443},
		}, []string{"tunnel", "tunnel", "tunnel", "ipv6-encap", "quic", "https"}},
		{"proto by name and number", []string{"t = proto=TCP,17,icmp"}, []fl{
			{proto: 6, src: a, dst: b}, {proto: 17, src: a, dst: b}, {proto: 1, src: a, dst: b}, {proto: 58, src: a, dst: b},
		}, []string{"t", "t", "t", "ipv6-icmp"}},
		{"exporter", []string{"edge = exporter=192.0.2.1,2001:db8::9", "core = exporter=203.0.113.0/24"}, []fl{
			{proto: 6, src: a, sport: client, dst: b, dport: 443},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, exp: "2001:db8::9"},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, exp: "203.0.113.77"},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, exp: "192.0.2.2"},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, exp: "::ffff:192.0.2.1"},
		}, []string{"edge", "edge", "core", "https", "edge"}},
		{"in_if", []string{"up = in_if=3,4"}, []fl{
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 3},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 4, exp: "2001:db8::9"}, // any exporter
			{proto: 6, src: a, sport: client, dst: b, dport: 443, out: 3},
		}, []string{"up", "up", "https"}},
		{"in_if of one exporter", []string{"up = in_if=192.0.2.1:3 in_if=[2001:db8::9]:7,2001:db8::9:8"}, []fl{
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 3},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 3, exp: "192.0.2.2"},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 7, exp: "2001:db8::9"},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 8, exp: "2001:db8::9"},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 7},
		}, []string{"up", "https", "up", "up", "https"}},
		{"out_if", []string{"down = out_if=0"}, []fl{
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 5, out: 0},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 0, out: 5},
		}, []string{"down", "https"}},
		{"in_if and out_if", []string{"transit = in_if=192.0.2.1:1 out_if=192.0.2.1:2"}, []fl{
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 1, out: 2},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 2, out: 1},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 1, out: 3},
		}, []string{"transit", "https", "https"}},
		{"if: either", []string{"wan = if=192.0.2.1:9"}, []fl{
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 9, out: 1},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 1, out: 9},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 1, out: 2},
			{proto: 6, src: a, sport: client, dst: b, dport: 443, in: 9, out: 9, exp: "192.0.2.5"},
		}, []string{"wan", "wan", "https", "https"}},
		{"dscp", []string{"voice = dscp=ef", "video = dscp=af41,cs4,36", "zero = dscp=be"}, []fl{
			{proto: 17, src: a, sport: client, dst: b, dport: 5004, tos: ef},
			{proto: 17, src: a, sport: client, dst: b, dport: 5004, tos: ef | 3}, // ECN bits do not count
			{proto: 17, src: a, sport: client, dst: b, dport: 5004, tos: af41},
			{proto: 17, src: a, sport: client, dst: b, dport: 5004, tos: 32 << 2},
			{proto: 17, src: a, sport: client, dst: b, dport: 5004, tos: 36 << 2},
			{proto: 17, src: a, sport: client, dst: b, dport: 5004, tos: 45 << 2},
			{proto: 17, src: a, sport: client, dst: b, dport: 5004}, // no ToS exported: DSCP 0
		}, []string{"voice", "voice", "video", "video", "video", Other, "zero"}},
		{"group is no condition", []string{"db = tcp/5432 group=database"}, []fl{
			{proto: 6, src: a, sport: client, dst: b, dport: 5432},
			{proto: 6, src: a, sport: client, dst: b, dport: 5433},
		}, []string{"db", Other}},
		{"all kinds together", []string{"erp = 10.1.2.0/24 tcp/5432 src=192.0.2.0/24 dstport=5432 proto=tcp exporter=192.0.2.1 in_if=3 out_if=4 if=3 dscp=af41 group=database"}, []fl{
			{proto: 6, src: a, sport: client, dst: "10.1.2.9", dport: 5432, in: 3, out: 4, tos: af41},
			{proto: 6, src: a, sport: client, dst: "10.1.2.9", dport: 5432, in: 3, out: 4, tos: 0},                // dscp
			{proto: 6, src: a, sport: client, dst: "10.1.2.9", dport: 5432, in: 3, out: 5, tos: af41},             // out_if
			{proto: 6, src: a, sport: client, dst: "10.1.2.9", dport: 5432, in: 3, out: 4, tos: af41, exp: b},     // exporter
			{proto: 6, src: "203.0.113.1", sport: client, dst: "10.1.2.9", dport: 5432, in: 3, out: 4, tos: af41}, // src
			{proto: 6, src: a, sport: client, dst: "10.1.3.9", dport: 5432, in: 3, out: 4, tos: af41},             // the CIDR
			{proto: 6, src: "10.1.2.9", sport: 5432, dst: "192.0.2.9", dport: 5432, in: 3, out: 4, tos: af41},     // the endpoint condition holds by the source; src= does not
		}, []string{"erp", "postgresql", "postgresql", "postgresql", "postgresql", "postgresql", "postgresql"}},
		{"positional items and keywords: the endpoint condition still ties port to address", []string{"erp = 10.1.2.0/24 tcp/5432 in_if=3"}, []fl{
			{proto: 6, src: "10.1.2.9", sport: 5432, dst: a, dport: client, in: 3},
			{proto: 6, src: "10.1.2.9", sport: client, dst: a, dport: 5432, in: 3},
			{proto: 6, src: a, sport: client, dst: "10.1.2.9", dport: 5432, in: 4},
		}, []string{"erp", "postgresql", "postgresql"}},
		{"a keyword repeated is alternatives", []string{"x = dscp=ef dscp=cs6 in_if=1 in_if=2"}, []fl{
			{proto: 6, src: a, dst: b, in: 2, tos: 48 << 2},
			{proto: 6, src: a, dst: b, in: 1, tos: ef},
			{proto: 6, src: a, dst: b, in: 3, tos: ef},
		}, []string{"x", "x", Other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Len(t, tt.want, len(tt.flows))
			c := mustNew(t, tt.rules...)
			for i, f := range tt.flows {
				require.Equal(t, tt.want[i], c.Name(f.rec()), "flow %d: %v", i, f)
				id := c.ClassifyID(f.rec())
				k, ok := c.AppKey(id)
				require.True(t, ok)
				require.Equal(t, tt.want[i], k.App(), "flow %d: %v (ClassifyID)", i, f)
			}
		})
	}
}

// Rules are tried in order, whatever their kinds; the table comes last.
func TestKeywordRuleOrder(t *testing.T) {
	voip := fl{proto: 17, src: "10.0.0.1", sport: 50000, dst: "10.0.0.2", dport: 5060, tos: 46 << 2, in: 3}
	web := fl{proto: 6, src: "10.0.0.1", sport: 50000, dst: "10.0.0.2", dport: 443, tos: 46 << 2, in: 3}
	c := mustNew(t, "voice = dscp=ef", "sip = udp/5060", "uplink = in_if=3")
	require.Equal(t, "voice", c.Name(voip.rec()))
	require.Equal(t, "voice", c.Name(web.rec()))
	c = mustNew(t, "sip = udp/5060", "voice = dscp=ef", "uplink = in_if=3")
	require.Equal(t, "sip", c.Name(voip.rec()))
	require.Equal(t, "voice", c.Name(web.rec()))
	c = mustNew(t, "uplink = in_if=3", "sip = udp/5060", "voice = dscp=ef")
	require.Equal(t, "uplink", c.Name(voip.rec()))
	web.in = 4
	require.Equal(t, "voice", c.Name(web.rec()))
	web.tos = 0
	require.Equal(t, "https", c.Name(web.rec()))
}

func TestParseKeywordRule(t *testing.T) {
	f := func(line string, want Rule) {
		t.Helper()
		r, err := ParseRule(line)
		require.NoError(t, err, line)
		require.Equal(t, want, r, line)
		// String writes it back as ParseRule reads it.
		back, err := ParseRule(r.String())
		require.NoError(t, err, r.String())
		require.Equal(t, r, back, r.String())
	}
	p := netip.MustParsePrefix
	f("db = src=10.0.0.1, 10.2.0.0/16 dst = 2001:db8::/32 srcport=tcp/1-2 dstport=5432,udp/9 proto=tcp,ipv6-icmp,200 group=Database",
		Rule{Name: "db", Src: []netip.Prefix{p("10.0.0.1/32"), p("10.2.0.0/16")}, Dst: []netip.Prefix{p("2001:db8::/32")},
			SrcPorts: []PortRange{{6, 1, 2}}, DstPorts: []PortRange{{0, 5432, 5432}, {17, 9, 9}},
			Protos: []uint8{6, 58, 200}, Group: "Database"})
	f("x = exporter=192.0.2.1,2001:db8::1 exporter=198.51.100.0/24 in_if=3 out_if=192.0.2.1:4 if=[2001:db8::1]:5,2001:db8::1:6,::ffff:192.0.2.9:7",
		Rule{Name: "x", Exporters: []netip.Prefix{p("192.0.2.1/32"), p("2001:db8::1/128"), p("198.51.100.0/24")},
			InIfs:  []Interface{{Index: 3}},
			OutIfs: []Interface{{netip.MustParseAddr("192.0.2.1"), 4}},
			Ifs: []Interface{{netip.MustParseAddr("2001:db8::1"), 5}, {netip.MustParseAddr("2001:db8::1"), 6},
				{netip.MustParseAddr("192.0.2.9"), 7}}})
	f("q = DSCP=EF,af11,AF43,cs0,cs7,be,63 group=voip group=VoIP",
		Rule{Name: "q", DSCPs: []uint8{46, 10, 38, 0, 56, 0, 63}, Group: "voip"})
	// Positional items and keywords mix; a keyword's values run to the next space
	// (not next to a comma), then positional items resume.
	f("m = 10.1.0.0/16,proto=udp,tcp 10.2.0.0/16 udp/53,src=10.9.0.0/16",
		Rule{Name: "m", Prefixes: []netip.Prefix{p("10.1.0.0/16"), p("10.2.0.0/16")}, Ports: []PortRange{{17, 53, 53}},
			Src: []netip.Prefix{p("10.9.0.0/16")}, Protos: []uint8{17, 6}})
	f("af = dscp=af11,af12,af13,af21,af22,af23,af31,af32,af33,af41,af42,af43",
		Rule{Name: "af", DSCPs: []uint8{10, 12, 14, 18, 20, 22, 26, 28, 30, 34, 36, 38}})
	f("cs = dscp=cs1,cs2,cs3,cs4,cs5,cs6", Rule{Name: "cs", DSCPs: []uint8{8, 16, 24, 32, 40, 48}})
}

// Every rule string of the old syntax parses to what it did before keywords:
// positional items only, no keyword field set.
func TestOldRulesUnchanged(t *testing.T) {
	p := netip.MustParsePrefix
	f := func(line string, prefixes []netip.Prefix, ports []PortRange) {
		t.Helper()
		r, err := ParseRule(line)
		require.NoError(t, err, line)
		name, _, _ := strings.Cut(line, "=")
		require.Equal(t, Rule{Name: strings.TrimSpace(name), Prefixes: prefixes, Ports: ports}, r, line)
		back, err := ParseRule(r.String())
		require.NoError(t, err)
		require.Equal(t, r, back)
	}
	f("erp-db = 10.1.2.0/24 tcp/5432", []netip.Prefix{p("10.1.2.0/24")}, []PortRange{{6, 5432, 5432}})
	f("backup = 10.9.0.0/16", []netip.Prefix{p("10.9.0.0/16")}, nil)
	f("backup = 10.9.0.0/16, 2001:db8:9::/48", []netip.Prefix{p("10.9.0.0/16"), p("2001:db8:9::/48")}, nil)
	f("voip = udp/5060,udp/10000-20000", nil, []PortRange{{17, 5060, 5060}, {17, 10000, 20000}})
	f("V6-Web = 2001:db8:1::/48 tcp/443, tcp/80", []netip.Prefix{p("2001:db8:1::/48")}, []PortRange{{6, 443, 443}, {6, 80, 80}})
	f("mapped = ::ffff:172.16.0.0/108", []netip.Prefix{p("::ffff:172.16.0.0/108")}, nil)
	f("anyport = 7777", nil, []PortRange{{0, 7777, 7777}})
	f("x = 0/7 sctp/1-2 132/3", nil, []PortRange{{0, 7, 7}, {132, 1, 2}, {132, 3, 3}})
	f("x = 10.0.0.1 , , tcp/1 ,udp/2", []netip.Prefix{p("10.0.0.1/32")}, []PortRange{{6, 1, 1}, {17, 2, 2}})
	f("erp-db = 10.1.0.30/32 tcp/5432", []netip.Prefix{p("10.1.0.30/32")}, []PortRange{{6, 5432, 5432}})
	f("erp-db = 10.1.2.0/24,2001:db8::/48 tcp/5432,udp/10000-20000,0/7",
		[]netip.Prefix{p("10.1.2.0/24"), p("2001:db8::/48")}, []PortRange{{6, 5432, 5432}, {17, 10000, 20000}, {0, 7, 7}})
	// Old rules keep the same flows: see TestRules and TestRuleOrder, unchanged.
}

func TestParseKeywordRuleErrors(t *testing.T) {
	f := func(line, wantErr string) {
		t.Helper()
		_, err := ParseRule(line)
		require.Error(t, err, line)
		require.Contains(t, err.Error(), wantErr, line)
		require.Contains(t, err.Error(), fmt.Sprintf("app rule %q: ", line), "the error quotes the rule")
	}
	f("x = src=10.0.0.0/33", `src: bad CIDR "10.0.0.0/33"`)
	f("x = dst=10.0.0.0/8,10.1.2/24", `dst: bad CIDR "10.1.2/24"`)
	f("x = src=fe80::1%eth0", `src: bad CIDR "fe80::1%eth0"`)
	f("x = src=", `src= has no value`)
	f("x = src= dst=10.0.0.0/8", `src: bad CIDR "dst=10.0.0.0/8"`) // "src= dst=…" is src's value: '=' joins
	f("x = src=,, tcp/1", `src: bad CIDR "tcp/1"`)                 // a space after a comma does not end the values
	f("x = src=,dst=10.0.0.0/8", `src= has no value`)
	f("x = dscp=64", `dscp: bad DSCP "64": want 0-63, ef, af11…af43, cs0…cs7 or be`)
	f("x = dscp=ef,af44", `dscp: bad DSCP "af44"`)
	f("x = dscp=-1", `dscp: bad DSCP "-1"`)
	f("x = dscp=cs8", `dscp: bad DSCP "cs8"`)
	f("x = color=red", `unknown keyword "color" in "color=red"; want one of src, dst, srcport, dstport, proto, exporter, in_if, out_if, if, dscp, group`)
	f("x = tcp/1,=5", `unknown keyword "" in "=5"`)
	f("x = 10.0.0.0/8 =5", `unknown keyword "10.0.0.0/8" in "10.0.0.0/8=5"`) // spaces around '=' do not count
	f("x = srcport=tcp/70000", `srcport: bad port "tcp/70000"`)
	f("x = dstport=udp/9-8", `dstport: bad port "udp/9-8": range low 9 > high 8`)
	f("x = dstport=icmp/8", `dstport: bad proto "icmp" in "icmp/8"`)
	f("x = proto=ipx", `proto: bad proto "ipx": want tcp, udp, sctp, dccp, udplite, a protocol without ports`)
	f("x = proto=256", `proto: bad proto "256"`)
	f("x = exporter=router1", `exporter: bad exporter "router1": want an address or a CIDR`)
	f("x = in_if=eth0", `in_if: bad interface "eth0": bad ifIndex; want IFINDEX or EXPORTER:IFINDEX`)
	f("x = out_if=192.0.2.1:x", `out_if: bad interface "192.0.2.1:x": bad ifIndex`)
	f("x = if=router:3", `if: bad interface "router:3": bad exporter address`)
	f("x = in_if=4294967296", `in_if: bad interface "4294967296"`)
	f("x = group=a/b tcp/1", `group: name "a/b" may only contain letters, digits, '.', '_' and '-'`)
	f("x = group="+strings.Repeat("g", 25)+" tcp/1", `group: name longer than 24 bytes`)
	f("x = tcp/1 group=db group=web", `group: two groups, "db" and "web": an application has one`)
	f("x = group=db", `no CIDR and no PROTO/PORT after "=", nor a KEY=VALUE condition`)
	f("x =", `no CIDR and no PROTO/PORT`)
}

func TestNewKeywordErrors(t *testing.T) {
	f := func(wantErr string, lines ...string) {
		t.Helper()
		var rules []Rule
		for _, l := range lines {
			rules = append(rules, mustRule(t, l))
		}
		_, err := New(rules)
		require.Error(t, err)
		require.Contains(t, err.Error(), wantErr)
	}
	f(`app rule 3 ("DB"): group "web", but rule 1 gives application "db" group "database": an application has one group`,
		"db = tcp/5432 group=database", "db = 10.0.0.0/8", "DB = tcp/5433 group=Web")
	f(`app rule 2 ("https"): group "web", but rule 1 gives application "https" group "secure"`,
		"https = tcp/8443 group=secure", "https = tcp/9443 group=web")
	f(`app rule 1 ("x"): no IP protocol is both in proto= and of its ports: the rule never matches`, "x = proto=udp dstport=tcp/53")
	f(`app rule 1 ("x"): no IP protocol is both in proto= and of its ports`, "x = srcport=tcp/1 dstport=udp/1")
	f(`app rule 1 ("x"): no IP protocol is both in proto= and of its ports`, "x = proto=icmp 7777")

	g := func(r Rule, wantErr string) {
		t.Helper()
		_, err := New([]Rule{r})
		require.Error(t, err)
		require.Contains(t, err.Error(), wantErr)
	}
	g(Rule{Name: "x", Group: "db"}, `app rule 1 ("x"): no CIDR and no port, nor another condition`)
	g(Rule{Name: "x", DSCPs: []uint8{64}}, "dscp: 64 is out of 0-63")
	g(Rule{Name: "x", Src: []netip.Prefix{{}}}, "src: bad CIDR")
	g(Rule{Name: "x", Exporters: []netip.Prefix{{}}}, "exporter: bad CIDR")
	g(Rule{Name: "x", DstPorts: []PortRange{{6, 2, 1}}}, "dstport: bad port range 2-1")
	g(Rule{Name: "x", Protos: []uint8{6}, Group: "a b"}, `group: name "a b" may only contain`)

	// Same group twice, or once and none, is one group.
	c := mustNew(t, "db = tcp/5432 group=database", "DB = 10.0.0.0/8 group=Database", "db = tcp/5433")
	require.Equal(t, []string{"database"}, c.Groups())
}

func TestGroups(t *testing.T) {
	c := mustNew(t,
		"erp = 10.1.0.0/16 tcp/5432 group=database",
		"erp = 10.2.0.0/16", // the same application: its group
		"cache = tcp/6380 group=Database",
		"site = dst=10.3.0.0/16 group=web",
		"https = tcp/8443 group=web", // a table name: the table's https too
		"misc = udp/9999",
		"store = 10.4.0.0/16 group=backup",
	)
	require.Equal(t, []string{"backup", "database", "web"}, c.Groups())
	g := c.Groups()
	g[0] = "changed"
	require.Equal(t, []string{"backup", "database", "web"}, c.Groups(), "Groups returns a copy")

	f := func(f fl, wantApp, wantGroup string) {
		t.Helper()
		id := c.ClassifyID(f.rec())
		k, ok := c.AppKey(id)
		require.True(t, ok)
		require.Equal(t, wantApp, k.App(), "%v", f)
		group, ok := c.Group(id)
		require.Equal(t, wantGroup != "", ok, "%v", f)
		require.Equal(t, wantGroup, group, "%v", f)
	}
	f(fl{proto: 6, src: "10.1.0.1", sport: 5432, dst: "192.0.2.1", dport: 50000}, "erp", "database")
	f(fl{proto: 6, src: "10.2.0.1", sport: 22, dst: "192.0.2.1", dport: 50000}, "erp", "database")
	f(fl{proto: 6, src: "192.0.2.1", sport: 50000, dst: "192.0.2.2", dport: 6380}, "cache", "database")
	f(fl{proto: 6, src: "192.0.2.1", sport: 50000, dst: "10.3.0.1", dport: 80}, "site", "web")
	f(fl{proto: 6, src: "192.0.2.1", sport: 50000, dst: "192.0.2.2", dport: 8443}, "https", "web")
	f(fl{proto: 6, src: "192.0.2.1", sport: 50000, dst: "192.0.2.2", dport: 443}, "https", "web") // by the table
	f(fl{proto: 17, src: "192.0.2.1", sport: 50000, dst: "192.0.2.2", dport: 9999}, "misc", "")
	f(fl{proto: 6, src: "192.0.2.1", sport: 50000, dst: "192.0.2.2", dport: 22}, "ssh", "")
	f(fl{proto: 6, src: "192.0.2.1", sport: 50000, dst: "192.0.2.2", dport: 40000}, Other, "")
	f(fl{proto: 1, src: "10.4.0.1", dst: "192.0.2.2"}, "store", "backup")
	for _, id := range []uint16{0, uint16(len(keys) + 100), 65535} {
		_, ok := c.Group(id)
		require.False(t, ok, id)
	}

	// No groups: none for any id; a nil Classifier has none either.
	c = mustNew(t, "x = tcp/1")
	require.Nil(t, c.Groups())
	_, ok := c.Group(1)
	require.False(t, ok)
	var nilc *Classifier
	require.Nil(t, nilc.Groups())
	_, ok = nilc.Group(1)
	require.False(t, ok)
}

// mixedRules are 50 rules of every kind, for the equivalence test and the benchmark.
func mixedRules() []string {
	var rs []string
	for i := range 50 {
		var r string
		switch i % 10 {
		case 0:
			r = fmt.Sprintf("svc%d = 10.%d.0.0/16 tcp/%d", i, i, 8000+i)
		case 1:
			r = fmt.Sprintf("port%d = udp/%d,tcp/%d-%d", i, 9000+i, 20000+i*10, 20005+i*10)
		case 2:
			r = fmt.Sprintf("repl%d = src=10.%d.0.0/16 dst=10.%d.0.0/16,2001:db8:%x::/48 group=backup", i, i, i+1, i)
		case 3:
			r = fmt.Sprintf("feed%d = srcport=tcp/%d dstport=%d-%d proto=tcp", i, 7000+i, 30000+i*100, 30099+i*100)
		case 4:
			r = fmt.Sprintf("edge%d = exporter=192.0.2.%d in_if=%d", i, i, i%8)
		case 5:
			r = fmt.Sprintf("up%d = if=192.0.2.%d:%d,198.51.100.1:%d group=transit", i, i%16, i%8, i)
		case 6:
			r = fmt.Sprintf("qos%d = dscp=cs%d,%d proto=udp group=voice", i, 1+i%7, 40+i%20)
		case 7:
			r = fmt.Sprintf("tun%d = proto=gre,%d exporter=203.0.113.0/28", i, 100+i)
		case 8:
			r = fmt.Sprintf("v6svc%d = 2001:db8:%x::/48 tcp/443 out_if=%d", i, i, i%4)
		case 9:
			r = fmt.Sprintf("db%d = dst=10.%d.%d.0/24 dstport=tcp/5432,tcp/3306 dscp=af%d1 group=database", i, 100+i, i, 1+i%4)
		}
		rs = append(rs, r)
	}
	return rs
}

// mixedRecords are varied flows, drawn around mixedRules' values: many take no
// rule, and most rules take some.
func mixedRecords(n int) []flow.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	exporter := func() netip.Addr {
		switch rng.IntN(10) {
		case 0, 1, 2, 3, 4:
			return netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(50))})
		case 5, 6:
			return netip.MustParseAddr("198.51.100.1")
		case 7, 8:
			return netip.AddrFrom4([4]byte{203, 0, 113, byte(rng.IntN(32))})
		}
		return netip.MustParseAddr("2001:db8::9")
	}
	// addr is an address of no rule's, or (i >= 0) one of rule i's kind's.
	addr := func(i int) netip.Addr {
		switch k := rng.IntN(6); {
		case i >= 0 && k < 2:
			return netip.AddrFrom4([4]byte{10, byte(i + k), byte(rng.IntN(60)), byte(rng.IntN(256))})
		case i >= 0 && k < 4:
			return netip.AddrFrom4([4]byte{10, byte(100 + i), byte(i), byte(rng.IntN(256))})
		case i >= 0:
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i), 15: byte(rng.IntN(256))})
		case k == 0:
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(rng.IntN(60)), 15: byte(rng.IntN(256))})
		case k == 1:
			return netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(256))})
		}
		return netip.AddrFrom4([4]byte{10, byte(rng.IntN(160)), byte(rng.IntN(60)), byte(rng.IntN(256))})
	}
	protos := []uint8{6, 6, 6, 6, 17, 17, 17, 1, 47, 58}
	tos := func() uint8 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return uint8(rng.IntN(8)) << 5 // class selectors
		case 2:
			return uint8(40+rng.IntN(20)) << 2
		}
		return uint8(1+rng.IntN(4))<<5 | 2<<2 // afN1
	}
	serverPort := func(i uint16) uint16 {
		switch rng.IntN(10) {
		case 0:
			return 8000 + i
		case 1:
			return 9000 + i
		case 2:
			return 20000 + i*10 + uint16(rng.IntN(10))
		case 3:
			return 30000 + uint16(rng.IntN(5000))
		case 4:
			return 40000
		}
		return []uint16{443, 80, 53, 22, 5432, 3306}[rng.IntN(6)]
	}
	var rs []flow.Record
	for range n {
		i, aligned := rng.IntN(50), -1 // half the flows have addresses and ports of rules of index i
		if rng.IntN(2) == 0 {
			aligned = i
		}
		r := flow.Record{
			Exporter: flow.AddrFrom(exporter()), SrcAddr: flow.AddrFrom(addr(aligned)), DstAddr: flow.AddrFrom(addr(aligned)),
			Proto: protos[rng.IntN(len(protos))], InIf: uint32(rng.IntN(10)), OutIf: uint32(rng.IntN(10)), TOS: tos(),
		}
		if rng.IntN(20) == 0 {
			r.Proto = uint8(100 + rng.IntN(50))
		}
		if hasPorts(r.Proto) {
			r.SrcPort, r.DstPort = uint16(32768+rng.IntN(28000)), serverPort(uint16(i))
			if rng.IntN(8) == 0 {
				r.SrcPort, r.DstPort = 7000+uint16(i), 30000+uint16(i)*100+uint16(rng.IntN(100))
			}
			if rng.IntN(2) == 0 {
				r.SrcPort, r.DstPort = r.DstPort, r.SrcPort
			}
		}
		rs = append(rs, r)
	}
	return rs
}

// refMatch is Rule's meaning written plainly, on netip values: the compiled
// rules must agree with it on every flow.
func refMatch(r *Rule, f *flow.Record) bool {
	src, dst, exp := f.SrcAddr.Netip(), f.DstAddr.Netip(), f.Exporter.Netip()
	anyPrefix := func(ps []netip.Prefix, a netip.Addr) bool {
		return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	anyPort := func(prs []PortRange, port uint16) bool {
		return slices.ContainsFunc(prs, func(pr PortRange) bool {
			return (pr.Proto == f.Proto || pr.Proto == 0 && hasPorts(f.Proto)) && pr.Low <= port && port <= pr.High
		})
	}
	anyIf := func(is []Interface, index uint32) bool {
		return slices.ContainsFunc(is, func(i Interface) bool {
			return i.Index == index && (!i.Exporter.IsValid() || i.Exporter == exp)
		})
	}
	kind := func(n int, ok bool) bool { return n == 0 || ok }
	endpoint := true
	switch {
	case len(r.Prefixes) > 0 && len(r.Ports) > 0:
		endpoint = anyPrefix(r.Prefixes, src) && anyPort(r.Ports, f.SrcPort) || anyPrefix(r.Prefixes, dst) && anyPort(r.Ports, f.DstPort)
	case len(r.Prefixes) > 0:
		endpoint = anyPrefix(r.Prefixes, src) || anyPrefix(r.Prefixes, dst)
	case len(r.Ports) > 0:
		endpoint = anyPort(r.Ports, f.SrcPort) || anyPort(r.Ports, f.DstPort)
	}
	return endpoint &&
		kind(len(r.Src), anyPrefix(r.Src, src)) && kind(len(r.Dst), anyPrefix(r.Dst, dst)) &&
		kind(len(r.SrcPorts), anyPort(r.SrcPorts, f.SrcPort)) && kind(len(r.DstPorts), anyPort(r.DstPorts, f.DstPort)) &&
		kind(len(r.Protos), slices.Contains(r.Protos, f.Proto)) &&
		kind(len(r.Exporters), anyPrefix(r.Exporters, exp)) &&
		kind(len(r.InIfs), anyIf(r.InIfs, f.InIf)) && kind(len(r.OutIfs), anyIf(r.OutIfs, f.OutIf)) &&
		kind(len(r.Ifs), anyIf(r.Ifs, f.InIf) || anyIf(r.Ifs, f.OutIf)) &&
		kind(len(r.DSCPs), slices.Contains(r.DSCPs, f.TOS>>2))
}

func TestCompiledMatchesReference(t *testing.T) {
	var rules []Rule
	for _, l := range mixedRules() {
		rules = append(rules, mustRule(t, l))
	}
	c, err := New(rules)
	require.NoError(t, err)
	matched := map[string]int{}
	for _, f := range mixedRecords(50_000) {
		want := keys[tableIndex(f.Proto, f.SrcPort, f.DstPort)].App()
		for i := range rules {
			if refMatch(&rules[i], &f) {
				want = strings.ToLower(rules[i].Name)
				break
			}
		}
		matched[want]++
		require.Equal(t, want, c.Name(&f), "%+v", f)
		k, ok := c.AppKey(c.ClassifyID(&f))
		require.True(t, ok)
		require.Equal(t, want, k.App())
	}
	// The flows exercise the rules: most kinds match some.
	n := 0
	for _, r := range rules {
		if matched[r.Name] > 0 {
			n++
		}
	}
	require.GreaterOrEqual(t, n, 40, "rules matched: %v", matched)
	t.Logf("%d of %d rules matched flows: %v", n, len(rules), matched)
}

func TestClassifyIDDoesNotAllocate(t *testing.T) {
	c := mustNew(t, mixedRules()...)
	rs := mixedRecords(1024)
	i := 0
	require.Zero(t, testing.AllocsPerRun(10_000, func() {
		c.ClassifyID(&rs[i&1023])
		i++
	}))
}
