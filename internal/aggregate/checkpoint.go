package aggregate

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"
	"slices"
	"time"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// Crash safety. Every CheckpointInterval each minute held in memory (open in
// the shards, or closed and waiting for the store) that changed since its last
// checkpoint is saved as one value that replaces its previous checkpoint: so a
// restart restores each minute once, as of its last checkpoint, and loses only
// what came after. The store never holds a minute's data in both a checkpoint
// and its intervals: the final write of a minute deletes its checkpoint in the
// same transaction as it records the write (store.BeginFinal, which redo-logs
// the intervals because they do not fit in one transaction). Late flows for a
// stored minute open a new minute in memory, checkpointed alone and merged with
// the stored one at its own close: the same protocol.
//
// Checkpoints and flushes hold flushMu, so no checkpoint taken before a final
// write is saved after it. A checkpoint does not stall ingest: each partition
// of a shard's minute is encoded under that shard's lock (the lock a worker
// takes per batch), released between partitions (appendShardSection), and the
// value is written to Badger after.
//
// Cost, BenchmarkCheckpoint -benchmem (one minute of 200k keys in two shards,
// on-disk store, the shared 2-core VM at load 10): 3.2 MB (16 bytes a key);
// encoding 9-15 ms, each shard's lock held for its half of it; encoding and
// writing to Badger 24-32 ms and 3.2 MB allocated (Badger's copy of the value).
// At the default 10 s interval such a minute costs ~19 MB/min of writes, which
// the value log GC reclaims; minutes that did not change are not rewritten.

// runCheckpointer checkpoints every CheckpointInterval until Stop.
func (a *Aggregator) runCheckpointer() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.CheckpointInterval)
	defer t.Stop()
	failed := 0
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		err := a.checkpoint()
		switch {
		case err == nil:
			failed = 0
		case failed == 0 || time.Duration(failed)*a.cfg.CheckpointInterval >= maxBackoff:
			// Once per run of failures, then once a minute.
			a.deps.Logger.Warn("checkpoint failed; open minutes are not saved until it succeeds", "err", err)
			failed = 1
		default:
			failed++
		}
	}
}

// checkpoint saves every minute held in memory whose flow count changed since
// its last checkpoint.
func (a *Aggregator) checkpoint() error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	began := time.Now()

	// pending changes only under flushMu, held here: no viewMu needed to read it.
	now := map[int64]uint64{}
	for _, cm := range a.pending {
		now[cm.start] += flowsOf(cm.shards)
	}
	held, tables := 0, 0
	for _, cm := range a.pending {
		held += cm.keys()
		for _, m := range cm.shards {
			tables += len(m.parts) * len(countedDims)
		}
	}
	for _, s := range a.shards {
		s.mu.Lock()
		for start, m := range s.minutes {
			now[start] += m.flows()
			tables += len(m.parts) * len(countedDims)
		}
		held += s.keys
		s.mu.Unlock()
	}
	a.ckCap = a.checkpointCap(held, tables)
	for start := range a.ckFlows {
		if _, ok := now[start]; !ok {
			delete(a.ckFlows, start) // written, or dropped: its checkpoint went with it
		}
	}
	starts := make([]int64, 0, len(now))
	for start, flows := range now {
		if last, ok := a.ckFlows[start]; !ok || last != flows {
			starts = append(starts, start)
		}
	}
	slices.Sort(starts)

	var written int64
	var err error
	for _, start := range starts {
		var flows uint64
		a.ckBuf, flows = a.encodeCheckpoint(a.ckBuf[:0], start)
		if err = a.deps.Store.PutCheckpoint(time.Unix(start, 0), a.ckBuf); err != nil {
			break
		}
		a.ckFlows[start] = flows
		written += int64(len(a.ckBuf))
	}
	if cap(a.ckBuf) > 4*len(a.ckBuf) && cap(a.ckBuf) > 1<<20 {
		a.ckBuf = nil // the busy minute that grew it is gone
	}
	if err != nil {
		a.ckErrors.Add(1)
		return fmt.Errorf("checkpoint: %w", err)
	}
	a.checkpoints.Add(1)
	a.ckLast.Store(time.Now().UnixNano())
	a.ckBytes.Store(written)
	if a.metrics != nil {
		a.metrics.checkpointSeconds.Observe(time.Since(began).Seconds())
	}
	return nil
}

