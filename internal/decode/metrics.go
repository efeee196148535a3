package decode

import (
	"cmp"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the decoder's metrics on reg. They are sums over
// the exporters' counters, computed at each scrape, so decoding pays nothing
// for them; per-exporter values are in Exporters.
func (d *Decoder) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(collector{d})
}

type metric struct {
	desc      *prometheus.Desc
	valueType prometheus.ValueType
	value     func(t *totals) float64
}

type totals struct {
	exporters, templates, holding           int
	expired, held, released, dropped, limit uint64
}

var metrics = []metric{
	{prometheus.NewDesc("tmsd_decode_exporters", "Exporters the decoder keeps state for.", nil, nil),
		prometheus.GaugeValue, func(t *totals) float64 { return float64(t.exporters) }},
	{prometheus.NewDesc("tmsd_decode_exporter_limit_datagrams_total", "Datagrams dropped because they came from a new exporter past decode.max_exporters.", nil, nil),
		prometheus.CounterValue, func(t *totals) float64 { return float64(t.limit) }},
	{prometheus.NewDesc("tmsd_decode_templates", "NetFlow v9/IPFIX templates known.", nil, nil),
		prometheus.GaugeValue, func(t *totals) float64 { return float64(t.templates) }},
	{prometheus.NewDesc("tmsd_decode_templates_expired_total", "Templates forgotten after decode.template_timeout without a refresh.", nil, nil),
		prometheus.CounterValue, func(t *totals) float64 { return float64(t.expired) }},
	{prometheus.NewDesc("tmsd_decode_held_datagrams_total", "Datagrams whose data sets were held, waiting for their template.", nil, nil),
		prometheus.CounterValue, func(t *totals) float64 { return float64(t.held) }},
	{prometheus.NewDesc("tmsd_decode_released_datagrams_total", "Held datagrams decoded when their template came.", nil, nil),
		prometheus.CounterValue, func(t *totals) float64 { return float64(t.released) }},
	{prometheus.NewDesc("tmsd_decode_dropped_datagrams_total", "Datagrams with data sets of an unknown template given up: held past decode.hold_time, or no room to hold them.", nil, nil),
		prometheus.CounterValue, func(t *totals) float64 { return float64(t.dropped) }},
	{prometheus.NewDesc("tmsd_decode_holding_datagrams", "Datagrams held now, waiting for their template.", nil, nil),
		prometheus.GaugeValue, func(t *totals) float64 { return float64(t.holding) }},
}

type collector struct{ d *Decoder }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range metrics {
		ch <- m.desc
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	t := totals{limit: c.d.ExporterLimitDrops()}
	c.d.mu.RLock()
	exporters := make([]*exporter, 0, len(c.d.exporters))
	for _, e := range c.d.exporters {
		exporters = append(exporters, e)
	}
	c.d.mu.RUnlock()
	t.exporters = len(exporters)
	for _, e := range exporters {
		e.mu.Lock()
		t.templates += e.templates.len()
		t.holding += len(e.held)
		t.expired += e.templatesExpired
		t.held += e.heldCount
		t.released += e.released
		t.dropped += e.dropped
		e.mu.Unlock()
	}
	for _, m := range metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.valueType, m.value(&t))
	}
}

// MaxExporterSeries bounds the exporters that get their own label value in
// the per-exporter metrics: the busiest by datagrams; the rest are summed
// under exporter="other". A spoofed flood of sources cannot blow up the
// scrape (the allow-list and decode.max_exporters bound the state itself).
const MaxExporterSeries = 100

var (
	exporterLabels  = []string{"exporter"}
	exporterMetrics = []struct {
		desc      *prometheus.Desc
		valueType prometheus.ValueType
		value     func(s *ExporterStats) float64
	}{
		{prometheus.NewDesc("tmsd_exporter_datagrams_total", "Datagrams decoded per exporter, failed ones included.", exporterLabels, nil),
			prometheus.CounterValue, func(s *ExporterStats) float64 { return float64(s.Datagrams) }},
		{prometheus.NewDesc("tmsd_exporter_bytes_total", "UDP payload bytes of the datagrams per exporter.", exporterLabels, nil),
			prometheus.CounterValue, func(s *ExporterStats) float64 { return float64(s.Bytes) }},
		{prometheus.NewDesc("tmsd_exporter_flows_total", "Flow records (sFlow: flow samples) decoded per exporter.", exporterLabels, nil),
			prometheus.CounterValue, func(s *ExporterStats) float64 { return float64(s.Flows) }},
		{prometheus.NewDesc("tmsd_exporter_templates", "NetFlow v9/IPFIX templates known per exporter.", exporterLabels, nil),
			prometheus.GaugeValue, func(s *ExporterStats) float64 { return float64(s.Templates) }},
	}
	exporterErrors = prometheus.NewDesc("tmsd_exporter_decode_errors_total",
		"Datagrams with a decoding problem per exporter, by reason (a datagram counts once per reason it had).",
		[]string{"exporter", "reason"}, nil)
)

// RegisterExporterMetrics registers the per-exporter metrics on reg.
func (d *Decoder) RegisterExporterMetrics(reg prometheus.Registerer) error {
	return reg.Register(exporterCollector{d})
}

type exporterCollector struct{ d *Decoder }

func (c exporterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range exporterMetrics {
		ch <- m.desc
	}
	ch <- exporterErrors
}

func (c exporterCollector) Collect(ch chan<- prometheus.Metric) {
	stats := c.d.Exporters()
	slices.SortStableFunc(stats, func(a, b ExporterStats) int { return cmp.Compare(b.Datagrams, a.Datagrams) })
	if len(stats) > MaxExporterSeries {
		other := ExporterStats{Errors: map[string]uint64{}}
		for _, s := range stats[MaxExporterSeries:] {
			other.Datagrams += s.Datagrams
			other.Bytes += s.Bytes
			other.Flows += s.Flows
			other.Templates += s.Templates
			for r, n := range s.Errors {
				other.Errors[r] += n
			}
		}
		stats = append(stats[:MaxExporterSeries], other)
	}
	for i := range stats {
		s := &stats[i]
		name := "other"
		if s.Address.IsValid() {
			name = s.Address.String()
		}
		for _, m := range exporterMetrics {
			ch <- prometheus.MustNewConstMetric(m.desc, m.valueType, m.value(s), name)
		}
		for _, r := range slices.Sorted(maps.Keys(s.Errors)) {
			ch <- prometheus.MustNewConstMetric(exporterErrors, prometheus.CounterValue, float64(s.Errors[r]), name, r)
		}
	}
}
