package decode

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

var exporterS = netip.MustParseAddr("192.0.2.9")

func TestSFlowFlowSamples(t *testing.T) {
	received := testReceived.UnixMilli()
	f := func(name string, sample []byte, want flow.Record) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			d := newTestDecoder(t, DefaultConfiguration())
			got, err := d.Decode(exporterS, sflowDatagram("198.51.100.1", 3, sample), testReceived, nil)
			require.NoError(t, err)
			want.Exporter, want.Received, want.ObsDomain, want.Export = addr("192.0.2.9"), received, 3, flow.ProtoSFlowV5
			require.Equal(t, []flow.Record{want}, got)
		})
	}
	tcp := ipv4Packet(ipProtoTCP, "10.0.0.1", "10.0.0.2", tcpHeader(33000, 443, 0x18))
	f("Ethernet, VLAN, IPv4, TCP", sfFlowSample(10, 5, 6, sflowRawHeaderRecord(1514, ethernet(etherTypeIPv4, []uint16{100}, tcp))),
		flow.Record{
			SrcAddr: addr("10.0.0.1"), DstAddr: addr("10.0.0.2"), Bytes: 15140, Packets: 10,
			InIf: 5, OutIf: 6, SamplingRate: 10, SrcPort: 33000, DstPort: 443, Proto: ipProtoTCP, TCPFlags: 0x18,
		})
	f("Q-in-Q, header cut inside TCP", sfFlowSample(1, 5, 6, sflowRawHeaderRecord(1514, ethernet(etherTypeIPv4, []uint16{100, 200}, tcp)[:14+8+20+6])),
		flow.Record{
			SrcAddr: addr("10.0.0.1"), DstAddr: addr("10.0.0.2"), Bytes: 1514, Packets: 1,
			InIf: 5, OutIf: 6, SamplingRate: 1, SrcPort: 33000, DstPort: 443, Proto: ipProtoTCP,
		})
	udp6 := ipv6Packet(ipProtoUDP, "2001:db8::1", "2001:db8::2", udpHeader(5353, 53))
	f("expanded, IPv6, UDP", sfExpandedFlowSample(1000, 7, 8, sflowRawHeaderRecord(90, ethernet(etherTypeIPv6, nil, udp6))),
		flow.Record{
			SrcAddr: addr("2001:db8::1"), DstAddr: addr("2001:db8::2"), Bytes: 90_000, Packets: 1000,
			InIf: 7, OutIf: 8, SamplingRate: 1000, SrcPort: 5353, DstPort: 53, Proto: ipProtoUDP,
		})
	hopByHop := ipv6Packet(ipv6HopByHop, "2001:db8::1", "2001:db8::2", cat(u8(ipProtoUDP), u8(0), make([]byte, 6), udpHeader(1, 2)))
	f("IPv6 extension header", sfFlowSample(0, 1, 2, sflowRawHeaderRecord(100, ethernet(etherTypeIPv6, nil, hopByHop))),
		flow.Record{
			SrcAddr: addr("2001:db8::1"), DstAddr: addr("2001:db8::2"), Bytes: 100, Packets: 1,
			InIf: 1, OutIf: 2, SamplingRate: 1, SrcPort: 1, DstPort: 2, Proto: ipProtoUDP,
		})
	icmp := ipv4Packet(1, "10.0.0.1", "10.0.0.2", []byte{8, 0, 0, 0, 0, 1, 0, 1})
	f("ICMP has no ports; discarded packet has no output", sfFlowSample(2, 1, 1<<30|7, sflowRawHeaderRecord(98, ethernet(etherTypeIPv4, nil, icmp))),
		flow.Record{
			SrcAddr: addr("10.0.0.1"), DstAddr: addr("10.0.0.2"), Bytes: 196, Packets: 2,
			InIf: 1, SamplingRate: 2, Proto: 1,
		})
	f("sampled IPv4 record without header", sfFlowSample(4, 1, 2, sflowSampledIPv4Record(400, 17, "10.1.0.1", "10.1.0.2", 10, 20, 0)),
		flow.Record{
			SrcAddr: addr("10.1.0.1"), DstAddr: addr("10.1.0.2"), Bytes: 1600, Packets: 4,
			InIf: 1, OutIf: 2, SamplingRate: 4, SrcPort: 10, DstPort: 20, Proto: 17,
		})
	f("header wins over sampled IPv4", sfFlowSample(1, 1, 2,
		sflowSampledIPv4Record(400, 17, "10.1.0.1", "10.1.0.2", 10, 20, 0),
		sflowRawHeaderRecord(1514, ethernet(etherTypeIPv4, nil, tcp))),
		flow.Record{
			SrcAddr: addr("10.0.0.1"), DstAddr: addr("10.0.0.2"), Bytes: 1514, Packets: 1,
			InIf: 1, OutIf: 2, SamplingRate: 1, SrcPort: 33000, DstPort: 443, Proto: ipProtoTCP, TCPFlags: 0x18,
		})
}

