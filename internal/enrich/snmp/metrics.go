package snmp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics have no exporter label: the exporters are unbounded, their own
// counts are in Exporters().
type metrics struct {
	polls       prometheus.Counter
	failures    prometheus.Counter
	duration    prometheus.Histogram
	seenDropped prometheus.Counter
	cacheErrors prometheus.Counter
}

// init creates the metrics once and registers them on reg (if any).
func (m *metrics) init(p *Poller, reg *prometheus.Registry) error {
	m.polls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tmsd_snmp_polls_total",
		Help: "SNMP polls of an exporter (sysName and interface names) done, failed ones included.",
	})
	m.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tmsd_snmp_poll_failures_total",
		Help: "SNMP polls that failed (timeout, authentication, agent error); the last known names stay.",
	})
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tmsd_snmp_poll_duration_seconds",
		Help:    "Time of one exporter's SNMP poll.",
		Buckets: prometheus.ExponentialBuckets(0.005, 3, 9), // 5 ms to 33 s
	})
	m.seenDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tmsd_snmp_seen_dropped_total",
		Help: "New exporters not queued for polling, the queue being full; retried at their next flow.",
	})
	m.cacheErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tmsd_snmp_cache_errors_total",
		Help: "Failed reads and writes of the SNMP names cache.",
	})
	if reg == nil {
		return nil
	}
	collectors := []prometheus.Collector{m.polls, m.failures, m.duration, m.seenDropped, m.cacheErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tmsd_snmp_exporters",
			Help: "Exporters known to the SNMP poller (polled, or loaded from the cache).",
		}, func() float64 { return float64(len(*p.exporters.Load())) }),
	}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, d := range collectors[:i] {
				reg.Unregister(d)
			}
			return fmt.Errorf("register snmp metrics: %w", err)
		}
	}
	return nil
}
