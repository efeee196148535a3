// Package ring owns the bounded lock-free queues of flow records from the decoders to the aggregator.
// Ring is Vyukov's MPMC queue (a sequence per slot, CAS on head and tail): each record to one consumer.
// Broadcast is a Disruptor (a CAS claims a batch, a store publishes it, a cursor per consumer, the
// slowest gating producers): each record to every consumer. Full, both refuse: a reader never blocks.
package ring

import (
	"runtime"
	"sync/atomic"

	"github.com/tmsd/tmsd/internal/flow"
)

type slot struct {
	seq atomic.Uint64
	rec flow.Record
}

// Ring is a bounded multi-producer multi-consumer queue of flow records.
type Ring struct {
	_       [64]byte
	head    atomic.Uint64 // next position to pop
	_       [56]byte
	tail    atomic.Uint64 // next position to push
	_       [56]byte
	dropped atomic.Uint64
	mask    uint64
	slots   []slot
}

// New returns a ring holding at least size records (rounded up to a power of two).
func New(size int) *Ring {
	n := uint64(1)
	for n < uint64(size) {
		n <<= 1
	}
	r := &Ring{mask: n - 1, slots: make([]slot, n)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// Cap is the ring's capacity in records.
func (r *Ring) Cap() int { return len(r.slots) }

// Len is an estimate of the records waiting.
func (r *Ring) Len() int {
	t, h := r.tail.Load(), r.head.Load()
	if t < h {
		return 0
	}
	return int(t - h)
}

// Pushed is the number of records accepted since the ring was made.
func (r *Ring) Pushed() uint64 { return r.tail.Load() }

// Dropped is the number of records refused because the ring was full.
func (r *Ring) Dropped() uint64 { return r.dropped.Load() }

// Push adds one record; it returns false (and counts a drop) when the ring is full.
func (r *Ring) Push(rec *flow.Record) bool {
	if r.TryPush(rec) {
		return true
	}
	r.dropped.Add(1)
	return false
}

// TryPush adds one record; it returns false when the ring is full, counting
// nothing, for callers that wait and retry (offline import).
func (r *Ring) TryPush(rec *flow.Record) bool {
	pos := r.tail.Load()
	for {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch diff := int64(seq) - int64(pos); {
		case diff == 0:
			if r.tail.CompareAndSwap(pos, pos+1) {
				s.rec = *rec
				s.seq.Store(pos + 1)
				return true
			}
			pos = r.tail.Load()
		case diff < 0:
			return false
		default:
			pos = r.tail.Load()
		}
	}
}

// PushBatch pushes records in order and returns how many were accepted; the rest
// were dropped and counted.
func (r *Ring) PushBatch(recs []flow.Record) int {
	for i := range recs {
		if !r.Push(&recs[i]) {
			r.dropped.Add(uint64(len(recs) - i - 1))
			return i
		}
	}
	return len(recs)
}

// PopBatch moves up to len(dst) records into dst and returns how many; 0 when empty.
func (r *Ring) PopBatch(dst []flow.Record) int {
	n := 0
	pos := r.head.Load()
	for n < len(dst) {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch diff := int64(seq) - int64(pos+1); {
		case diff == 0:
			if r.head.CompareAndSwap(pos, pos+1) {
				dst[n] = s.rec
				s.seq.Store(pos + r.mask + 1)
				n++
				pos++
				continue
			}
			pos = r.head.Load()
		case diff < 0:
			return n
		default:
			pos = r.head.Load()
		}
		runtime.Gosched()
	}
	return n
}
