package decode

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

// receivedAt returns the want records with another receive time.
func receivedAt(at time.Time, records ...flow.Record) []flow.Record {
	out := make([]flow.Record, len(records))
	for i, r := range records {
		r.Received = at.UnixMilli()
		out[i] = r
	}
	return out
}

func TestHold(t *testing.T) {
	template := v9TemplateSet(templateRecord(256, v9Fields...))
	data := set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10), v9Record("10.0.0.3", "10.0.0.4", 2000, 20))
	want := []flow.Record{
		v9Want("192.0.2.1", "10.0.0.1", "10.0.0.2", 1000, 10, 1),
		v9Want("192.0.2.1", "10.0.0.3", "10.0.0.4", 2000, 20, 1),
	}
	t0 := testReceived

	t.Run("data then template: released with its receive time", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		got, err := d.Decode(exporterA, v9(data), t0, nil)
		require.NoError(t, err, "held data is not an error")
		require.Empty(t, got)
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, []uint64{1, 0, 0}, []uint64{s.Held, s.Released, s.Dropped})
		require.Equal(t, 1, s.Holding)

		later := t0.Add(1500 * time.Millisecond)
		out := []flow.Record{{Proto: 99}}
		got, err = d.Decode(exporterA, v9(template), later, out)
		require.NoError(t, err)
		require.Equal(t, append([]flow.Record{{Proto: 99}}, want...), got, "appended to out, with the held datagram's receive time")
		s = statsOf(t, d, "192.0.2.1")
		require.Equal(t, []uint64{1, 1, 0}, []uint64{s.Held, s.Released, s.Dropped})
		require.Zero(t, s.Holding)
		require.Empty(t, s.Errors)
		require.Equal(t, uint64(2), s.Flows)

		// Released once only.
		got, err = d.Decode(exporterA, v9(template), later, nil)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("data before its template in one datagram", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		got, err := d.Decode(exporterA, v9(data, template), t0, nil)
		require.NoError(t, err)
		require.Equal(t, want, got)
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, []uint64{0, 0, 0}, []uint64{s.Held, s.Released, s.Dropped})
	})

	t.Run("held data and the template's own data", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		_, err := d.Decode(exporterA, v9(data), t0, nil)
		require.NoError(t, err)
		later := t0.Add(time.Second)
		got, err := d.Decode(exporterA, v9(template, set(256, v9Record("10.0.0.5", "10.0.0.6", 1, 1))), later, nil)
		require.NoError(t, err)
		require.Equal(t, append(want, receivedAt(later, v9Want("192.0.2.1", "10.0.0.5", "10.0.0.6", 1, 1, 1))...), got,
			"the held records come first: they are older")
	})

	t.Run("past the hold time: dropped", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		_, err := d.Decode(exporterA, v9(data), t0, nil)
		require.NoError(t, err)
		_, err = d.Decode(exporterA, v9(data), t0.Add(time.Second), nil)
		require.NoError(t, err)
		// 2 s after the first, 1 s after the second: the first is dropped.
		got, err := d.Decode(exporterA, v9(template), t0.Add(2*time.Second+time.Millisecond), nil)
		require.NoError(t, err, "the datagram that finds held data expired has no error of its own")
		require.Equal(t, receivedAt(t0.Add(time.Second), want...), got)
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, []uint64{2, 1, 1}, []uint64{s.Held, s.Released, s.Dropped})
		require.Equal(t, map[string]uint64{"template_unknown": 1}, s.Errors)
		require.Zero(t, s.Holding)
	})

	t.Run("at exactly the hold time: released", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		_, err := d.Decode(exporterA, v9(data), t0, nil)
		require.NoError(t, err)
		got, err := d.Decode(exporterA, v9(template), t0.Add(2*time.Second), nil)
		require.NoError(t, err)
		require.Equal(t, want, got)
	})

	t.Run("over the datagram bound: dropped", func(t *testing.T) {
		cfg := DefaultConfiguration()
		cfg.HoldDatagrams = 2
		d := newTestDecoder(t, cfg)
		for i := range 3 {
			_, err := d.Decode(exporterA, v9(data), t0, nil)
			if i < 2 {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrTemplateUnknown)
			}
		}
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, []uint64{2, 0, 1}, []uint64{s.Held, s.Released, s.Dropped})
		require.Equal(t, map[string]uint64{"template_unknown": 1}, s.Errors)
		got, err := d.Decode(exporterA, v9(template), t0, nil)
		require.NoError(t, err)
		require.Equal(t, append(append([]flow.Record{}, want...), want...), got)
	})

	t.Run("over the byte bound: dropped", func(t *testing.T) {
		cfg := DefaultConfiguration()
		cfg.HoldBytes = len(data) + 10 // one set and a half
		d := newTestDecoder(t, cfg)
		_, err := d.Decode(exporterA, v9(data), t0, nil)
		require.NoError(t, err)
		_, err = d.Decode(exporterA, v9(data), t0, nil)
		require.ErrorIs(t, err, ErrTemplateUnknown)
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, []uint64{1, 0, 1}, []uint64{s.Held, s.Released, s.Dropped})
		got, err := d.Decode(exporterA, v9(template), t0, nil)
		require.NoError(t, err)
		require.Equal(t, want, got)
		// The bytes were given back.
		_, err = d.Decode(exporterA, v9(set(300, v9Record("10.0.0.1", "10.0.0.2", 1, 1))), t0, nil)
		require.NoError(t, err)
	})

	t.Run("sets of two templates released one by one", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		other := set(257, v9Record("10.0.0.7", "10.0.0.8", 7, 7))
		_, err := d.Decode(exporterA, v9(data, other), t0, nil)
		require.NoError(t, err)
		got, err := d.Decode(exporterA, v9(template), t0, nil)
		require.NoError(t, err)
		require.Equal(t, want, got)
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, []uint64{1, 0, 0}, []uint64{s.Held, s.Released, s.Dropped})
		require.Equal(t, 1, s.Holding)
		got, err = d.Decode(exporterA, v9(v9TemplateSet(templateRecord(257, v9Fields...))), t0, nil)
		require.NoError(t, err)
		require.Equal(t, []flow.Record{v9Want("192.0.2.1", "10.0.0.7", "10.0.0.8", 7, 7, 1)}, got)
		s = statsOf(t, d, "192.0.2.1")
		require.Equal(t, []uint64{1, 1, 0}, []uint64{s.Held, s.Released, s.Dropped})
	})

	t.Run("held options data applies to the data after the template", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		options := v9OptionsTemplateSet(300, []field{{id: 1, length: 4}}, []field{{id: fieldSamplingInterval, length: 4}})
		_, err := d.Decode(exporterA, v9(set(300, cat(u32(0), u32(512)))), t0, nil)
		require.NoError(t, err)
		got, err := d.Decode(exporterA, v9(options, template, set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10))), t0, nil)
		require.NoError(t, err)
		require.Equal(t, []flow.Record{v9Want("192.0.2.1", "10.0.0.1", "10.0.0.2", 1000, 10, 512)}, got)
	})

	t.Run("each observation domain its own templates", func(t *testing.T) {
		d := newTestDecoder(t, DefaultConfiguration())
		_, err := d.Decode(exporterA, v9Datagram(v9SysUptime, v9UnixSecs, 2, data), t0, nil)
		require.NoError(t, err)
		got, err := d.Decode(exporterA, v9Datagram(v9SysUptime, v9UnixSecs, 1, template), t0, nil)
		require.NoError(t, err)
		require.Empty(t, got, "a template of domain 1 does not release data of domain 2")
		require.Equal(t, 1, statsOf(t, d, "192.0.2.1").Holding)
	})

	t.Run("holding disabled", func(t *testing.T) {
		d := newTestDecoder(t, noHold())
		_, err := d.Decode(exporterA, v9(data), t0, nil)
		require.ErrorIs(t, err, ErrTemplateUnknown)
		got, err := d.Decode(exporterA, v9(template), t0, nil)
		require.NoError(t, err)
		require.Empty(t, got)
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, []uint64{0, 0, 1}, []uint64{s.Held, s.Released, s.Dropped})
	})
}

