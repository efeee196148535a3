package decode

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

const (
	v9SysUptime = 200_000
	v9UnixSecs  = 1_700_000_000
	v9ExportMs  = v9UnixSecs * 1000
)

// v9Fields is a typical IPv4 NetFlow v9 template.
var v9Fields = []field{
	{id: fieldIPv4SrcAddr, length: 4}, {id: fieldIPv4DstAddr, length: 4},
	{id: fieldL4SrcPort, length: 2}, {id: fieldL4DstPort, length: 2},
	{id: fieldProtocol, length: 1}, {id: fieldTCPFlags, length: 1},
	{id: fieldInputSNMP, length: 2}, {id: fieldOutputSNMP, length: 2},
	{id: fieldInBytes, length: 4}, {id: fieldInPkts, length: 4},
	{id: fieldFirstSwitched, length: 4}, {id: fieldLastSwitched, length: 4},
}

// v9Record is a record of the v9Fields template.
func v9Record(src, dst string, bytes, packets uint32) []byte {
	return cat(ip(src), ip(dst), u16(40000), u16(53), u8(17), u8(0), u16(1), u16(2),
		u32(bytes), u32(packets), u32(v9SysUptime-60_000), u32(v9SysUptime-1_000))
}

// v9Want is the flow of v9Record at a sampling rate.
func v9Want(exporter, src, dst string, bytes, packets uint64, rate uint32) flow.Record {
	return flow.Record{
		Exporter: addr(exporter), SrcAddr: addr(src), DstAddr: addr(dst),
		Bytes: bytes * uint64(rate), Packets: packets * uint64(rate),
		Start: v9ExportMs - 60_000, End: v9ExportMs - 1_000, Received: testReceived.UnixMilli(),
		InIf: 1, OutIf: 2, SamplingRate: rate, ObsDomain: 77, SrcPort: 40000, DstPort: 53, Proto: 17,
		Export: flow.ProtoNetFlowV9,
	}
}

func v9(sets ...[]byte) []byte { return v9Datagram(v9SysUptime, v9UnixSecs, 77, sets...) }

var (
	exporterA = netip.MustParseAddr("192.0.2.1")
	exporterB = netip.MustParseAddr("2001:db8::2")
)

func TestNetFlowV9(t *testing.T) {
	template := v9TemplateSet(templateRecord(256, v9Fields...))
	data := set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10), v9Record("10.0.0.3", "10.0.0.4", 2000, 20))
	want := []flow.Record{
		v9Want("192.0.2.1", "10.0.0.1", "10.0.0.2", 1000, 10, 1),
		v9Want("192.0.2.1", "10.0.0.3", "10.0.0.4", 2000, 20, 1),
	}

	t.Run("template then data", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		got, err := d.Decode(exporterA, v9(template), testReceived, nil)
		require.NoError(t, err)
		require.Empty(t, got)
		got, err = d.Decode(exporterA, v9(data), testReceived, nil)
		require.NoError(t, err)
		require.Equal(t, want, got)
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, 1, s.Templates)
		require.Equal(t, uint64(2), s.Flows)
		require.Equal(t, uint64(2), s.Datagrams)
		require.Equal(t, "none", s.SamplingSource)
	})

	t.Run("data with its template", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		got, err := d.Decode(exporterA, v9(template, data), testReceived, nil)
		require.NoError(t, err)
		require.Equal(t, want, got)
	})

	t.Run("appends to out", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		out := []flow.Record{{Proto: 99}}
		got, err := d.Decode(exporterA, v9(template, data), testReceived, out)
		require.NoError(t, err)
		require.Equal(t, append([]flow.Record{{Proto: 99}}, want...), got)
	})

	t.Run("template after its data, holding disabled", func(t *testing.T) {
		d := newTestDecoder(t, noHold())
		got, err := d.Decode(exporterA, v9(data), testReceived, nil)
		require.ErrorIs(t, err, ErrTemplateUnknown)
		require.Empty(t, got)
		require.Equal(t, map[string]uint64{"template_unknown": 1}, statsOf(t, d, "192.0.2.1").Errors)

		_, err = d.Decode(exporterA, v9(template), testReceived, nil)
		require.NoError(t, err)
		got, err = d.Decode(exporterA, v9(data), testReceived, nil)
		require.NoError(t, err)
		require.Equal(t, want, got)
	})

	t.Run("known data kept next to unknown data", func(t *testing.T) {
		d := newTestDecoder(t, noHold())
		unknown := set(300, v9Record("10.9.9.9", "10.9.9.9", 1, 1))
		got, err := d.Decode(exporterA, v9(template, unknown, data), testReceived, nil)
		require.ErrorIs(t, err, ErrTemplateUnknown)
		require.Equal(t, want, got)
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, map[string]uint64{"template_unknown": 1}, s.Errors)
		require.Equal(t, uint64(2), s.Flows)
	})

	t.Run("same IP from another port, IPv4-mapped", func(t *testing.T) {
		// Decode only ever sees the IP: a router that changes source port
		// (or whose datagrams arrive on a dual-stack socket) keeps its templates.
		d := newTestDecoder(t, DefaultConfiguration())
		_, err := d.Decode(netip.AddrPortFrom(exporterA, 2055).Addr(), v9(template), testReceived, nil)
		require.NoError(t, err)
		mapped := netip.AddrPortFrom(netip.AddrFrom16(exporterA.As16()), 40001)
		got, err := d.Decode(mapped.Addr(), v9(data), testReceived, nil)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Len(t, d.Exporters(), 1)
	})

	t.Run("source IDs have their own templates", func(t *testing.T) {
		d := newTestDecoder(t, noHold())
		_, err := d.Decode(exporterA, v9Datagram(v9SysUptime, v9UnixSecs, 1, template), testReceived, nil)
		require.NoError(t, err)
		_, err = d.Decode(exporterA, v9Datagram(v9SysUptime, v9UnixSecs, 2, data), testReceived, nil)
		require.ErrorIs(t, err, ErrTemplateUnknown)
	})
}

