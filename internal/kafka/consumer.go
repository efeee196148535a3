package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tmsd/tmsd/internal/flow"
)

// ConsumerDependencies of a Consumer.
type ConsumerDependencies struct {
	// Sink takes each batch of decoded flows; it may block (Kafka holds the
	// backlog), and must not keep the slice.
	Sink func([]flow.Record)
	// Checkpoint makes durable everything the sink took and then calls the
	// consumer's Durable (the aggregator's Checkpoint, whose Source the
	// consumer is): run before partitions are given away and at Stop. Nil:
	// the consumer commits what the sink took at those points itself, which
	// a crash between the sink and the store can lose.
	Checkpoint func() error
	Registry   *prometheus.Registry
	Logger     *slog.Logger
}

// Consumer reads the topic as a member of the consumer group (an
// aggregator's), and is the aggregator's Source: it commits a partition's
// offset only once the aggregator's store holds every flow before it
// (Durable, after a checkpoint pass), so the owner a partition moves to
// resumes where that store ends: nothing lost, nothing counted twice.
// Before a rebalance takes partitions away it has them checkpointed; a
// partition taken already (onLost: this member was thrown out of the group)
// is resumed from its last commit, and what was counted after it may count
// twice.
type Consumer struct {
	cfg  Configuration
	deps ConsumerDependencies
	cl   *kgo.Client
	ctx  context.Context
	quit context.CancelFunc
	stop chan struct{}
	wg   sync.WaitGroup

	// feed is held while a batch is handed to the sink, and by Pause.
	feed sync.Mutex
	// handed is each partition's next offset to hand on; owned the
	// partitions this member may commit (assigned, or being revoked).
	handed    map[int32]int64
	owned     map[int32]bool
	revoking  map[int32]bool
	committed map[int32]int64
	commitMu  sync.Mutex // serializes Durable
	closed    atomic.Bool

	records, flows, malformed, rebalances, commits prometheus.Counter
	lag                                            *prometheus.GaugeVec
	assigned                                       prometheus.Gauge
	warned                                         atomic.Int64 // unix ns of the last warning
	decoded                                        atomic.Uint64
	ownedN                                         atomic.Int64
}

// Assigned is how many partitions the consumer owns now.
func (c *Consumer) Assigned() int { return int(c.ownedN.Load()) }

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
	c := &Consumer{cfg: cfg, deps: deps, stop: make(chan struct{}),
		handed: map[int32]int64{}, owned: map[int32]bool{}, revoking: map[int32]bool{}, committed: map[int32]int64{}}
	c.records = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_consumed_records_total", Help: "Kafka records consumed."})
	c.flows = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_consumed_flows_total", Help: "Flows decoded from consumed Kafka records."})
	c.malformed = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_consume_malformed_total",
		Help: "Consumed Kafka records that were not length-delimited FlowMessages (the flows before the fault are kept)."})
	c.rebalances = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_rebalances_total",
		Help: "Partitions given to or taken from this consumer by the group."})
	c.commits = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_kafka_commits_total",
		Help: "Offset commits, each after a checkpoint pass made the flows before them durable."})
	c.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tmsd_kafka_consumer_lag_records",
		Help: "Records of an assigned partition not consumed yet, as of the last fetch."}, []string{"partition"})
	c.assigned = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tmsd_kafka_assigned_partitions", Help: "Partitions this consumer owns."})
	if deps.Registry != nil {
		for _, m := range []prometheus.Collector{c.records, c.flows, c.malformed, c.rebalances, c.commits, c.lag, c.assigned} {
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
		kgo.SessionTimeout(c.cfg.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, c.cfg.SessionTimeout/3)),
		// A rebalance waits this long for a member that died during it
		// (a checkpoint in onRevoked takes well under a second): with
		// kgo's 60 s, a failover in the test took 83 s instead of 14.
		kgo.RebalanceTimeout(max(10*time.Second, c.cfg.SessionTimeout)),
		// Records polled are handed on before a rebalance runs, so the
		// checkpoint in onRevoked covers exactly what this member counted.
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

// Stop stops consuming, has what the sink took made durable and committed,
// and leaves the group, which gives this member's partitions to the others
// at once.
func (c *Consumer) Stop() error {
	if c.cl == nil {
		return nil
	}
	close(c.stop)
	c.quit()
	c.wg.Wait()
	err := c.checkpoint()
	// Leaving the group revokes the partitions, which BlockRebalanceOnPoll
	// holds until allowed: the poll loop that would allow it has returned.
	c.cl.AllowRebalance()
	c.cl.Close()
	c.closed.Store(true)
	if err != nil {
		return fmt.Errorf("kafka: final commit: %w", err)
	}
	return nil
}

// checkpoint makes what the sink took durable and commits it.
func (c *Consumer) checkpoint() error {
	if c.deps.Checkpoint != nil {
		return c.deps.Checkpoint()
	}
	pos := c.Pause()
	c.Resume()
	return c.Durable(pos)
}

func (c *Consumer) run() {
	buf := make([]flow.Record, 0, sinkBatch+16)
	for {
		fetches := c.cl.PollRecords(c.ctx, 4*sinkBatch)
		if fetches.IsClientClosed() || c.ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.warn("kafka: fetch failed", "topic", topic, "partition", p, "err", err)
		})
		c.feed.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 || !c.owned[p.Partition] {
				return // revoked since the fetch: its new owner reads them
			}
			last := p.Records[len(p.Records)-1].Offset
			c.lag.WithLabelValues(strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-last-1, 0)))
			for _, r := range p.Records {
				c.records.Inc()
				var err error
				buf, err = DecodeFlows(r.Value, buf)
				if err != nil {
					c.malformed.Inc()
					c.warn("kafka: malformed record", "partition", r.Partition, "offset", r.Offset, "err", err)
				}
				if len(buf) >= sinkBatch {
					buf = c.sink(buf)
				}
			}
			// Read under feed, with the rest of the batch handed on below.
			c.handed[p.Partition] = last + 1
		})
		if len(buf) > 0 {
			buf = c.sink(buf)
		}
		c.feed.Unlock()
		c.cl.AllowRebalance()
	}
}

