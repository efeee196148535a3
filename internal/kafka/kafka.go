// Package kafka owns tmsd's scale-out: a collector publishes the flow records
// it decodes to a Kafka topic (Producer), aggregators consume the topic as one
// consumer group (Consumer). The records are goflow2's FlowMessage, one per
// Kafka record (codec.go); franz-go is the client; keys choose the partition.
package kafka

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Key is what a record is keyed (and so partitioned) by.
type Key string

// Keys. By exporter keeps each exporter, and so its per-exporter and
// per-interface scopes, whole in one aggregator; by flow spreads one large
// exporter over every partition.
const (
	KeyExporter Key = "exporter"
	KeyFlow     Key = "flow"
)

// Configuration of the producer and the consumer.
type Configuration struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	Topic   string
	// Partitions is the partition count of the topic when tmsd creates it
	// (0: this machine's cores; set it to the aggregator fleet's cores).
	// ReplicationFactor likewise (0: the cluster's default).
	Partitions        int32
	ReplicationFactor int16
	// Key chooses each record's partition.
	Key Key
	// Compression of the producer's batches: none, gzip, snappy, lz4, zstd.
	Compression string
	// Linger is how long the producer waits to fill a batch; BatchBytes the
	// most a batch holds.
	Linger     time.Duration
	BatchBytes int32
	// MaxBuffered is how many records the producer holds while Kafka is
	// slow or unreachable; past it new records are dropped and counted.
	MaxBuffered int
	// Group is the aggregators' consumer group.
	Group string
	// SessionTimeout is how long the group waits for a silent aggregator
	// (killed, cut off) before its partitions move to the others.
	SessionTimeout time.Duration
	// FlushTimeout is how long the producer's Stop waits for Kafka to take
	// the buffered records.
	FlushTimeout time.Duration
	// ClientID names the client in the brokers' logs.
	ClientID string
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{
		Brokers:        []string{"127.0.0.1:9092"},
		Topic:          "tmsd-flows",
		Key:            KeyExporter,
		Compression:    "lz4",
		Linger:         5 * time.Millisecond,
		BatchBytes:     1 << 20,
		MaxBuffered:    1 << 20,
		Group:          "tmsd",
		SessionTimeout: 45 * time.Second,
		FlushTimeout:   10 * time.Second,
		ClientID:       "tmsd",
	}
}

// Compressions are the accepted Compression values.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// Validate checks the configuration.
func (c Configuration) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one host:port"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("topic: empty"))
	}
	if c.Key != KeyExporter && c.Key != KeyFlow {
		errs = append(errs, fmt.Errorf("key: %q, want exporter or flow", c.Key))
	}
	if !slices.Contains(Compressions, c.Compression) {
		errs = append(errs, fmt.Errorf("compression: %q, want one of %v", c.Compression, Compressions))
	}
	if c.Partitions < 0 || c.ReplicationFactor < 0 {
		errs = append(errs, errors.New("partitions and replication_factor: 0 (default) or more"))
	}
	if c.Linger < 0 || c.BatchBytes < 1<<10 || c.MaxBuffered < 1 || c.FlushTimeout <= 0 {
		errs = append(errs, errors.New("linger ≥ 0, batch_bytes ≥ 1 KiB, max_buffered ≥ 1 and flush_timeout > 0"))
	}
	if c.SessionTimeout < time.Second || c.SessionTimeout > 30*time.Minute {
		errs = append(errs, fmt.Errorf("session_timeout: %s, want 1s to 30m", c.SessionTimeout))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("group: empty"))
	}
	return errors.Join(errs...)
}

func (c Configuration) partitions() int32 {
	if c.Partitions > 0 {
		return c.Partitions
	}
	return int32(runtime.NumCPU())
}

func (c Configuration) codec() kgo.CompressionCodec {
	switch c.Compression {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}
