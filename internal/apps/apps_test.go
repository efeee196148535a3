package apps

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

func rec(proto uint8, src string, sport uint16, dst string, dport uint16) *flow.Record {
	return &flow.Record{
		SrcAddr: flow.AddrFrom(netip.MustParseAddr(src)), SrcPort: sport,
		DstAddr: flow.AddrFrom(netip.MustParseAddr(dst)), DstPort: dport,
		Proto: proto,
	}
}

func TestTable(t *testing.T) {
	var c *Classifier // nil: table only
	f := func(proto uint8, sport, dport uint16, want string) {
		t.Helper()
		require.Equal(t, want, c.Name(rec(proto, "192.0.2.1", sport, "198.51.100.1", dport)), "%d %d→%d", proto, sport, dport)
	}
	f(6, 51234, 443, "https")
	f(6, 443, 51234, "https")
	f(17, 51234, 53, "dns")
	f(17, 53, 51234, "dns")
	f(6, 51234, 53, "dns")
	f(6, 40000, 5432, "postgresql")
	f(6, 5432, 40000, "postgresql")
	f(6, 60000, 22, "ssh")
	f(6, 33000, 3306, "mysql")
	f(17, 40000, 123, "ntp")
	f(17, 40000, 161, "snmp")
	f(6, 40000, 389, "ldap")
	f(6, 40000, 179, "bgp")
	f(17, 40000, 514, "syslog")
	f(6, 40000, 514, "rsh") // 514/tcp is IANA's shell, not syslog
	f(17, 40000, 88, "kerberos")
	f(6, 40000, 993, "imaps")
	f(6, 40000, 80, "http")
	f(6, 40000, 8080, "http-alt")
	f(6, 40000, 445, "smb")
	f(6, 40000, 3389, "rdp")
	f(17, 68, 67, "dhcp")
	f(17, 40000, 4789, "vxlan") // from gen/extra.services
	f(132, 40000, 3868, "diameter")
	f(132, 40000, 5672, "amqp")
	f(132, 40000, 443, "other") // sctp has its own (small) table
	// Rule 2: both named → lower port.
	f(6, 80, 443, "http")
	f(6, 443, 80, "http")
	f(6, 3306, 5432, "mysql")
	f(6, 5432, 3306, "mysql")
	f(6, 22, 22, "ssh")
	// Rule 1: registered vs unnamed ephemeral, either side.
	f(6, 50000, 6379, "redis")
	f(6, 6379, 50000, "redis")
	// Rule 3: neither named.
	f(6, 40000, 40001, Other)
	f(17, 40000, 8081, Other) // 8081 is only in netbase's non-IANA part
	f(6, 0, 0, Other)
	f(33, 40000, 443, Other) // dccp: no table
	// Portless protocols: ports ignored (NetFlow puts ICMP type/code in dport).
	f(1, 0, 0x0800, "icmp")
	f(58, 0, 0x8000, "ipv6-icmp")
	f(47, 0, 0, "gre")
	f(50, 0, 0, "ipsec-esp")
	f(89, 0, 0, "ospf")
	f(200, 0, 0, Other)
}

func TestServerPort(t *testing.T) {
	f := func(proto uint8, sport, dport, want uint16, wantOK bool) {
		t.Helper()
		p, ok := ServerPort(proto, sport, dport)
		require.Equal(t, wantOK, ok, "%d→%d", sport, dport)
		require.Equal(t, want, p, "%d→%d", sport, dport)
	}
	f(6, 51234, 443, 443, true)
	f(6, 443, 51234, 443, true)
	f(6, 443, 80, 80, true)
	f(6, 5432, 3306, 3306, true)
	f(6, 40000, 40001, 0, false)
	f(1, 0, 2048, 0, false)
}

// The tiers of rule 2, on synthetic table indexes (the IANA part has no named
// ephemeral ports to test them with).
func TestSrcIsServer(t *testing.T) {
	f := func(sport, dport uint16, sNamed, dNamed, want bool) {
		t.Helper()
		b := func(v bool) uint16 {
			if v {
				return 1
			}
			return 0
		}
		require.Equal(t, want, srcIsServer(sport, dport, b(sNamed), b(dNamed)), "%d→%d", sport, dport)
	}
	f(80, 443, true, true, true)        // both well-known: lower
	f(1024, 80, true, true, false)      // well-known over registered
	f(49151, 49152, true, true, true)   // registered over ephemeral
	f(50000, 60000, true, true, true)   // both ephemeral: lower
	f(60000, 50000, true, true, false)  // both ephemeral: lower
	f(60000, 80, true, false, true)     // only one named
	f(80, 60000, false, true, false)    // only one named
	f(40000, 40001, false, false, true) // neither: picks s, which is 0 (Other)
}

