package aggregate

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	flushSeconds prometheus.Histogram
}

func newMetrics(a *Aggregator, reg *prometheus.Registry) *metrics {
	m := &metrics{flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tmsd_aggregate_flush_duration_seconds",
		Help:    "Time to merge, cut and write the closed minutes.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	})}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.flushSeconds)
	for i, s := range a.shards {
		s := s
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tmsd_aggregate_flows_total",
			Help:        "Flow records counted by an aggregator shard.",
			ConstLabels: prometheus.Labels{"shard": strconv.Itoa(i)},
		}, func() float64 { return float64(s.flows.Load()) }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_aggregate_skipped_flows_total",
		Help: "Flows not stored because their minute was older than the retention.",
	}, func() float64 { return float64(a.skippedFlows.Load()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_aggregate_flush_errors_total",
		Help: "Minute flushes that failed (retried on the next flush).",
	}, func() float64 { return float64(a.flushErrors.Load()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_aggregate_compactions_total",
		Help: "Tables compacted because a shard reached its share of max_memory (accuracy traded for memory).",
	}, func() float64 { return float64(a.compactions.Load()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tmsd_ring_fill_ratio",
		Help: "Fraction of the flow ring in use.",
	}, func() float64 { return float64(a.deps.Ring.Len()) / float64(a.deps.Ring.Cap()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_ring_dropped_total",
		Help: "Flow records dropped because the ring was full.",
	}, func() float64 { return float64(a.deps.Ring.Dropped()) }))
	return m
}
