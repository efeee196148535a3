package decode

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

// The captures of testdata/pcaps carry ToS 0 only, so the differential test
// compares TOS on them as zeros: here every decoder gets a ToS it must read,
// checked against the value meant and against goflow2's reading of it.
func TestTOS(t *testing.T) {
	const (
		ef   = 46 << 2 // 0xb8
		af11 = 10 << 2 // 0x28
		cs6  = 48 << 2 // 0xc0
	)
	f := func(name string, payload []byte, want uint8) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			d := newTestDecoder(t, noHold())
			got, err := d.Decode(exporterA, payload, testReceived, nil)
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, want, got[0].TOS)
			ref, err := newGoflow2Reference().decode(exporterA, payload)
			require.NoError(t, err)
			require.Equal(t, ref, []gfFlow{gfFlowOf(&got[0])}, "goflow2 expected, tmsd actual")
			// The record is otherwise what it is without the ToS.
			require.Equal(t, uint8(6), got[0].Proto)
			require.Equal(t, uint16(443), got[0].DstPort)
		})
	}

	v5 := v5Record{src: "10.0.0.1", dst: "10.0.0.2", packets: 1, bytes: 100, srcPort: 40000, dstPort: 443, proto: 6, tos: ef}
	f("NetFlow v5 tos byte", v5Datagram(1000, 1_700_000_000, 0, 0, 0, 0, v5), ef)

	// v9 and IPFIX: srcTOS (5), ipDiffServCodePoint (195, the DSCP alone),
	// postIpClassOfService (55, the ToS after the observation point: not the flow's).
	base := []field{
		{id: fieldIPv4SrcAddr, length: 4}, {id: fieldIPv4DstAddr, length: 4},
		{id: fieldL4SrcPort, length: 2}, {id: fieldL4DstPort, length: 2},
		{id: fieldProtocol, length: 1}, {id: fieldInBytes, length: 4}, {id: fieldInPkts, length: 4},
	}
	baseValues := cat(ip("10.0.0.1"), ip("10.0.0.2"), u16(40000), u16(443), u8(6), u32(100), u32(1))
	nf := func(ipfix bool, extra []field, values ...[]byte) []byte {
		template := templateRecord(300, append(append([]field(nil), base...), extra...)...)
		data := set(300, baseValues, cat(values...))
		if ipfix {
			return ipfixDatagram(1_700_000_000, 1, ipfixTemplateSet(template), data)
		}
		p := v9(v9TemplateSet(template), data)
		binary.BigEndian.PutUint16(p[2:], 2) // goflow2 reads as many records as the header counts
		return p
	}
	tos := field{id: fieldSrcTOS, length: 1}
	dscp := field{id: fieldIPDiffServCodePoint, length: 1}
	post := field{id: 55, length: 1}
	f("NetFlow v9 srcTOS", nf(false, []field{tos}, u8(af11)), af11)
	f("NetFlow v9 no ToS field", nf(false, nil), 0)
	f("IPFIX srcTOS", nf(true, []field{tos}, u8(af11)), af11)
	f("IPFIX ipDiffServCodePoint alone", nf(true, []field{dscp}, u8(46)), ef)
	f("IPFIX srcTOS wins over ipDiffServCodePoint", nf(true, []field{tos, dscp}, u8(af11), u8(46)), af11)
	f("IPFIX srcTOS wins, after ipDiffServCodePoint", nf(true, []field{dscp, tos}, u8(46), u8(af11)), af11)
	f("IPFIX postIpClassOfService is not the ToS", nf(true, []field{post}, u8(ef)), 0)
	f("IPFIX srcTOS of 2 bytes", nf(true, []field{{id: fieldSrcTOS, length: 2}}, u16(cs6)), cs6)

	// sFlow: the sampled header's IPv4 ToS or IPv6 traffic class; a sampled
	// IPv4 record's tos, a sampled IPv6 record's priority.
	v4 := ipv4Packet(ipProtoTCP, "10.0.0.1", "10.0.0.2", tcpHeader(40000, 443, 0x18))
	v4[1] = ef
	f("sFlow header IPv4", sflowDatagram("198.51.100.1", 0, sfFlowSample(1, 1, 2, sflowRawHeaderRecord(100, ethernet(etherTypeIPv4, nil, v4)))), ef)
	v6 := ipv6Packet(ipProtoTCP, "2001:db8::1", "2001:db8::2", tcpHeader(40000, 443, 0x18))
	binary.BigEndian.PutUint32(v6, 6<<28|af11<<20|0x12345) // version, traffic class, flow label
	f("sFlow header IPv6", sflowDatagram("198.51.100.1", 0, sfFlowSample(1, 1, 2, sflowRawHeaderRecord(100, ethernet(etherTypeIPv6, nil, v6)))), af11)
	sampledV4 := xdrOpaque(sflowSampledIPv4, u32(100), u32(ipProtoTCP), ip("10.0.0.1"), ip("10.0.0.2"), u32(40000), u32(443), u32(0x18), u32(cs6))
	f("sFlow sampled IPv4", sflowDatagram("198.51.100.1", 0, sfFlowSample(1, 1, 2, sampledV4)), cs6)
	sampledV6 := xdrOpaque(sflowSampledIPv6, u32(100), u32(ipProtoTCP), ip("2001:db8::1"), ip("2001:db8::2"), u32(40000), u32(443), u32(0x18), u32(ef))
	f("sFlow sampled IPv6", sflowDatagram("198.51.100.1", 0, sfExpandedFlowSample(1, 1, 2, sampledV6)), ef)
}

// Reading the ToS costs no allocation: a warm decoder decodes into a slice
// with room without allocating, ToS fields included.
func TestTOSNoAllocations(t *testing.T) {
	v4 := ipv4Packet(ipProtoTCP, "10.0.0.1", "10.0.0.2", tcpHeader(40000, 443, 0x18))
	v4[1] = 0xb8
	template := ipfixTemplateSet(templateRecord(300,
		field{id: fieldIPv4SrcAddr, length: 4}, field{id: fieldIPv4DstAddr, length: 4},
		field{id: fieldSrcTOS, length: 1}, field{id: fieldIPDiffServCodePoint, length: 1}))
	for name, payload := range map[string][]byte{
		"v5":    v5Datagram(1000, 1_700_000_000, 0, 0, 0, 0, v5Record{src: "10.0.0.1", dst: "10.0.0.2", tos: 0xb8}),
		"ipfix": ipfixDatagram(1_700_000_000, 1, template, set(300, ip("10.0.0.1"), ip("10.0.0.2"), u8(0xb8), u8(46))),
		"sflow": sflowDatagram("198.51.100.1", 0, sfFlowSample(1, 1, 2, sflowRawHeaderRecord(100, ethernet(etherTypeIPv4, nil, v4)))),
	} {
		d := newTestDecoder(t, DefaultConfiguration())
		src := netip.MustParseAddr("192.0.2.77")
		out := make([]flow.Record, 0, 16)
		out, err := d.Decode(src, payload, testReceived, out[:0])
		require.NoError(t, err, name)
		require.Equal(t, uint8(0xb8), out[0].TOS, name)
		allocs := testing.AllocsPerRun(100, func() { out, _ = d.Decode(src, payload, testReceived, out[:0]) })
		require.Zero(t, allocs, name)
	}
}
