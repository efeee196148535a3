package kafka

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tmsd/tmsd/internal/flow"
)

// cluster starts a kfake cluster (franz-go's in-process Kafka, the real wire
// protocol) on 127.0.0.1, stopped with the test.
func cluster(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func testConfig(brokers []string) Configuration {
	cfg := DefaultConfiguration()
	cfg.Brokers = brokers
	cfg.Topic = "flows"
	cfg.Partitions = 6
	cfg.FlushTimeout = 2 * time.Second
	return cfg
}

func startProducer(t *testing.T, cfg Configuration, reg *prometheus.Registry) *Producer {
	t.Helper()
	p, err := NewProducer(cfg, ProducerDependencies{Registry: reg})
	require.NoError(t, err)
	require.NoError(t, p.Start())
	return p
}

// collector is a consumer whose sink keeps what it was given.
type collector struct {
	mu   sync.Mutex
	recs []flow.Record
	c    *Consumer
}

func (k *collector) sink(recs []flow.Record) {
	k.mu.Lock()
	k.recs = append(k.recs, recs...)
	k.mu.Unlock()
}

func (k *collector) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.recs)
}

func startConsumer(t *testing.T, cfg Configuration) *collector {
	t.Helper()
	k := &collector{}
	c, err := NewConsumer(cfg, ConsumerDependencies{Sink: k.sink, Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	require.NoError(t, c.Start())
	k.c = c
	return k
}

// generated are n records of 8 exporters, each distinct (its source port).
func generated(from, n int) []flow.Record {
	out := make([]flow.Record, n)
	for i := range out {
		j := from + i
		out[i] = flow.Record{Exporter: addr(fmt.Sprintf("192.0.2.%d", 1+j%8)), SrcAddr: addr("10.0.0.1"), DstAddr: addr("10.0.0.2"),
			Bytes: uint64(100 + j), Packets: 1, SamplingRate: 1, SrcPort: uint16(j), DstPort: uint16(j >> 16), Proto: 6,
			Received: 1763840760000, Export: flow.ProtoNetFlowV9}
	}
	return out
}

func key(r flow.Record) string { return fmt.Sprint(r.DstPort, r.SrcPort) }

// waitFor polls cond every 20 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 20*time.Millisecond, what)
}

// TestPublishConsume: what one collector publishes, a group of two
// consumers receives exactly once between them, each exporter in one of them
// (records keyed by exporter), and one that leaves hands its partitions on
// without a record lost or given twice.
func TestPublishConsume(t *testing.T) {
	cfg := testConfig(cluster(t))
	reg := prometheus.NewRegistry()
	p := startProducer(t, cfg, reg)
	a, b := startConsumer(t, cfg), startConsumer(t, cfg)
	// Both in the group before the first record, so no partition moves
	// until a leaves.
	waitFor(t, "six partitions between the two", func() bool {
		na, nb := testutil.ToFloat64(a.c.assigned), testutil.ToFloat64(b.c.assigned)
		return na > 0 && nb > 0 && na+nb == 6
	})

	p.Publish(generated(0, 20000))
	waitFor(t, "the first 20,000", func() bool { return a.len()+b.len() == 20000 })
	firstB := b.len()

	require.NoError(t, a.c.Stop()) // commits and leaves: b takes its partitions
	p.Publish(generated(20000, 20000))
	waitFor(t, "all 40,000", func() bool { return a.len()+b.len() == 40000 })
	require.NoError(t, p.Stop())
	require.NoError(t, b.c.Stop())
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, 40000, a.len()+b.len(), "nothing more after the stops")

	seen := map[string]int{}
	owner := map[flow.Addr]map[*collector]bool{}
	for _, k := range []*collector{a, b} {
		for _, r := range k.recs {
			seen[key(r)]++
			if owner[r.Exporter] == nil {
				owner[r.Exporter] = map[*collector]bool{}
			}
			owner[r.Exporter][k] = true
		}
	}
	want := generated(0, 40000)
	require.Len(t, seen, len(want))
	for _, r := range want {
		require.Equal(t, 1, seen[key(r)], "record %s", key(r))
	}
	require.Greater(t, a.len(), 0)
	require.Greater(t, b.len(), 0)
	// Before a left, each exporter's records went to one consumer.
	ofA := map[flow.Addr]bool{}
	for _, r := range a.recs {
		ofA[r.Exporter] = true
	}
	for _, r := range b.recs[:firstB] {
		require.False(t, ofA[r.Exporter], "exporter %s in both", r.Exporter)
	}
	require.Equal(t, 40000.0, testutil.ToFloat64(p.sent))
	require.Equal(t, 0.0, testutil.ToFloat64(p.full)+testutil.ToFloat64(p.failed))
}