func TestPortName(t *testing.T) {
	var c Classifier
	f := func(proto uint8, port uint16, want string, wantOK bool) {
		t.Helper()
		n, ok := c.PortName(proto, port)
		require.Equal(t, wantOK, ok)
		require.Equal(t, want, n)
	}
	f(6, 443, "https", true)
	f(17, 53, "dns", true)
	f(6, 143, "imap", true)
	f(6, 8081, Other, false)
	f(1, 0, Other, false)
}

// Every table name must be a valid rule name, so it fits a key and reads back intact.
func TestNamesFitKeys(t *testing.T) {
	for i, n := range names {
		require.NoError(t, checkName(n), n)
		require.Equal(t, n, keys[i].App())
	}
	for from, to := range aliases {
		require.NoError(t, checkName(to), from)
	}
}

func mustNew(t testing.TB, lines ...string) *Classifier {
	var rules []Rule
	for _, l := range lines {
		r, err := ParseRule(l)
		require.NoError(t, err, l)
		rules = append(rules, r)
	}
	c, err := New(rules)
	require.NoError(t, err)
	return c
}

func TestRules(t *testing.T) {
	c := mustNew(t,
		"erp-db = 10.1.2.0/24 tcp/5432",
		"backup = 10.9.0.0/16",
		"voip = udp/5060,udp/10000-20000",
		"V6-Web = 2001:db8:1::/48 tcp/443, tcp/80",
		"mapped = ::ffff:172.16.0.0/108",
		"anyport = 7777",
	)
	f := func(proto uint8, src string, sport uint16, dst string, dport uint16, want string) {
		t.Helper()
		require.Equal(t, want, c.Name(rec(proto, src, sport, dst, dport)), "%d %s:%d→%s:%d", proto, src, sport, dst, dport)
	}
	// erp-db renames only flows to/from 10.1.2.x on port 5432, and only with the
	// port on the 10.1.2.x side.
	f(6, "192.0.2.7", 50000, "10.1.2.9", 5432, "erp-db")
	f(6, "10.1.2.9", 5432, "192.0.2.7", 50000, "erp-db")
	f(6, "192.0.2.7", 50000, "10.1.3.9", 5432, "postgresql")
	f(6, "192.0.2.7", 50000, "10.1.2.9", 5433, Other)
	f(6, "10.1.2.9", 50000, "192.0.2.7", 5432, "postgresql") // 5432 is the other endpoint's
	f(17, "192.0.2.7", 50000, "10.1.2.9", 5432, Other)       // udp/5432 is not tcp/5432
	// backup: any protocol and port, either side.
	f(6, "10.9.200.1", 50000, "192.0.2.7", 443, "backup")
	f(6, "192.0.2.7", 50000, "10.9.0.1", 22, "backup")
	f(1, "192.0.2.7", 0, "10.9.0.1", 0x0800, "backup")
	// voip: ports alone, either side, ranges inclusive.
	f(17, "192.0.2.7", 5060, "198.51.100.1", 5060, "voip")
	f(17, "192.0.2.7", 10000, "198.51.100.1", 40000, "voip")
	f(17, "192.0.2.7", 40000, "198.51.100.1", 20000, "voip")
	f(17, "192.0.2.7", 40000, "198.51.100.1", 20001, Other)
	f(6, "192.0.2.7", 40000, "198.51.100.1", 5060, "sip") // tcp/5060 is not in the rule
	// IPv6 prefix; names are reported lower-case.
	f(6, "2001:db8:1:ff::5", 443, "2001:db8:2::1", 40000, "v6-web")
	f(6, "2001:db8:2::1", 40000, "2001:db8:1::5", 80, "v6-web")
	f(6, "2001:db8:2::1", 40000, "2001:db8:1::5", 22, "ssh")
	f(6, "2001:db8:2::1", 40000, "2001:db8:3::5", 443, "https")
	// An IPv4 prefix never matches IPv6 and vice versa; a mapped IPv6 prefix is IPv4.
	f(6, "::a09:1", 40000, "2001:db8:2::1", 443, "https")
	f(6, "172.16.5.5", 40000, "192.0.2.1", 443, "mapped")
	// A bare port (proto 0) matches port-carrying protocols only: not ICMP's type/code.
	f(6, "192.0.2.7", 7777, "192.0.2.8", 50000, "anyport")
	f(132, "192.0.2.7", 50000, "192.0.2.8", 7777, "anyport")
	f(1, "192.0.2.7", 0, "192.0.2.8", 7777, "icmp")
}

