package ring

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tmsd/tmsd/internal/flow"
)

// tagged is record number seq of producer p, every field derived from both so
// that a record read while half-written (or a stale one from an earlier lap) is caught.
func tagged(p, seq uint64) flow.Record {
	id := p<<32 | seq
	var r flow.Record
	for i := range r.SrcAddr {
		r.Exporter[i] = byte(id >> (i % 8 * 8))
		r.SrcAddr[i] = ^byte(id >> (i % 8 * 8))
		r.DstAddr[i] = byte(id>>(i%8*8)) + 1
	}
	r.Bytes, r.Packets, r.Start, r.End = id, ^id, int64(id*3), int64(id*5)
	r.InIf, r.OutIf, r.SrcPort, r.DstPort, r.Proto = uint32(seq), uint32(p), uint16(seq), uint16(p), uint8(seq)
	return r
}

// untag returns the producer and sequence of a tagged record, or an error when
// the record is not one tagged wrote whole.
func untag(r *flow.Record) (p, seq uint64, err error) {
	p, seq = r.Bytes>>32, r.Bytes&(1<<32-1)
	if want := tagged(p, seq); *r != want {
		return p, seq, fmt.Errorf("torn or stale record: got %+v, want %+v", *r, want)
	}
	return p, seq, nil
}

// drain pops from c into a log of (producer, seq) until stop is closed and the
// cursor has caught up, bounded by deadline; short, when non-nil, records the
// last record of every pop that returned less than len(buf). It keeps reading
// after a bad record (returning the first error at the end), so that producers
// waiting for room are not left to the deadline.
func drain(c *Cursor, bufLen int, stop <-chan struct{}, deadline time.Time, short func(p, seq uint64)) (log [][2]uint64, err error) {
	buf := make([]flow.Record, bufLen)
	for spins := 0; ; spins++ {
		n := c.PopBatch(buf)
		for i := range buf[:n] {
			p, seq, terr := untag(&buf[i])
			if terr != nil && err == nil {
				err = fmt.Errorf("record %d: %w", len(log), terr)
			}
			log = append(log, [2]uint64{p, seq})
		}
		if n > 0 && n < len(buf) && short != nil {
			short(log[len(log)-1][0], log[len(log)-1][1])
		}
		if n == 0 {
			select {
			case <-stop:
				if c.Len() == 0 {
					return log, err
				}
			default:
			}
			if spins%64 == 0 && time.Now().After(deadline) {
				return log, errors.Join(err, fmt.Errorf("consumer still waiting at the deadline, %d records read", len(log)))
			}
			runtime.Gosched()
		}
	}
}

// Several producers pushing batches and single records into a small ring, several
// consumers popping with different batch sizes: every consumer gets every
// accepted record exactly once, each producer's in push order, and all consumers
// see the same sequence.
func TestBroadcastEveryConsumerInOrderExactlyOnce(t *testing.T) {
	const producers, perProducer, consumers = 3, 15000, 3
	r := NewBroadcast(256, consumers)
	deadline := time.Now().Add(30 * time.Second)
	accepted := make([][]uint64, producers)
	perrs := make([]error, producers)
	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			batch := make([]flow.Record, 0, 40)
			for b, seq := 0, 0; seq < perProducer; b++ {
				size := min(1+seq%37, perProducer-seq)
				batch = batch[:0]
				for i := range size {
					batch = append(batch, tagged(uint64(p), uint64(seq+i)))
				}
				var n int
				switch {
				case b%2 == 1:
					// Half the batches the way offline import pushes: wait
					// for room, so that the ring does not just drop nearly everything.
					for spins := 0; n < size; spins++ {
						var k int
						if size == 1 {
							if r.TryPush(&batch[0]) {
								k = 1
							}
						} else {
							k = r.TryPushBatch(batch[n:])
						}
						n += k
						if k == 0 {
							if spins%64 == 0 && time.Now().After(deadline) {
								perrs[p] = fmt.Errorf("producer %d still waiting for room at the deadline", p)
								return
							}
							runtime.Gosched()
						}
					}
				case size == 1:
					if r.Push(&batch[0]) {
						n = 1
					}
				default:
					n = r.PushBatch(batch)
				}
				for i := range n {
					accepted[p] = append(accepted[p], uint64(seq+i))
				}
				seq += size
			}
		}()
	}
	stop := make(chan struct{})
	logs := make([][][2]uint64, consumers)
	errs := make([]error, consumers)
	var cwg sync.WaitGroup
	for c := range consumers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			logs[c], errs[c] = drain(r.Consumer(c), []int{1, 7, 64}[c], stop, deadline, nil)
		}()
	}
	pwg.Wait()
	close(stop)
	cwg.Wait()

	var total uint64
	for p := range producers {
		require.NoError(t, perrs[p])
		total += uint64(len(accepted[p]))
	}
	require.Equal(t, total, r.Pushed())
	require.Equal(t, uint64(producers*perProducer), r.Pushed()+r.Dropped())
	require.Positive(t, total)
	for c := range consumers {
		require.NoError(t, errs[c], "consumer %d", c)
		require.Len(t, logs[c], int(total), "consumer %d", c)
		got := make([][]uint64, producers)
		for _, e := range logs[c] {
			got[e[0]] = append(got[e[0]], e[1])
		}
		for p := range producers {
			require.Equal(t, accepted[p], got[p], "consumer %d, producer %d", c, p)
		}
		require.Equal(t, logs[0], logs[c], "consumer %d saw another order than consumer 0", c)
		require.Zero(t, r.Consumer(c).Len())
	}
	require.Zero(t, r.Len())
	t.Logf("pushed %d, dropped %d", r.Pushed(), r.Dropped())
}

