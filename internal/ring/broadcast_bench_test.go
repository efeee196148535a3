package ring

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tmsd/tmsd/internal/flow"
)

// BenchmarkBroadcastPushPop is BenchmarkPushPop's loop (one goroutine, push 64,
// pop 64) on a Broadcast ring, each consumer popping every record; ns/op is per record.
func BenchmarkBroadcastPushPop(b *testing.B) {
	for _, consumers := range []int{1, 2} {
		b.Run(fmt.Sprintf("consumers=%d", consumers), func(b *testing.B) {
			r := NewBroadcast(1<<16, consumers)
			batch := make([]flow.Record, 64)
			out := make([]flow.Record, 64)
			b.ReportAllocs()
			b.ResetTimer() // unlike BenchmarkPushPop, whose 7 B/op is its ring's allocation over b.N
			for i := 0; i < b.N; i += len(batch) {
				r.PushBatch(batch)
				for c := range consumers {
					r.Consumer(c).PopBatch(out)
				}
			}
		})
	}
}

// BenchmarkBroadcastConcurrent: producers and consumers in their own goroutines
// (on this box's 2 cores), producers waiting for room so nothing is lost. ns/op
// is per record pushed, each delivered to every consumer.
func BenchmarkBroadcastConcurrent(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.String(), func(b *testing.B) {
			r := NewBroadcast(1<<16, shape.consumers)
			push := func(recs []flow.Record) int {
				if len(recs) == 1 {
					if r.TryPush(&recs[0]) {
						return 1
					}
					return 0
				}
				return r.TryPushBatch(recs)
			}
			benchConcurrent(b, shape, push, func(c int, dst []flow.Record) int { return r.Consumer(c).PopBatch(dst) }, true)
		})
	}
}

// BenchmarkRingConcurrent is BenchmarkBroadcastConcurrent on the MPMC Ring, where
// each record goes to one of the consumers: the cost of the same traffic when
// it need not be broadcast.
func BenchmarkRingConcurrent(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.String(), func(b *testing.B) {
			r := New(1 << 16)
			push := func(recs []flow.Record) int {
				for i := range recs {
					if !r.TryPush(&recs[i]) {
						return i
					}
				}
				return len(recs)
			}
			benchConcurrent(b, shape, push, func(_ int, dst []flow.Record) int { return r.PopBatch(dst) }, false)
		})
	}
}

type benchShape struct{ producers, consumers, batch int }

func (s benchShape) String() string {
	return fmt.Sprintf("producers=%d/consumers=%d/batch=%d", s.producers, s.consumers, s.batch)
}

var benchShapes = []benchShape{
	{1, 1, 1}, {1, 1, 32}, {2, 1, 1}, {2, 1, 32},
	{1, 2, 1}, {1, 2, 32}, {2, 2, 1}, {2, 2, 32},
}

// benchConcurrent pushes b.N records split among the producers, in batches of
// shape.batch, and returns when the consumers have read them all: every consumer
// all b.N when broadcast, else b.N between them.
func benchConcurrent(b *testing.B, shape benchShape, push func([]flow.Record) int, pop func(c int, dst []flow.Record) int, broadcast bool) {
	b.ReportAllocs()
	var wg sync.WaitGroup
	var consumed atomic.Int64
	for c := range shape.consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]flow.Record, 256)
			var mine int
			for {
				if broadcast && mine >= b.N || !broadcast && consumed.Load() >= int64(b.N) {
					return
				}
				n := pop(c, dst)
				if n == 0 {
					runtime.Gosched()
					continue
				}
				mine += n
				if !broadcast {
					consumed.Add(int64(n))
				}
			}
		}()
	}
	b.ResetTimer()
	for p := range shape.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]flow.Record, shape.batch)
			for i := range batch {
				batch[i].Bytes = uint64(p)
			}
			todo := b.N / shape.producers
			if p == 0 {
				todo += b.N % shape.producers
			}
			for todo > 0 {
				rest := batch[:min(len(batch), todo)]
				for len(rest) > 0 {
					n := push(rest)
					if n == 0 {
						runtime.Gosched()
					}
					rest = rest[n:]
					todo -= n
				}
			}
		}()
	}
	wg.Wait()
}