// checkpointCap bounds what one checkpoint pass writes: the keys of a quarter
// of the memory budget, held keys being 16 bytes each encoded. Past it, under
// a flood of distinct addresses, each table saves its top cap keys by bytes
// (at least 2 × top_k). Writing every key of a flood took 25-50 MB a pass
// into Badger's memory-mapped value log, 245 MB of RSS in 45 s until the log
// GC reclaimed it. Ordinary traffic stays under the bound and restores exactly.
func (a *Aggregator) checkpointCap(held, tables int) int {
	budget := a.shardKeyBudget * len(a.shards) / 4
	if held <= budget || tables == 0 {
		return 0
	}
	return max(2*a.cfg.TopK, budget/tables)
}

// encodeCheckpoint appends the checkpoint of minute start: its pending part
// (immutable once swapped out of the shards), then each shard's part, encoded
// under that shard's lock. It returns the flows it holds.
func (a *Aggregator) encodeCheckpoint(b []byte, start int64) ([]byte, uint64) {
	b = append(b, checkpointFormatV2)
	b = binary.BigEndian.AppendUint64(b, uint64(start))
	var flows uint64
	for _, cm := range a.pending {
		if cm.start == start {
			for _, m := range cm.shards {
				b = appendSection(b, m, a.ckCap)
				flows += m.flows()
			}
		}
	}
	for _, s := range a.shards {
		var f uint64
		b, f = appendShardSection(b, s, start, a.ckCap)
		flows += f
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), flows
}

// appendShardSection appends a shard's part of minute start, if it has one,
// and returns its flows. Without drill-downs it takes the shard's lock once
// per partition, not for the whole minute: under a flood of distinct
// addresses a minute holds millions of keys, and one hold of the lock for
// all of them (hundreds of ms) let the ring overflow at 1M flows/s. Each
// partition is then saved whole, as of a slightly different instant, which a
// restart restores exactly as such. The drill-down tables count the flows of
// every partition, so with them the minute is encoded in one hold, to stay
// consistent with its partitions.
func appendShardSection(b []byte, s *shard, start int64, limit int) ([]byte, uint64) {
	s.mu.Lock()
	m := s.minutes[start]
	if m == nil || m.drill[0] != nil {
		defer s.mu.Unlock()
		if m == nil {
			return b, 0
		}
		return appendSection(b, m, limit), m.flows()
	}
	// The worker may add partitions meanwhile: they go to the next checkpoint,
	// as the flows count returned tells it.
	refs := make([]partRef, 0, len(m.parts))
	for k, p := range m.parts {
		refs = append(refs, partRef{k, p})
	}
	s.mu.Unlock()
	b = binary.AppendUvarint(b, uint64(len(refs)))
	var flows uint64
	for _, r := range refs {
		s.mu.Lock()
		b = appendPart(b, r.key, r.t, limit)
		flows += r.t.total.Flows
		s.mu.Unlock()
	}
	return append(b, 0), flows // no drill-down tables
}

// Checkpoint value (docs/STORAGE.md):
//
//	0x02 | start (8, BE unix seconds) | section… | crc32c (4, LE)
//	section:   nparts (uvarint) | nparts × part | drill (1: 0 or 1) | drill × 6 × table
//	part:      exporter (16) | proto (1) | in_if (4 BE) | out_if (4 BE) | flags (1) |
//	           total (3 uvarint) | 7 × table
//	table:     evicted (3 uvarint) | n (uvarint) | n × (key length (1) | key | counters (3 uvarint))
//
// flags: bit 0, the partition is not split by interface (restored from
// format 1). The 6 tables after the parts are the minute's drill-down
// composite tables (drill.go), keys of up to 40 bytes. Format 1 (written
// before interfaces and drill-downs) has neither the interfaces, the flags nor
// the drill byte: it is still restored, into partitions in no interface scope
// and a minute without composite tables.
//
// A section is one shard's (or one pending) minuteAgg; the dims are countedDims
// in order; keys are trimmed of trailing zeros. Restored, section i goes to
// shard i mod shards, so the shard count may change between runs.
const (
	checkpointFormatV1 = 1
	checkpointFormatV2 = 2
)