func TestTemplateExpiry(t *testing.T) {
	template := v9TemplateSet(templateRecord(256, v9Fields...))
	data := set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10))
	t0 := testReceived
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	f := func(name string, cfg Configuration, steps []struct {
		at       time.Duration
		p        []byte
		flows    int
		err      error
		expired  uint64
		template int
	}) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			d := newTestDecoder(t, cfg)
			for i, s := range steps {
				got, err := d.Decode(exporterA, s.p, at(s.at), nil)
				if s.err != nil {
					require.ErrorIs(t, err, s.err, "step %d", i)
				} else {
					require.NoError(t, err, "step %d", i)
				}
				require.Len(t, got, s.flows, "step %d", i)
				st := statsOf(t, d, "192.0.2.1")
				require.Equal(t, s.expired, st.TemplatesExpired, "step %d: expired", i)
				require.Equal(t, s.template, st.Templates, "step %d: templates", i)
			}
		})
	}
	type step = struct {
		at       time.Duration
		p        []byte
		flows    int
		err      error
		expired  uint64
		template int
	}
	f("refreshed templates live on", noHold(), []step{
		{at: 0, p: v9(template), template: 1},
		{at: 59 * time.Minute, p: v9(data), flows: 1, template: 1},
		{at: 50 * time.Minute, p: v9(template), template: 1}, // late datagram: a refresh all the same
		{at: 110 * time.Minute, p: v9(data), flows: 1, template: 1},
		{at: 110*time.Minute + time.Millisecond, p: v9(data), err: ErrTemplateUnknown, expired: 1},
		{at: 111 * time.Minute, p: v9(template, data), flows: 1, expired: 1, template: 1},
	})
	f("exactly the timeout", noHold(), []step{
		{at: 0, p: v9(template), template: 1},
		{at: time.Hour, p: v9(data), flows: 1, template: 1},
	})
	short := noHold()
	short.TemplateTimeout = 10 * time.Second
	f("configured timeout", short, []step{
		{at: 0, p: v9(template), template: 1},
		{at: 10 * time.Second, p: v9(data), flows: 1, template: 1},
		{at: 11 * time.Second, p: v9(data), err: ErrTemplateUnknown, expired: 1},
	})
	// Templates no data uses are swept, on any datagram of the exporter.
	v5 := validDatagrams()["netflow-v5"]
	f("swept", noHold(), []step{
		{at: 0, p: v9(template, v9TemplateSet(templateRecord(257, v9Fields...))), template: 2},
		{at: 30 * time.Minute, p: v9(template), template: 2},
		{at: 61 * time.Minute, p: v5, flows: 2, expired: 1, template: 1},
		{at: 91 * time.Minute, p: v5, flows: 2, expired: 2},
	})
	f("expired template: data held until it comes again", DefaultConfiguration(), []step{
		{at: 0, p: v9(template), template: 1},
		{at: 2 * time.Hour, p: v9(data), expired: 1},
		{at: 2*time.Hour + time.Second, p: v9(template), flows: 1, expired: 1, template: 1},
	})
}