func TestNetFlowV9SameTemplateIDTwoExporters(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	// Exporter B uses template 256 for IPv6 flows with 8-byte counters.
	fieldsB := []field{
		{id: fieldIPv6SrcAddr, length: 16}, {id: fieldIPv6DstAddr, length: 16},
		{id: fieldInBytes, length: 8}, {id: fieldInPkts, length: 8}, {id: fieldProtocol, length: 1},
	}
	_, err := d.Decode(exporterA, v9(v9TemplateSet(templateRecord(256, v9Fields...))), testReceived, nil)
	require.NoError(t, err)
	_, err = d.Decode(exporterB, v9(v9TemplateSet(templateRecord(256, fieldsB...))), testReceived, nil)
	require.NoError(t, err)

	got, err := d.Decode(exporterA, v9(set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10))), testReceived, nil)
	require.NoError(t, err)
	require.Equal(t, []flow.Record{v9Want("192.0.2.1", "10.0.0.1", "10.0.0.2", 1000, 10, 1)}, got)

	got, err = d.Decode(exporterB, v9(set(256, cat(ip("2001:db8::10"), ip("2001:db8::20"), u64(1<<40), u64(3), u8(58)))), testReceived, nil)
	require.NoError(t, err)
	require.Equal(t, []flow.Record{{
		Exporter: addr("2001:db8::2"), SrcAddr: addr("2001:db8::10"), DstAddr: addr("2001:db8::20"),
		Bytes: 1 << 40, Packets: 3, Received: testReceived.UnixMilli(), SamplingRate: 1, ObsDomain: 77,
		Proto: 58, Export: flow.ProtoNetFlowV9,
	}}, got)

	stats := d.Exporters()
	require.Len(t, stats, 2)
	require.Equal(t, exporterA, stats[0].Address, "sorted by address")
	require.Equal(t, exporterB, stats[1].Address)
}

