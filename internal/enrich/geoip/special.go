package geoip

import (
	"github.com/tmsd/tmsd/internal/topn"
)

// The special ranges, from IANA's IPv4 and IPv6 special-purpose address
// registries (and the multicast blocks), are answered without a database:
// the country is the range's topn marker, the AS 0. What is special:
//
//	private        10/8, 172.16/12, 192.168/16; fc00::/7; 64:ff9b:1::/48 (local-use NAT64, RFC 8215)
//	cgnat          100.64/10 (RFC 6598)
//	documentation  192.0.2/24, 198.51.100/24, 203.0.113/24; 2001:db8::/32, 3fff::/20
//	loopback       127/8; ::1
//	link-local     169.254/16; fe80::/10
//	multicast      224/4; ff00::/8
//	reserved       0/8, 240/4 (with 255.255.255.255), 192.0.0/24 (IETF protocol
//	               assignments, but for the anycast 192.0.0.9 and 192.0.0.10),
//	               192.88.99/24 (the deprecated 6to4 relay anycast), 198.18/15
//	               (benchmarking); ::/96 (:: and the deprecated IPv4-compatible
//	               addresses, less ::1), 100::/64 (discard-only), 100:0:0:1::/64
//	               (dummy prefix, RFC 9780), 2001::/23 (IETF protocol assignments)
//	               but for its globally reachable parts, 5f00::/16 (SRv6 SIDs)
//
// Globally reachable parts of 2001::/23, left to the database: 2001::/32
// (Teredo), 2001:1::1-3 (PCP, TURN, DNS-SD anycast), 2001:3::/32 (AMT),
// 2001:4:112::/48 (AS112), 2001:20::/28 (ORCHIDv2), 2001:30::/28 (drone
// remote ID); the IPv4 ones (192.31.196/24 AS112, 192.52.193/24 AMT,
// 192.175.48/24 AS112 direct delegation) and 2620:4f:8000::/48 are ordinary
// addresses anyway.
//
// IPv6 addresses that carry an IPv4 address are looked up as that address:
// ::ffff:0:0/96 (IPv4-mapped, how flow.Addr holds IPv4), 64:ff9b::/96 (the
// NAT64 well-known prefix, RFC 6052) and 2002::/16 (6to4, RFC 3056), whose
// IPv4 address is the real end: MaxMind's databases alias 6to4 to the IPv4
// tree for the same reason.

// Markers by a small index, so the per-first-octet table fits in bytes.
const (
	spNone uint8 = iota
	spPrivate
	spCGNAT
	spDocumentation
	spLoopback
	spLinkLocal
	spMulticast
	spReserved
	spMore // the first octet holds special and ordinary addresses: look closer
)

var spMarker = [...][2]byte{
	spPrivate:       topn.SpecialPrivate,
	spCGNAT:         topn.SpecialCGNAT,
	spDocumentation: topn.SpecialDocumentation,
	spLoopback:      topn.SpecialLoopback,
	spLinkLocal:     topn.SpecialLinkLocal,
	spMulticast:     topn.SpecialMulticast,
	spReserved:      topn.SpecialReserved,
	spMore:          {},
}

// firstOctet classifies an IPv4 address by its first octet: one load for
// the 239 octets that are all ordinary or all special.
var firstOctet = func() (t [256]uint8) {
	t[0] = spReserved
	t[10] = spPrivate
	t[127] = spLoopback
	for o := 224; o < 240; o++ {
		t[o] = spMulticast
	}
	for o := 240; o < 256; o++ {
		t[o] = spReserved
	}
	for _, o := range []int{100, 169, 172, 192, 198, 203} {
		t[o] = spMore
	}
	return t
}()

// special4 is the special range of an IPv4 address (spNone: ordinary).
func special4(x uint32) uint8 {
	c := firstOctet[x>>24]
	if c != spMore {
		return c
	}
	switch x >> 24 {
	case 100:
		if x&0xffc00000 == 0x64400000 { // 100.64/10
			return spCGNAT
		}
	case 169:
		if x>>16 == 0xa9fe { // 169.254/16
			return spLinkLocal
		}
	case 172:
		if x&0xfff00000 == 0xac100000 { // 172.16/12
			return spPrivate
		}
	case 192:
		switch x >> 8 {
		case 0xc00000: // 192.0.0/24
			if x != 0xc0000009 && x != 0xc000000a {
				return spReserved
			}
		case 0xc00002: // 192.0.2/24
			return spDocumentation
		case 0xc05863: // 192.88.99/24
			return spReserved
		}
		if x>>16 == 0xc0a8 { // 192.168/16
			return spPrivate
		}
	case 198:
		if x&0xfffe0000 == 0xc6120000 { // 198.18/15
			return spReserved
		}
		if x>>8 == 0xc63364 { // 198.51.100/24
			return spDocumentation
		}
	case 203:
		if x>>8 == 0xcb0071 { // 203.0.113/24
			return spDocumentation
		}
	}
	return spNone
}

// classify6 is the special range of an IPv6 address given as its two
// halves; v4 true means it carries an IPv4 address, x, to look up instead.
func classify6(hi, lo uint64) (sp uint8, x uint32, v4 bool) {
	switch {
	case hi == 0:
		switch {
		case lo>>32 == 0xffff: // ::ffff:0:0/96
			return spNone, uint32(lo), true
		case lo == 0: // unset in a flow.Addr: unknown, as in the table
			return spNone, 0, false
		case lo == 1:
			return spLoopback, 0, false
		case lo>>32 == 0: // ::/96
			return spReserved, 0, false
		}
		return spNone, 0, false
	case hi>>56 == 0xff: // ff00::/8
		return spMulticast, 0, false
	case hi>>54 == 0xfe80>>6: // fe80::/10
		return spLinkLocal, 0, false
	case hi>>57 == 0xfc>>1: // fc00::/7
		return spPrivate, 0, false
	case hi>>48 == 0x2002: // 6to4
		return spNone, uint32(hi >> 16), true
	case hi>>41 == 0x2001<<7: // 2001::/23
		switch {
		case hi>>32 == 0x20010000, // Teredo
			hi == 0x2001000100000000 && lo >= 1 && lo <= 3, // 2001:1::1-3
			hi>>32 == 0x20010003,                           // AMT
			hi>>16 == 0x200100040112,                       // AS112
			hi>>36 == 0x2001002,                            // ORCHIDv2
			hi>>36 == 0x2001003:                            // drone remote ID
			return spNone, 0, false
		}
		return spReserved, 0, false
	case hi>>32 == 0x20010db8: // 2001:db8::/32
		return spDocumentation, 0, false
	case hi>>44 == 0x3fff0: // 3fff::/20
		return spDocumentation, 0, false
	case hi>>48 == 0x5f00: // 5f00::/16
		return spReserved, 0, false
	case hi == 0x0064ff9b00000000 && lo>>32 == 0: // 64:ff9b::/96
		return spNone, uint32(lo), true
	case hi>>16 == 0x0064ff9b0001: // 64:ff9b:1::/48
		return spPrivate, 0, false
	case hi == 0x0100000000000000, hi == 0x0100000000000001: // 100::/64, 100:0:0:1::/64
		return spReserved, 0, false
	}
	return spNone, 0, false
}
