package ring

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tmsd/tmsd/internal/flow"
)

// head is the publication word of one position of a Broadcast ring, used only
// where a claimed batch starts: the producer copies the whole batch in, then
// stores seq once, so a batch costs one atomic store whatever its length and a
// consumer sees all of it or none of it.
type head struct {
	seq atomic.Uint64 // pos+1 once the batch starting at pos is published
	n   uint64        // records in that batch; written before seq, read after it
}

// Broadcast is a bounded multi-producer ring in which every record is delivered
// to every consumer, exactly once and in push order (the LMAX Disruptor with one
// cursor per consumer). Producers claim a batch of positions with one CAS on the
// tail; a position is free again only when every consumer has read it, so the
// slowest consumer gates the producers: when it falls a ring behind, pushes are
// refused (and Push counts them dropped), never overwritten. Every consumer must
// keep popping, or the ring fills and stays full.
type Broadcast struct {
	_     [64]byte
	mask  uint64
	size  uint64
	heads []head
	// recs are apart from heads so that batches move with copy (memmove); a
	// position still costs 128 bytes (112 + 16), as a slot with both would:
	// BenchmarkBroadcastPushPop 39 ns/record with 1 consumer and 32 with 2,
	// against 44 and 64 with the seq inline in each slot (median of 5, same
	// run, shared 2-core box).
	recs    []flow.Record
	cursors []Cursor
	_       [64]byte
	tail    atomic.Uint64 // next position to claim
	_       [56]byte
	// gate caches the slowest cursor, always ≤ it (cursors only grow), so a
	// producer reads one shared word per claim and walks the cursors only when
	// the cached value says the ring looks full (the Disruptor's gating sequence).
	gate    atomic.Uint64
	_       [56]byte
	dropped atomic.Uint64
	_       [56]byte
}

// Cursor is one consumer's position in a Broadcast ring. It belongs to one
// goroutine at a time (a shard worker); different cursors are independent.
type Cursor struct {
	_   [64]byte
	pos atomic.Uint64 // next position to read, published after each PopBatch
	_   [56]byte
	// avail is the end of the last batch this consumer saw published: positions
	// below it need no check, the one at it is the next batch's head.
	avail uint64
	r     *Broadcast
}

// NewBroadcast returns a broadcast ring holding at least size records (rounded
// up to a power of two) for the given number of consumers, each of which gets
// every record through Consumer(i).
func NewBroadcast(size, consumers int) *Broadcast {
	if consumers < 1 {
		panic(fmt.Sprintf("ring: NewBroadcast with %d consumers, need at least 1", consumers))
	}
	n := uint64(1)
	for n < uint64(size) {
		n <<= 1
	}
	r := &Broadcast{mask: n - 1, size: n, heads: make([]head, n), recs: make([]flow.Record, n), cursors: make([]Cursor, consumers)}
	for i := range r.cursors {
		r.cursors[i].r = r
	}
	// Write every page now, before any socket is open: a page's first write
	// faults it in, 7–20 µs a 4 KiB page on the project's KVM machine, about
	// 0.1–0.2 s for the default 35 MB ring, which would fall on the first
	// second of traffic.
	for i := 0; i < len(r.recs); i += 4096 / int(unsafe.Sizeof(flow.Record{})) {
		r.recs[i] = flow.Record{}
	}
	for i := 0; i < len(r.heads); i += 4096 / int(unsafe.Sizeof(head{})) {
		r.heads[i].n = 0
	}
	return r
}

// Consumer returns consumer i's cursor, 0 ≤ i < the consumers NewBroadcast was given.
func (r *Broadcast) Consumer(i int) *Cursor { return &r.cursors[i] }

// Consumers is the number of consumers every record is delivered to.
func (r *Broadcast) Consumers() int { return len(r.cursors) }

// Cap is the ring's capacity in records.
func (r *Broadcast) Cap() int { return len(r.recs) }

// Len is the slowest consumer's backlog: the records pushed that it has not read
// yet (an estimate while producers and consumers run).
func (r *Broadcast) Len() int {
	m := r.minCursor() // before the tail: a cursor never passes the tail
	return int(r.tail.Load() - m)
}

// Pushed is the number of records accepted since the ring was made.
func (r *Broadcast) Pushed() uint64 { return r.tail.Load() }

// Dropped is the number of records Push, PushBatch and PushBatchWait refused because the ring was full.
func (r *Broadcast) Dropped() uint64 { return r.dropped.Load() }

// Push adds one record; it returns false (and counts a drop) when the ring is full.
func (r *Broadcast) Push(rec *flow.Record) bool {
	if r.TryPush(rec) {
		return true
	}
	r.dropped.Add(1)
	return false
}

// TryPush adds one record; it returns false when the ring is full, counting
// nothing, for callers that wait and retry (offline import).
func (r *Broadcast) TryPush(rec *flow.Record) bool {
	pos, got := r.claim(1)
	if got == 0 {
		return false
	}
	r.recs[pos&r.mask] = *rec
	h := &r.heads[pos&r.mask]
	h.n = 1
	h.seq.Store(pos + 1)
	return true
}