func TestNetFlowV9Sampling(t *testing.T) {
	template := v9TemplateSet(templateRecord(256, v9Fields...))
	data := set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10))
	// Cisco-style sampler table: scope system, options sampler ID, mode, interval.
	samplerOptions := v9OptionsTemplateSet(257,
		[]field{{id: 1, length: 4}},
		[]field{{id: fieldSamplerID, length: 1}, {id: 49, length: 1}, {id: fieldSamplerRandomIntvl, length: 4}})
	samplers := set(257, cat(u32(0), u8(1), u8(2), u32(100)), cat(u32(0), u8(2), u8(2), u32(1000)))
	// A template whose records name their sampler.
	withSampler := append(append([]field{}, v9Fields...), field{id: fieldSamplerID, length: 1})
	samplerTemplate := v9TemplateSet(templateRecord(258, withSampler...))
	samplerData := func(id uint8) []byte { return set(258, cat(v9Record("10.0.0.1", "10.0.0.2", 1000, 10), u8(id))) }

	f := func(name string, cfg Configuration, datagrams [][]byte, wantRate uint32, wantSource string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			d := newTestDecoder(t, cfg)
			var got []flow.Record
			for _, p := range datagrams {
				var err error
				got, err = d.Decode(exporterA, p, testReceived, got[:0])
				require.NoError(t, err)
			}
			require.Equal(t, []flow.Record{v9Want("192.0.2.1", "10.0.0.1", "10.0.0.2", 1000, 10, wantRate)}, got)
			s := statsOf(t, d, "192.0.2.1")
			require.Equal(t, wantRate, s.SamplingRate)
			require.Equal(t, wantSource, s.SamplingSource)
		})
	}

	options34 := v9OptionsTemplateSet(300, []field{{id: 1, length: 4}},
		[]field{{id: fieldSamplingInterval, length: 4}, {id: 35, length: 1}})
	f("options interval applies to later data", DefaultConfiguration(),
		[][]byte{v9(template, options34, set(300, cat(u32(0), u32(512), u8(2)))), v9(data)}, 512, "options")
	f("options in the same datagram, before data", DefaultConfiguration(),
		[][]byte{v9(options34, set(300, cat(u32(0), u32(512), u8(2))), template, data)}, 512, "options")
	f("sampler ID picks its rate", DefaultConfiguration(),
		[][]byte{v9(samplerOptions, samplers, samplerTemplate, samplerData(2))}, 1000, "options")
	f("other sampler ID", DefaultConfiguration(),
		[][]byte{v9(samplerOptions, samplers, samplerTemplate, samplerData(1))}, 100, "options")
	f("unknown sampler ID", DefaultConfiguration(),
		[][]byte{v9(samplerOptions, samplers, samplerTemplate, samplerData(3))}, 1, "none")

	withInterval := append(append([]field{}, v9Fields...), field{id: fieldSamplingInterval, length: 2})
	recordRate := v9(v9TemplateSet(templateRecord(259, withInterval...)),
		set(259, cat(v9Record("10.0.0.1", "10.0.0.2", 1000, 10), u16(64))))
	f("record field", DefaultConfiguration(), [][]byte{recordRate}, 64, "record")
	f("record field beats options", DefaultConfiguration(),
		[][]byte{v9(options34, set(300, cat(u32(0), u32(512), u8(2)))), recordRate}, 64, "record")

	override := DefaultConfiguration()
	override.SamplingOverride = map[netip.Addr]uint32{netip.MustParseAddr("::ffff:192.0.2.1"): 4}
	f("override beats record", override, [][]byte{recordRate}, 4, "override")
	f("override beats options", override,
		[][]byte{v9(options34, set(300, cat(u32(0), u32(512), u8(2))), template, data)}, 4, "override")
}

func TestNetFlowV9TemplateLimit(t *testing.T) {
	d := newTestDecoder(t, Configuration{MaxTemplatesPerExporter: 2, HoldDatagrams: -1})
	templates := v9TemplateSet(templateRecord(256, v9Fields...), templateRecord(257, v9Fields...), templateRecord(258, v9Fields...))
	_, err := d.Decode(exporterA, v9(templates), testReceived, nil)
	require.NoError(t, err, "a refused template is counted, not a decoding error")
	_, err = d.Decode(exporterA, v9(templates), testReceived, nil)
	require.NoError(t, err)
	s := statsOf(t, d, "192.0.2.1")
	require.Equal(t, 2, s.Templates)
	require.Equal(t, map[string]uint64{"template_limit": 2}, s.Errors)

	_, err = d.Decode(exporterA, v9(set(258, v9Record("10.0.0.1", "10.0.0.2", 1, 1))), testReceived, nil)
	require.ErrorIs(t, err, ErrTemplateUnknown)
}