// sink hands buf on and counts it, once the sink has it (Flows then
// counts only what the aggregator's ring holds).
func (c *Consumer) sink(buf []flow.Record) []flow.Record {
	c.deps.Sink(buf)
	c.flows.Add(float64(len(buf)))
	c.decoded.Add(uint64(len(buf)))
	return buf[:0]
}

// Pause stops handing records on, once the batch being handed on is in the
// sink, and returns the position reached: each partition's next offset.
func (c *Consumer) Pause() []byte {
	c.feed.Lock()
	var b []byte
	for p, off := range c.handed {
		b = binary.AppendUvarint(b, uint64(p))
		b = binary.AppendUvarint(b, uint64(off))
	}
	return b
}

// Resume hands records on again.
func (c *Consumer) Resume() { c.feed.Unlock() }

// Durable commits pos: the aggregator's store holds every flow before it.
// Only partitions this member owns (or is giving away) are committed, and
// only forward: a position taken before a rebalance never rewinds the new
// owner's commit.
func (c *Consumer) Durable(pos []byte) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	offsets := map[int32]kgo.EpochOffset{}
	c.feed.Lock()
	for len(pos) > 0 {
		p, n := binary.Uvarint(pos)
		if n <= 0 {
			c.feed.Unlock()
			return errors.New("kafka: bad position")
		}
		off, m := binary.Uvarint(pos[n:])
		if m <= 0 {
			c.feed.Unlock()
			return errors.New("kafka: bad position")
		}
		pos = pos[n+m:]
		part := int32(p)
		if (c.owned[part] || c.revoking[part]) && int64(off) > c.committed[part] {
			offsets[part] = kgo.EpochOffset{Epoch: -1, Offset: int64(off)}
		}
	}
	c.feed.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	if c.closed.Load() {
		return errors.New("kafka: consumer closed with offsets not committed")
	}
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.cfg.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, e error) {
			err = e
			if resp == nil {
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil && err == nil {
						err = fmt.Errorf("partition %d: %w", p.Partition, e)
					}
				}
			}
		})
	if err != nil {
		return fmt.Errorf("kafka: commit: %w", err)
	}
	c.commits.Inc()
	c.feed.Lock()
	for p, o := range offsets {
		c.committed[p] = o.Offset
	}
	c.feed.Unlock()
	return nil
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	n := len(parts[c.cfg.Topic])
	c.feed.Lock()
	for _, p := range parts[c.cfg.Topic] {
		c.owned[p] = true
		delete(c.handed, p) // resumed from the group's commit, wherever that is
		delete(c.committed, p)
	}
	c.feed.Unlock()
	c.rebalances.Inc()
	c.assigned.Add(float64(n))
	c.ownedN.Add(int64(n))
	c.deps.Logger.Info("kafka: partitions assigned", "topic", c.cfg.Topic, "partitions", parts[c.cfg.Topic])
}

// onRevoked has everything handed on checkpointed and committed before the
// partitions go; no record of theirs is handed on meanwhile.
func (c *Consumer) onRevoked(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	c.feed.Lock()
	for _, p := range parts[c.cfg.Topic] {
		if c.owned[p] {
			c.revoking[p] = true
		}
		delete(c.owned, p)
	}
	c.feed.Unlock()
	if err := c.checkpoint(); err != nil {
		c.warn("kafka: checkpoint before a rebalance failed: the partitions' next owner resumes from their last commit", "err", err)
	}
	c.dropped(parts)
}

// onLost: the partitions are already someone else's; nothing to commit.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	c.feed.Lock()
	for _, p := range parts[c.cfg.Topic] {
		delete(c.owned, p)
	}
	c.feed.Unlock()
	c.warn("kafka: partitions lost (this member was out of the group too long): flows counted since their last commit may count twice",
		"partitions", parts[c.cfg.Topic])
	c.dropped(parts)
}

func (c *Consumer) dropped(parts map[string][]int32) {
	c.rebalances.Inc()
	c.feed.Lock()
	for _, p := range parts[c.cfg.Topic] {
		delete(c.revoking, p)
		delete(c.handed, p)
		delete(c.committed, p)
		c.lag.DeleteLabelValues(strconv.Itoa(int(p)))
	}
	c.feed.Unlock()
	c.assigned.Sub(float64(len(parts[c.cfg.Topic])))
	c.ownedN.Add(-int64(len(parts[c.cfg.Topic])))
}

// warn logs at most once a minute.
func (c *Consumer) warn(msg string, args ...any) {
	now, last := time.Now().UnixNano(), c.warned.Load()
	if now-last >= int64(time.Minute) && c.warned.CompareAndSwap(last, now) {
		c.deps.Logger.Warn(msg, args...)
	}
}