const partNoIf = 1 << 0

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// minEntryLen is the smallest encoded key: a zero length and three one-byte counters.
const minEntryLen = 4

// appendSection appends a minute's partitions, each table cut to its limit
// keys (0: whole), and its drill-down tables (whole).
func appendSection(b []byte, m *minuteAgg, limit int) []byte {
	// One growth for the section, not one per doubling, while the shard is locked.
	b = slices.Grow(b, 8+len(m.parts)*(26+14*3*binary.MaxVarintLen64)+m.keys*(1+len(wideKey{})+3*binary.MaxVarintLen64))
	b = binary.AppendUvarint(b, uint64(len(m.parts)))
	for pk, p := range m.parts {
		b = appendPart(b, pk, p, limit)
	}
	if m.drill[0] == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	for _, t := range m.drill {
		b = appendCounters(b, t.evicted)
		b = binary.AppendUvarint(b, uint64(t.counts.n))
		for i := range t.counts.slots {
			sl := &t.counts.slots[i]
			if sl.tag == 0 {
				continue
			}
			n := wideKeyLen(&sl.key)
			b = append(b, byte(n))
			b = append(b, sl.key[:n]...)
			b = appendCounters(b, sl.c)
		}
	}
	return b
}

func appendPart(b []byte, pk partKey, p *partTables, limit int) []byte {
	keys := 0
	for _, d := range countedDims {
		keys += p.dims[d].len()
	}
	b = slices.Grow(b, 26+14*3*binary.MaxVarintLen64+keys*(1+len(topn.Key{})+3*binary.MaxVarintLen64))
	b = append(b, pk.exporter[:]...)
	b = append(b, pk.proto)
	b = binary.BigEndian.AppendUint32(b, pk.inIf)
	b = binary.BigEndian.AppendUint32(b, pk.outIf)
	var flags byte
	if pk.noIf {
		flags |= partNoIf
	}
	b = append(b, flags)
	b = appendCounters(b, p.total)
	for _, d := range countedDims {
		b = appendTable(b, p.dims[d], limit)
	}
	return b
}

// appendTable appends a table, cut to its limit keys with the most bytes
// when it holds more (limit 0: whole). The cut is a compaction of the saved
// copy: the dropped keys' largest counters join its evicted bound, so a
// restored table's figures stay true within their error bounds.
func appendTable(b []byte, t *dimTable, limit int) []byte {
	c := t.cutTo(limit)
	b = appendCounters(b, c.bound)
	b = binary.AppendUvarint(b, uint64(c.n))
	c.each(t, func(sl *counterSlot) { b = appendSlot(b, sl) })
	return b
}

func appendSlot(b []byte, sl *counterSlot) []byte {
	n := keyLen(&sl.key)
	b = append(b, byte(n))
	b = append(b, sl.key[:n]...)
	return appendCounters(b, sl.c)
}

func wideKeyLen(k *wideKey) int {
	n := len(k)
	for n > 0 && k[n-1] == 0 {
		n--
	}
	return n
}

// keyLen is the length of k without its trailing zero bytes, a word at a time:
// a port key is 3 bytes of 24.
func keyLen(k *topn.Key) int {
	for i := len(k)/8 - 1; i >= 0; i-- {
		if w := binary.LittleEndian.Uint64(k[i*8:]); w != 0 {
			return i*8 + 8 - bits.LeadingZeros64(w)/8
		}
	}
	return 0
}

