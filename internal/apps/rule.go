package apps

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/tmsd/tmsd/internal/topn"
)

// Rule names the traffic of some addresses, ports, protocols, exporters,
// interfaces or DSCPs, ahead of the port table. Config syntax: see ParseRule.
//
// The positional items, Prefixes and Ports, are one condition on one endpoint: a flow
// meets it when one endpoint (source or destination) has an address in one of
// Prefixes AND that same endpoint's port is in one of Ports: address and port name
// the same server. With no Ports the address alone matches; with no Prefixes the
// port alone (either endpoint). With neither there is no such condition.
//
// The other fields are conditions of their own, each met when the flow's value is one
// of the field's (items of one kind are alternatives); an empty field is no condition.
// A flow matches the rule when it meets all of the rule's conditions, and a rule has
// at least one. Classify takes the first matching rule in order.
type Rule struct {
	Name     string // 1 to topn.MaxAppName bytes of [a-z0-9._-], case-insensitive, reported lower-case
	Prefixes []netip.Prefix
	Ports    []PortRange

	Src, Dst           []netip.Prefix // src=, dst=: the source's (destination's) address
	SrcPorts, DstPorts []PortRange    // srcport=, dstport=: the source's (destination's) port
	Protos             []uint8        // proto=: the IP protocol
	Exporters          []netip.Prefix // exporter=: flow.Record.Exporter (an address is a host prefix)
	InIfs, OutIfs, Ifs []Interface    // in_if=, out_if=, if= (either of the two)
	DSCPs              []uint8        // dscp=: 0-63, flow.Record.TOS>>2
	// Group (group=) is the application's group, e.g. database, web or backup: a
	// name in the syntax of Name, no condition. It belongs to the application, so
	// the rules of one name may not give it different groups ("" gives none).
	Group string
}

// PortRange is Low..High inclusive for IP protocol Proto. Proto 0 means any protocol
// that carries ports (tcp, udp, sctp, dccp, udplite): ICMP's type/code, which NetFlow
// stores in the destination port, must not match a bare port rule.
type PortRange struct {
	Proto     uint8
	Low, High uint16
}

// Interface is an ifIndex of one exporter, or (Exporter the zero Addr) of any.
type Interface struct {
	Exporter netip.Addr
	Index    uint32
}

const ruleSyntax = "NAME = [CIDR[,CIDR…]] [PROTO/PORT[,PROTO/PORT…]] [KEY=VALUE[,VALUE…]…]"

// keywords are the KEY=VALUE items ParseRule knows, in the order Rule.String writes them.
var keywords = []string{"src", "dst", "srcport", "dstport", "proto", "exporter", "in_if", "out_if", "if", "dscp", "group"}