func TestIPFIX(t *testing.T) {
	const exportTime = 1_700_000_100
	fields := []field{
		{id: fieldIPv6SrcAddr, length: 16}, {id: fieldIPv6DstAddr, length: 16},
		{id: 82, length: variableLength}, // interfaceName
		{id: fieldOctetTotalCount, length: 8}, {id: fieldPacketTotalCount, length: 8},
		{id: 1, length: 4, pen: 9}, // enterprise field, same number as octetDeltaCount: ignored
		{id: fieldProtocol, length: 1}, {id: fieldTCPFlags, length: 2},
		{id: fieldL4SrcPort, length: 2}, {id: fieldL4DstPort, length: 2},
		{id: fieldInputSNMP, length: 4}, {id: fieldOutputSNMP, length: 4},
		{id: fieldFlowStartMillis, length: 8}, {id: fieldFlowEndMillis, length: 8},
	}
	record := func(name []byte) []byte {
		return cat(ip("2001:db8::1"), ip("2001:db8::2"), name, u64(5000), u64(5), u32(0xdead),
			u8(6), u16(0x0112), u16(443), u16(51000), u32(10), u32(20),
			u64(1_700_000_000_000), u64(1_700_000_050_000))
	}
	long := make([]byte, 300)
	data := set(400,
		record(cat(u8(4), []byte("eth0"))),   // short variable-length form
		record(cat(u8(255), u16(300), long)), // long form
		record(cat(u8(0))),                   // empty
	)
	want := flow.Record{
		Exporter: addr("192.0.2.1"), SrcAddr: addr("2001:db8::1"), DstAddr: addr("2001:db8::2"),
		Bytes: 5000, Packets: 5, Start: 1_700_000_000_000, End: 1_700_000_050_000,
		Received: testReceived.UnixMilli(), InIf: 10, OutIf: 20, SamplingRate: 1, ObsDomain: 9,
		SrcPort: 443, DstPort: 51000, Proto: 6, TCPFlags: 0x12, Export: flow.ProtoIPFIX,
	}

	d := newTestDecoder(t, noHold())
	got, err := d.Decode(exporterA, ipfixDatagram(exportTime, 9, ipfixTemplateSet(templateRecord(400, fields...)), data), testReceived, nil)
	require.NoError(t, err)
	require.Equal(t, []flow.Record{want, want, want}, got)
	s := statsOf(t, d, "192.0.2.1")
	require.Equal(t, []string{"ipfix"}, s.Protocols)
	require.Equal(t, 1, s.Templates)

	t.Run("withdrawal", func(t *testing.T) {
		// A withdrawn template is a template of zero fields: data for it is
		// unknown, and must not loop forever.
		_, err := d.Decode(exporterA, ipfixDatagram(exportTime, 9, ipfixTemplateSet(templateRecord(400))), testReceived, nil)
		require.NoError(t, err)
		require.Zero(t, statsOf(t, d, "192.0.2.1").Templates)
		_, err = d.Decode(exporterA, ipfixDatagram(exportTime, 9, data), testReceived, nil)
		require.ErrorIs(t, err, ErrTemplateUnknown)
	})
}

func TestIPFIXTimes(t *testing.T) {
	const exportTime = 1_700_000_100
	const exportMs = exportTime * 1000
	ntp := func(unixMs int64) uint64 {
		secs := uint64(unixMs/1000 + ntpEpochOffset)
		frac := uint64(unixMs%1000) << 32 / 1000
		return secs<<32 | (frac + 1) // +1: the fraction rounds down
	}
	addrs := []field{{id: fieldIPv4SrcAddr, length: 4}, {id: fieldIPv4DstAddr, length: 4}}
	f := func(name string, extra []byte, timeFields []field, values []byte, wantStart, wantEnd int64) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			d := newTestDecoder(t, DefaultConfiguration())
			p := ipfixDatagram(exportTime, 1, extra,
				ipfixTemplateSet(templateRecord(256, append(append([]field{}, addrs...), timeFields...)...)),
				set(256, cat(ip("10.0.0.1"), ip("10.0.0.2"), values)))
			got, err := d.Decode(exporterA, p, testReceived, nil)
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, wantStart, got[0].Start, "start")
			require.Equal(t, wantEnd, got[0].End, "end")
		})
	}
	f("seconds", nil, []field{{id: fieldFlowStartSeconds, length: 4}, {id: fieldFlowEndSeconds, length: 4}},
		cat(u32(1_700_000_000), u32(1_700_000_090)), 1_700_000_000_000, 1_700_000_090_000)
	f("microseconds and nanoseconds", nil, []field{{id: fieldFlowStartMicros, length: 8}, {id: fieldFlowEndNanos, length: 8}},
		cat(u64(ntp(1_700_000_000_123)), u64(ntp(1_700_000_090_456))), 1_700_000_000_123, 1_700_000_090_456)
	f("deltas", nil, []field{{id: fieldFlowStartDeltaMicro, length: 4}, {id: fieldFlowEndDeltaMicro, length: 4}},
		cat(u32(30_000_000), u32(2_000_000)), exportMs-30_000, exportMs-2_000)
	f("sysUptime without systemInitTime: unknown", nil,
		[]field{{id: fieldFirstSwitched, length: 4}, {id: fieldLastSwitched, length: 4}},
		cat(u32(1000), u32(2000)), 0, 0)
	f("sysUptime with systemInitTime in the record", nil,
		[]field{{id: fieldFirstSwitched, length: 4}, {id: fieldLastSwitched, length: 4}, {id: fieldSystemInitMillis, length: 8}},
		cat(u32(1000), u32(2000), u64(1_600_000_000_000)), 1_600_000_001_000, 1_600_000_002_000)
	initOptions := cat(
		ipfixOptionsTemplateSet(500, []field{{id: 149, length: 4}}, []field{{id: fieldSystemInitMillis, length: 8}}),
		set(500, cat(u32(1), u64(1_600_000_000_000))))
	f("sysUptime with systemInitTime from options", initOptions,
		[]field{{id: fieldFirstSwitched, length: 4}, {id: fieldLastSwitched, length: 4}},
		cat(u32(1000), u32(2000)), 1_600_000_001_000, 1_600_000_002_000)
	f("no times", nil, nil, nil, 0, 0)
}