func TestBroadcastFullRingDropsAndCounts(t *testing.T) {
	r := NewBroadcast(5, 2) // rounds up to 8
	require.Equal(t, 8, r.Cap())
	require.Equal(t, 2, r.Consumers())
	recs := make([]flow.Record, 20)
	for i := range recs {
		recs[i] = tagged(0, uint64(i))
	}
	out := make([]flow.Record, 16)
	pop := func(c *Cursor, want ...uint64) {
		t.Helper()
		n := c.PopBatch(out)
		got := make([]uint64, 0, n)
		for i := range out[:n] {
			_, seq, err := untag(&out[i])
			require.NoError(t, err)
			got = append(got, seq)
		}
		if want == nil {
			want = []uint64{}
		}
		require.Equal(t, want, got)
	}
	c0, c1 := r.Consumer(0), r.Consumer(1)

	require.Equal(t, 8, r.PushBatch(recs[:10])) // 10 into 8: the first 8, one claim
	require.EqualValues(t, 2, r.Dropped())
	require.False(t, r.Push(&recs[10]))
	require.EqualValues(t, 3, r.Dropped())
	require.Equal(t, 8, r.Len())

	// Consumer 0 reads everything; consumer 1 has read nothing and gates the producers.
	pop(c0, 0, 1, 2, 3, 4, 5, 6, 7)
	pop(c0)
	require.Equal(t, 8, r.Len())
	require.Zero(t, c0.Len())
	require.Equal(t, 8, c1.Len())
	require.False(t, r.Push(&recs[10]))
	require.Zero(t, r.PushBatch(recs[10:12]))
	require.EqualValues(t, 6, r.Dropped())

	// Consumer 1 reads three: three positions free, a batch of ten gets three.
	n := c1.PopBatch(out[:3])
	require.Equal(t, 3, n)
	require.Equal(t, 5, r.Len())
	require.Equal(t, 3, r.PushBatch(recs[10:20]))
	require.EqualValues(t, 13, r.Dropped())
	require.EqualValues(t, 11, r.Pushed())
	pop(c0, 10, 11, 12)
	pop(c1, 3, 4, 5, 6, 7, 10, 11, 12) // nothing of consumer 1's was overwritten
	pop(c1)
	require.Zero(t, r.Len())

	// A batch longer than the whole ring: a ring's worth goes in, the rest drops.
	require.Equal(t, 8, r.PushBatch(recs))
	require.EqualValues(t, 25, r.Dropped())
	pop(c0, 0, 1, 2, 3, 4, 5, 6, 7)
	pop(c1, 0, 1, 2, 3, 4, 5, 6, 7)
}

