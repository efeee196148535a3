package rollup

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmsd/tmsd/internal/store"
)

type metrics struct {
	rolled           [numTiers]prometheus.Counter
	evictedIntervals [numTiers]prometheus.Counter
	evictedBytes     [numTiers]prometheus.Counter
	errors           prometheus.Counter
	passSeconds      prometheus.Histogram
}

// init creates the metrics once, one child per tier, and registers them.
func (m *metrics) init(r *Rollup, reg *prometheus.Registry) error {
	rolled := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tmsd_rollup_intervals_total",
		Help: "Intervals rolled up, by tier (hour from minutes, day from hours).",
	}, []string{"tier"})
	evictedIntervals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tmsd_store_evicted_intervals_total",
		Help: "Intervals deleted by the disk cap (store.max_disk), by tier.",
	}, []string{"tier"})
	evictedBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tmsd_store_evicted_bytes_total",
		Help: "Bytes of keys and values deleted by the disk cap, before compression, by tier.",
	}, []string{"tier"})
	m.errors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tmsd_rollup_errors_total",
		Help: "Failed rollup passes and disk cap checks (retried on the next pass).",
	})
	m.passSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tmsd_rollup_pass_duration_seconds",
		Help:    "Time of one rollup pass (rollups and disk cap).",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	})
	for _, t := range store.Tiers {
		if t != store.TierMinute {
			m.rolled[t] = rolled.WithLabelValues(t.String())
		}
		m.evictedIntervals[t] = evictedIntervals.WithLabelValues(t.String())
		m.evictedBytes[t] = evictedBytes.WithLabelValues(t.String())
	}
	if reg == nil {
		return nil
	}
	collectors := []prometheus.Collector{rolled, evictedIntervals, evictedBytes, m.errors, m.passSeconds}
	for _, t := range []store.Tier{store.TierHour, store.TierDay} {
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tmsd_rollup_lag_seconds",
			Help:        lagHelp,
			ConstLabels: prometheus.Labels{"tier": t.String()},
		}, func() float64 {
			mark := r.Rolled(t)
			if mark.IsZero() {
				return 0
			}
			return r.deps.Clock().Sub(mark).Seconds()
		}))
	}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, d := range collectors[:i] {
				reg.Unregister(d)
			}
			return fmt.Errorf("register rollup metrics: %w", err)
		}
	}
	return nil
}

const lagHelp = "How far the rollup watermark is behind the clock, by tier (an hour is rolled up its delay after its end)."
