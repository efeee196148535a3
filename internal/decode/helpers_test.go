package decode

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

// Builders of hand-made datagrams. Every multi-byte value is big-endian.

var testReceived = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func u8(v uint8) []byte   { return []byte{v} }
func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func ip(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

func addr(s string) flow.Addr { return flow.AddrFrom(netip.MustParseAddr(s)) }

func newTestDecoder(t testing.TB, cfg Configuration) *Decoder {
	t.Helper()
	d, err := New(cfg)
	require.NoError(t, err)
	return d
}

// noHold is the default configuration without holding data that comes
// before its template: such data is an ErrTemplateUnknown at once.
func noHold() Configuration {
	cfg := DefaultConfiguration()
	cfg.HoldDatagrams = -1
	return cfg
}

// statsOf returns the stats of one exporter.
func statsOf(t testing.TB, d *Decoder, exporter string) ExporterStats {
	t.Helper()
	want := netip.MustParseAddr(exporter)
	for _, s := range d.Exporters() {
		if s.Address == want {
			return s
		}
	}
	t.Fatalf("exporter %s not seen", exporter)
	return ExporterStats{}
}

// --- NetFlow v5

type v5Record struct {
	src, dst              string
	in, out               uint16
	packets, bytes        uint32
	first, last           uint32
	srcPort, dstPort      uint16
	tcpFlags, proto       uint8
	srcAS, dstAS          uint16
	srcMask, dstMask, tos uint8
}

func v5Datagram(sysUptime, unixSecs, unixNsecs uint32, engineType, engineID uint8, sampling uint16, records ...v5Record) []byte {
	b := cat(u16(5), u16(uint16(len(records))), u32(sysUptime), u32(unixSecs), u32(unixNsecs),
		u32(42), u8(engineType), u8(engineID), u16(sampling))
	for _, r := range records {
		b = append(b, cat(ip(r.src), ip(r.dst), ip("0.0.0.0"), u16(r.in), u16(r.out),
			u32(r.packets), u32(r.bytes), u32(r.first), u32(r.last), u16(r.srcPort), u16(r.dstPort),
			u8(0), u8(r.tcpFlags), u8(r.proto), u8(r.tos), u16(r.srcAS), u16(r.dstAS),
			u8(r.srcMask), u8(r.dstMask), u16(0))...)
	}
	return b
}

// --- NetFlow v9 and IPFIX

type field struct {
	id, length uint16
	pen        uint32 // IPFIX enterprise number; 0 for IANA fields
}

func fieldSpecs(fields []field) []byte {
	var b []byte
	for _, f := range fields {
		if f.pen != 0 {
			b = append(b, cat(u16(f.id|0x8000), u16(f.length), u32(f.pen))...)
			continue
		}
		b = append(b, cat(u16(f.id), u16(f.length))...)
	}
	return b
}

// set wraps a set body with its header, padding it to 4 bytes.
func set(id uint16, body ...[]byte) []byte {
	b := cat(body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return cat(u16(id), u16(uint16(len(b)+4)), b)
}

// templateRecord is one template of a (data) template set.
func templateRecord(id uint16, fields ...field) []byte {
	return cat(u16(id), u16(uint16(len(fields))), fieldSpecs(fields))
}

func v9TemplateSet(templates ...[]byte) []byte    { return set(0, templates...) }
func ipfixTemplateSet(templates ...[]byte) []byte { return set(2, templates...) }

func v9OptionsTemplateSet(id uint16, scopes, options []field) []byte {
	return set(1, u16(id), u16(uint16(4*len(scopes))), u16(uint16(4*len(options))), fieldSpecs(scopes), fieldSpecs(options))
}

func ipfixOptionsTemplateSet(id uint16, scopes, options []field) []byte {
	return set(3, u16(id), u16(uint16(len(scopes)+len(options))), u16(uint16(len(scopes))), fieldSpecs(scopes), fieldSpecs(options))
}

func v9Datagram(sysUptime, unixSecs, sourceID uint32, sets ...[]byte) []byte {
	count := 0 // records count is informational only; the decoder ignores it
	return cat(u16(9), u16(uint16(count)), u32(sysUptime), u32(unixSecs), u32(7), u32(sourceID), cat(sets...))
}

func ipfixDatagram(exportTime, domain uint32, sets ...[]byte) []byte {
	body := cat(sets...)
	return cat(u16(10), u16(uint16(16+len(body))), u32(exportTime), u32(7), u32(domain), body)
}

// --- sFlow v5

func sflowDatagram(agent string, subAgent uint32, samples ...[]byte) []byte {
	a := netip.MustParseAddr(agent)
	addrType := uint32(1)
	if a.Is6() {
		addrType = 2
	}
	return cat(u32(5), u32(addrType), a.AsSlice(), u32(subAgent), u32(1), u32(123456), u32(uint32(len(samples))), cat(samples...))
}

// xdrOpaque is a length-prefixed, 4-byte padded structure.
func xdrOpaque(format uint32, body ...[]byte) []byte {
	b := cat(body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return cat(u32(format), u32(uint32(len(b))), b)
}

func sfFlowSample(rate, input, output uint32, records ...[]byte) []byte {
	return xdrOpaque(sflowFlowSample, u32(1), u32(input), u32(rate), u32(1000), u32(0),
		u32(input), u32(output), u32(uint32(len(records))), cat(records...))
}

func sfExpandedFlowSample(rate, input, output uint32, records ...[]byte) []byte {
	return xdrOpaque(sflowExpandedFlowSample, u32(1), u32(0), u32(input), u32(rate), u32(1000), u32(0),
		u32(0), u32(input), u32(0), u32(output), u32(uint32(len(records))), cat(records...))
}

func sflowRawHeaderRecord(frameLength uint32, header []byte) []byte {
	h := cat(header) // copy, then pad
	return xdrOpaque(sflowRawHeader, u32(sflowHeaderEthernet), u32(frameLength), u32(4), u32(uint32(len(h))), h)
}

func sflowSampledIPv4Record(length uint32, proto uint32, src, dst string, srcPort, dstPort, flags uint32) []byte {
	return xdrOpaque(sflowSampledIPv4, u32(length), u32(proto), ip(src), ip(dst), u32(srcPort), u32(dstPort), u32(flags), u32(0))
}

func sfCounterSample(records ...[]byte) []byte {
	return xdrOpaque(sflowCounterSample, u32(2), u32(3), u32(uint32(len(records))), cat(records...))
}

func sflowInterfaceCountersRecord(c InterfaceCounters) []byte {
	return xdrOpaque(sflowGenericInterfaceCounters,
		u32(c.IfIndex), u32(6), u64(c.Speed), u32(c.Direction), u32(c.Status),
		u64(c.InOctets), u32(uint32(c.InPackets)), u32(0), u32(0), u32(c.InDiscards), u32(c.InErrors), u32(0),
		u64(c.OutOctets), u32(uint32(c.OutPackets)), u32(0), u32(0), u32(c.OutDiscards), u32(c.OutErrors), u32(0))
}

func ethernet(etherType uint16, vlans []uint16, payload []byte) []byte {
	b := cat([]byte{0, 1, 2, 3, 4, 5}, []byte{6, 7, 8, 9, 10, 11})
	for _, v := range vlans {
		b = append(b, cat(u16(etherTypeVLAN), u16(v))...)
	}
	return cat(b, u16(etherType), payload)
}

func ipv4Packet(proto uint8, src, dst string, l4 []byte) []byte {
	return cat(u8(0x45), u8(0), u16(uint16(20+len(l4))), u16(1), u16(0x4000), u8(64), u8(proto), u16(0),
		ip(src), ip(dst), l4)
}

func ipv6Packet(next uint8, src, dst string, l4 []byte) []byte {
	return cat(u32(0x60000000), u16(uint16(len(l4))), u8(next), u8(64), ip(src), ip(dst), l4)
}

func tcpHeader(srcPort, dstPort uint16, flags uint8) []byte {
	return cat(u16(srcPort), u16(dstPort), u32(1), u32(0), u8(0x50), u8(flags), u16(1024), u16(0), u16(0))
}

func udpHeader(srcPort, dstPort uint16) []byte {
	return cat(u16(srcPort), u16(dstPort), u16(8), u16(0))
}
