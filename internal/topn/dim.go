// Package topn owns what a TopN answer is made of: dimensions, fixed-size keys,
// counters, and the Table of one interval's top K with exact totals and error
// bounds. Merging tables (minutes into a range, minutes into hours) is pure math here.
package topn

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tmsd/tmsd/internal/flow"
)

// Dim is a TopN dimension.
type Dim uint8

// Dimensions. The numbers are stored in keys: never renumber, only append.
const (
	DimApp Dim = iota + 1
	DimProto
	DimSrcIP
	DimDstIP
	DimIP
	DimSrcPort
	DimDstPort
	DimPort
	DimExporter
	DimInIf
	DimOutIf
	// DimPeer is the other end of a flow from the address of an ip scope
	// (topn.ScopeIP): only that scope has it.
	DimPeer
	// Countries and autonomous systems of the flow's ends, from enrichment
	// (zero, "unknown", until it fills them); country and as either end.
	DimSrcCountry
	DimDstCountry
	DimCountry
	DimSrcAS
	DimDstAS
	DimAS
	// DimAppGroup is the group of a flow's application (apps rule group=:
	// database, web, backup…): read off the application tables, not counted.
	DimAppGroup
	numDims
)

// Dims lists every dimension in order.
var Dims = func() []Dim {
	d := make([]Dim, 0, numDims-1)
	for i := DimApp; i < numDims; i++ {
		d = append(d, i)
	}
	return d
}()

// NumDims is one more than the largest Dim, for arrays indexed by Dim.
const NumDims = int(numDims)

var dimNames = [numDims]string{"", "app", "proto", "srcip", "dstip", "ip", "srcport", "dstport", "port", "exporter", "in_if", "out_if", "peer",
	"srccountry", "dstcountry", "country", "srcas", "dstas", "as", "appgroup"}

func (d Dim) String() string {
	if d == 0 || d >= numDims {
		return "dim(" + strconv.Itoa(int(d)) + ")"
	}
	return dimNames[d]
}

// CountsPerFlow is how many keys of d each flow is counted under: 2 for ip and
// port, which list a flow under both its ends (as nfdump -s ip and -s port do:
// twice under the same key when both ends have it, src ip == dst ip or
// srcport == dstport), 1 for every other dimension. Peer counts 1 because an
// ip scope's total is that address's ip row, a flow between the address and
// itself counted twice there and in its peer table (aggregate.countDrill).
// So the keys of any table of d add up to exactly CountsPerFlow × its Total,
// and "other" is what the listed keys leave of that (Table.Top).
func (d Dim) CountsPerFlow() int {
	if d == DimIP || d == DimPort || d == DimCountry || d == DimAS {
		return 2
	}
	return 1
}

// DimNames is the list of valid dimension names, for error messages.
func DimNames() string { return strings.Join(dimNames[1:], ", ") }

// ParseDim returns the dimension named s.
func ParseDim(s string) (Dim, bool) {
	for i := DimApp; i < numDims; i++ {
		if dimNames[i] == s {
			return i, true
		}
	}
	return 0, false
}

// Key identifies one row of a dimension. Its layout depends on the dimension:
// addresses take 16 bytes, ports 2 bytes of port and 1 of IP protocol, interfaces 16
// bytes of exporter and 4 of ifIndex, applications their name (at most MaxAppName bytes).
type Key [24]byte

// MaxAppName is the longest application name a key holds.
const MaxAppName = len(Key{})

// AddrKey is the key of an address dimension (srcip, dstip, ip, exporter, peer).
func AddrKey(a flow.Addr) (k Key) { copy(k[:16], a[:]); return }

// PortKey is the key of a port dimension: the port with its IP protocol.
func PortKey(port uint16, proto uint8) (k Key) {
	binary.BigEndian.PutUint16(k[:2], port)
	k[2] = proto
	return
}

// DynamicPorts is the first port of the range a scoped table counts as one
// row (PortRangeKey): 32768-65535 holds the client ports Linux (32768-60999),
// Windows and the BSDs (49152-65535) pick for outgoing connections.
const DynamicPorts = 32768

// PortRangeKey is the key of the one row per protocol that the tables of a
// scope (an exporter, a protocol, an interface, an application) count ports
// 32768-65535 under: clients' ports, one of a kind per connection, would
// otherwise hold a key each in every scope they cross. The whole network's
// tables keep every port.
func PortRangeKey(proto uint8) (k Key) {
	k = PortKey(DynamicPorts, proto)
	k[3] = 1
	return
}

// IsPortRange says whether a port key is a PortRangeKey.
func (k Key) IsPortRange() bool { return k[3] == 1 }

// ProtoKey is the key of the proto dimension.
func ProtoKey(proto uint8) (k Key) { k[0] = proto; return }

// IfKey is the key of in_if/out_if: exporter and ifIndex.
func IfKey(exporter flow.Addr, ifIndex uint32) (k Key) {
	copy(k[:16], exporter[:])
	binary.BigEndian.PutUint32(k[16:20], ifIndex)
	return
}

// CountryKey is the key of a country dimension: its two-letter code
// (ISO 3166-1 alpha-2, upper case); zero is unknown.
func CountryKey(cc [2]byte) (k Key) { k[0], k[1] = cc[0], cc[1]; return }

// ASKey is the key of an AS dimension: the AS number; 0 is unknown.
func ASKey(as uint32) (k Key) { binary.BigEndian.PutUint32(k[:4], as); return }

// AS returns the AS number of an AS key.
func (k Key) AS() uint32 { return binary.BigEndian.Uint32(k[:4]) }