// Single-threaded, many laps round the ring with batch and pop sizes that do not
// divide its capacity: every consumer reads every record in order.
func TestBroadcastWrapsInOrder(t *testing.T) {
	f := func(size, consumers, batch int, pops []int) {
		t.Helper()
		r := NewBroadcast(size, consumers)
		next := make([]uint64, consumers)
		out := make([]flow.Record, 64)
		recs := make([]flow.Record, batch)
		var seq uint64
		for range 50 * r.Cap() / batch {
			for i := range recs {
				recs[i] = tagged(1, seq+uint64(i))
			}
			require.Equal(t, batch, r.PushBatch(recs), "size %d batch %d", size, batch)
			seq += uint64(batch)
			for c := range consumers {
				for r.Consumer(c).Len() > 0 {
					n := r.Consumer(c).PopBatch(out[:pops[c]])
					require.Positive(t, n)
					for i := range out[:n] {
						_, s, err := untag(&out[i])
						require.NoError(t, err)
						require.Equal(t, next[c], s, "consumer %d", c)
						next[c]++
					}
				}
			}
		}
		require.Zero(t, r.Dropped())
		for c := range consumers {
			require.Equal(t, seq, next[c])
		}
	}
	f(8, 1, 3, []int{5})
	f(8, 2, 8, []int{1, 64})
	f(16, 3, 5, []int{3, 16, 7})
	f(1, 2, 1, []int{1, 4})
}

// A consumer that does not read gates the producers while another drains:
// exactly a ring's worth is accepted, the rest dropped and counted, and the slow
// consumer then reads the first records untouched.
func TestBroadcastSlowConsumerGatesProducers(t *testing.T) {
	const producers, perProducer = 2, 500
	r := NewBroadcast(64, 2)
	stop := make(chan struct{})
	var fast [][2]uint64
	var fastErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		fast, fastErr = drain(r.Consumer(0), 16, stop, time.Now().Add(30*time.Second), nil)
	}()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]flow.Record, 4)
			for seq := 0; seq < perProducer; seq += len(batch) {
				for i := range batch {
					batch[i] = tagged(uint64(p), uint64(seq+i))
				}
				r.PushBatch(batch)
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	require.NoError(t, fastErr)
	require.EqualValues(t, 64, r.Pushed())
	require.EqualValues(t, producers*perProducer-64, r.Dropped())
	require.Len(t, fast, 64)
	require.Equal(t, 64, r.Len())

	out := make([]flow.Record, 128)
	require.Equal(t, 64, r.Consumer(1).PopBatch(out))
	for i := range out[:64] {
		p, seq, err := untag(&out[i])
		require.NoError(t, err)
		require.Equal(t, fast[i], [2]uint64{p, seq}, "record %d", i)
	}
	require.Zero(t, r.Len())
	require.True(t, r.Push(&out[0]), "room again once the slow consumer has read")
}

// Producers publish batches while consumers with room for any whole batch pop:
// a pop that stops short of its buffer (caught up) ends exactly at the end of a
// published batch, never inside one, and no record is read half-written.
func TestBroadcastBatchNeverVisibleHalfWritten(t *testing.T) {
	const producers, perProducer, consumers, maxBatch = 2, 20000, 2, 40
	r := NewBroadcast(128, consumers)
	deadline := time.Now().Add(30 * time.Second)
	// ends[p][seq]: record seq of producer p ended a claim (written by p only, read after).
	ends := make([][]bool, producers)
	errs := make([]error, producers+consumers)
	var pwg sync.WaitGroup
	for p := range producers {
		ends[p] = make([]bool, perProducer)
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			batch := make([]flow.Record, 0, maxBatch)
			for seq := 0; seq < perProducer; {
				size := min(1+(seq*7)%maxBatch, perProducer-seq)
				batch = batch[:0]
				for i := range size {
					batch = append(batch, tagged(uint64(p), uint64(seq+i)))
				}
				for rest, spins := batch, 0; len(rest) > 0; spins++ {
					n := r.TryPushBatch(rest) // one claim: the batch fits the ring
					if n > 0 {
						_, last, _ := untag(&rest[n-1])
						ends[p][last] = true
						rest = rest[n:]
						continue
					}
					if spins%64 == 0 && time.Now().After(deadline) {
						errs[p] = fmt.Errorf("producer %d still waiting for room at the deadline", p)
						return
					}
					runtime.Gosched()
				}
				seq += size
			}
		}()
	}
	stop := make(chan struct{})
	shorts := make([][][2]uint64, consumers)
	logs := make([][][2]uint64, consumers)
	var cwg sync.WaitGroup
	for c := range consumers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			logs[c], errs[producers+c] = drain(r.Consumer(c), 2*maxBatch, stop, deadline, func(p, seq uint64) {
				shorts[c] = append(shorts[c], [2]uint64{p, seq})
			})
		}()
	}
	pwg.Wait()
	close(stop)
	cwg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, r.Dropped(), "TryPushBatch counts nothing")
	for c := range consumers {
		require.Len(t, logs[c], producers*perProducer)
		require.NotEmpty(t, shorts[c], "consumer %d never caught up with the producers: the test checked nothing", c)
		for _, e := range shorts[c] {
			require.True(t, ends[e[0]][e[1]], "consumer %d stopped inside a batch, after record %d of producer %d", c, e[1], e[0])
		}
	}
}