// ParseRule parses one config rule, e.g.
//
//	erp-db = 10.1.2.0/24 tcp/5432
//	backup = 10.9.0.0/16, 2001:db8:9::/48
//	voip   = udp/5060,udp/10000-20000
//	voice  = dscp=ef proto=udp exporter=192.0.2.1 group=voip
//	dr     = src=10.1.0.0/16 dst=10.2.0.0/16 dstport=tcp/873,tcp/22 group=backup
//	transit = in_if=192.0.2.1:3 out_if=192.0.2.1:7
//
// Positional items: CIDRs and ports, separated by commas and/or spaces, which together
// are one endpoint's address and port (see Rule). A bare address is a host prefix; host
// bits after the prefix length are cleared (10.1.2.3/24 = 10.1.2.0/24). PROTO is tcp,
// udp, sctp or a protocol number (0 = any); a bare PORT means any; LOW-HIGH is a range.
//
// KEY=VALUE[,VALUE…] items, each a condition of its own, all of which must hold (the
// values of one key, or of the same key given twice, are alternatives); a key's values
// run to the next space not next to a comma:
//
//	src=CIDR, dst=CIDR          the source's (destination's) address
//	srcport=PORTSPEC, dstport=  the source's (destination's) port, PORTSPEC as the positional ports
//	proto=P                     tcp, udp, sctp, dccp, udplite, a name of a protocol without
//	                            ports (icmp, ipv6-icmp, gre, ipsec-esp, ospf…) or a number 0-255
//	exporter=ADDR               the exporter (a CIDR names several)
//	in_if=N, out_if=N, if=N     the input (output, either) ifIndex, of any exporter, or
//	                            EXPORTER:N of one ([2001:db8::1]:N for IPv6)
//	dscp=D                      0-63, ef, af11…af43, cs0…cs7 or be (0); an export without
//	                            the ToS counts as DSCP 0
//	group=NAME                  the application's group: no condition, a name such as database
func ParseRule(line string) (Rule, error) {
	lhs, rhs, ok := strings.Cut(line, "=")
	if !ok {
		return Rule{}, fmt.Errorf("app rule %q: missing \"=\"; want %s", line, ruleSyntax)
	}
	r := Rule{Name: strings.TrimSpace(lhs)}
	if err := checkName(r.Name); err != nil {
		return Rule{}, fmt.Errorf("app rule %q: %w", line, err)
	}
	for _, tok := range ruleTokens(rhs) {
		key, values := "", 0 // the keyword whose values tok's pieces are, and how many it had
		for piece := range strings.SplitSeq(tok, ",") {
			if k, v, isKey := strings.Cut(piece, "="); isKey {
				if key != "" && values == 0 {
					return Rule{}, fmt.Errorf("app rule %q: %s= has no value", line, key)
				}
				key, values, piece = strings.ToLower(k), 0, v
				if !slices.Contains(keywords, key) {
					return Rule{}, fmt.Errorf("app rule %q: unknown keyword %q in %q; want one of %s",
						line, k, k+"="+v, strings.Join(keywords, ", "))
				}
			}
			if piece == "" {
				continue
			}
			var err error
			switch {
			case key != "":
				values++
				if err = r.parseKeyword(key, piece); err != nil {
					err = fmt.Errorf("%s: %w", key, err)
				}
			case strings.ContainsAny(piece, ".:"): // addresses always contain '.' or ':', port specs never do
				var p netip.Prefix
				if p, err = parsePrefix(piece); err == nil {
					r.Prefixes = append(r.Prefixes, p)
				}
			default:
				var pr PortRange
				if pr, err = parsePorts(piece); err == nil {
					r.Ports = append(r.Ports, pr)
				}
			}
			if err != nil {
				return Rule{}, fmt.Errorf("app rule %q: %w", line, err)
			}
		}
		if key != "" && values == 0 {
			return Rule{}, fmt.Errorf("app rule %q: %s= has no value", line, key)
		}
	}
	if !r.hasCondition() {
		return Rule{}, fmt.Errorf("app rule %q: no CIDR and no PROTO/PORT after \"=\", nor a KEY=VALUE condition; want %s", line, ruleSyntax)
	}
	return r, nil
}

// ruleTokens splits a rule's right-hand side at spaces, except spaces next to a
// comma or an '=', so "10.0.0.0/8, 10.1.0.0/16" and "src = 10.0.0.0/8" are one item.
func ruleTokens(rhs string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(rhs, unicode.IsSpace) {
		if n := len(out); n > 0 && (strings.HasSuffix(out[n-1], ",") || strings.HasSuffix(out[n-1], "=") || f[0] == ',' || f[0] == '=') {
			out[n-1] += f
			continue
		}
		out = append(out, f)
	}
	return out
}

// parseKeyword adds one value of a KEY=VALUE item to r.
func (r *Rule) parseKeyword(key, v string) error {
	switch key {
	case "src", "dst":
		p, err := parsePrefix(v)
		if err != nil {
			return err
		}
		if key == "src" {
			r.Src = append(r.Src, p)
		} else {
			r.Dst = append(r.Dst, p)
		}
	case "srcport", "dstport":
		pr, err := parsePorts(v)
		if err != nil {
			return err
		}
		if key == "srcport" {
			r.SrcPorts = append(r.SrcPorts, pr)
		} else {
			r.DstPorts = append(r.DstPorts, pr)
		}
	case "proto":
		p, ok := parseProto(v)
		if !ok {
			return fmt.Errorf("bad proto %q: want tcp, udp, sctp, dccp, udplite, a protocol without ports (icmp, ipv6-icmp, gre, ipsec-esp, ospf…) or a number 0-255", v)
		}
		r.Protos = append(r.Protos, p)
	case "exporter":
		p, err := parsePrefix(v)
		if err != nil {
			return fmt.Errorf("bad exporter %q: want an address or a CIDR", v)
		}
		r.Exporters = append(r.Exporters, p)
	case "in_if", "out_if", "if":
		i, err := parseInterface(v)
		if err != nil {
			return err
		}
		switch key {
		case "in_if":
			r.InIfs = append(r.InIfs, i)
		case "out_if":
			r.OutIfs = append(r.OutIfs, i)
		default:
			r.Ifs = append(r.Ifs, i)
		}
	case "dscp":
		d, ok := parseDSCP(v)
		if !ok {
			return fmt.Errorf("bad DSCP %q: want 0-63, ef, af11…af43, cs0…cs7 or be", v)
		}
		r.DSCPs = append(r.DSCPs, d)
	case "group":
		if err := checkName(v); err != nil {
			return err
		}
		switch {
		case r.Group == "":
			r.Group = v
		case !strings.EqualFold(r.Group, v):
			return fmt.Errorf("two groups, %q and %q: an application has one", r.Group, v)
		}
	}
	return nil
}

