package apps

import (
	"slices"

	"github.com/tmsd/tmsd/internal/topn"
)

// service is one generated table entry (see services_gen.go).
type service struct {
	proto uint8
	port  uint16
	name  string
}

// aliases renames IANA service names to what network engineers call them. Only the
// label changes; the table's ports stay IANA's. Every other name is IANA's as-is
// (ssh, https, ntp, snmp, ldap, bgp, syslog, kerberos, imaps, mysql, postgresql, http-alt…).
var aliases = map[string]string{
	"domain":        "dns",     // 53
	"domain-s":      "dns-tls", // 853, DNS over TLS/DTLS
	"imap2":         "imap",    // 143; IANA itself now says imap
	"bootps":        "dhcp",    // 67
	"bootpc":        "dhcp",    // 68
	"dhcpv6-client": "dhcpv6",  // 546
	"dhcpv6-server": "dhcpv6",  // 547
	"microsoft-ds":  "smb",     // 445
	"ms-wbt-server": "rdp",     // 3389
	"ms-sql-s":      "mssql",   // 1433
	"epmap":         "msrpc",   // 135
	"isakmp":        "ike",     // 500
	"l2f":           "l2tp",    // 1701; IANA lists l2f and l2tp for it
	"route":         "rip",     // 520/udp
	"shell":         "rsh",     // 514/tcp
	"printer":       "lpd",     // 515
	"auth":          "ident",   // 113
	"rfb":           "vnc",     // 5900
}

// portless names IP protocols without ports (and a few tunnels) by protocol number:
// for them the protocol is the application. IANA protocol keywords, except where the
// keyword is unclear as an app name (4 "ipv4" → ipip, 41 "ipv6" → ipv6-encap).
var portless = map[uint8]string{
	1:   "icmp",
	2:   "igmp",
	4:   "ipip",
	41:  "ipv6-encap",
	46:  "rsvp",
	47:  "gre",
	50:  "ipsec-esp",
	51:  "ipsec-ah",
	58:  "ipv6-icmp",
	88:  "eigrp",
	89:  "ospf",
	103: "pim",
	112: "vrrp",
	115: "l2tp", // L2TPv3 over IP
	137: "mpls-in-ip",
}

// Tables built once at init and read-only afterwards. Index 0 of names/keys is
// Other, so a zero entry in the arrays means "not in the table".
var (
	names []string
	keys  []topn.Key
	ids   = map[string]uint16{}
	// tcp and udp are indexed by port: one load per port instead of a map lookup
	// (256 KiB together). SCTP is rare and has few entries: a sorted slice.
	tcp, udp [1 << 16]uint16
	sctp     []sctpEntry
	byProto  [256]uint16
)

type sctpEntry struct{ port, idx uint16 }

func init() {
	id := func(name string) uint16 {
		if a, ok := aliases[name]; ok {
			name = a
		}
		if i, ok := ids[name]; ok {
			return i
		}
		i := uint16(len(names))
		ids[name] = i
		names = append(names, name)
		keys = append(keys, topn.AppKey(name))
		return i
	}
	id(Other)
	for _, s := range ianaServices {
		switch s.proto {
		case protoTCP:
			tcp[s.port] = id(s.name)
		case protoUDP:
			udp[s.port] = id(s.name)
		case protoSCTP:
			sctp = append(sctp, sctpEntry{s.port, id(s.name)})
		}
	}
	slices.SortFunc(sctp, func(a, b sctpEntry) int { return int(a.port) - int(b.port) })
	for p, n := range portless {
		byProto[p] = id(n)
	}
}

const (
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoSCTP    = 132
	protoUDPLite = 136
)

// hasPorts reports whether flows of proto carry real ports. Others may reuse the
// port fields (NetFlow puts ICMP type/code in the destination port), so port rules
// without an explicit protocol must not look at them.
func hasPorts(proto uint8) bool {
	switch proto {
	case protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLite:
		return true
	}
	return false
}

// portIndex is the table entry for one port of proto, 0 when none.
func portIndex(proto uint8, port uint16) uint16 {
	switch proto {
	case protoTCP:
		return tcp[port]
	case protoUDP:
		return udp[port]
	case protoSCTP:
		if i, ok := slices.BinarySearchFunc(sctp, port, func(e sctpEntry, p uint16) int { return int(e.port) - int(p) }); ok {
			return sctp[i].idx
		}
	}
	return 0
}

// tableIndex classifies by the table alone. For protocols without ports it is the
// protocol's name (or Other); for tcp, udp and sctp it is ServerPort's name.
func tableIndex(proto uint8, sport, dport uint16) uint16 {
	if proto != protoTCP && proto != protoUDP && proto != protoSCTP {
		return byProto[proto]
	}
	s, d := portIndex(proto, sport), portIndex(proto, dport)
	if srcIsServer(sport, dport, s, d) {
		return s
	}
	return d // d's name, or Other when neither port is named
}

// srcIsServer is ServerPort's rule on the ports' table indexes (0 = unnamed).
func srcIsServer(sport, dport, s, d uint16) bool { return d == 0 || (s != 0 && sport < dport) }

// ServerPort says which port of a tcp/udp/sctp flow names its application, ok false
// when neither is in the table (the flow is Other). The rule:
//
//  1. If exactly one of the two ports has a table entry, that port.
//  2. If both do, the lower port. This is the "well-known (<1024) over registered
//     (1024–49151) over ephemeral (≥49152), then lower" preference, which reduces to
//     "lower" because those classes are consecutive port ranges. So 80↔443 is http,
//     3306↔5432 is mysql, 443↔51234 is https either way round.
//  3. If neither does, none: unnamed ports are never guessed at, the flow is Other.
//
// Rule 1 means a client whose ephemeral port happens to be registered (Linux picks
// from 32768–60999) talking to an unnamed server port is named by the client port.
func ServerPort(proto uint8, sport, dport uint16) (port uint16, ok bool) {
	s, d := portIndex(proto, sport), portIndex(proto, dport)
	switch {
	case s == 0 && d == 0:
		return 0, false
	case srcIsServer(sport, dport, s, d):
		return sport, true
	}
	return dport, true
}