// PushBatch pushes records in order and returns how many were accepted: all of
// them with one claim when the ring has room, else the first ones that fit; the
// rest were dropped and counted.
func (r *Broadcast) PushBatch(recs []flow.Record) int {
	n := r.TryPushBatch(recs)
	if d := len(recs) - n; d > 0 {
		r.dropped.Add(uint64(d))
	}
	return n
}

// PushBatchWait is PushBatch for a live socket reader: while the ring is full
// it waits for room for as long as the slowest consumer keeps reading, and
// drops (and counts) the rest only once that consumer has read nothing for
// stall. A reader that waits leaves datagrams in its socket's buffer, a second
// buffer behind the ring (32 MiB there: about 0.9 s of v9 at 700k flows/s),
// and under overload stops decoding records only to drop them. Dropping at
// once lost 1.5M flows at a minute's close at 700k flows/s on one core (the
// shards stalled 2 s), with the socket buffer empty throughout.
func (r *Broadcast) PushBatchWait(recs []flow.Record, stall time.Duration) int {
	done := r.TryPushBatch(recs)
	if done == len(recs) {
		return done
	}
	seen, since := r.minCursor(), time.Now()
	for done < len(recs) {
		time.Sleep(20 * time.Microsecond) // gives the consumers the CPU
		done += r.TryPushBatch(recs[done:])
		if m := r.minCursor(); m != seen {
			seen, since = m, time.Now()
		} else if time.Since(since) > stall {
			break
		}
	}
	if d := len(recs) - done; d > 0 {
		r.dropped.Add(uint64(d))
	}
	return done
}

// TryPushBatch is PushBatch counting nothing, for callers that wait and retry
// the rest (offline import).
func (r *Broadcast) TryPushBatch(recs []flow.Record) int {
	done := 0
	for done < len(recs) {
		// A batch longer than the ring is claimed a ring at a time.
		want := min(uint64(len(recs)-done), r.size)
		pos, got := r.claim(want)
		if got > 0 {
			r.publish(pos, recs[done:done+int(got)])
			done += int(got)
		}
		if got < want {
			break // full
		}
	}
	return done
}

// claim reserves up to n (≤ size) consecutive positions, fewer when the ring has
// less room, and returns the first and how many; 0 when the ring is full.
func (r *Broadcast) claim(n uint64) (pos, got uint64) {
	for {
		pos = r.tail.Load()
		got = n
		if gate := r.gate.Load(); pos+got > gate+r.size {
			// Looks full through the cached gate: refresh it from the cursors.
			// A racing producer may store an older minimum; that is only
			// conservative, since the gate must never exceed the slowest cursor.
			gate = r.minCursor()
			r.gate.Store(gate)
			if pos+got > gate+r.size {
				if pos >= gate+r.size {
					return pos, 0 // a stale pos only means the ring is fuller
				}
				got = gate + r.size - pos
			}
		}
		if r.tail.CompareAndSwap(pos, pos+got) {
			return pos, got
		}
	}
}

// publish copies recs into the positions claimed from pos, then makes them
// visible to the consumers with one store on the batch's head.
func (r *Broadcast) publish(pos uint64, recs []flow.Record) {
	first := pos & r.mask
	if k := copy(r.recs[first:], recs); k < len(recs) {
		copy(r.recs, recs[k:]) // wrapped round the end
	}
	h := &r.heads[first]
	h.n = uint64(len(recs))
	h.seq.Store(pos + 1)
}

func (r *Broadcast) minCursor() uint64 {
	m := r.cursors[0].pos.Load()
	for i := 1; i < len(r.cursors); i++ {
		if p := r.cursors[i].pos.Load(); p < m {
			m = p
		}
	}
	return m
}

// PopBatch copies up to len(dst) of the records this consumer has not read yet
// into dst, in push order, and returns how many; 0 when it has caught up. Batches
// published out of order (a slower producer's earlier claim) wait for the
// earlier one: a consumer never skips a position.
func (c *Cursor) PopBatch(dst []flow.Record) int {
	r := c.r
	pos := c.pos.Load()
	n := 0
	for n < len(dst) {
		if pos == c.avail {
			h := &r.heads[pos&r.mask]
			if h.seq.Load() != pos+1 {
				break // the next batch is not published yet
			}
			c.avail = pos + h.n
		}
		k := int(min(c.avail-pos, uint64(len(dst)-n)))
		if m := copy(dst[n:n+k], r.recs[pos&r.mask:]); m < k {
			copy(dst[n+m:n+k], r.recs) // wrapped round the end
		}
		n += k
		pos += uint64(k)
	}
	if n > 0 {
		c.pos.Store(pos)
	}
	return n
}

// Pos is how many records this consumer has read (PopBatch) since the ring
// was made.
func (c *Cursor) Pos() uint64 { return c.pos.Load() }

// Len is this consumer's backlog: the records pushed that it has not read yet.
func (c *Cursor) Len() int {
	p := c.pos.Load() // before the tail: a cursor never passes the tail
	return int(c.r.tail.Load() - p)
}
