package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tmsd/tmsd/internal/flow"
)

// ProducerDependencies of a Producer.
type ProducerDependencies struct {
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// Producer publishes flow records to the topic (a collector's).
type Producer struct {
	cfg  Configuration
	deps ProducerDependencies
	cl   *kgo.Client
	stop chan struct{}
	wg   sync.WaitGroup

	sent, full, failed prometheus.Counter
	mu                 sync.Mutex
	dropped            map[netip.Addr]uint64 // per exporter, for the API
	warned             time.Time
	promise            func(*kgo.Record, error)
}

// NewProducer validates the configuration and registers the metrics; it
// opens nothing.
func NewProducer(cfg Configuration, deps ProducerDependencies) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Producer{cfg: cfg, deps: deps, stop: make(chan struct{}), dropped: map[netip.Addr]uint64{}}
	p.sent = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_produced_records_total",
		Help: "Flow records Kafka acknowledged."})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tmsd_kafka_produce_dropped_total",
		Help: "Flow records not published: buffer_full (Kafka slow or unreachable past kafka.max_buffered), failed (refused by Kafka)."},
		[]string{"reason"})
	p.full, p.failed = dropped.WithLabelValues("buffer_full"), dropped.WithLabelValues("failed")
	p.promise = p.delivered
	if deps.Registry != nil {
		buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tmsd_kafka_produce_buffered_records",
			Help: "Flow records waiting for Kafka."}, func() float64 {
			if p.cl == nil {
				return 0
			}
			return float64(p.cl.BufferedProduceRecords())
		})
		if err := errors.Join(deps.Registry.Register(p.sent), deps.Registry.Register(dropped), deps.Registry.Register(buffered)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Start connects (lazily: an unreachable Kafka delays nothing, the records
// wait in the buffer) and makes sure the topic exists.
func (p *Producer) Start() error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ClientID(p.cfg.ClientID),
		kgo.DefaultProduceTopic(p.cfg.Topic),
		kgo.ProducerBatchCompression(p.cfg.codec()),
		kgo.ProducerLinger(p.cfg.Linger),
		kgo.ProducerBatchMaxBytes(p.cfg.BatchBytes),
		kgo.MaxBufferedRecords(p.cfg.MaxBuffered),
	)
	if err != nil {
		return err
	}
	p.cl = cl
	p.wg.Go(func() { ensureTopic(p.cfg, cl, p.stop, p.deps.Logger) })
	return nil
}

// Stop waits up to FlushTimeout for the buffered records to reach Kafka, then closes;
// what is still buffered then is counted as dropped.
func (p *Producer) Stop() error {
	if p.cl == nil {
		return nil
	}
	close(p.stop)
	p.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.FlushTimeout)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.cl.Close() // fails what is left, through the promise
	if err != nil {
		return errors.Join(errors.New("kafka: records left unpublished at stop"), err)
	}
	return nil
}

// recordBytes is room for one encoded record and its key in the batch slab.
const recordBytes = 192

// Publish queues records for Kafka without waiting: one allocation for the
// batch's kgo records and one for their bytes. A record that does not fit in
// the buffer (kafka.max_buffered) is dropped and counted.
func (p *Producer) Publish(recs []flow.Record) {
	if len(recs) == 0 {
		return
	}
	krs := make([]kgo.Record, len(recs))
	slab := make([]byte, 0, len(recs)*recordBytes)
	ctx := context.Background()
	for i := range recs {
		r := &recs[i]
		s := len(slab)
		switch p.cfg.Key {
		case KeyFlow:
			slab = appendFlowKey(slab, r)
		default:
			slab = append(slab, addrBytes(&r.Exporter)...)
		}
		k := len(slab)
		slab = AppendFlow(slab, r)
		krs[i].Key = slab[s:k:k]
		krs[i].Value = slab[k:len(slab):len(slab)]
		p.cl.TryProduce(ctx, &krs[i], p.promise)
	}
}

// appendFlowKey is an 8-byte FNV-1a hash of the 5-tuple: stable across
// collectors, so every collector sends one flow's records to one partition.
func appendFlowKey(b []byte, r *flow.Record) []byte {
	h := uint64(14695981039346656037)
	mix := func(c byte) { h = (h ^ uint64(c)) * 1099511628211 }
	for _, c := range r.SrcAddr {
		mix(c)
	}
	for _, c := range r.DstAddr {
		mix(c)
	}
	mix(byte(r.SrcPort >> 8))
	mix(byte(r.SrcPort))
	mix(byte(r.DstPort >> 8))
	mix(byte(r.DstPort))
	mix(r.Proto)
	return binary.BigEndian.AppendUint64(b, h)
}

// delivered counts one record's outcome.
func (p *Producer) delivered(r *kgo.Record, err error) {
	if err == nil {
		p.sent.Inc()
		return
	}
	if errors.Is(err, kgo.ErrMaxBuffered) {
		p.full.Inc()
	} else {
		p.failed.Inc()
	}
	var one [1]flow.Record
	recs, _ := DecodeFlows(r.Value, one[:0])
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(recs) == 1 {
		p.dropped[recs[0].Exporter.Netip()]++
	}
	if now := time.Now(); now.Sub(p.warned) >= time.Minute {
		p.warned = now
		p.deps.Logger.Warn("kafka: flow records dropped", "err", err)
	}
}

// Dropped is how many records of each exporter were not published.
func (p *Producer) Dropped() map[netip.Addr]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[netip.Addr]uint64, len(p.dropped))
	for a, n := range p.dropped {
		out[a] = n
	}
	return out
}

// ensureTopic creates the topic with cfg's partitions unless it exists,
// retrying every 5 s until it succeeds or stop closes: a collector or an
// aggregator may start before Kafka does.
func ensureTopic(cfg Configuration, cl *kgo.Client, stop <-chan struct{}, logger *slog.Logger) {
	adm := kadm.NewClient(cl)
	for warned := false; ; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rf := cfg.ReplicationFactor
		if rf == 0 {
			rf = -1 // the broker's default
		}
		resp, err := adm.CreateTopic(ctx, cfg.partitions(), rf, nil, cfg.Topic)
		cancel()
		if err == nil {
			err = resp.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			return
		}
		if !warned {
			logger.Warn("kafka: topic not created yet; retrying every 5s", "topic", cfg.Topic, "err", err)
			warned = true
		}
		select {
		case <-stop:
			return
		case <-time.After(5 * time.Second):
		}
	}
}
