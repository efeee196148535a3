package apps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"github.com/tmsd/tmsd/internal/topn"
)

// Rule names the traffic of some addresses and/or ports, ahead of the port table.
// Config syntax (ParseRule): NAME = CIDR[,CIDR…] [PROTO/PORT[,PROTO/PORT…]].
//
// A flow matches when one endpoint (source or destination) has an address in one of
// Prefixes AND that same endpoint's port is in one of Ports: address and port name
// the same server. With no Ports the address alone matches; with no Prefixes the
// port alone (either endpoint). Classify takes the first matching rule in order.
type Rule struct {
	Name     string // 1 to topn.MaxAppName bytes of [a-z0-9._-], case-insensitive, reported lower-case
	Prefixes []netip.Prefix
	Ports    []PortRange
}

// PortRange is Low..High inclusive for IP protocol Proto. Proto 0 means any protocol
// that carries ports (tcp, udp, sctp, dccp, udplite): ICMP's type/code, which NetFlow
// stores in the destination port, must not match a bare port rule.
type PortRange struct {
	Proto     uint8
	Low, High uint16
}

const ruleSyntax = "NAME = CIDR[,CIDR…] [PROTO/PORT[,PROTO/PORT…]]"

// ParseRule parses one config rule, e.g.
//
//	erp-db = 10.1.2.0/24 tcp/5432
//	backup = 10.9.0.0/16, 2001:db8:9::/48
//	voip   = udp/5060,udp/10000-20000
//
// CIDRs and ports are separated by commas and/or spaces. A bare address is a host
// prefix; host bits after the prefix length are cleared (10.1.2.3/24 = 10.1.2.0/24).
// PROTO is tcp, udp, sctp or a protocol number (0 = any); a bare PORT means any.
func ParseRule(line string) (Rule, error) {
	lhs, rhs, ok := strings.Cut(line, "=")
	if !ok {
		return Rule{}, fmt.Errorf("app rule %q: missing \"=\"; want %s", line, ruleSyntax)
	}
	r := Rule{Name: strings.TrimSpace(lhs)}
	if err := checkName(r.Name); err != nil {
		return Rule{}, fmt.Errorf("app rule %q: %w", line, err)
	}
	for _, item := range strings.FieldsFunc(rhs, func(c rune) bool { return c == ',' || unicode.IsSpace(c) }) {
		// Addresses always contain '.' or ':', port specs never do.
		if strings.ContainsAny(item, ".:") {
			p, err := parsePrefix(item)
			if err != nil {
				return Rule{}, fmt.Errorf("app rule %q: %w", line, err)
			}
			r.Prefixes = append(r.Prefixes, p)
			continue
		}
		pr, err := parsePorts(item)
		if err != nil {
			return Rule{}, fmt.Errorf("app rule %q: %w", line, err)
		}
		r.Ports = append(r.Ports, pr)
	}
	if len(r.Prefixes) == 0 && len(r.Ports) == 0 {
		return Rule{}, fmt.Errorf("app rule %q: no CIDR and no PROTO/PORT after \"=\"; want %s", line, ruleSyntax)
	}
	return r, nil
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

// compiled is a Rule in hot-path form: prefixes as masked 128-bit values over the
// IPv4-mapped 16-byte address form flow.Addr uses, and the name's precomputed key.
type compiled struct {
	key      topn.Key
	prefixes []prefix128
	ports    []PortRange
}

type prefix128 struct{ hi, lo, mhi, mlo uint64 }

func (p *prefix128) contains(hi, lo uint64) bool {
	return hi&p.mhi == p.hi && lo&p.mlo == p.lo
}

func compile(r Rule) (compiled, error) {
	if err := checkName(r.Name); err != nil {
		return compiled{}, err
	}
	if len(r.Prefixes) == 0 && len(r.Ports) == 0 {
		return compiled{}, errors.New("no CIDR and no port")
	}
	c := compiled{key: topn.AppKey(strings.ToLower(r.Name)), ports: r.Ports}
	for _, p := range r.Prefixes {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return compiled{}, fmt.Errorf("bad CIDR %q", p)
		}
		p = p.Masked()
		a, bits := p.Addr().As16(), p.Bits()
		if p.Addr().Is4() {
			bits += 96 // As16 maps IPv4 into ::ffff:0:0/96, as flow.Addr stores it
		}
		c.prefixes = append(c.prefixes, prefix128{
			hi:  binary.BigEndian.Uint64(a[:8]),
			lo:  binary.BigEndian.Uint64(a[8:]),
			mhi: ^(^uint64(0) >> min(bits, 64)),
			mlo: ^(^uint64(0) >> max(bits-64, 0)),
		})
	}
	for _, pr := range r.Ports {
		if pr.Low > pr.High {
			return compiled{}, fmt.Errorf("bad port range %d-%d", pr.Low, pr.High)
		}
	}
	return c, nil
}

func (c *compiled) addr(hi, lo uint64) bool {
	for i := range c.prefixes {
		if c.prefixes[i].contains(hi, lo) {
			return true
		}
	}
	return false
}

func (c *compiled) port(proto uint8, port uint16) bool {
	for _, pr := range c.ports {
		if (pr.Proto == proto || pr.Proto == 0 && hasPorts(proto)) && pr.Low <= port && port <= pr.High {
			return true
		}
	}
	return false
}

// match applies Rule's matching to one flow, each endpoint given as address
// halves and port.
func (c *compiled) match(proto uint8, sh, sl uint64, sp uint16, dh, dl uint64, dp uint16) bool {
	switch {
	case len(c.prefixes) == 0:
		return c.port(proto, sp) || c.port(proto, dp)
	case len(c.ports) == 0:
		return c.addr(sh, sl) || c.addr(dh, dl)
	}
	return c.addr(sh, sl) && c.port(proto, sp) || c.addr(dh, dl) && c.port(proto, dp)
}
