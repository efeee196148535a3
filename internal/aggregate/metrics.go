package aggregate

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	flushSeconds, checkpointSeconds prometheus.Histogram
}

func newMetrics(a *Aggregator, reg *prometheus.Registry) *metrics {
	m := &metrics{flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tmsd_aggregate_flush_duration_seconds",
		Help:    "Time to merge, cut and write the closed minutes.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	}), checkpointSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tmsd_aggregate_checkpoint_duration_seconds",
		Help:    "Time to encode and save the checkpoints of the minutes held in memory.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	})}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.flushSeconds, m.checkpointSeconds)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_aggregate_checkpoints_total",
		Help: "Successful checkpoints of the minutes held in memory.",
	}, func() float64 { return float64(a.checkpoints.Load()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_aggregate_checkpoint_errors_total",
		Help: "Checkpoints that failed (the store refused a write); a crash then loses more than the interval.",
	}, func() float64 { return float64(a.ckErrors.Load()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tmsd_aggregate_checkpoint_timestamp_seconds",
		Help: "Unix time of the last successful checkpoint (0: none yet); a crash loses the flows counted since.",
	}, func() float64 { return float64(a.ckLast.Load()) / 1e9 }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tmsd_aggregate_checkpoint_size_bytes",
		Help: "Bytes written by the last checkpoint (minutes unchanged since their last one are not rewritten).",
	}, func() float64 { return float64(a.ckBytes.Load()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tmsd_aggregate_pending_minutes",
		Help: "Closed minutes waiting in memory for the store (it failed); queries still see them.",
	}, func() float64 { return float64(a.pendingCount.Load()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_aggregate_dropped_minutes_total",
		Help: "Closed minutes dropped while the store failed, because waiting ones exceeded max_memory.",
	}, func() float64 { return float64(a.droppedMinutes.Load()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_aggregate_dropped_flows_total",
		Help: "Flows of the closed minutes dropped while the store failed.",
	}, func() float64 { return float64(a.droppedFlows.Load()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_aggregate_flows_total",
		Help: "Flow records counted: by every shard (each counts every flow into its own tables).",
	}, func() float64 {
		n := ^uint64(0)
		for _, s := range a.shards {
			n = min(n, s.flows.Load())
		}
		return float64(n)
	}))
	for i, s := range a.shards {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tmsd_aggregate_shard_flows_total",
			Help:        "Flow records an aggregator shard counted into its tables: a shard behind the others is the ingest's bottleneck.",
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
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_aggregate_direct_minutes_total",
		Help: "Shard minutes whose countries and ASes were counted flow by flow from the moment an address showed two countries or ASes, or the minute held more addresses than an eighth of the shard's budget folds (slower ingest, same answers).",
	}, func() float64 { return float64(a.directMinutes.Load()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "tmsd_aggregate_memory_bytes",
		Help:        "Bytes the minutes' tables and dictionaries hold, as max_memory counts them: held=open in the shards, held=outside in minutes being closed or written and checkpoint buffers.",
		ConstLabels: prometheus.Labels{"held": "open"},
	}, func() float64 {
		var n int64
		for _, s := range a.shards {
			s.mu.Lock()
			n += s.bytes
			s.mu.Unlock()
		}
		return float64(n)
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "tmsd_aggregate_memory_bytes",
		Help:        "Bytes the minutes' tables and dictionaries hold, as max_memory counts them: held=open in the shards, held=outside in minutes being closed or written and checkpoint buffers.",
		ConstLabels: prometheus.Labels{"held": "outside"},
	}, func() float64 { return float64(a.outside.Load()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tmsd_ring_fill_ratio",
		Help: "Fraction of the flow ring in use.",
	}, func() float64 { return float64(a.deps.Ring.Len()) / float64(a.deps.Ring.Cap()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tmsd_ring_dropped_total",
		Help: "Flow records dropped because the ring stayed full while no shard read for 1 s (a slow shard makes the socket readers wait instead).",
	}, func() float64 { return float64(a.deps.Ring.Dropped()) }))
	return m
}