// hasCondition reports whether the rule has a condition (Group is none).
func (r *Rule) hasCondition() bool {
	return len(r.Prefixes)+len(r.Ports)+len(r.Src)+len(r.Dst)+len(r.SrcPorts)+len(r.DstPorts)+
		len(r.Protos)+len(r.Exporters)+len(r.InIfs)+len(r.OutIfs)+len(r.Ifs)+len(r.DSCPs) > 0
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > topn.MaxAppName:
		return fmt.Errorf("name longer than %d bytes", topn.MaxAppName)
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q may only contain letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q", s)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q", s)
	}
	return p.Masked(), nil
}

func parsePorts(s string) (PortRange, error) {
	var pr PortRange
	ports := s
	if ps, rest, ok := strings.Cut(s, "/"); ok {
		switch strings.ToLower(ps) {
		case "tcp":
			pr.Proto = protoTCP
		case "udp":
			pr.Proto = protoUDP
		case "sctp":
			pr.Proto = protoSCTP
		default:
			n, err := strconv.ParseUint(ps, 10, 8)
			if err != nil {
				return pr, fmt.Errorf("bad proto %q in %q: proto must be tcp, udp, sctp or a number", ps, s)
			}
			if n != 0 && !hasPorts(uint8(n)) {
				// Most likely a shortened CIDR such as 10/8.
				return pr, fmt.Errorf("bad proto %q in %q: IP protocol %d has no ports (if it is a CIDR, write it in full, e.g. 10.0.0.0/8)", ps, s, n)
			}
			pr.Proto = uint8(n)
		}
		ports = rest
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	l, err1 := strconv.ParseUint(lo, 10, 16)
	h, err2 := l, error(nil)
	if isRange {
		h, err2 = strconv.ParseUint(hi, 10, 16)
	}
	switch {
	case err1 != nil || err2 != nil:
		return pr, fmt.Errorf("bad port %q: want PROTO/PORT or PROTO/LOW-HIGH, ports 0-65535", s)
	case l > h:
		return pr, fmt.Errorf("bad port %q: range low %d > high %d", s, l, h)
	}
	pr.Low, pr.High = uint16(l), uint16(h)
	return pr, nil
}

// protoNames are the names proto= takes besides numbers: the transports, and the
// protocols without ports by their table names (portless).
var protoNames = func() map[string]uint8 {
	m := map[string]uint8{"tcp": protoTCP, "udp": protoUDP, "sctp": protoSCTP, "dccp": protoDCCP, "udplite": protoUDPLite}
	for p, n := range portless {
		m[n] = p
	}
	return m
}()

func parseProto(s string) (uint8, bool) {
	if p, ok := protoNames[strings.ToLower(s)]; ok {
		return p, true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil
}

// protoName is the name proto= is written with: a protoNames name, else the number.
func protoName(p uint8) string {
	switch p {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoSCTP:
		return "sctp"
	case protoDCCP:
		return "dccp"
	case protoUDPLite:
		return "udplite"
	}
	if n, ok := portless[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

// parseInterface reads IFINDEX or EXPORTER:IFINDEX, as the API's interface keys.
func parseInterface(s string) (Interface, error) {
	var i Interface
	idx := s
	if c := strings.LastIndexByte(s, ':'); c >= 0 {
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s[:c], "["), "]"))
		if err != nil || a.Zone() != "" {
			return i, fmt.Errorf("bad interface %q: bad exporter address; want IFINDEX or EXPORTER:IFINDEX", s)
		}
		i.Exporter, idx = a.Unmap(), s[c+1:]
	}
	n, err := strconv.ParseUint(idx, 10, 32)
	if err != nil {
		return i, fmt.Errorf("bad interface %q: bad ifIndex; want IFINDEX or EXPORTER:IFINDEX", s)
	}
	i.Index = uint32(n)
	return i, nil
}

// dscpNames are the DSCPs by name (RFC 2474 class selectors, RFC 2597 assured
// forwarding, RFC 3246 expedited forwarding).
var dscpNames = func() map[string]uint8 {
	m := map[string]uint8{"ef": 46, "be": 0}
	for c := range uint8(8) {
		m["cs"+strconv.Itoa(int(c))] = c << 3
	}
	for c := uint8(1); c <= 4; c++ {
		for p := uint8(1); p <= 3; p++ {
			m["af"+strconv.Itoa(int(c))+strconv.Itoa(int(p))] = c<<3 | p<<1
		}
	}
	return m
}()

func parseDSCP(s string) (uint8, bool) {
	if d, ok := dscpNames[strings.ToLower(s)]; ok {
		return d, true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil && n < 64
}

// String writes the rule in ParseRule's syntax; ParseRule reads it back to the same
// rule (names of proto= and dscp= come back as what they stand for).
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(r.Name)
	b.WriteString(" =")
	item := func(key string, n int, value func(i int) string) {
		if n == 0 {
			return
		}
		b.WriteByte(' ')
		if key != "" {
			b.WriteString(key + "=")
		}
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(value(i))
		}
	}
	prefixes := func(ps []netip.Prefix) func(int) string {
		return func(i int) string {
			if p := ps[i]; p.IsSingleIP() {
				return p.Addr().String()
			}
			return ps[i].String()
		}
	}
	ports := func(prs []PortRange) func(int) string { return func(i int) string { return prs[i].String() } }
	ifs := func(is []Interface) func(int) string { return func(i int) string { return is[i].String() } }
	item("", len(r.Prefixes), prefixes(r.Prefixes))
	item("", len(r.Ports), ports(r.Ports))
	item("src", len(r.Src), prefixes(r.Src))
	item("dst", len(r.Dst), prefixes(r.Dst))
	item("srcport", len(r.SrcPorts), ports(r.SrcPorts))
	item("dstport", len(r.DstPorts), ports(r.DstPorts))
	item("proto", len(r.Protos), func(i int) string { return protoName(r.Protos[i]) })
	item("exporter", len(r.Exporters), prefixes(r.Exporters))
	item("in_if", len(r.InIfs), ifs(r.InIfs))
	item("out_if", len(r.OutIfs), ifs(r.OutIfs))
	item("if", len(r.Ifs), ifs(r.Ifs))
	item("dscp", len(r.DSCPs), func(i int) string { return strconv.Itoa(int(r.DSCPs[i])) })
	if r.Group != "" {
		item("group", 1, func(int) string { return r.Group })
	}
	return b.String()
}

// String writes the range as ParseRule reads it: PROTO/PORT, PROTO/LOW-HIGH, or
// without PROTO/ for protocol 0.
func (pr PortRange) String() string {
	s := strconv.Itoa(int(pr.Low))
	if pr.High != pr.Low {
		s += "-" + strconv.Itoa(int(pr.High))
	}
	switch pr.Proto {
	case 0:
		return s
	case protoTCP:
		return "tcp/" + s
	case protoUDP:
		return "udp/" + s
	case protoSCTP:
		return "sctp/" + s
	}
	return strconv.Itoa(int(pr.Proto)) + "/" + s
}

// String writes IFINDEX or EXPORTER:IFINDEX ([ADDR]:IFINDEX for IPv6).
func (i Interface) String() string {
	n := strconv.FormatUint(uint64(i.Index), 10)
	switch {
	case !i.Exporter.IsValid():
		return n
	case i.Exporter.Is6():
		return "[" + i.Exporter.String() + "]:" + n
	}
	return i.Exporter.String() + ":" + n
}