func TestRuleOrder(t *testing.T) {
	c := mustNew(t, "first = 10.0.0.0/8", "second = 10.1.0.0/16 tcp/443", "web = tcp/443")
	require.Equal(t, "first", c.Name(rec(6, "10.1.0.1", 443, "192.0.2.1", 50000)))
	c = mustNew(t, "web = tcp/443", "first = 10.0.0.0/8")
	require.Equal(t, "web", c.Name(rec(6, "10.1.0.1", 443, "192.0.2.1", 50000)))
	require.Equal(t, "first", c.Name(rec(6, "10.1.0.1", 22, "192.0.2.1", 50000)))
}

func TestParseRule(t *testing.T) {
	r, err := ParseRule("  erp-db = 10.1.2.3/24, 2001:db8::1  tcp/5432 udp/100-200,0/9 99 ")
	require.NoError(t, err)
	require.Equal(t, Rule{
		Name:     "erp-db",
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("2001:db8::1/128")},
		Ports:    []PortRange{{6, 5432, 5432}, {17, 100, 200}, {0, 9, 9}, {0, 99, 99}},
	}, r)

	f := func(line, wantErr string) {
		t.Helper()
		_, err := ParseRule(line)
		require.Error(t, err, line)
		require.Contains(t, err.Error(), wantErr, line)
	}
	f("erp-db 10.1.2.0/24", `missing "="`)
	f(" = 10.1.2.0/24", "empty name")
	f(strings.Repeat("a", 25)+" = 10.0.0.0/8", "name longer than 24 bytes")
	f("erp db = 10.0.0.0/8", `name "erp db" may only contain letters, digits, '.', '_' and '-'`)
	f("erp/db = 10.0.0.0/8", `name "erp/db" may only contain`)
	f("erp-db =", "no CIDR and no PROTO/PORT")
	f("erp-db = , ", "no CIDR and no PROTO/PORT")
	f("erp-db = 10.1.2.0/33", `bad CIDR "10.1.2.0/33"`)
	f("erp-db = 10.1.2/24", `bad CIDR "10.1.2/24"`)
	f("erp-db = 2001:db8::/129", `bad CIDR "2001:db8::/129"`)
	f("erp-db = fe80::1%eth0", `bad CIDR "fe80::1%eth0"`)
	f("erp-db = 10.1.2.0/24 tcp/70000", `bad port "tcp/70000"`)
	f("erp-db = tcp/", `bad port "tcp/"`)
	f("erp-db = tcp/http", `bad port "tcp/http"`)
	f("erp-db = tcp/-5", `bad port "tcp/-5"`)
	f("voip = udp/20000-10000", `bad port "udp/20000-10000": range low 20000 > high 10000`)
	f("voip = udp/1-70000", `bad port "udp/1-70000"`)
	f("erp-db = icmp/8", `bad proto "icmp" in "icmp/8": proto must be tcp, udp, sctp or a number`)
	f("erp-db = 256/8", `proto must be tcp, udp, sctp or a number`)
	f("erp-db = 10/8", `IP protocol 10 has no ports (if it is a CIDR, write it in full`)
	f("erp-db = 10.0.0.0/8 #comment", `bad port "#comment"`)
}