func TestRecordLimit(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.MaxRecordsPerDatagram = 3
	v5r := v5Record{src: "10.0.0.1", dst: "10.0.0.2", packets: 1, bytes: 100, proto: 6}
	tcp := ipv4Packet(ipProtoTCP, "10.0.0.1", "10.0.0.2", tcpHeader(33000, 443, 0x18))
	sample := sfFlowSample(10, 5, 6, sflowRawHeaderRecord(1514, ethernet(etherTypeIPv4, nil, tcp)))
	r := v9Record("10.0.0.1", "10.0.0.2", 1000, 10)
	ipfixFields := []field{{id: fieldIPv4SrcAddr, length: 4}, {id: fieldIPv4DstAddr, length: 4}, {id: fieldOctetTotalCount, length: 4}}
	ir := cat(ip("10.0.0.1"), ip("10.0.0.2"), u32(100))
	f := func(name string, p []byte, want int) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			d := newTestDecoder(t, cfg)
			got, err := d.Decode(exporterA, p, testReceived, nil)
			require.NoError(t, err, "a limit is counted, not returned")
			require.Len(t, got, want)
			s := statsOf(t, d, "192.0.2.1")
			if want == 3 && len(p) > 0 {
				require.Equal(t, map[string]uint64{"record_limit": 1}, s.Errors)
			} else {
				require.Empty(t, s.Errors)
			}
		})
	}
	f("v5 at the limit", v5Datagram(1000, 1_700_000_000, 0, 0, 0, 0, v5r, v5r), 2)
	f("v5 over", v5Datagram(1000, 1_700_000_000, 0, 0, 0, 0, v5r, v5r, v5r, v5r, v5r), 3)
	f("v9 over, in two sets", v9(v9TemplateSet(templateRecord(256, v9Fields...)), set(256, r, r), set(256, r, r, r)), 3)
	f("IPFIX over", ipfixDatagram(1_700_000_000, 1, ipfixTemplateSet(templateRecord(256, ipfixFields...)), set(256, ir, ir, ir, ir)), 3)
	f("sFlow over", sflowDatagram("198.51.100.1", 0, sample, sample, sample, sample), 3)

	t.Run("options records count", func(t *testing.T) {
		d := newTestDecoder(t, cfg)
		options := v9OptionsTemplateSet(300, []field{{id: 1, length: 4}}, []field{{id: fieldSamplingInterval, length: 4}})
		got, err := d.Decode(exporterA, v9(options, set(300, cat(u32(0), u32(512)), cat(u32(0), u32(512))),
			v9TemplateSet(templateRecord(256, v9Fields...)), set(256, r, r)), testReceived, nil)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, map[string]uint64{"record_limit": 1}, statsOf(t, d, "192.0.2.1").Errors)
	})

	t.Run("each released datagram has its own count", func(t *testing.T) {
		d := newTestDecoder(t, cfg)
		for range 2 {
			_, err := d.Decode(exporterA, v9(set(256, r, r, r)), testReceived, nil)
			require.NoError(t, err)
		}
		got, err := d.Decode(exporterA, v9(v9TemplateSet(templateRecord(256, v9Fields...)), set(256, r, r, r)), testReceived, nil)
		require.NoError(t, err)
		require.Len(t, got, 9)
		require.Empty(t, statsOf(t, d, "192.0.2.1").Errors)
	})
}