func TestBroadcastTryPushCountsNothing(t *testing.T) {
	r := NewBroadcast(4, 1)
	recs := make([]flow.Record, 6)
	require.Equal(t, 4, r.TryPushBatch(recs))
	require.False(t, r.TryPush(&recs[0]))
	require.Zero(t, r.TryPushBatch(recs))
	require.Zero(t, r.Dropped())
	require.EqualValues(t, 4, r.Pushed())
	require.False(t, r.Push(&recs[0]))
	require.EqualValues(t, 1, r.Dropped())
}

func TestBroadcastZeroAllocs(t *testing.T) {
	r := NewBroadcast(1024, 2)
	recs := make([]flow.Record, 32)
	out := make([]flow.Record, 64)
	allocs := testing.AllocsPerRun(200, func() {
		r.PushBatch(recs)
		r.Push(&recs[0])
		r.TryPush(&recs[1])
		r.Consumer(0).PopBatch(out)
		r.Consumer(1).PopBatch(out)
	})
	require.Zero(t, allocs)
	require.Zero(t, r.Dropped())
}

func TestNewBroadcastNeedsAConsumer(t *testing.T) {
	require.PanicsWithValue(t, "ring: NewBroadcast with 0 consumers, need at least 1", func() { NewBroadcast(8, 0) })
}

// A live reader waits for room while the consumers read, however slowly, and
// drops only what a stalled consumer leaves: a consumer that reads nothing
// for the stall time. Fake time (synctest): the waits are the ring's own.
func TestBroadcastPushBatchWaitDropsOnlyOnAStall(t *testing.T) {
	recs := make([]flow.Record, 20)
	for i := range recs {
		recs[i] = tagged(0, uint64(i))
	}
	synctest.Test(t, func(t *testing.T) {
		r := NewBroadcast(8, 2)
		c0, c1 := r.Consumer(0), r.Consumer(1)
		// Both consumers read a record every millisecond: 20 records into a
		// ring of 8 all get in, in order, with nothing dropped.
		done := make(chan [2][]uint64)
		go func() {
			var got [2][]uint64
			out := make([]flow.Record, 1)
			for len(got[1]) < len(recs) {
				time.Sleep(time.Millisecond)
				for i, c := range []*Cursor{c0, c1} {
					if c.PopBatch(out) == 1 {
						_, seq, err := untag(&out[0])
						if err != nil {
							panic(err)
						}
						got[i] = append(got[i], seq)
					}
				}
			}
			done <- got
		}()
		require.Equal(t, 20, r.PushBatchWait(recs, 5*time.Millisecond))
		require.Zero(t, r.Dropped())
		got := <-done
		want := make([]uint64, 20)
		for i := range want {
			want[i] = uint64(i)
		}
		require.Equal(t, [2][]uint64{want, want}, got)

		// Consumer 1 stops reading: the ring fills, and after the stall the
		// rest of the batch is dropped and counted.
		began := time.Now()
		require.Equal(t, 8, r.PushBatchWait(recs, 5*time.Millisecond))
		require.EqualValues(t, 12, r.Dropped())
		require.GreaterOrEqual(t, time.Since(began), 5*time.Millisecond)
		require.Less(t, time.Since(began), 6*time.Millisecond)
	})
}
