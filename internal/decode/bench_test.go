package decode

import (
	"fmt"
	"testing"
)

// benchmarkDecode decodes p repeatedly (after warm-up datagrams, e.g.
// templates) and reports ns per flow.
func benchmarkDecode(b *testing.B, warmUp [][]byte, p []byte) {
	d := newTestDecoder(b, DefaultConfiguration())
	for _, w := range warmUp {
		if _, err := d.Decode(exporterA, w, testReceived, nil); err != nil {
			b.Fatal(err)
		}
	}
	out, err := d.Decode(exporterA, p, testReceived, nil)
	if err != nil || len(out) == 0 {
		b.Fatalf("decode: %d flows, %v", len(out), err)
	}
	flows := len(out)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out, _ = d.Decode(exporterA, p, testReceived, out[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*flows), "ns/flow")
}

func BenchmarkDecodeV5(b *testing.B) {
	records := make([]v5Record, 30)
	for i := range records {
		records[i] = v5Record{src: "10.0.0.1", dst: fmt.Sprintf("10.0.1.%d", i), packets: 10, bytes: 1500,
			first: 1000, last: 2000, srcPort: 443, dstPort: uint16(30000 + i), proto: 6}
	}
	benchmarkDecode(b, nil, v5Datagram(5000, 1_700_000_000, 0, 0, 0, 100, records...))
}

func BenchmarkDecodeV9(b *testing.B) {
	var records [][]byte
	for i := range 30 {
		records = append(records, v9Record("10.0.0.1", fmt.Sprintf("10.0.1.%d", i), 1500, 10))
	}
	template := v9(v9TemplateSet(templateRecord(256, v9Fields...)))
	benchmarkDecode(b, [][]byte{template}, v9(set(256, records...)))
}

func BenchmarkDecodeIPFIX(b *testing.B) {
	fields := []field{
		{id: fieldIPv6SrcAddr, length: 16}, {id: fieldIPv6DstAddr, length: 16},
		{id: fieldOctetTotalCount, length: 8}, {id: fieldPacketTotalCount, length: 8},
		{id: fieldProtocol, length: 1}, {id: fieldTCPFlags, length: 2},
		{id: fieldL4SrcPort, length: 2}, {id: fieldL4DstPort, length: 2},
		{id: fieldInputSNMP, length: 4}, {id: fieldOutputSNMP, length: 4},
		{id: fieldFlowStartMillis, length: 8}, {id: fieldFlowEndMillis, length: 8},
		{id: fieldSelectorID, length: 8},
	}
	var records [][]byte
	for i := range 20 {
		records = append(records, cat(ip("2001:db8::1"), ip(fmt.Sprintf("2001:db8::1:%x", i)), u64(5000), u64(5),
			u8(6), u16(0x12), u16(443), u16(uint16(50000+i)), u32(10), u32(20),
			u64(1_700_000_000_000), u64(1_700_000_050_000), u64(1)))
	}
	options := ipfixDatagram(1_700_000_100, 9,
		ipfixOptionsTemplateSet(500, []field{{id: fieldSelectorID, length: 8}},
			[]field{{id: fieldSamplingPktInterval, length: 4}, {id: fieldSamplingPktSpace, length: 4}}),
		set(500, cat(u64(1), u32(1), u32(999))),
		ipfixTemplateSet(templateRecord(400, fields...)))
	benchmarkDecode(b, [][]byte{options}, ipfixDatagram(1_700_000_100, 9, set(400, records...)))
}

func BenchmarkDecodeSFlow(b *testing.B) {
	var samples [][]byte
	for i := range 8 {
		tcp := ipv4Packet(ipProtoTCP, "10.0.0.1", fmt.Sprintf("10.0.1.%d", i), tcpHeader(33000, 443, 0x18))
		header := append(ethernet(etherTypeIPv4, []uint16{100}, tcp), make([]byte, 64)...) // 128-byte header, as usual
		samples = append(samples, sfFlowSample(1000, 5, 6, sflowRawHeaderRecord(1514, header),
			xdrOpaque(1001, u32(100), u32(0), u32(200), u32(0)))) // + extended switch record, skipped
	}
	benchmarkDecode(b, nil, sflowDatagram("198.51.100.1", 0, samples...))
}