func TestFieldLengthLimit(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.MaxFieldLength = 16
	addrs := []field{{id: fieldIPv4SrcAddr, length: 4}, {id: fieldIPv4DstAddr, length: 4}}

	t.Run("template with a long fixed field is refused", func(t *testing.T) {
		d := newTestDecoder(t, cfg)
		fields := append(append([]field{}, addrs...), field{id: 82, length: 17})
		_, err := d.Decode(exporterA, v9(v9TemplateSet(templateRecord(256, fields...), templateRecord(257, addrs...))), testReceived, nil)
		require.NoError(t, err, "a limit is counted, not returned")
		s := statsOf(t, d, "192.0.2.1")
		require.Equal(t, 1, s.Templates, "the next template of the set is kept")
		require.Equal(t, map[string]uint64{"field_length": 1}, s.Errors)

		fields[2].length = 16
		got, err := d.Decode(exporterA, v9(v9TemplateSet(templateRecord(256, fields...)),
			set(256, cat(ip("10.0.0.1"), ip("10.0.0.2"), make([]byte, 16)))), testReceived, nil)
		require.NoError(t, err)
		require.Len(t, got, 1, "a field of exactly the limit is fine")
	})

	t.Run("record with a long variable-length value is skipped", func(t *testing.T) {
		d := newTestDecoder(t, cfg)
		fields := append(append([]field{}, addrs...), field{id: 82, length: variableLength})
		rec := func(name []byte) []byte { return cat(ip("10.0.0.1"), ip("10.0.0.2"), name) }
		got, err := d.Decode(exporterA, ipfixDatagram(1_700_000_000, 1, ipfixTemplateSet(templateRecord(256, fields...)),
			set(256, rec(cat(u8(16), make([]byte, 16))), rec(cat(u8(17), make([]byte, 17))),
				rec(cat(u8(255), u16(300), make([]byte, 300))), rec(cat(u8(0))))), testReceived, nil)
		require.NoError(t, err)
		require.Len(t, got, 2, "the records around the long ones are kept")
		require.Equal(t, map[string]uint64{"field_length": 1}, statsOf(t, d, "192.0.2.1").Errors)
	})
}

func TestExporterLimit(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.MaxExporters = 2
	d := newTestDecoder(t, cfg)
	v5 := validDatagrams()["netflow-v5"]
	for _, src := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1", "192.0.2.4"} {
		got, err := d.Decode(netip.MustParseAddr(src), v5, testReceived, nil)
		if src == "192.0.2.3" || src == "192.0.2.4" {
			require.ErrorIs(t, err, ErrExporterLimit, src)
			require.Empty(t, got)
			continue
		}
		require.NoError(t, err, src)
		require.Len(t, got, 2)
	}
	require.Len(t, d.Exporters(), 2)
	require.Equal(t, uint64(2), d.ExporterLimitDrops())
	require.Equal(t, uint64(2), statsOf(t, d, "192.0.2.1").Datagrams)
}

func TestMetrics(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.MaxExporters = 2
	d := newTestDecoder(t, cfg)
	reg := prometheus.NewRegistry()
	require.NoError(t, d.RegisterMetrics(reg))
	template := v9TemplateSet(templateRecord(256, v9Fields...))
	data := set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10))
	for _, step := range []struct {
		src netip.Addr
		p   []byte
		at  time.Duration
	}{
		{exporterA, v9(data), 0},
		{exporterA, v9(data), 3 * time.Second}, // the first is dropped
		{exporterA, v9(template), 4 * time.Second},
		{exporterB, v9(data), 0},
		{exporterS, v9(data), 0}, // a third exporter
		{exporterB, v9(template), 2 * time.Hour},
		{exporterB, v9(data), 4 * time.Hour}, // expired: held
	} {
		_, _ = d.Decode(step.src, step.p, testReceived.Add(step.at), nil)
	}
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	require.Equal(t, map[string]float64{
		"tmsd_decode_exporters":                      2,
		"tmsd_decode_exporter_limit_datagrams_total": 1,
		"tmsd_decode_templates":                      1,
		"tmsd_decode_templates_expired_total":        1,
		"tmsd_decode_held_datagrams_total":           4,
		"tmsd_decode_released_datagrams_total":       1,
		"tmsd_decode_dropped_datagrams_total":        2,
		"tmsd_decode_holding_datagrams":              1,
	}, got)
	require.Error(t, d.RegisterMetrics(reg), "registered twice")
}
