package kafka

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tmsd/tmsd/internal/flow"
)

// ConsumerDependencies of a Consumer.
type ConsumerDependencies struct {
	// Sink takes each batch of decoded flows before the consumer commits
	// their offsets; it may block (Kafka holds the backlog), and must not
	// keep the slice.
	Sink     func([]flow.Record)
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// Consumer reads the topic as a member of the consumer group (an
// aggregator's). Offsets are committed only for records the sink has taken,
// every CommitInterval, before a rebalance gives a partition away, and at
// Stop: a partition that moves is resumed by its new owner where the old one
// stopped handing records on.
type Consumer struct {
	cfg  Configuration
	deps ConsumerDependencies
	cl   *kgo.Client
	ctx  context.Context
	quit context.CancelFunc
	stop chan struct{}
	wg   sync.WaitGroup

	records, flows, malformed, rebalances prometheus.Counter
	lag                                   *prometheus.GaugeVec
	assigned                              prometheus.Gauge
	warned                                atomic.Int64 // unix ns of the last warning
	decoded                               atomic.Uint64
	owned                                 atomic.Int64
}

// Assigned is how many partitions the consumer owns now.
func (c *Consumer) Assigned() int { return int(c.owned.Load()) }

// Flows is how many flows the consumer has handed to the sink.
func (c *Consumer) Flows() uint64 { return c.decoded.Load() }

// sinkBatch is how many flows go to the sink at once.
const sinkBatch = 1024

// NewConsumer validates the configuration and registers the metrics; it
// opens nothing.
func NewConsumer(cfg Configuration, deps ConsumerDependencies) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Sink == nil {
		return nil, errors.New("kafka: consumer needs a sink")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{cfg: cfg, deps: deps, stop: make(chan struct{})}
	c.records = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_consumed_records_total", Help: "Kafka records consumed."})
	c.flows = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_consumed_flows_total", Help: "Flows decoded from consumed Kafka records."})
	c.malformed = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_consume_malformed_total",
		Help: "Consumed Kafka records that were not length-delimited FlowMessages (the flows before the fault are kept)."})
	c.rebalances = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_rebalances_total",
		Help: "Partitions given to or taken from this consumer by the group."})
	c.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tmsd_kafka_consumer_lag_records",
		Help: "Records of an assigned partition not consumed yet, as of the last fetch."}, []string{"partition"})
	c.assigned = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tmsd_kafka_assigned_partitions", Help: "Partitions this consumer owns."})
	if deps.Registry != nil {
		for _, m := range []prometheus.Collector{c.records, c.flows, c.malformed, c.rebalances, c.lag, c.assigned} {
			if err := deps.Registry.Register(m); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Start joins the group and consumes until Stop. A new group starts at the
// topic's oldest record, so nothing published before the first aggregator
// came up is skipped.
func (c *Consumer) Start() error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.cfg.Brokers...),
		kgo.ClientID(c.cfg.ClientID),
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(c.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Records polled are handed on before a rebalance runs, so the
		// commit in onRevoked covers exactly what this member counted.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
	)
	if err != nil {
		return err
	}
	c.cl = cl
	c.ctx, c.quit = context.WithCancel(context.Background())
	c.wg.Go(func() { ensureTopic(c.cfg, cl, c.stop, c.deps.Logger) })
	c.wg.Go(c.run)
	return nil
}

// Stop stops consuming, commits what the sink took and leaves the group,
// which gives this member's partitions to the others at once.
func (c *Consumer) Stop() error {
	if c.cl == nil {
		return nil
	}
	close(c.stop)
	c.quit()
	c.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.cl.CommitUncommittedOffsets(ctx)
	// Leaving the group revokes the partitions, which BlockRebalanceOnPoll
	// holds until allowed: the poll loop that would allow it has returned.
	c.cl.AllowRebalance()
	c.cl.Close()
	if err != nil {
		return errors.Join(errors.New("kafka: final commit"), err)
	}
	return nil
}

func (c *Consumer) run() {
	buf := make([]flow.Record, 0, sinkBatch+16)
	lastCommit := time.Now()
	for {
		fetches := c.cl.PollRecords(c.ctx, 4*sinkBatch)
		if fetches.IsClientClosed() || c.ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.warn("kafka: fetch failed", "topic", topic, "partition", p, "err", err)
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				last := p.Records[len(p.Records)-1].Offset
				c.lag.WithLabelValues(strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-last-1, 0)))
			}
			for _, r := range p.Records {
				c.records.Inc()
				n := len(buf)
				var err error
				buf, err = DecodeFlows(r.Value, buf)
				c.flows.Add(float64(len(buf) - n))
				c.decoded.Add(uint64(len(buf) - n))
				if err != nil {
					c.malformed.Inc()
					c.warn("kafka: malformed record", "partition", r.Partition, "offset", r.Offset, "err", err)
				}
				if len(buf) >= sinkBatch {
					c.deps.Sink(buf)
					buf = buf[:0]
				}
			}
		})
		if len(buf) > 0 {
			c.deps.Sink(buf)
			buf = buf[:0]
		}
		if time.Since(lastCommit) >= c.cfg.CommitInterval {
			lastCommit = time.Now()
			if err := c.cl.CommitUncommittedOffsets(c.ctx); err != nil && c.ctx.Err() == nil {
				c.warn("kafka: commit failed", "err", err)
			}
		}
		c.cl.AllowRebalance()
	}
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	n := len(parts[c.cfg.Topic])
	c.rebalances.Inc()
	c.assigned.Add(float64(n))
	c.owned.Add(int64(n))
	c.deps.Logger.Info("kafka: partitions assigned", "topic", c.cfg.Topic, "partitions", parts[c.cfg.Topic])
}

// onRevoked commits before the partitions go: every record polled has been
// handed to the sink (BlockRebalanceOnPoll).
func (c *Consumer) onRevoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		c.warn("kafka: commit before rebalance failed", "err", err)
	}
	c.dropped(parts)
}

// onLost: the partitions are already someone else's; nothing to commit.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	c.dropped(parts)
}

func (c *Consumer) dropped(parts map[string][]int32) {
	c.rebalances.Inc()
	for _, p := range parts[c.cfg.Topic] {
		c.lag.DeleteLabelValues(strconv.Itoa(int(p)))
	}
	c.assigned.Sub(float64(len(parts[c.cfg.Topic])))
	c.owned.Add(-int64(len(parts[c.cfg.Topic])))
}

// warn logs at most once a minute.
func (c *Consumer) warn(msg string, args ...any) {
	now, last := time.Now().UnixNano(), c.warned.Load()
	if now-last >= int64(time.Minute) && c.warned.CompareAndSwap(last, now) {
		c.deps.Logger.Warn(msg, args...)
	}
}
