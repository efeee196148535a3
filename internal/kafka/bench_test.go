package kafka

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

// The scale-out benchmarks run against kfake, in this process: the broker
// takes CPU from the same cores as the client measured, so these figures are
// a floor for a real cluster on its own machines (docs/SCALE-OUT.md).

// BenchmarkPublish: a collector's producer, from decoded flows to records
// acknowledged by the broker (encoding, batching, lz4, the wire).
func BenchmarkPublish(b *testing.B) {
	cfg := benchConfig(b)
	p, err := NewProducer(cfg, ProducerDependencies{})
	require.NoError(b, err)
	require.NoError(b, p.Start())
	batch := generated(0, 1024)
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += len(batch) {
		p.Publish(batch[:min(len(batch), b.N-sent)])
	}
	require.NoError(b, p.Stop()) // waits for every acknowledgement
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "flows/s")
	require.Equal(b, float64(b.N), testutil.ToFloat64(p.sent))
}

// BenchmarkConsume: aggregators of one group reading a topic of b.N flows
// to their sinks (fetch, decompression, FlowMessage decoding), 1 and 2 of
// them; the aggregation after the sink is BenchmarkAdd's.
func BenchmarkConsume(b *testing.B) {
	for _, members := range []int{1, 2} {
		b.Run(fmt.Sprint(members), func(b *testing.B) {
			cfg := benchConfig(b)
			p, err := NewProducer(cfg, ProducerDependencies{})
			require.NoError(b, err)
			require.NoError(b, p.Start())
			batch := generated(0, 1024)
			for sent := 0; sent < b.N; sent += len(batch) {
				p.Publish(batch[:min(len(batch), b.N-sent)])
			}
			require.NoError(b, p.Stop())

			var got atomic.Int64
			var once sync.Once
			done := make(chan struct{})
			sink := func(recs []flow.Record) {
				if got.Add(int64(len(recs))) >= int64(b.N) {
					once.Do(func() { close(done) })
				}
			}
			b.ResetTimer()
			start := time.Now()
			var cs []*Consumer
			for range members {
				c, err := NewConsumer(cfg, ConsumerDependencies{Sink: sink})
				require.NoError(b, err)
				require.NoError(b, c.Start())
				cs = append(cs, c)
			}
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				b.Fatalf("%d of %d flows consumed", got.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "flows/s")
			b.StopTimer()
			for _, c := range cs {
				require.NoError(b, c.Stop())
			}
			require.Equal(b, int64(b.N), got.Load(), "each flow once")
		})
	}
}

// benchConfig is testConfig with room for the flush of millions of records.
func benchConfig(b *testing.B) Configuration {
	cfg := testConfig(cluster(b))
	cfg.FlushTimeout = 5 * time.Minute
	return cfg
}
