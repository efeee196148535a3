package decode

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

func TestNetFlowV5(t *testing.T) {
	const (
		sysUptime = 100_000
		unixSecs  = 1_700_000_000
		unixNsecs = 500_000_000
		exportMs  = unixSecs*1000 + 500
	)
	f := func(name string, sampling uint16, in v5Record, want flow.Record) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			d := newTestDecoder(t, DefaultConfiguration())
			got, err := d.Decode(netip.MustParseAddr("192.0.2.1"), v5Datagram(sysUptime, unixSecs, unixNsecs, 1, 2, sampling, in), testReceived, nil)
			require.NoError(t, err)
			require.Equal(t, []flow.Record{want}, got)
		})
	}
	base := v5Record{
		src: "10.0.0.1", dst: "10.0.0.2", in: 3, out: 4, packets: 10, bytes: 1500,
		first: 90_000, last: 99_000, srcPort: 1234, dstPort: 443, tcpFlags: 0x1b, proto: 6,
	}
	want := flow.Record{
		Exporter: addr("192.0.2.1"), SrcAddr: addr("10.0.0.1"), DstAddr: addr("10.0.0.2"),
		Bytes: 1500, Packets: 10, Start: exportMs - 10_000, End: exportMs - 1_000,
		Received: testReceived.UnixMilli(), InIf: 3, OutIf: 4, SamplingRate: 1, ObsDomain: 1<<8 | 2,
		SrcPort: 1234, DstPort: 443, Proto: 6, TCPFlags: 0x1b, Export: flow.ProtoNetFlowV5,
	}
	f("unsampled", 0, base, want)

	sampled := want
	sampled.Bytes, sampled.Packets, sampled.SamplingRate = 1500*100, 10*100, 100
	f("sampled, mode bits ignored", 0x4000|100, base, sampled)

	// The flow started before sysUptime wrapped around 2^32 ms.
	wrapped := base
	wrapped.first = 1<<32 - 500_000
	w := want
	w.Start = exportMs - (sysUptime + 500_000)
	f("sysUptime wrapped", 0, wrapped, w)
}

func TestNetFlowV5Stats(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	r := v5Record{src: "10.0.0.1", dst: "10.0.0.2", packets: 1, bytes: 100}
	_, err := d.Decode(netip.MustParseAddr("::ffff:192.0.2.1"), v5Datagram(1000, 1_700_000_000, 0, 0, 0, 10, r, r), testReceived, nil)
	require.NoError(t, err)
	s := statsOf(t, d, "192.0.2.1")
	require.Equal(t, ExporterStats{
		Address: netip.MustParseAddr("192.0.2.1"), Protocols: []string{"netflow-v5"},
		Datagrams: 1, Bytes: 24 + 2*48, Flows: 2, Errors: map[string]uint64{}, SamplingRate: 10, SamplingSource: "header",
		LastSeen: testReceived,
	}, s)
}

func TestNetFlowV5Truncated(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	r := v5Record{src: "10.0.0.1", dst: "10.0.0.2", packets: 1, bytes: 100}
	p := v5Datagram(1000, 1_700_000_000, 0, 0, 0, 0, r, r)
	got, err := d.Decode(netip.MustParseAddr("192.0.2.1"), p[:len(p)-1], testReceived, nil)
	require.ErrorIs(t, err, ErrMalformed)
	require.Len(t, got, 1, "the complete record is kept")
	require.Equal(t, map[string]uint64{"malformed": 1}, statsOf(t, d, "192.0.2.1").Errors)
}
