package kafka

import (
	"bytes"
	"net/netip"
	"testing"

	flowpb "github.com/netsampler/goflow2/v2/pb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/tmsd/tmsd/internal/flow"
)

func addr(s string) flow.Addr { return flow.AddrFrom(netip.MustParseAddr(s)) }

// records covers each export protocol, both address families, a sampled
// record and one whose counters the rate does not divide.
func records() []flow.Record {
	return []flow.Record{
		{Exporter: addr("192.0.2.1"), SrcAddr: addr("10.0.0.1"), DstAddr: addr("203.0.113.7"),
			Bytes: 150000, Packets: 200, SamplingRate: 100, Start: 1763840820000, End: 1763840850000, Received: 1763840851123,
			InIf: 3, OutIf: 48, ObsDomain: 7, SrcPort: 51234, DstPort: 443, Proto: 6, TCPFlags: 0x1b, TOS: 0x28,
			Export: flow.ProtoNetFlowV9, SrcAS: 64500, DstAS: 4766},
		{Exporter: addr("2001:db8::1"), SrcAddr: addr("2001:db8:1::5"), DstAddr: addr("2001:4860:4860::8888"),
			Bytes: 1500, Packets: 1, SamplingRate: 1, Received: 1763840851000, InIf: 70000, OutIf: 2,
			SrcPort: 53000, DstPort: 53, Proto: 17, Export: flow.ProtoIPFIX},
		{Exporter: addr("192.0.2.2"), SrcAddr: addr("198.51.100.9"), DstAddr: addr("10.1.1.1"),
			Bytes: 40, Packets: 1, SamplingRate: 1, Start: 1763840700000, End: 1763840700000, Received: 1763840760000,
			Proto: 1, Export: flow.ProtoNetFlowV5},
		// 1,001 bytes at 1 in 10: not a multiple, so it goes as 1,001 at 1 in 1.
		{Exporter: addr("192.0.2.3"), SrcAddr: addr("10.0.0.2"), DstAddr: addr("10.0.0.3"),
			Bytes: 1001, Packets: 10, SamplingRate: 10, Received: 1763840760000, Proto: 6, Export: flow.ProtoSFlowV5},
	}
}

// roundTripped is records() as decoded: the one whose counters its rate does
// not divide comes back unsampled, with the same totals.
func roundTripped() []flow.Record {
	recs := records()
	recs[3].SamplingRate = 1
	return recs
}

// TestEncodeReadByGoflow2: goflow2's generated type reads what tmsd writes,
// with the counters as goflow2 keeps them (before sampling).
func TestEncodeReadByGoflow2(t *testing.T) {
	var b []byte
	for _, r := range records() {
		b = AppendFlow(b, &r)
	}
	rd := bytes.NewReader(b)
	var got []*flowpb.FlowMessage
	for rd.Len() > 0 {
		m := &flowpb.FlowMessage{}
		require.NoError(t, protodelim.UnmarshalFrom(rd, m))
		got = append(got, m)
	}
	require.Len(t, got, 4)
	m := got[0]
	require.Equal(t, flowpb.FlowMessage_NETFLOW_V9, m.Type)
	require.Equal(t, uint64(1500), m.Bytes)
	require.Equal(t, uint64(2), m.Packets)
	require.Equal(t, uint64(100), m.SamplingRate)
	require.Equal(t, []byte{192, 0, 2, 1}, m.SamplerAddress)
	require.Equal(t, []byte{10, 0, 0, 1}, m.SrcAddr)
	require.Equal(t, []byte{203, 0, 113, 7}, m.DstAddr)
	require.Equal(t, uint32(0x0800), m.Etype)
	require.Equal(t, uint64(1763840851123_000000), m.TimeReceivedNs)
	require.Equal(t, uint64(1763840820000_000000), m.TimeFlowStartNs)
	require.Equal(t, uint64(1763840850000_000000), m.TimeFlowEndNs)
	require.Equal(t, []uint32{3, 48, 6, 51234, 443, 0x1b, 0x28, 7, 64500, 4766},
		[]uint32{m.InIf, m.OutIf, m.Proto, m.SrcPort, m.DstPort, m.TcpFlags, m.IpTos, m.ObservationDomainId, m.SrcAs, m.DstAs})
	require.Equal(t, flowpb.FlowMessage_IPFIX, got[1].Type)
	require.Equal(t, uint32(0x86dd), got[1].Etype)
	require.Len(t, got[1].SrcAddr, 16)
	require.Equal(t, uint32(70000), got[1].InIf)
	require.Equal(t, flowpb.FlowMessage_NETFLOW_V5, got[2].Type)
	require.Equal(t, flowpb.FlowMessage_SFLOW_5, got[3].Type)
	require.Equal(t, []uint64{1001, 10, 1}, []uint64{got[3].Bytes, got[3].Packets, got[3].SamplingRate})
}

