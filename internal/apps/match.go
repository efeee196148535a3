package apps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/tmsd/tmsd/internal/flow"
)

// Hot-path form. Each rule compiles into a compiled, a fixed-size struct whose
// conditions' values are spans of three arrays all rules share, and into its bits
// of the ruleSet's candidate masks (by protocol, DSCP and port). ClassifyID ANDs
// the flow's masks, then tests the rules left, in order, each only on the
// conditions it has: flat slices, no allocation, no map. Prefixes are masked
// 128-bit values over the IPv4-mapped 16-byte address form flow.Addr uses.

// Condition kinds a rule may have, besides protocol and DSCP (see compiled).
const (
	condEndpoint uint16 = 1 << iota // Prefixes and/or Ports
	condSrc
	condDst
	condSrcPort
	condDstPort
	condExporter
	condInIf
	condOutIf
	condIf
)

// compiled is one rule's conditions other than protocol and DSCP, which are
// ruleSet's masks: has says which it has, and spans hold their values.
type compiled struct {
	has uint16
	id  uint16 // the application's id (ClassifyID's value minus one)

	prefixes, ports                         span // the endpoint condition
	src, dst, exporters, srcPorts, dstPorts span
	inIfs, outIfs, ifs                      span
}

// span is [lo, hi) of one of ruleSet's arrays.
type span struct{ lo, hi uint32 }

func (s span) empty() bool { return s.lo == s.hi }

type prefix128 struct{ hi, lo, mhi, mlo uint64 }

func (p *prefix128) contains(hi, lo uint64) bool {
	return hi&p.mhi == p.hi && lo&p.mlo == p.lo
}

// ifMatch is a compiled Interface: the exporter's address halves unless any.
type ifMatch struct {
	hi, lo uint64
	index  uint32
	any    bool
}

// protoSet is a set of IP protocols, one bit each.
type protoSet [4]uint64

func (s *protoSet) add(p uint8)      { s[p>>6] |= 1 << (p & 63) }
func (s *protoSet) has(p uint8) bool { return s[p>>6]>>(p&63)&1 != 0 }
func (s *protoSet) and(o protoSet) {
	s[0], s[1], s[2], s[3] = s[0]&o[0], s[1]&o[1], s[2]&o[2], s[3]&o[3]
}
func (s *protoSet) isEmpty() bool { return s[0]|s[1]|s[2]|s[3] == 0 }
func allProtos() protoSet         { return protoSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)} }
func (s *protoSet) addPorts(pr PortRange) {
	if pr.Proto != 0 {
		s.add(pr.Proto)
		return
	}
	for _, p := range [...]uint8{protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLite} {
		s.add(p)
	}
}

// ruleSet holds the compiled rules and the arrays their spans index.
type ruleSet struct {
	list      []compiled
	prefixes  []prefix128
	ports     []PortRange
	ifs       []ifMatch
	exporters bool // some rule looks at the exporter: ClassifyID then loads its address

	// byProto and byDSCP are, per IP protocol (DSCP), the bit set of the rules that
	// can match it, words uint64s each (bit i%64 of word i/64 is rule i). A flow's
	// candidates are the rules in both its sets, tried in order: the others are
	// never looked at. A rule's protocols are its proto='s narrowed by what its
	// ports allow (tcp/443 only tcp); without dscp= it has every DSCP.
	byProto []uint64
	byDSCP  []uint64
	words   int
	// With port conditions, the ports narrow the candidates too: portClass maps a
	// port to its class (the ports between two consecutive ends of the rules'
	// port ranges), byClass is per class the set of rules having a range with
	// it, and noPorts the rules without port conditions. A flow's candidates
	// are then also in noPorts or in its source's or destination port's class's set.
	portClass []uint16 // 65536 of them; nil without port conditions
	byClass   []uint64
	noPorts   []uint64
	pre       []prefilter // by rule, until index
}

// maxClassWords bounds byClass (512 KiB): past it the ports narrow nothing.
const maxClassWords = 1 << 16

// prefilter is what a rule's bits in byProto and byDSCP say.
type prefilter struct {
	protos protoSet
	dscps  uint64
}

// index builds the candidate masks from the compiled rules.
func (t *ruleSet) index() {
	t.words = (len(t.list) + 63) / 64
	t.byProto = make([]uint64, 256*t.words)
	t.byDSCP = make([]uint64, 64*t.words)
	for i, f := range t.pre {
		w, bit := i/64, uint64(1)<<(i%64)
		for p := range 256 {
			if f.protos.has(uint8(p)) {
				t.byProto[p*t.words+w] |= bit
			}
		}
		for d := range 64 {
			if f.dscps>>d&1 != 0 {
				t.byDSCP[d*t.words+w] |= bit
			}
		}
	}
	t.indexPorts()
	t.pre = nil
}