// TestConsumerResumesAtCommit: a consumer that stops commits what its sink
// took; the next member of the group starts after it, not at the beginning.
func TestConsumerResumesAtCommit(t *testing.T) {
	cfg := testConfig(cluster(t))
	p := startProducer(t, cfg, nil)
	t.Cleanup(func() { _ = p.Stop() })
	p.Publish(generated(0, 5000))
	a := startConsumer(t, cfg)
	waitFor(t, "5,000", func() bool { return a.len() == 5000 })
	require.NoError(t, a.c.Stop())

	p.Publish(generated(5000, 3000))
	b := startConsumer(t, cfg)
	t.Cleanup(func() { _ = b.c.Stop() })
	waitFor(t, "the 3,000 after the commit", func() bool { return b.len() == 3000 })
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, 3000, b.len())
	got := slices.Sorted(func(yield func(string) bool) {
		for _, r := range b.recs {
			yield(key(r))
		}
	})
	want := slices.Sorted(func(yield func(string) bool) {
		for _, r := range generated(5000, 3000) {
			yield(key(r))
		}
	})
	require.Equal(t, want, got)
}

// TestUnreachableKafkaBuffersThenDrops: with no broker, the producer holds
// max_buffered records and counts the rest as dropped, per exporter.
func TestUnreachableKafkaBuffersThenDrops(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	cfg := testConfig([]string{addr})
	cfg.MaxBuffered = 1000
	cfg.FlushTimeout = 200 * time.Millisecond
	reg := prometheus.NewRegistry()
	p := startProducer(t, cfg, reg)
	p.Publish(generated(0, 1500))
	// The promises run on kgo's own goroutine.
	waitFor(t, "500 dropped", func() bool { return testutil.ToFloat64(p.full) == 500 })
	require.Equal(t, int64(1000), p.cl.BufferedProduceRecords())
	dropped := p.Dropped()
	var sum uint64
	for _, n := range dropped {
		sum += n
	}
	require.Len(t, dropped, 8)
	require.Equal(t, uint64(500), sum)
	require.Error(t, p.Stop(), "the buffered records never reached Kafka")
	waitFor(t, "those the stop gave up on counted too", func() bool { return testutil.ToFloat64(p.failed) == 1000 })
}

func TestMalformedRecordCounted(t *testing.T) {
	brokers := cluster(t)
	cfg := testConfig(brokers)
	p := startProducer(t, cfg, nil)
	t.Cleanup(func() { _ = p.Stop() })
	good := AppendFlow(nil, &records()[0])
	bad := append(append([]byte{}, good...), 0x7f, 1)
	raw := p.cl
	for _, v := range [][]byte{good, bad, {0xff}} {
		raw.TryProduce(t.Context(), &kgo.Record{Value: v}, nil)
	}
	k := startConsumer(t, cfg)
	t.Cleanup(func() { _ = k.c.Stop() })
	waitFor(t, "2 flows (the bad record's first one kept)", func() bool { return k.len() == 2 })
	waitFor(t, "2 malformed records", func() bool { return testutil.ToFloat64(k.c.malformed) == 2 })
}

func TestValidate(t *testing.T) {
	f := func(mod func(*Configuration), want string) {
		cfg := DefaultConfiguration()
		mod(&cfg)
		err := cfg.Validate()
		if want == "" {
			require.NoError(t, err)
			return
		}
		require.ErrorContains(t, err, want)
	}
	f(func(*Configuration) {}, "")
	f(func(c *Configuration) { c.Brokers = nil }, "brokers")
	f(func(c *Configuration) { c.Key = "dst" }, "key")
	f(func(c *Configuration) { c.Compression = "brotli" }, "compression")
	f(func(c *Configuration) { c.Group = "" }, "group")
	f(func(c *Configuration) { c.BatchBytes = 10 }, "batch_bytes")
	f(func(c *Configuration) { c.SessionTimeout = 0 }, "session_timeout")
}
