package ring

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tmsd/tmsd/internal/flow"
)

func TestFullRingDropsAndCounts(t *testing.T) {
	r := New(5) // rounds up to 8
	require.Equal(t, 8, r.Cap())
	recs := make([]flow.Record, 10)
	for i := range recs {
		recs[i].Bytes = uint64(i)
	}
	require.Equal(t, 8, r.PushBatch(recs))
	require.EqualValues(t, 2, r.Dropped())
	out := make([]flow.Record, 16)
	n := r.PopBatch(out)
	require.Equal(t, 8, n)
	for i := 0; i < n; i++ {
		require.EqualValues(t, i, out[i].Bytes)
	}
	require.Zero(t, r.PopBatch(out))
}

// Many producers and consumers: every accepted record comes out exactly once.
func TestConcurrentExactlyOnce(t *testing.T) {
	const producers, perProducer = 4, 20000
	r := New(1024)
	var wg sync.WaitGroup
	var accepted [producers]uint64
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			var rec flow.Record
			for i := 0; i < perProducer; i++ {
				rec.Bytes = uint64(p*perProducer + i + 1)
				if r.Push(&rec) {
					accepted[p] += rec.Bytes
				}
			}
		}(p)
	}
	done := make(chan struct{})
	var sums [2]uint64
	var cwg sync.WaitGroup
	for c := 0; c < 2; c++ {
		cwg.Add(1)
		go func(c int) {
			defer cwg.Done()
			buf := make([]flow.Record, 64)
			for {
				n := r.PopBatch(buf)
				for i := 0; i < n; i++ {
					sums[c] += buf[i].Bytes
				}
				if n == 0 {
					select {
					case <-done:
						if r.Len() == 0 {
							return
						}
					default:
					}
				}
			}
		}(c)
	}
	wg.Wait()
	close(done)
	cwg.Wait()
	var want uint64
	for _, a := range accepted {
		want += a
	}
	require.Equal(t, want, sums[0]+sums[1])
}

func BenchmarkPushPop(b *testing.B) {
	r := New(1 << 16)
	batch := make([]flow.Record, 64)
	out := make([]flow.Record, 64)
	b.ReportAllocs()
	for i := 0; i < b.N; i += len(batch) {
		r.PushBatch(batch)
		r.PopBatch(out)
	}
}