func (t *ruleSet) indexPorts() {
	// Each class starts at 0 or at a range's Low or High+1.
	starts := []int{0}
	for i := range t.list {
		for _, s := range t.list[i].portSpans() {
			for _, pr := range t.ports[s.lo:s.hi] {
				starts = append(starts, int(pr.Low), int(pr.High)+1)
			}
		}
	}
	slices.Sort(starts)
	starts = slices.Compact(starts)
	if starts[len(starts)-1] == 1<<16 {
		starts = starts[:len(starts)-1]
	}
	classes := len(starts)
	if classes == 1 || classes > 1<<16 || classes*t.words > maxClassWords {
		return // no port conditions, or too many classes to be worth it
	}
	t.portClass = make([]uint16, 1<<16)
	for k, lo := range starts {
		hi := 1 << 16
		if k+1 < classes {
			hi = starts[k+1]
		}
		for p := lo; p < hi; p++ {
			t.portClass[p] = uint16(k)
		}
	}
	t.byClass = make([]uint64, classes*t.words)
	t.noPorts = make([]uint64, t.words)
	for i := range t.list {
		w, bit := i/64, uint64(1)<<(i%64)
		spans := t.list[i].portSpans()
		if len(spans) == 0 {
			t.noPorts[w] |= bit
			continue
		}
		for _, s := range spans {
			for _, pr := range t.ports[s.lo:s.hi] {
				for k := int(t.portClass[pr.Low]); k <= int(t.portClass[pr.High]); k++ {
					t.byClass[k*t.words+w] |= bit
				}
			}
		}
	}
}

// portSpans are the rule's port conditions' ranges.
func (c *compiled) portSpans() []span {
	var out []span
	for _, s := range [...]span{c.ports, c.srcPorts, c.dstPorts} {
		if !s.empty() {
			out = append(out, s)
		}
	}
	return out
}

func halves(a flow.Addr) (hi, lo uint64) {
	return binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
}

func (t *ruleSet) addPrefixes(ps []netip.Prefix) (span, error) {
	s := span{lo: uint32(len(t.prefixes))}
	for _, p := range ps {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return span{}, fmt.Errorf("bad CIDR %q", p)
		}
		p = p.Masked()
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96 // flow.Addr maps IPv4 into ::ffff:0:0/96
		}
		hi, lo := halves(flow.AddrFrom(p.Addr()))
		t.prefixes = append(t.prefixes, prefix128{
			hi: hi, lo: lo,
			mhi: ^(^uint64(0) >> min(bits, 64)),
			mlo: ^(^uint64(0) >> max(bits-64, 0)),
		})
	}
	s.hi = uint32(len(t.prefixes))
	return s, nil
}

func (t *ruleSet) addPorts(prs []PortRange, protos *protoSet) (span, error) {
	s := span{lo: uint32(len(t.ports))}
	var allowed protoSet
	for _, pr := range prs {
		if pr.Low > pr.High {
			return span{}, fmt.Errorf("bad port range %d-%d", pr.Low, pr.High)
		}
		t.ports = append(t.ports, pr)
		allowed.addPorts(pr)
	}
	if len(prs) > 0 {
		protos.and(allowed)
	}
	s.hi = uint32(len(t.ports))
	return s, nil
}

func (t *ruleSet) addInterfaces(is []Interface) span {
	s := span{lo: uint32(len(t.ifs))}
	for _, i := range is {
		m := ifMatch{index: i.Index, any: !i.Exporter.IsValid()}
		if !m.any {
			m.hi, m.lo = halves(flow.AddrFrom(i.Exporter))
			t.exporters = true
		}
		t.ifs = append(t.ifs, m)
	}
	s.hi = uint32(len(t.ifs))
	return s
}

// compile validates r and appends it to t; id is its application's id.
func (t *ruleSet) compile(r *Rule, id uint16) error {
	if err := checkName(r.Name); err != nil {
		return err
	}
	if r.Group != "" {
		if err := checkName(r.Group); err != nil {
			return fmt.Errorf("group: %w", err)
		}
	}
	if !r.hasCondition() {
		return errors.New("no CIDR and no port, nor another condition")
	}
	c := compiled{id: id}
	f := prefilter{protos: allProtos(), dscps: ^uint64(0)}
	var err error
	addP := func(s *span, ps []netip.Prefix, bit uint16, what string) {
		if err == nil && len(ps) > 0 {
			if *s, err = t.addPrefixes(ps); err != nil && what != "" {
				err = fmt.Errorf("%s: %w", what, err)
			}
			c.has |= bit
		}
	}
	addR := func(s *span, prs []PortRange, bit uint16, what string) {
		if err == nil && len(prs) > 0 {
			if *s, err = t.addPorts(prs, &f.protos); err != nil && what != "" {
				err = fmt.Errorf("%s: %w", what, err)
			}
			c.has |= bit
		}
	}
	addP(&c.prefixes, r.Prefixes, condEndpoint, "")
	addR(&c.ports, r.Ports, condEndpoint, "")
	addP(&c.src, r.Src, condSrc, "src")
	addP(&c.dst, r.Dst, condDst, "dst")
	addR(&c.srcPorts, r.SrcPorts, condSrcPort, "srcport")
	addR(&c.dstPorts, r.DstPorts, condDstPort, "dstport")
	addP(&c.exporters, r.Exporters, condExporter, "exporter")
	if err != nil {
		return err
	}
	if len(r.Exporters) > 0 {
		t.exporters = true
	}
	for _, k := range [...]struct {
		s   *span
		is  []Interface
		bit uint16
	}{{&c.inIfs, r.InIfs, condInIf}, {&c.outIfs, r.OutIfs, condOutIf}, {&c.ifs, r.Ifs, condIf}} {
		if len(k.is) > 0 {
			*k.s, c.has = t.addInterfaces(k.is), c.has|k.bit
		}
	}
	if len(r.Protos) > 0 {
		var ps protoSet
		for _, p := range r.Protos {
			ps.add(p)
		}
		f.protos.and(ps)
	}
	if f.protos.isEmpty() {
		return errors.New("no IP protocol is both in proto= and of its ports: the rule never matches")
	}
	if len(r.DSCPs) > 0 {
		f.dscps = 0
		for _, d := range r.DSCPs {
			if d > 63 {
				return fmt.Errorf("dscp: %d is out of 0-63", d)
			}
			f.dscps |= 1 << d
		}
	}
	t.list = append(t.list, c)
	t.pre = append(t.pre, f)
	return nil
}