// AppKey is the key of an application name (truncated to MaxAppName bytes).
func AppKey(name string) (k Key) { copy(k[:], name); return }

// Addr returns the address of an address key.
func (k Key) Addr() flow.Addr { var a flow.Addr; copy(a[:], k[:16]); return a }

// Port returns port and protocol of a port key.
func (k Key) Port() (uint16, uint8) { return binary.BigEndian.Uint16(k[:2]), k[2] }

// IfIndex returns the ifIndex of an interface key.
func (k Key) IfIndex() uint32 { return binary.BigEndian.Uint32(k[16:20]) }

// App returns the application name of an app key.
func (k Key) App() string {
	n := 0
	for n < len(k) && k[n] != 0 {
		n++
	}
	return string(k[:n])
}

// Format renders a key of dimension d as the API shows it.
func (d Dim) Format(k Key) string {
	switch d {
	case DimApp, DimAppGroup:
		return k.App()
	case DimProto:
		return strconv.Itoa(int(k[0]))
	case DimSrcIP, DimDstIP, DimIP, DimExporter, DimPeer:
		return k.Addr().String()
	case DimSrcPort, DimDstPort, DimPort:
		p, proto := k.Port()
		if k.IsPortRange() {
			return strconv.Itoa(DynamicPorts) + "-65535/" + ProtoName(proto)
		}
		return strconv.Itoa(int(p)) + "/" + ProtoName(proto)
	case DimInIf, DimOutIf:
		return k.Addr().String() + ":" + strconv.FormatUint(uint64(k.IfIndex()), 10)
	case DimSrcCountry, DimDstCountry, DimCountry:
		if c, ok := k.special(d); ok {
			n, _ := SpecialName(c)
			return n
		}
		if k[0] == 0 {
			return "unknown"
		}
		return string(k[:2])
	case DimSrcAS, DimDstAS, DimAS:
		if c, ok := k.special(d); ok {
			n, _ := SpecialName(c)
			return n
		}
		return strconv.FormatUint(uint64(k.AS()), 10)
	}
	return fmt.Sprintf("%x", k[:])
}

// ParseKey is the inverse of Format.
func (d Dim) ParseKey(s string) (Key, error) {
	switch d {
	case DimApp, DimAppGroup:
		if s == "" || len(s) > MaxAppName {
			return Key{}, fmt.Errorf("application name must be 1 to %d bytes", MaxAppName)
		}
		return AppKey(s), nil
	case DimProto:
		p, err := ParseProto(s)
		return ProtoKey(p), err
	case DimSrcIP, DimDstIP, DimIP, DimExporter, DimPeer:
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Key{}, fmt.Errorf("not an IP address: %q", s)
		}
		return AddrKey(flow.AddrFrom(a)), nil
	case DimSrcPort, DimDstPort, DimPort:
		ps, protos, ok := strings.Cut(s, "/")
		if !ok {
			return Key{}, fmt.Errorf("port key is PORT/PROTO, e.g. 443/tcp: %q", s)
		}
		if ps == strconv.Itoa(DynamicPorts)+"-65535" {
			proto, err := ParseProto(protos)
			return PortRangeKey(proto), err
		}
		p, err := strconv.ParseUint(ps, 10, 16)
		if err != nil {
			return Key{}, fmt.Errorf("bad port in %q", s)
		}
		proto, err := ParseProto(protos)
		return PortKey(uint16(p), proto), err
	case DimInIf, DimOutIf:
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return Key{}, fmt.Errorf("interface key is EXPORTER:IFINDEX: %q", s)
		}
		a, err := netip.ParseAddr(strings.Trim(s[:i], "[]"))
		if err != nil {
			return Key{}, fmt.Errorf("bad exporter address in %q", s)
		}
		idx, err := strconv.ParseUint(s[i+1:], 10, 32)
		if err != nil {
			return Key{}, fmt.Errorf("bad ifIndex in %q", s)
		}
		return IfKey(flow.AddrFrom(a), uint32(idx)), nil
	case DimSrcCountry, DimDstCountry, DimCountry:
		if s == "unknown" {
			return Key{}, nil
		}
		if c, ok := specialCode(s); ok {
			return CountryKey(c), nil
		}
		if len(s) != 2 || !isUpper(s[0]) || !isUpper(s[1]) {
			return Key{}, fmt.Errorf("country is a two-letter code such as KR, unknown, or a special range (private, cgnat, documentation, loopback, link-local, multicast, reserved): %q", s)
		}
		return CountryKey([2]byte{s[0], s[1]}), nil
	case DimSrcAS, DimDstAS, DimAS:
		if c, ok := specialCode(s); ok {
			return SpecialASKey(c), nil
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(s), "AS"), 10, 32)
		if err != nil {
			return Key{}, fmt.Errorf("AS is a number such as 4766 or AS4766: %q", s)
		}
		return ASKey(uint32(n)), nil
	}
	return Key{}, fmt.Errorf("unknown dimension %d", d)
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

var protoNames = map[uint8]string{1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp"}

// ProtoName returns the usual name of an IP protocol, or its number.
func ProtoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

// ParseProto accepts a protocol number or name.
func ParseProto(s string) (uint8, error) {
	if n, err := strconv.ParseUint(s, 10, 8); err == nil {
		return uint8(n), nil
	}
	for p, n := range protoNames {
		if strings.EqualFold(n, s) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown protocol %q (a number 0-255 or a name such as tcp, udp, icmp)", s)
}
