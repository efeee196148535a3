package aggregate

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
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
// write is saved after it. A checkpoint does not stall ingest: a shard's lock
// is held only to copy one table's slots (a memory copy), and the copy is
// encoded after; the value is written to Badger after that.

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
	return a.checkpointLocked()
}

// Checkpoint saves now what checkpoint saves every CheckpointInterval: with
// a Source, everything it handed on, and then tells it so. The Kafka
// consumer calls it before it gives partitions away.
func (a *Aggregator) Checkpoint() error { return a.checkpoint() }

// checkpointLocked is one pass, under flushMu. With a Source, the feed is
// paused while the pass is encoded (after the shards have counted all it
// handed on), so the pass holds exactly the flows up to the position it
// records; the pass is then written as one (store.PutCheckpoints) and the
// source told it is durable. Ingest waits for the encoding, not the write:
// Kafka holds the backlog meanwhile.
func (a *Aggregator) checkpointLocked() error {
	began := time.Now()
	src := a.deps.Source
	var pos []byte
	resume := func() {}
	if src != nil {
		pos = src.Pause()
		paused := true
		resume = func() {
			if paused {
				paused = false
				src.Resume()
			}
		}
		defer resume()
		if err := a.Sync(time.Minute); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}

	// pending changes only under flushMu, held here: no viewMu needed to read it.
	// Each shard counts every flow: the sum of its minutes' counts changes
	// when any of them does.
	now := map[int64]uint64{}
	held, scopes := 0, 0
	for _, cm := range a.pending {
		for _, m := range cm.shards {
			if m != nil {
				now[cm.start] += m.flowCount
				k, s := m.census()
				held, scopes = held+k, scopes+s
			}
		}
	}
	for _, s := range a.shards {
		s.mu.Lock()
		for start, m := range s.minutes {
			now[start] += m.flowCount
			k, sc := m.census()
			held, scopes = held+k, scopes+sc
		}
		s.mu.Unlock()
	}
	a.ckCap = a.checkpointCap(held, scopes)
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

	cks := make([]store.Checkpoint, len(starts))
	flows := make([]uint64, len(starts))
	var written int64
	for i, start := range starts {
		if i == len(a.ckBufs) {
			a.ckBufs = append(a.ckBufs, nil)
		}
		a.ckBufs[i], flows[i] = a.encodeCheckpoint(a.ckBufs[i][:0], start)
		cks[i] = store.Checkpoint{Start: time.Unix(start, 0), Value: a.ckBufs[i]}
		written += int64(len(a.ckBufs[i]))
	}
	resume()
	var err error
	if len(cks) > 0 || src != nil {
		err = a.deps.Store.PutCheckpoints(cks, pos)
	}
	for i, b := range a.ckBufs {
		if cap(b) > 4*len(b) && cap(b) > 1<<20 {
			a.ckBufs[i] = nil // the busy minute that grew it is gone
		}
	}
	a.account(0)
	if err != nil {
		a.ckErrors.Add(1)
		return fmt.Errorf("checkpoint: %w", err)
	}
	for i, start := range starts {
		a.ckFlows[start] = flows[i]
	}
	if src != nil {
		if err := src.Durable(pos); err != nil {
			a.ckErrors.Add(1)
			return fmt.Errorf("checkpoint: saved, but the source could not record it: %w", err)
		}
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
// of the memory budget (at 64 bytes a key held, BenchmarkAdd's 60-90 B/key;
// 12-16 bytes encoded). Past it, under a flood of distinct addresses, each
// scope of each table saves its top cap keys by bytes, at least 64. Writing
// every key of a flood took 25-50 MB a pass into Badger's memory-mapped value
// log, 245 MB of RSS in 45 s until the log GC reclaimed it. Ordinary traffic
// stays under the bound and restores exactly.
func (a *Aggregator) checkpointCap(held, scopes int) int {
	budget := int(a.cfg.MaxMemory / 64 / 4)
	if held <= budget || scopes == 0 {
		return 0
	}
	return max(64, budget/scopes)
}

// encodeCheckpoint appends the checkpoint of minute start: its pending part
// (immutable once swapped out of the shards), then each shard's part, copied
// table by table under that shard's lock. It returns the flows it holds, as
// checkpoint() counts them.
func (a *Aggregator) encodeCheckpoint(b []byte, start int64) ([]byte, uint64) {
	b = append(b, checkpointFormatV3)
	b = binary.BigEndian.AppendUint64(b, uint64(start))
	var flows uint64
	sc := &ckScratch{}
	for _, cm := range a.pending {
		if cm.start != start {
			continue
		}
		for i, m := range cm.shards {
			if m != nil {
				b = appendSection(b, i, m, a.ckCap, nil, sc)
				flows += m.flowCount
			}
		}
	}
	for _, s := range a.shards {
		s.mu.Lock()
		m := s.minutes[start]
		if m == nil {
			s.mu.Unlock()
			continue
		}
		flows += m.flowCount
		b = appendSection(b, s.id, m, a.ckCap, &s.mu, sc)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), flows
}

// ckScratch are a checkpoint pass's buffers: a table's copy and its encoding.
type ckScratch struct {
	copy  table
	tabs  []byte
	group scratch
	// an open minute's country and AS tables folded for this section, and
	// the copy of its ends they were folded by
	derived [numSpecs]*table
	ends    []endSlot
}

// appendSection appends one shard's minute. When mu is set it is held on
// entry, and the minute is still counting: each table is copied under mu,
// released while the copy is encoded, and the dictionaries are taken last
// (they only grow, so they name every key copied before). It returns with mu
// released.
func appendSection(b []byte, shard int, m *minuteAgg, limit int, mu *sync.Mutex, sc *ckScratch) []byte {
	tabs := sc.tabs[:0]
	n := 0
	sc.derived = [numSpecs]*table{}
	for i := range m.tables {
		t := m.tables[i]
		if t == nil {
			continue
		}
		n++
		if d := sc.derived[i]; d != nil {
			// A country or AS table, folded with its address table's copy.
			if mu != nil {
				mu.Unlock()
			}
			tabs = appendTable(tabs, i, d, limit, &sc.group)
			if mu != nil {
				mu.Lock()
			}
			continue
		}
		t.settle()
		// An open minute's countries and ASes are saved as close will
		// read them, folded from its address tables (materialize): the
		// checkpoint's tables count every flow it holds, and restore reads
		// them so. The fold's inputs are taken with the address table's
		// copy, under the same lock.
		fold := spills[i] != nil && !m.direct
		var ends endDict
		if fold {
			for _, j := range spills[i] {
				if m.tables[j] != nil {
					m.tables[j].settle()
					sc.derived[j] = m.tables[j].clone()
				}
			}
			ends = m.ends
			if mu != nil {
				sc.ends = append(sc.ends[:0], m.ends.slots...)
				ends.slots = sc.ends
			}
		}
		if mu != nil {
			sc.copy.slots = append(sc.copy.slots[:0], t.slots...)
			sc.copy.scopeN = append(sc.copy.scopeN[:0], t.scopeN...)
			sc.copy.evicted = append(sc.copy.evicted[:0], t.evicted...)
			sc.copy.nonzero = append(sc.copy.nonzero[:0], t.nonzero...)
			sc.copy.n, sc.copy.shift, sc.copy.scoped, sc.copy.base = t.n, t.shift, t.scoped, t.base
			mu.Unlock()
			t = &sc.copy
		}
		if fold {
			t.each(func(k uint64, c topn.Counters) {
				if e, ok := ends.get(valueOf(k)); ok {
					spillTo(&sc.derived, i, scopeOf(k), e, c)
				}
			})
		}
		tabs = appendTable(tabs, i, t, limit, &sc.group)
		if mu != nil {
			mu.Lock()
		}
	}
	b = binary.AppendUvarint(b, uint64(shard))
	b = binary.AppendUvarint(b, m.flowCount)
	b = binary.AppendUvarint(b, uint64(len(m.exps)))
	for _, e := range m.exps {
		b = append(b, e[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.parts.keys)))
	for _, k := range m.parts.keys {
		b = binary.AppendUvarint(b, k>>8)
		b = append(b, byte(k))
	}
	b = binary.AppendUvarint(b, uint64(len(m.ifs.keys)))
	for _, k := range m.ifs.keys {
		b = binary.AppendUvarint(b, k>>32)
		b = binary.AppendUvarint(b, k&0xffffffff)
	}
	b = binary.AppendUvarint(b, uint64(len(m.v6)))
	for _, a := range m.v6 {
		b = append(b, a[:]...)
	}
	if mu != nil {
		mu.Unlock()
	}
	b = binary.AppendUvarint(b, uint64(n))
	sc.tabs = tabs
	return append(b, tabs...)
}

// appendTable appends table i, each scope cut to its limit keys with the most
// bytes when it holds more (limit 0: whole). The cut is a compaction of the
// saved copy: the dropped keys' largest counters join the scope's bound, so
// a restored table's figures stay true within their error bounds.
func appendTable(b []byte, i int, t *table, limit int, sc *scratch) []byte {
	b = binary.AppendUvarint(b, uint64(i))
	b = appendCounters(b, t.base)
	evicted := slices.Clone(t.evicted)
	var cuts []cut
	if limit > 0 {
		t.group(sc)
		cuts = make([]cut, len(t.scopeN))
		for s := range t.scopeN {
			g := sc.idx[sc.start[s]:sc.start[s+1]]
			cuts[s] = t.cutGroup(g, limit, sc)
			evicted[s].Add(cuts[s].dropped)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(evicted)))
	for _, e := range evicted {
		b = appendCounters(b, e)
	}
	b = binary.AppendUvarint(b, uint64(len(t.nonzero)))
	for _, nz := range t.nonzero {
		b = appendCounters(b, nz)
	}
	if cuts == nil {
		b = binary.AppendUvarint(b, uint64(t.n))
		for j := range t.slots {
			if s := &t.slots[j]; s.key != 0 {
				b = binary.AppendUvarint(b, s.key-1)
				b = appendCounters(b, s.c)
			}
		}
		return b
	}
	kept := 0
	for s := range t.scopeN {
		if cuts[s].all {
			kept += int(t.scopeN[s])
		} else {
			kept += limit
		}
	}
	b = binary.AppendUvarint(b, uint64(kept))
	for s := range t.scopeN {
		ties := cuts[s].atCut
		for _, j := range sc.idx[sc.start[s]:sc.start[s+1]] {
			if sl := &t.slots[j]; cuts[s].keeps(sl, &ties) {
				b = binary.AppendUvarint(b, sl.key-1)
				b = appendCounters(b, sl.c)
			}
		}
	}
	return b
}

// Checkpoint value (docs/STORAGE.md):
//
//	0x03 | start (8, BE unix seconds) | section… | crc32c (4, LE)
//	section:   shard (uvarint) | flows (uvarint) |
//	           nexp (uvarint) | nexp × exporter (16) |
//	           nparts (uvarint) | nparts × (exporter id (uvarint) | proto (1)) |
//	           nifs (uvarint) | nifs × (exporter id (uvarint) | ifIndex (uvarint)) |
//	           nv6 (uvarint) | nv6 × address (16) |
//	           ntables (uvarint) | ntables × table
//	table:     spec (uvarint) | base (3 uvarint) | nscopes (uvarint) | nscopes × bound (3 uvarint) |
//	           nnz (uvarint) | nnz × counted (3 uvarint) |
//	           n (uvarint) | n × (key (uvarint) | counters (3 uvarint))
//
// counted: per scope, what a table that leaves out value 0 (countries, ASes)
// counted, its zero row being the scope's total less it.
//
// A section is one shard's minute (or a pending one's); a key's scope and
// value are ids of the section's dictionaries (layout.go). Restored, each
// table goes to the shard that owns it now, its keys re-read through its
// new minute's dictionaries, so the shard count may change between runs.
// Formats 1 and 2 (the engine of partitions by exporter, protocol and
// interfaces) are still restored, converted (legacy.go).
const (
	checkpointFormatV1 = 1
	checkpointFormatV2 = 2
	checkpointFormatV3 = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendCounters(b []byte, c topn.Counters) []byte {
	b = binary.AppendUvarint(b, c.Bytes)
	b = binary.AppendUvarint(b, c.Packets)
	return binary.AppendUvarint(b, c.Flows)
}

// decodeCheckpoint decodes the checkpoint of minute start into its sections:
// one minute each, with the tables it saved (format 3, or formats 1 and 2
// converted). Malformed input gives an error wrapping store.ErrCorrupt,
// never a panic.
func (a *Aggregator) decodeCheckpoint(v []byte, start int64) ([]*minuteAgg, error) {
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
	if int64(binary.BigEndian.Uint64(body[1:])) != start {
		return nil, corrupt("minute does not match its key")
	}
	switch body[0] {
	case checkpointFormatV1, checkpointFormatV2:
		return a.decodeLegacy(body, start, corrupt)
	case checkpointFormatV3:
	default:
		return nil, corrupt(fmt.Sprintf("unknown format %d", body[0]))
	}
	d := decoder{b: body[9:]}
	var out []*minuteAgg
	for len(d.b) > 0 {
		m := newMinuteAgg(nil, nil, 0, nil)
		d.uvarint() // the shard it was counted in: tables go to their owner now
		m.flowCount = d.uvarint()
		ne := d.uvarint()
		if d.bad || ne > uint64(len(d.b)/16) {
			return nil, corrupt("bad exporter count")
		}
		for range ne {
			e := flow.Addr(d.b[:16])
			d.b = d.b[16:]
			if _, dup := m.expIDs[e]; dup {
				return nil, corrupt("duplicate exporter")
			}
			m.expIDs[e] = uint32(len(m.exps))
			m.exps = append(m.exps, e)
		}
		np := d.uvarint()
		if d.bad || np > uint64(len(d.b)/2) {
			return nil, corrupt("bad partition count")
		}
		for range np {
			e := d.uvarint()
			if d.bad || e >= ne || len(d.b) < 1 {
				return nil, corrupt("bad partition")
			}
			k := e<<8 | uint64(d.b[0])
			d.b = d.b[1:]
			if int(m.parts.id(k)) != len(m.parts.keys)-1 {
				return nil, corrupt("duplicate partition")
			}
		}
		ni := d.uvarint()
		if d.bad || ni > uint64(len(d.b)/2) {
			return nil, corrupt("bad interface count")
		}
		for range ni {
			e, idx := d.uvarint(), d.uvarint()
			if d.bad || e >= ne || idx > 0xffffffff {
				return nil, corrupt("bad interface")
			}
			if int(m.ifs.id(e<<32|idx)) != len(m.ifs.keys)-1 {
				return nil, corrupt("duplicate interface")
			}
		}
		n6 := d.uvarint()
		if d.bad || n6 > uint64(len(d.b)/16) {
			return nil, corrupt("bad address count")
		}
		for range n6 {
			a := flow.Addr(d.b[:16])
			d.b = d.b[16:]
			m.v6IDs[a] = uint32(len(m.v6))
			m.v6 = append(m.v6, a)
		}
		nt := d.uvarint()
		if d.bad || nt > numSpecs {
			return nil, corrupt("bad table count")
		}
		for range nt {
			i := d.uvarint()
			if d.bad || i >= numSpecs || m.tables[i] != nil {
				return nil, corrupt("bad or duplicate table")
			}
			base := d.counters()
			ns := d.uvarint()
			if d.bad || ns > uint64(len(d.b)/3) || ns == 0 {
				return nil, corrupt("bad scope count")
			}
			evicted := make([]topn.Counters, ns)
			for s := range evicted {
				evicted[s] = d.counters()
			}
			nnz := d.uvarint()
			if d.bad || nnz > ns || (nnz > 0 && !specs[i].elides()) {
				return nil, corrupt("bad count of scopes counted")
			}
			nonzero := make([]topn.Counters, nnz)
			for s := range nonzero {
				nonzero[s] = d.counters()
			}
			n := d.uvarint()
			if d.bad || n > uint64(len(d.b)/4) {
				return nil, corrupt("bad key count")
			}
			t := m.newTable(int(i), int(n))
			t.nonzero = nonzero
			t.scopeN = make([]int32, ns)
			t.evicted, t.base = evicted, base
			for range n {
				k, c := d.uvarint(), d.counters()
				if d.bad || !m.validKey(int(i), k, uint64(ns)) || !t.add(k, c) {
					return nil, corrupt("bad or duplicate key")
				}
			}
			if len(t.scopeN) > int(ns) {
				return nil, corrupt("key of an unknown scope")
			}
			m.tables[i] = t
		}
		if d.bad {
			return nil, corrupt("truncated section")
		}
		m.direct = true // see restore
		m.recount()
		out = append(out, m)
	}
	return out, nil
}

// validKey says whether key k of table i names ids m's dictionaries have,
// and a scope below ns.
func (m *minuteAgg) validKey(i int, k, ns uint64) bool {
	sp := specs[i]
	sc, v := scopeOf(k), valueOf(k)
	if sp.kind == scNone {
		sc, v = 0, k
	}
	if sc >= ns {
		return false
	}
	switch sp.kind {
	case scPart:
		if sc >= uint64(len(m.parts.keys)) {
			return false
		}
	case scIn, scOut:
		if sc >= uint64(len(m.ifs.keys)) {
			return false
		}
	}
	switch sp.value {
	case fIn, fOut:
		return v < uint64(len(m.ifs.keys))
	case fSrc, fDst:
		return v <= 0xffffffff && (v&v6Tag != v6Tag || v&^v6Tag < uint64(len(m.v6)))
	case fPeer:
		lo, hi := v>>32, v&0xffffffff
		ok := func(x uint64) bool { return x&v6Tag != v6Tag || x&^v6Tag < uint64(len(m.v6)) }
		return lo <= hi && ok(lo) && ok(hi)
	case fZero:
		return v == 0
	}
	return true
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
		aggs, err := a.decodeCheckpoint(v, start.Unix())
		if err != nil {
			a.deps.Logger.Error("checkpoint unreadable, skipped: its minute is lost", "minute", start, "err", err)
			bad = append(bad, start)
			return nil
		}
		a.restore(start.Unix(), aggs)
		minutes++
		flows += flowsOf(aggs)
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
		s.bytes = 0
		for _, m := range s.minutes {
			m.recount()
			s.bytes += m.bytes
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

// restore puts a checkpoint's minutes into the shards: each table into the
// minute of the shard that owns it now, through its dictionaries. Every
// shard's minute gets the flow count (each shard counts every flow), and
// ckFlows the sum checkpoint() will compare with.
func (a *Aggregator) restore(start int64, aggs []*minuteAgg) {
	flows := flowsOf(aggs)
	var sum uint64
	for _, s := range a.shards {
		dst := s.minutes[start]
		if dst == nil {
			dst = newMinuteAgg(s.own, nil, 0, nil)
			s.minutes[start] = dst
		}
		// A checkpoint's countries and ASes count every flow it holds
		// (appendSection): the minute goes on counting them so.
		dst.materialize()
		for _, src := range aggs {
			for _, i := range s.own {
				if src.tables[i] != nil {
					dst.mergeTable(src, i, a.cfg.MaxKeys)
				}
			}
		}
		dst.flowCount += flows
		dst.recount()
		sum += dst.flowCount
	}
	a.ckFlows[start] = sum
}