// TestDecodeGoflow2: tmsd reads what goflow2's type writes (as goflow2's
// Kafka transport sends it), and its own encoding back to the same records.
func TestDecodeGoflow2(t *testing.T) {
	want := roundTripped()
	for i, r := range records() {
		// tmsd's own encoding round-trips.
		got, err := DecodeFlows(AppendFlow(nil, &r), nil)
		require.NoError(t, err)
		require.Equal(t, want[i:i+1], got)
	}

	// goflow2's, with fields tmsd does not keep, and a rate of 0 (none exported).
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_IPFIX, TimeReceivedNs: 1763840851000_000000, SequenceNum: 9,
		SamplingRate: 0, SamplerAddress: netip.MustParseAddr("::ffff:192.0.2.9").AsSlice(),
		Bytes: 700, Packets: 3, SrcAddr: []byte{10, 0, 0, 1}, DstAddr: []byte{10, 0, 0, 2}, Etype: 0x800, Proto: 17,
		SrcPort: 5000, DstPort: 4789, InIf: 1, OutIf: 2, SrcMac: 0xaabbccddeeff, AsPath: []uint32{1, 2, 3},
		BgpNextHop: []byte{1, 2, 3, 4}, MplsLabel: []uint32{16}, LayerStack: []flowpb.FlowMessage_LayerStack{flowpb.FlowMessage_IPv4}}
	var buf bytes.Buffer
	_, err := protodelim.MarshalTo(&buf, m)
	require.NoError(t, err)
	m.SamplingRate = 4
	_, err = protodelim.MarshalTo(&buf, m)
	require.NoError(t, err)
	got, err := DecodeFlows(buf.Bytes(), nil)
	require.NoError(t, err)
	g := flow.Record{Exporter: addr("192.0.2.9"), SrcAddr: addr("10.0.0.1"), DstAddr: addr("10.0.0.2"),
		Bytes: 700, Packets: 3, SamplingRate: 1, Received: 1763840851000, InIf: 1, OutIf: 2,
		SrcPort: 5000, DstPort: 4789, Proto: 17, Export: flow.ProtoIPFIX}
	require.Equal(t, g, got[0])
	g.Bytes, g.Packets, g.SamplingRate = 2800, 12, 4
	require.Equal(t, g, got[1])
}

func TestDecodeMalformed(t *testing.T) {
	good := AppendFlow(nil, &records()[0])
	body, err := proto.Marshal(&flowpb.FlowMessage{SrcAddr: []byte{1, 2, 3}})
	require.NoError(t, err)
	threeByte := append([]byte{byte(len(body))}, body...)
	f := func(name string, v []byte, kept int) {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeFlows(v, nil)
			require.ErrorIs(t, err, ErrMalformed)
			require.Len(t, got, kept, "the flows before the fault are kept")
		})
	}
	f("truncated", good[:len(good)-3], 0)
	f("length past the end", append(append([]byte{}, good...), 0x7f, 1), 1)
	f("three-byte address", append(append([]byte{}, good...), threeByte...), 1)
	f("bad tag", []byte{2, 0xff, 0xff}, 0)
}

func TestCodecAllocations(t *testing.T) {
	recs := records()
	b := make([]byte, 0, 4096)
	out := make([]flow.Record, 0, 16)
	allocs := testing.AllocsPerRun(100, func() {
		b = b[:0]
		for i := range recs {
			b = AppendFlow(b, &recs[i])
		}
		out, _ = DecodeFlows(b, out[:0])
	})
	require.Zero(t, allocs)
	require.Equal(t, roundTripped(), out)
}

func BenchmarkAppendFlow(b *testing.B) {
	recs := records()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendFlow(buf[:0], &recs[i%len(recs)])
	}
}

func BenchmarkDecodeFlows(b *testing.B) {
	recs := records()
	var buf []byte
	for i := range recs {
		buf = AppendFlow(buf, &recs[i])
	}
	out := make([]flow.Record, 0, len(recs))
	b.ReportAllocs()
	for b.Loop() {
		out, _ = DecodeFlows(buf, out[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/flow")
}
