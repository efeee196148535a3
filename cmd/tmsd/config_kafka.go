package main

import (
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/kafka"
)

// The roles of `tmsd serve` (docs/SCALE-OUT.md).
const (
	roleAll        = "all"        // one process, no Kafka
	roleCollector  = "collector"  // decode and publish to Kafka
	roleAggregator = "aggregator" // consume from Kafka, count, store and serve
)

var roles = []string{roleAll, roleCollector, roleAggregator}

// KafkaConfig is the `kafka:` section: what collectors publish to and
// aggregators consume from. Only the collector and aggregator roles use it.
type KafkaConfig struct {
	Brokers           []string `yaml:"brokers"`
	Topic             string   `yaml:"topic"`
	Partitions        int      `yaml:"partitions"`
	ReplicationFactor int      `yaml:"replication_factor"`
	Key               string   `yaml:"key"`
	Compression       string   `yaml:"compression"`
	Linger            Duration `yaml:"linger"`
	BatchBytes        ByteSize `yaml:"batch_bytes"`
	MaxBuffered       int      `yaml:"max_buffered"`
	Group             string   `yaml:"group"`
	SessionTimeout    Duration `yaml:"session_timeout"`
	FlushTimeout      Duration `yaml:"flush_timeout"`
}

func defaultKafkaConfig() KafkaConfig {
	d := kafka.DefaultConfiguration()
	return KafkaConfig{
		Brokers: d.Brokers, Topic: d.Topic, Key: string(d.Key), Compression: d.Compression,
		Linger: Duration(d.Linger), BatchBytes: ByteSize(d.BatchBytes), MaxBuffered: d.MaxBuffered,
		Group: d.Group, SessionTimeout: Duration(d.SessionTimeout), FlushTimeout: Duration(d.FlushTimeout),
	}
}

func (k KafkaConfig) configuration() kafka.Configuration {
	c := kafka.DefaultConfiguration()
	c.Brokers, c.Topic, c.Key, c.Compression, c.Group = k.Brokers, k.Topic, kafka.Key(k.Key), k.Compression, k.Group
	c.Partitions, c.ReplicationFactor = int32(k.Partitions), int16(k.ReplicationFactor)
	c.Linger, c.BatchBytes, c.MaxBuffered = time.Duration(k.Linger), int32(k.BatchBytes), k.MaxBuffered
	c.SessionTimeout, c.FlushTimeout = time.Duration(k.SessionTimeout), time.Duration(k.FlushTimeout)
	return c
}

// checkKafka bounds the role and, where the role uses Kafka, the section.
func (c *Config) checkKafka(src configSource) error {
	if !slices.Contains(roles, c.Role) {
		return src.errorf("role", "want all, collector or aggregator, got %q", c.Role)
	}
	// The section is checked whatever the role, so that a typo is found
	// before the day the role changes; only the brokers' presence depends
	// on it.
	k := c.Kafka
	if len(k.Brokers) == 0 && c.Role != roleAll {
		return src.errorf("kafka.brokers", "role %s needs at least one broker host:port", c.Role)
	}
	for _, b := range k.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return src.errorf("kafka.brokers", "%q is not a broker address HOST:PORT", b)
		}
	}
	bounds := []struct {
		key  string
		bad  bool
		want string
		got  any
	}{
		{"kafka.topic", k.Topic == "", "a topic name", `""`},
		{"kafka.partitions", k.Partitions < 0 || k.Partitions > 100000, "0 (this machine's cores) to 100000", k.Partitions},
		{"kafka.replication_factor", k.ReplicationFactor < 0 || k.ReplicationFactor > 32767, "0 (the cluster's default) to 32767", k.ReplicationFactor},
		{"kafka.key", k.Key != string(kafka.KeyExporter) && k.Key != string(kafka.KeyFlow), "exporter or flow", strconv.Quote(k.Key)},
		{"kafka.compression", !slices.Contains(kafka.Compressions, k.Compression), "none, gzip, snappy, lz4 or zstd", strconv.Quote(k.Compression)},
		{"kafka.linger", k.Linger < 0 || k.Linger > Duration(time.Minute), "0 to 1m", k.Linger},
		{"kafka.batch_bytes", k.BatchBytes < 1<<10 || k.BatchBytes > 1<<30, "1KiB to 1GiB", int64(k.BatchBytes)},
		{"kafka.max_buffered", k.MaxBuffered < 1, "a whole number >= 1", k.MaxBuffered},
		{"kafka.group", k.Group == "", "a consumer group name", `""`},
		{"kafka.session_timeout", k.SessionTimeout < Duration(time.Second) || k.SessionTimeout > Duration(30*time.Minute), "1s to 30m", k.SessionTimeout},
		{"kafka.flush_timeout", k.FlushTimeout <= 0, "a duration > 0", k.FlushTimeout},
	}
	for _, b := range bounds {
		if b.bad {
			return src.errorf(b.key, "want %s, got %v", b.want, b.got)
		}
	}
	for _, p := range c.API.Peers {
		if err := api.CheckPeer(p); err != nil {
			return src.errorf("api.peers", "%v", err)
		}
	}
	if len(c.API.Peers) > 0 && c.Role != roleAggregator {
		return src.errorf("api.peers", "only an aggregator (role: aggregator) has peers; this one is role %s", c.Role)
	}
	return nil
}

// listenNetFlow and listenSFlow are the flow addresses this role listens on:
// an aggregator takes its flows from Kafka, not from exporters.
func (c *Config) listenNetFlow() []string {
	if c.Role == roleAggregator {
		return nil
	}
	return c.NetFlow
}

func (c *Config) listenSFlow() []string {
	if c.Role == roleAggregator {
		return nil
	}
	return c.SFlow
}