func appendCounters(b []byte, c topn.Counters) []byte {
	b = binary.AppendUvarint(b, c.Bytes)
	b = binary.AppendUvarint(b, c.Packets)
	return binary.AppendUvarint(b, c.Flows)
}

// decodeCheckpoint decodes the checkpoint of minute start into its sections.
// Malformed input gives an error wrapping store.ErrCorrupt, never a panic.
func decodeCheckpoint(v []byte, start int64) ([]*minuteAgg, error) {
	corrupt := func(what string) error {
		return fmt.Errorf("%w: checkpoint of %s: %s", store.ErrCorrupt, time.Unix(start, 0).UTC().Format(time.RFC3339), what)
	}
	if len(v) < 1+8+4 {
		return nil, corrupt("too short")
	}
	body := v[:len(v)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(v[len(body):]) {
		return nil, corrupt("checksum mismatch")
	}
	format := body[0]
	if format != checkpointFormatV1 && format != checkpointFormatV2 {
		return nil, corrupt(fmt.Sprintf("unknown format %d", body[0]))
	}
	if int64(binary.BigEndian.Uint64(body[1:])) != start {
		return nil, corrupt("minute does not match its key")
	}
	d := decoder{b: body[9:]}
	var out []*minuteAgg
	for len(d.b) > 0 {
		nparts := d.uvarint()
		if d.bad || nparts > uint64(len(d.b)/(17+3+len(countedDims)*4)) {
			return nil, corrupt("bad partition count")
		}
		m := newMinuteAgg(false, nil)
		for range nparts {
			var pk partKey
			var flags byte
			if format == checkpointFormatV1 {
				if len(d.b) < 17 {
					return nil, corrupt("truncated partition")
				}
				pk.noIf = true
			} else {
				if len(d.b) < 26 {
					return nil, corrupt("truncated partition")
				}
				pk.inIf = binary.BigEndian.Uint32(d.b[17:21])
				pk.outIf = binary.BigEndian.Uint32(d.b[21:25])
				flags = d.b[25]
				if flags&^partNoIf != 0 {
					return nil, corrupt("unknown partition flags")
				}
				pk.noIf = flags&partNoIf != 0
			}
			pk.exporter = flow.Addr(d.b[:16])
			pk.proto = d.b[16]
			if format == checkpointFormatV1 {
				d.b = d.b[17:]
			} else {
				d.b = d.b[26:]
			}
			if m.parts[pk] != nil {
				return nil, corrupt("duplicate partition")
			}
			p := &partTables{total: d.counters()}
			for _, dim := range countedDims {
				evicted := d.counters()
				n := d.uvarint()
				if d.bad || n > uint64(len(d.b))/minEntryLen {
					return nil, corrupt("bad key count")
				}
				t := &dimTable{counts: newCounterTable(int(n)), evicted: evicted}
				for range n {
					var k topn.Key
					if !d.key(k[:]) {
						return nil, corrupt("bad key")
					}
					c := d.counters()
					if d.bad || !t.counts.add(&k, c) {
						return nil, corrupt("bad or duplicate key")
					}
				}
				p.dims[dim] = t
			}
			if d.bad {
				return nil, corrupt("truncated partition")
			}
			m.parts[pk] = p
		}
		if format != checkpointFormatV1 {
			if len(d.b) == 0 || d.b[0] > 1 {
				return nil, corrupt("bad drill-down flag")
			}
			hasDrill := d.b[0] == 1
			d.b = d.b[1:]
			for i := range m.drill {
				if !hasDrill {
					break
				}
				evicted := d.counters()
				n := d.uvarint()
				if d.bad || n > uint64(len(d.b))/minEntryLen {
					return nil, corrupt("bad drill-down key count")
				}
				t := &drillTable{counts: newWideTable(int(n)), evicted: evicted}
				for range n {
					var k wideKey
					if !d.key(k[:]) {
						return nil, corrupt("bad drill-down key")
					}
					c := d.counters()
					if d.bad || !t.counts.add(&k, c) {
						return nil, corrupt("bad or duplicate drill-down key")
					}
				}
				m.drill[i] = t
			}
		}
		m.keys = m.countKeys()
		out = append(out, m)
	}
	return out, nil
}

// decoder reads uvarints; past a malformed or truncated one, bad is set and
// every later read returns zero.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return x
}