func TestIPFIXSamplingOptions(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	options := ipfixOptionsTemplateSet(500,
		[]field{{id: fieldSelectorID, length: 8}},
		[]field{{id: fieldSamplingPktInterval, length: 4}, {id: fieldSamplingPktSpace, length: 4}})
	template := ipfixTemplateSet(templateRecord(256,
		field{id: fieldIPv4SrcAddr, length: 4}, field{id: fieldIPv4DstAddr, length: 4},
		field{id: fieldOctetTotalCount, length: 4}, field{id: fieldPacketTotalCount, length: 4},
		field{id: fieldSelectorID, length: 8}))
	// Selector 7 samples 1 packet then skips 99: 1 in 100.
	p := ipfixDatagram(1_700_000_000, 3, options, set(500, cat(u64(7), u32(1), u32(99))), template,
		set(256, cat(ip("10.0.0.1"), ip("10.0.0.2"), u32(100), u32(1), u64(7))))
	got, err := d.Decode(exporterA, p, testReceived, nil)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, uint32(100), got[0].SamplingRate)
	require.Equal(t, uint64(100*100), got[0].Bytes)
	require.Equal(t, uint64(100), got[0].Packets)
	s := statsOf(t, d, "192.0.2.1")
	require.Equal(t, "options", s.SamplingSource)
	require.Equal(t, 2, s.Templates)
}

func TestNetFlowSkipsRecordsWithoutAddresses(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	p := v9(v9TemplateSet(templateRecord(256, field{id: fieldInputSNMP, length: 4}, field{id: fieldInBytes, length: 4})),
		set(256, cat(u32(1), u32(100))))
	got, err := d.Decode(exporterA, p, testReceived, nil)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestNetFlowMalformedSets(t *testing.T) {
	f := func(name string, p []byte) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			d := newTestDecoder(t, DefaultConfiguration())
			_, err := d.Decode(exporterA, p, testReceived, nil)
			require.ErrorIs(t, err, ErrMalformed)
			require.Equal(t, uint64(1), statsOf(t, d, "192.0.2.1").Errors["malformed"])
		})
	}
	f("set longer than datagram", cat(v9(), u16(256), u16(100), u32(0)))
	f("set shorter than its header", cat(v9(), u16(256), u16(2)))
	f("template truncated", v9(set(0, u16(256), u16(10), u32(0x00080004))))
	f("template with zero-length fields only", v9(v9TemplateSet(templateRecord(256, field{id: 1, length: 0}))))
	f("options template with no scope", ipfixDatagram(0, 0, set(3, u16(256), u16(1), u16(0), u32(0x00220004))))
	f("IPFIX length beyond datagram", func() []byte { p := ipfixDatagram(0, 0); p[3] = 40; return p }())
	f("record overruns its variable-length field", ipfixDatagram(0, 0,
		ipfixTemplateSet(templateRecord(256, field{id: 82, length: variableLength})), set(256, cat(u8(10), u8(1)))))
}

func TestLastSeen(t *testing.T) {
	d := newTestDecoder(t, DefaultConfiguration())
	later := testReceived.Add(time.Minute)
	for _, at := range []time.Time{testReceived, later, testReceived} {
		_, _ = d.Decode(exporterA, v9(), at, nil)
	}
	require.Equal(t, later, statsOf(t, d, "192.0.2.1").LastSeen)
}