func TestSFlowSkipsNonIP(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	arp := ethernet(0x0806, nil, make([]byte, 28))
	got, err := d.Decode(exporterS, sflowDatagram("198.51.100.1", 0, sfFlowSample(10, 1, 2, sflowRawHeaderRecord(64, arp))), testReceived, nil)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestSFlowCounters(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	c := func(ifIndex uint32, inOctets uint64) InterfaceCounters {
		return InterfaceCounters{
			IfIndex: ifIndex, Speed: 10_000_000_000, Direction: 1, Status: 3,
			InOctets: inOctets, OutOctets: 2000, InPackets: 10, OutPackets: 20,
			InErrors: 1, OutErrors: 2, InDiscards: 3, OutDiscards: 4, Updated: testReceived,
		}
	}
	tcp := ipv4Packet(ipProtoTCP, "10.0.0.1", "10.0.0.2", tcpHeader(33000, 443, 0x18))
	p := sflowDatagram("2001:db8::99", 0,
		sfCounterSample(sflowInterfaceCountersRecord(c(20, 1000)), xdrOpaque(2, make([]byte, 52))), // + ethernet counters, ignored
		sfFlowSample(10, 5, 6, sflowRawHeaderRecord(1514, ethernet(etherTypeIPv4, nil, tcp))),
		sfCounterSample(sflowInterfaceCountersRecord(c(3, 1000))),
	)
	got, err := d.Decode(exporterS, p, testReceived, nil)
	require.NoError(t, err)
	require.Len(t, got, 1)
	// A later sample replaces the interface's counters.
	_, err = d.Decode(exporterS, sflowDatagram("2001:db8::99", 0, sfCounterSample(sflowInterfaceCountersRecord(c(20, 5000)))), testReceived, nil)
	require.NoError(t, err)

	s := statsOf(t, d, "192.0.2.9")
	require.Equal(t, []InterfaceCounters{c(3, 1000), c(20, 5000)}, s.Interfaces)
	require.Equal(t, []string{"sflow-v5"}, s.Protocols)
	require.Equal(t, uint32(10), s.SamplingRate)
	require.Equal(t, "sample", s.SamplingSource)
	require.Equal(t, uint64(1), s.Flows)
}

// pmacct's counter samples name the interface 0x3fffffff, the flow samples'
// "unknown": both come out as ifIndex 0, never interface 1073741823.
func TestSFlowCountersOfTheUnknownInterface(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	p := sflowDatagram("127.0.0.1", 0, sfCounterSample(sflowInterfaceCountersRecord(InterfaceCounters{IfIndex: sflowIfUnknown, Speed: 100_000_000, InOctets: 7})))
	_, err := d.Decode(exporterS, p, testReceived, nil)
	require.NoError(t, err)
	s := statsOf(t, d, "192.0.2.9")
	require.Len(t, s.Interfaces, 1)
	require.Equal(t, uint32(0), s.Interfaces[0].IfIndex)
	require.Equal(t, uint64(7), s.Interfaces[0].InOctets, "the counters are kept")

	// The real capture: sfprobe's three counter samples and every flow sample.
	d = newTestDecoder(t, DefaultConfiguration())
	var recs []flow.Record
	_, err = pcapsrc.Read(filepath.Join("..", "..", "testdata", "pcaps", "pmacct-sflow.pcap"), func(dg pcapsrc.Datagram) error {
		var derr error
		recs, derr = d.Decode(dg.Src.Addr(), dg.Payload, testReceived, recs[:0])
		for _, r := range recs {
			require.Zero(t, r.InIf)
			require.Zero(t, r.OutIf)
		}
		return derr
	})
	require.NoError(t, err)
	list := d.Exporters()
	require.Len(t, list, 1)
	require.Len(t, list[0].Interfaces, 1)
	require.Equal(t, uint32(0), list[0].Interfaces[0].IfIndex, "%+v", list[0].Interfaces[0])
}
