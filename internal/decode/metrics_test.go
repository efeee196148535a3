package decode

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// Per-exporter series stop at MaxExporterSeries; the rest add up under "other".
func TestExporterMetricsAreBounded(t *testing.T) {
	d, err := New(DefaultConfiguration())
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	require.NoError(t, d.RegisterExporterMetrics(reg))

	now := time.Unix(1_700_000_000, 0)
	good := v5Datagram(1000, uint32(now.Unix()), 0, 0, 0, 0, v5Record{src: "10.0.0.1", dst: "10.0.0.2", packets: 1, bytes: 100, proto: 6})
	const exporters = MaxExporterSeries + 20
	for i := range exporters {
		src := netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)})
		// The first exporter sends the most, so it must keep its own series.
		for range 1 + boolInt(i == 0)*5 {
			_, err := d.Decode(src, good, now, nil)
			require.NoError(t, err)
		}
		_, err := d.Decode(src, []byte{0, 42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, now, nil)
		require.ErrorIs(t, err, ErrUnknownVersion)
	}

	mfs, err := reg.Gather()
	require.NoError(t, err)
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	require.Equal(t, map[string]int{
		"tmsd_exporter_datagrams_total": MaxExporterSeries + 1, "tmsd_exporter_bytes_total": MaxExporterSeries + 1,
		"tmsd_exporter_flows_total": MaxExporterSeries + 1, "tmsd_exporter_templates": MaxExporterSeries + 1,
		"tmsd_exporter_decode_errors_total": MaxExporterSeries + 1,
	}, series)
	var sum, top, other float64
	for _, mf := range mfs {
		if mf.GetName() != "tmsd_exporter_datagrams_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			sum += v
			switch m.GetLabel()[0].GetValue() {
			case "192.0.0.0":
				top = v
			case "other":
				other = v
			}
		}
	}
	require.Equal(t, float64(exporters*2+5), sum, "nothing lost in the bound")
	require.Equal(t, float64(7), top, "the busiest exporter keeps its series")
	require.Equal(t, float64((exporters-MaxExporterSeries)*2), other, "the quietest exporters are summed")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