// view is a flow's fields as the rules compare them.
type view struct {
	sh, sl, dh, dl, eh, el uint64
}

// first returns the index of the first rule r matches, -1 when none does.
func (t *ruleSet) first(r *flow.Record) int {
	var v view
	v.sh, v.sl = halves(r.SrcAddr)
	v.dh, v.dl = halves(r.DstAddr)
	if t.exporters {
		v.eh, v.el = halves(r.Exporter)
	}
	byProto := t.byProto[int(r.Proto)*t.words:][:t.words]
	byDSCP := t.byDSCP[int(r.TOS>>2)*t.words:][:t.words]
	var noPorts, bySrc, byDst []uint64
	if t.portClass != nil {
		noPorts = t.noPorts[:t.words]
		bySrc = t.byClass[int(t.portClass[r.SrcPort])*t.words:][:t.words]
		byDst = t.byClass[int(t.portClass[r.DstPort])*t.words:][:t.words]
	}
	for w, m := range byProto {
		m &= byDSCP[w]
		if noPorts != nil {
			m &= noPorts[w] | bySrc[w] | byDst[w]
		}
		for ; m != 0; m &= m - 1 {
			i := w*64 + bits.TrailingZeros64(m)
			if c := &t.list[i]; c.has == 0 || t.match(c, r, &v) {
				return i
			}
		}
	}
	return -1
}

// match tests c's conditions other than protocol and DSCP (first's masks).
func (t *ruleSet) match(c *compiled, r *flow.Record, v *view) bool {
	h := c.has
	switch {
	case h&condExporter != 0 && !t.addr(c.exporters, v.eh, v.el),
		h&condInIf != 0 && !t.ifIndex(c.inIfs, v, r.InIf),
		h&condOutIf != 0 && !t.ifIndex(c.outIfs, v, r.OutIf),
		h&condIf != 0 && !t.ifIndex2(c.ifs, v, r.InIf, r.OutIf),
		h&condSrc != 0 && !t.addr(c.src, v.sh, v.sl),
		h&condDst != 0 && !t.addr(c.dst, v.dh, v.dl),
		h&condSrcPort != 0 && !t.port(c.srcPorts, r.Proto, r.SrcPort),
		h&condDstPort != 0 && !t.port(c.dstPorts, r.Proto, r.DstPort):
		return false
	case h&condEndpoint == 0:
		return true
	case c.prefixes.empty():
		return t.port(c.ports, r.Proto, r.SrcPort) || t.port(c.ports, r.Proto, r.DstPort)
	case c.ports.empty():
		return t.addr(c.prefixes, v.sh, v.sl) || t.addr(c.prefixes, v.dh, v.dl)
	}
	return t.addr(c.prefixes, v.sh, v.sl) && t.port(c.ports, r.Proto, r.SrcPort) ||
		t.addr(c.prefixes, v.dh, v.dl) && t.port(c.ports, r.Proto, r.DstPort)
}

func (t *ruleSet) addr(s span, hi, lo uint64) bool {
	ps := t.prefixes[s.lo:s.hi]
	for i := range ps {
		if ps[i].contains(hi, lo) {
			return true
		}
	}
	return false
}

func (t *ruleSet) port(s span, proto uint8, port uint16) bool {
	for _, pr := range t.ports[s.lo:s.hi] {
		if (pr.Proto == proto || pr.Proto == 0 && hasPorts(proto)) && pr.Low <= port && port <= pr.High {
			return true
		}
	}
	return false
}

func (t *ruleSet) ifIndex(s span, v *view, index uint32) bool {
	for _, m := range t.ifs[s.lo:s.hi] {
		if m.index == index && (m.any || m.hi == v.eh && m.lo == v.el) {
			return true
		}
	}
	return false
}

// ifIndex2 is ifIndex(in) || ifIndex(out) in one pass.
func (t *ruleSet) ifIndex2(s span, v *view, in, out uint32) bool {
	for _, m := range t.ifs[s.lo:s.hi] {
		if (m.index == in || m.index == out) && (m.any || m.hi == v.eh && m.lo == v.el) {
			return true
		}
	}
	return false
}