// key reads a length-prefixed key into dst, whose tail stays zero (keys are
// stored trimmed of trailing zeros); false when it is longer than dst or
// truncated (counters must still follow it).
func (d *decoder) key(dst []byte) bool {
	if len(d.b) == 0 || int(d.b[0]) > len(dst) || int(d.b[0]) >= len(d.b) {
		return false
	}
	n := int(d.b[0])
	copy(dst, d.b[1:1+n])
	d.b = d.b[1+n:]
	return true
}

func (d *decoder) counters() topn.Counters {
	return topn.Counters{Bytes: d.uvarint(), Packets: d.uvarint(), Flows: d.uvarint()}
}

// recover runs at Start, before the workers: it ends the final writes a crash
// interrupted (their records hold the whole minute), restores the checkpoints
// into the shards, and closes the minutes already past their grace. Corrupt
// records are logged and skipped, never fatal. Only an unreadable store is.
func (a *Aggregator) recover() error {
	a.flushMu.Lock()
	var bad []time.Time
	err := a.deps.Store.Finals(func(tier store.Tier, start time.Time, ivs []store.Interval, err error) error {
		if err != nil {
			a.deps.Logger.Error("final write record unreadable: the minute may be partly written", "minute", start, "err", err)
			bad = append(bad, start)
			return nil
		}
		if tier == store.TierMinute {
			a.finals = append(a.finals, &closingMinute{start: start.Unix(), ivs: ivs, written: make([]bool, len(ivs))})
		}
		return nil
	})
	if err != nil {
		a.flushMu.Unlock()
		return fmt.Errorf("aggregate: reading interrupted final writes: %w", err)
	}
	for _, start := range bad {
		if err := a.deps.Store.EndFinal(store.TierMinute, start); err != nil {
			a.deps.Logger.Warn("cannot delete an unreadable final write record", "minute", start, "err", err)
		}
	}

	bad = bad[:0]
	var minutes, flows uint64
	err = a.deps.Store.Checkpoints(func(start time.Time, v []byte) error {
		aggs, err := decodeCheckpoint(v, start.Unix())
		if err != nil {
			a.deps.Logger.Error("checkpoint unreadable, skipped: its minute is lost", "minute", start, "err", err)
			bad = append(bad, start)
			return nil
		}
		f := flowsOf(aggs)
		for i, m := range aggs {
			mergeMinuteInto(a.shards[i%len(a.shards)].minutes, start.Unix(), m)
		}
		a.ckFlows[start.Unix()] = f
		minutes++
		flows += f
		return nil
	})
	if err != nil {
		a.flushMu.Unlock()
		return fmt.Errorf("aggregate: reading checkpoints: %w", err)
	}
	for _, start := range bad {
		if err := a.deps.Store.DeleteCheckpoint(start); err != nil {
			a.deps.Logger.Warn("cannot delete an unreadable checkpoint", "minute", start, "err", err)
		}
	}
	for _, s := range a.shards {
		s.keys = 0
		for _, m := range s.minutes {
			m.keys = m.countKeys()
			s.keys += m.keys
		}
	}
	a.pendingCount.Store(int64(len(a.finals)))
	a.flushMu.Unlock()
	if minutes > 0 || len(a.finals) > 0 {
		a.deps.Logger.Info("restored after an unclean stop", "checkpointed_minutes", minutes, "flows", flows,
			"final_writes_resumed", len(a.finals))
	}
	// The store failing now is not fatal: what is not written waits in memory.
	if err := a.FlushBefore(a.deps.Clock()); err != nil {
		a.flushErrors.Add(1)
		a.deps.Logger.Warn("closing restored minutes failed; retried by the flusher", "err", err)
	}
	return nil
}