func TestNewValidates(t *testing.T) {
	f := func(r Rule, wantErr string) {
		t.Helper()
		_, err := New([]Rule{{Name: "ok", Ports: []PortRange{{6, 1, 1}}}, r})
		require.Error(t, err)
		require.Contains(t, err.Error(), wantErr)
	}
	p := []PortRange{{6, 80, 80}}
	f(Rule{Ports: p}, `app rule 2 (""): empty name`)
	f(Rule{Name: strings.Repeat("x", topn.MaxAppName+1), Ports: p}, "name longer than 24 bytes")
	f(Rule{Name: "a b", Ports: p}, "may only contain")
	f(Rule{Name: "x"}, "no CIDR and no port")
	f(Rule{Name: "x", Prefixes: []netip.Prefix{{}}}, "bad CIDR")
	f(Rule{Name: "x", Ports: []PortRange{{6, 9, 8}}}, "bad port range 9-8")

	c, err := New(nil)
	require.NoError(t, err)
	require.Equal(t, "https", c.Name(rec(6, "10.0.0.1", 50000, "10.0.0.2", 443)))
	// Prefixes built in code need not be masked.
	c, err = New([]Rule{{Name: "Net", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/24")}}})
	require.NoError(t, err)
	require.Equal(t, topn.AppKey("net"), c.Classify(rec(6, "10.1.2.200", 1, "192.0.2.1", 2)))
}

var sink topn.Key

func benchRecords() []flow.Record {
	var rs []flow.Record
	for i := range 1024 {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		dst := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		r := flow.Record{SrcAddr: flow.AddrFrom(src), DstAddr: flow.AddrFrom(dst), SrcPort: uint16(32768 + i*7), Proto: 6}
		switch i % 4 {
		case 0:
			r.DstPort = 443
		case 1:
			r.Proto, r.DstPort = 17, 53
		case 2:
			r.DstPort = uint16(40000 + i)
		case 3:
			r.Proto, r.SrcPort = 1, 0
		}
		rs = append(rs, r)
	}
	return rs
}

func BenchmarkClassify(b *testing.B) {
	rs := benchRecords()
	run := func(b *testing.B, c *Classifier) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sink = c.Classify(&rs[i&1023])
			i++
		}
	}
	b.Run("table", func(b *testing.B) { run(b, mustNew(b)) })
	b.Run("rules=4", func(b *testing.B) {
		run(b, mustNew(b,
			"erp-db = 10.1.2.0/24 tcp/5432",
			"backup = 10.250.0.0/16",
			"v6 = 2001:db8::/32 tcp/443",
			"voip = udp/5060,udp/10000-20000",
		))
	})
	// 50 rules of every kind (mixedRules) over flows drawn around their values
	// (mixedRecords): 14% take a rule, the others are tried on every candidate
	// rule and go to the table.
	mixed := mixedRecords(1024)
	b.Run("rules=50", func(b *testing.B) {
		c := mustNew(b, mixedRules()...)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sink = c.Classify(&mixed[i&1023])
			i++
		}
	})
	// ClassifyID, the aggregator's call.
	runID := func(b *testing.B, c *Classifier, rs []flow.Record) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sinkID = c.ClassifyID(&rs[i&1023])
			i++
		}
	}
	b.Run("id/table", func(b *testing.B) { runID(b, mustNew(b), rs) })
	b.Run("id/rules=50", func(b *testing.B) { runID(b, mustNew(b, mixedRules()...), mixed) })
}

var sinkID uint16

// ClassifyID names the same application as Classify, through AppKey.
func TestClassifyIDMatchesClassify(t *testing.T) {
	c, err := New([]Rule{mustRule(t, "erp-db = 10.1.0.30/32 tcp/5432"), mustRule(t, "web = tcp/8443"), mustRule(t, "https = tcp/9443")})
	require.NoError(t, err)
	f := func(src, dst string, proto uint8, sport, dport uint16) {
		t.Helper()
		r := &flow.Record{SrcAddr: flow.AddrFrom(netip.MustParseAddr(src)), DstAddr: flow.AddrFrom(netip.MustParseAddr(dst)),
			Proto: proto, SrcPort: sport, DstPort: dport}
		id := c.ClassifyID(r)
		require.NotZero(t, id)
		k, ok := c.AppKey(id)
		require.True(t, ok)
		require.Equal(t, c.Classify(r), k)
	}
	f("10.0.0.1", "10.1.0.30", 6, 40000, 5432)
	f("10.0.0.1", "10.1.0.31", 6, 40000, 5432)
	f("10.0.0.1", "10.0.0.2", 6, 40000, 8443)
	f("10.0.0.1", "10.0.0.2", 6, 40000, 9443)
	f("10.0.0.1", "10.0.0.2", 6, 40000, 443)
	f("10.0.0.1", "10.0.0.2", 17, 40000, 41000)
	f("10.0.0.1", "10.0.0.2", 1, 0, 0)
	_, ok := c.AppKey(0)
	require.False(t, ok)
	_, ok = c.AppKey(60000)
	require.False(t, ok)
}

func mustRule(t *testing.T, s string) Rule {
	t.Helper()
	r, err := ParseRule(s)
	require.NoError(t, err)
	return r
}
