package pcapsrc

import (
	"encoding/binary"

	"github.com/tmsd/tmsd/internal/flow"
)

// A capture may hold anything besides flow export: a raw packet trace (the
// input of an exporter, not its output), or a collector host's DNS, syslog and
// SNMP beside its NetFlow. Handing such datagrams to the decoder makes each
// source a phantom exporter with only errors, so `tmsd import` passes on only
// what Selector.Export recognises and counts the rest as not flow export.

// WellKnownPorts are the UDP ports collectors listen on by convention:
// NetFlow 2055 and 2056 (Cisco), 2100 (pmacct's nfacctd), 9995 and 9996
// (nfdump, ntopng), IPFIX 4739 (IANA), sFlow 6343 (IANA).
var WellKnownPorts = []uint16{2055, 2056, 2100, 4739, 6343, 9995, 9996}

// Selector decides which captured datagrams are flow export. A datagram to a
// flow port (WellKnownPorts and the ports given to NewSelector: the collector's
// configured listen ports) is export when its version field says so, so that a
// malformed datagram of a real exporter reaches the decoder and is counted
// against that exporter, as it would be live. A datagram to any other port is
// export only when its whole framing is consistent (see Sniff): exporters are
// often pointed at ports of their own (the testdata captures use 40105–40216),
// and a random payload passes that check with a negligible probability.
type Selector struct {
	ports [65536 / 64]uint64 // bit set of flow ports
}

// NewSelector returns a selector knowing WellKnownPorts and ports (0 is ignored).
func NewSelector(ports ...uint16) *Selector {
	s := &Selector{}
	for _, p := range append(ports, WellKnownPorts...) {
		if p != 0 {
			s.ports[p/64] |= 1 << (p % 64)
		}
	}
	return s
}

// FlowPort reports whether port is a flow port of the selector.
func (s *Selector) FlowPort(port uint16) bool { return s.ports[port/64]&(1<<(port%64)) != 0 }

// Export returns the export protocol of a datagram, or flow.ProtoUnknown when
// it is not flow export.
func (s *Selector) Export(d Datagram) flow.Protocol {
	if s.FlowPort(d.Dst.Port()) {
		return Version(d.Payload)
	}
	return Sniff(d.Payload)
}

// Version returns the export protocol a payload's version field names: NetFlow
// v5, v9 and IPFIX start with a 16-bit version (5, 9, 10), sFlow v5 with a
// 32-bit one (5). Nothing else is checked.
func Version(b []byte) flow.Protocol {
	if len(b) >= 4 && binary.BigEndian.Uint32(b) == 5 {
		return flow.ProtoSFlowV5
	}
	if len(b) < 2 {
		return flow.ProtoUnknown
	}
	switch binary.BigEndian.Uint16(b) {
	case 5:
		return flow.ProtoNetFlowV5
	case 9:
		return flow.ProtoNetFlowV9
	case 10:
		return flow.ProtoIPFIX
	}
	return flow.ProtoUnknown
}

// Sniff returns the export protocol of a payload whose header and framing are
// consistent end to end, flow.ProtoUnknown otherwise:
//
//   - NetFlow v5: 1 to 30 records of 48 bytes after the 24-byte header, exactly
//     the payload (trailing zero padding allowed), nanoseconds below 10⁹;
//   - NetFlow v9: flowsets of ID 0, 1 or ≥ 256, each at least 4 bytes long,
//     that tile the payload after the 20-byte header (up to 3 bytes of padding);
//   - IPFIX: the header's length is the payload's, and sets of ID 2, 3 or
//     ≥ 256 tile it;
//   - sFlow v5: an IPv4 or IPv6 agent address, and as many samples as the
//     header says, each of a 4-byte aligned length, that tile the payload.
func Sniff(b []byte) flow.Protocol {
	switch p := Version(b); p {
	case flow.ProtoNetFlowV5:
		if netflowV5(b) {
			return p
		}
	case flow.ProtoNetFlowV9:
		if len(b) >= 20 && sets(b[20:], 0, 1, 3) {
			return p
		}
	case flow.ProtoIPFIX:
		if len(b) >= 16 && int(binary.BigEndian.Uint16(b[2:])) == len(b) && sets(b[16:], 2, 3, 0) {
			return p
		}
	case flow.ProtoSFlowV5:
		if sflowV5(b) {
			return p
		}
	}
	return flow.ProtoUnknown
}

const (
	v5Header = 24
	v5Record = 48
	v5Max    = 30 // records per datagram (Cisco's maximum; softflowd's too)
)

func netflowV5(b []byte) bool {
	if len(b) < v5Header {
		return false
	}
	count := int(binary.BigEndian.Uint16(b[2:]))
	want := v5Header + count*v5Record
	if count < 1 || count > v5Max || len(b) < want || binary.BigEndian.Uint32(b[12:]) >= 1e9 {
		return false
	}
	return zero(b[want:])
}

// sets reports whether b is a sequence of (id, length) sets, each id one of
// lo or hi or at least 256, each length at least 4, that covers b up to at
// most pad bytes of zeros.
func sets(b []byte, lo, hi uint16, pad int) bool {
	n := 0
	for len(b) >= 4 {
		id, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if (id != lo && id != hi && id < 256) || l < 4 || l > len(b) {
			return false
		}
		b = b[l:]
		n++
	}
	return n > 0 && len(b) <= pad && zero(b)
}

func sflowV5(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	var header int
	switch binary.BigEndian.Uint32(b[4:]) {
	case 1:
		header = 8 + 4 + 16
	case 2:
		header = 8 + 16 + 16
	default:
		return false
	}
	if len(b) < header {
		return false
	}
	n := binary.BigEndian.Uint32(b[header-4:])
	b = b[header:]
	if n == 0 || uint64(n) > uint64(len(b)/8) {
		return false
	}
	for range n {
		if len(b) < 8 {
			return false
		}
		l := binary.BigEndian.Uint32(b[4:])
		if l%4 != 0 || uint64(l) > uint64(len(b)-8) {
			return false
		}
		b = b[8+l:]
	}
	return len(b) == 0
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
