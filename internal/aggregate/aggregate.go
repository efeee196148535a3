// Package aggregate owns the per-minute TopN tables: shard workers pop batches of
// records from the ring and count them into per-shard, per-minute, per-scope maps;
// at minute close (+grace) the shards' minutes are swapped out, merged, cut to the
// top K with exact totals and error bounds, and written to the store. The minutes
// held in memory are checkpointed to the store every few seconds, so a crash loses
// at most that interval and a restart counts nothing twice (checkpoint.go).
package aggregate

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// Configuration of the aggregator.
type Configuration struct {
	// Shards is the number of worker goroutines; 0 means one per CPU.
	Shards int
	// TopK is how many keys per dimension a minute keeps (by each metric).
	TopK int
	// MaxKeys bounds the keys of one table (a dimension of one exporter and
	// protocol, in one shard and minute); past it the table compacts and
	// records an error bound.
	MaxKeys int
	// MaxMemory bounds, in bytes, what the open minutes' tables may hold over
	// all shards. A shard over its share compacts its largest table, so a flood
	// of distinct addresses costs accuracy (shown as error bounds), not memory.
	MaxMemory int64
	// Grace is how long after its end a minute stays open for late flows.
	Grace time.Duration
	// MaxAge is how old an exporter timestamp may be, against the receive time,
	// before the receive time is used instead.
	MaxAge time.Duration
	// BatchSize is how many records a worker pops at once.
	BatchSize int
	// ScopeExporter and ScopeProto keep tables per exporter and per IP protocol,
	// so the API can filter by them.
	ScopeExporter, ScopeProto bool
	// ScopeInterface keeps tables per exporter interface and direction (in:
	// the flows entering by it, out: leaving by it). Off by default: it makes
	// the interface pair part of the partition key, and with 48 interfaces a
	// side (flowgen's default) a v9 run at 900k flows/s dropped 2.47M of 4.5M
	// flows at the ring and peaked at 925 MB RSS, against none and 229 MB
	// without it. Counting interface scopes in their own tables is the fix.
	ScopeInterface bool
	// DrillDowns is how many of each minute's top applications and top
	// addresses (by bytes) get drill-down tables (an application's hosts and
	// ports; an address's applications and peers); 0 turns drill-downs off,
	// and their per-flow counting with them. Above TopK it acts as TopK.
	// Off by default: counting them costs about 3x per flow (BenchmarkAdd,
	// 435-510 ns/flow without, 1,479-1,564 with 100; see drill.go).
	DrillDowns int
	// FlushInterval is how often the flusher looks for minutes to close.
	FlushInterval time.Duration
	// CheckpointInterval is how often the minutes held in memory are saved to the
	// store, bounding what a crash loses; 0 disables checkpoints.
	CheckpointInterval time.Duration
}

// bytesPerKey is what a key costs in a counterTable: a 56-byte slot at a load
// factor between 1/4 and 1/2, plus the entry copy a compaction makes.
const bytesPerKey = 192

// MaxAhead is how far in the future (against the receive time) an exporter
// timestamp may be before it is judged insane.
const MaxAhead = time.Minute

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{
		TopK:          1000,
		MaxKeys:       200_000,
		MaxMemory:     512 << 20,
		Grace:         60 * time.Second,
		MaxAge:        time.Hour,
		BatchSize:     256,
		ScopeExporter: true,
		ScopeProto:    true,

		ScopeInterface: false,
		DrillDowns:     0,
		FlushInterval:  time.Second,

		CheckpointInterval: 10 * time.Second,
	}
}

// Classifier names a flow's application.
type Classifier interface {
	Classify(r *flow.Record) topn.Key
}

// Store is where closed minutes go, and the checkpoints of open ones
// (*store.Store; internal/store/checkpoint.go has the protocol).
type Store interface {
	Get(tier store.Tier, scope topn.Scope, dim topn.Dim, start time.Time) (*topn.Table, bool, error)
	Retention(tier store.Tier) time.Duration

	BeginFinal(ivs []store.Interval) error
	PutInterval(now time.Time, iv store.Interval) error
	EndFinal(tier store.Tier, start time.Time) error
	Finals(fn func(tier store.Tier, start time.Time, ivs []store.Interval, err error) error) error

	PutCheckpoint(start time.Time, value []byte) error
	DeleteCheckpoint(start time.Time) error
	Checkpoints(fn func(start time.Time, value []byte) error) error
}

// Dependencies of the aggregator.
type Dependencies struct {
	Ring       *ring.Ring
	Store      Store
	Classifier Classifier
	// Clock tells the flusher what time it is; tests and `tmsd import` drive it.
	Clock    func() time.Time
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// Aggregator is the component.
type Aggregator struct {
	cfg    Configuration
	deps   Dependencies
	shards []*shard
	stop   chan struct{}
	wg     sync.WaitGroup

	// viewMu orders flushes against queries: a query holds it for reading while
	// it reads the store and the minutes in memory, so a minute is never seen in
	// both (double-counted) or in neither. pending and finals change under it and
	// flushMu both.
	viewMu sync.RWMutex
	// pending are closed minutes not written yet (the store failed), oldest first;
	// finals are minutes whose final write has begun and not ended (store.BeginFinal).
	pending, finals []*closingMinute
	pendingCount    atomic.Int64 // len(pending) + len(finals), for the gauge

	// flushMu serializes flushes and checkpoints: a checkpoint of a minute taken
	// before its final write and saved after would bring it back, counted twice.
	flushMu sync.Mutex
	// under flushMu: flows of each minute at its last checkpoint (unchanged minutes are not saved again)
	ckFlows map[int64]uint64
	ckBuf   []byte
	// ckCap is the keys a table may save in this checkpoint pass (0: all).
	ckCap int

	// flusher goroutine only: consecutive failed flushes, and ticks left to skip
	failures, backoff int

	skippedFlows   atomic.Uint64
	shardKeyBudget int
	compactions    atomic.Uint64
	flushErrors    atomic.Uint64
	droppedMinutes atomic.Uint64
	droppedFlows   atomic.Uint64
	checkpoints    atomic.Uint64
	ckErrors       atomic.Uint64
	ckLast         atomic.Int64 // unix ns of the last successful checkpoint
	ckBytes        atomic.Int64 // bytes the last checkpoint wrote
	metrics        *metrics
}

// closingMinute is a closed minute on its way to the store: the shards'
// partitions of it, then, once its final write has begun, its intervals.
type closingMinute struct {
	start  int64        // unix seconds
	shards []*minuteAgg // nil for a final write found in the store at start-up
	// Set by BeginFinal: what to write, and which of it the store holds.
	ivs     []store.Interval
	written []bool
}

func (cm *closingMinute) keys() int {
	n := 0
	for _, m := range cm.shards {
		n += m.keys
	}
	return n
}

type shard struct {
	mu      sync.Mutex
	minutes map[int64]*minuteAgg // by minute start, unix seconds
	// the partition the previous record went to
	lastPart   *partTables
	lastMin    *minuteAgg
	lastMinute int64
	lastKey    partKey
	keys       int // keys held by all open minutes' tables
	// shrinkRetry is the key count below which a failed shrink is not retried
	shrinkRetry int
	// per exporter: flows whose exporter timestamp was replaced by the receive time
	corrections map[flow.Addr]uint64
	applied     atomic.Uint64
	flows       atomic.Uint64
}

// New validates the configuration.
func New(cfg Configuration, deps Dependencies) (*Aggregator, error) {
	if cfg.Shards <= 0 {
		cfg.Shards = runtime.GOMAXPROCS(0)
	}
	switch {
	case cfg.TopK <= 0:
		return nil, fmt.Errorf("aggregate: top_k must be positive, got %d", cfg.TopK)
	case cfg.MaxKeys < 2*cfg.TopK:
		return nil, fmt.Errorf("aggregate: max_keys (%d) must be at least twice top_k (%d)", cfg.MaxKeys, cfg.TopK)
	case cfg.MaxMemory < 1<<20:
		return nil, fmt.Errorf("aggregate: max_memory must be at least 1 MiB, got %d", cfg.MaxMemory)
	case cfg.Grace < 0 || cfg.MaxAge <= 0:
		return nil, fmt.Errorf("aggregate: grace must be >= 0 and max_age > 0")
	case cfg.DrillDowns < 0:
		return nil, fmt.Errorf("aggregate: drill_downs must be >= 0 (0 disables), got %d", cfg.DrillDowns)
	case cfg.CheckpointInterval < 0:
		return nil, fmt.Errorf("aggregate: checkpoint_interval must be >= 0 (0 disables), got %s", cfg.CheckpointInterval)
	case deps.Ring == nil || deps.Store == nil || deps.Classifier == nil:
		return nil, errors.New("aggregate: ring, store and classifier are required")
	}
	// Above top_k a drill-down's key could be cut from the minute's own
	// table, and its total would no longer check against it.
	cfg.DrillDowns = min(cfg.DrillDowns, cfg.TopK)
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	a := &Aggregator{cfg: cfg, deps: deps, stop: make(chan struct{}), ckFlows: map[int64]uint64{}}
	a.shardKeyBudget = max(int(cfg.MaxMemory/bytesPerKey/int64(cfg.Shards)), 4*cfg.TopK)
	for i := 0; i < cfg.Shards; i++ {
		a.shards = append(a.shards, &shard{minutes: map[int64]*minuteAgg{}, corrections: map[flow.Addr]uint64{}})
	}
	a.metrics = newMetrics(a, deps.Registry)
	return a, nil
}

// Start finishes the final writes a crash interrupted, restores the
// checkpointed minutes (closing at once those past their grace), then launches
// the shard workers, the flusher and the checkpointer.
func (a *Aggregator) Start() error {
	if err := a.recover(); err != nil {
		return err
	}
	for _, s := range a.shards {
		a.wg.Add(1)
		go a.runShard(s)
	}
	a.wg.Add(1)
	go a.runFlusher()
	if a.cfg.CheckpointInterval > 0 {
		a.wg.Add(1)
		go a.runCheckpointer()
	}
	return nil
}

// Stop drains the ring, ends the workers, and flushes every open minute, so a
// SIGTERM loses nothing that reached the ring; the final writes delete the
// minutes' checkpoints. If the store refuses them, what is left is checkpointed
// for the next start.
func (a *Aggregator) Stop() error {
	close(a.stop)
	a.wg.Wait()
	err := a.FlushAll()
	if err != nil && a.cfg.CheckpointInterval > 0 {
		if cerr := a.checkpoint(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	return err
}

func (a *Aggregator) runShard(s *shard) {
	defer a.wg.Done()
	buf := make([]flow.Record, a.cfg.BatchSize)
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		n := a.deps.Ring.PopBatch(buf)
		if n == 0 {
			select {
			case <-a.stop:
				if a.deps.Ring.Len() == 0 {
					return
				}
			default:
			}
			// Nothing queued: back off briefly rather than spin on an empty ring.
			idle.Reset(500 * time.Microsecond)
			select {
			case <-idle.C:
			case <-a.stop:
			}
			continue
		}
		s.mu.Lock()
		for i := range buf[:n] {
			a.add(s, &buf[i])
		}
		s.mu.Unlock()
		s.flows.Add(uint64(n))
		s.applied.Add(uint64(n))
	}
}

// eventTime is the rule that puts a flow in a minute: the exporter's end time,
// unless it is missing or insane (more than MaxAhead after the receive time, or
// more than MaxAge before it), in which case the receive time. It reports
// whether it corrected an insane timestamp.
func (a *Aggregator) eventTime(r *flow.Record) (ms int64, corrected bool) {
	if r.End == 0 {
		return r.Received, false
	}
	if r.End > r.Received+MaxAhead.Milliseconds() || r.End < r.Received-a.cfg.MaxAge.Milliseconds() {
		return r.Received, true
	}
	return r.End, false
}

// Minute is the start of the minute a record is counted in (eventTime's
// rule): `tmsd import` notes which minutes each capture file fills.
func (a *Aggregator) Minute(r *flow.Record) time.Time {
	ms, _ := a.eventTime(r)
	return time.Unix(floorDiv(ms, 60_000)*60, 0).UTC()
}

// add counts one record in its minute's partition. Shards call it with their lock held.
func (a *Aggregator) add(s *shard, r *flow.Record) {
	ms, corrected := a.eventTime(r)
	if corrected {
		s.corrections[r.Exporter]++
	}
	minute := floorDiv(ms, 60_000) * 60
	pk := partKey{exporter: r.Exporter, proto: r.Proto}
	if a.cfg.ScopeInterface {
		pk.inIf, pk.outIf = r.InIf, r.OutIf
	}
	// Consecutive records mostly share minute, exporter and protocol: skip the map lookups.
	p, m := s.lastPart, s.lastMin
	if p == nil || minute != s.lastMinute || pk != s.lastKey {
		m = s.minutes[minute]
		if m == nil {
			m = newMinuteAgg(a.cfg.DrillDowns > 0, s.minutes[minute-60])
			s.minutes[minute] = m
		}
		p = m.part(pk, s.minutes[minute-60])
		s.lastPart, s.lastMin, s.lastMinute, s.lastKey = p, m, minute, pk
	}
	c := topn.Counters{Bytes: r.Bytes, Packets: r.Packets, Flows: 1}
	p.total.Add(c)
	maxKeys := a.cfg.MaxKeys
	app := a.deps.Classifier.Classify(r)
	added := p.dims[topn.DimApp].add(app, c, maxKeys) +
		p.dims[topn.DimSrcIP].add(topn.AddrKey(r.SrcAddr), c, maxKeys) +
		p.dims[topn.DimDstIP].add(topn.AddrKey(r.DstAddr), c, maxKeys) +
		p.dims[topn.DimSrcPort].add(topn.PortKey(r.SrcPort, r.Proto), c, maxKeys) +
		p.dims[topn.DimDstPort].add(topn.PortKey(r.DstPort, r.Proto), c, maxKeys) +
		p.dims[topn.DimInIf].add(topn.IfKey(r.Exporter, r.InIf), c, maxKeys) +
		p.dims[topn.DimOutIf].add(topn.IfKey(r.Exporter, r.OutIf), c, maxKeys)
	if m.drill[0] != nil {
		added += m.countDrill(r, &app, c, maxKeys)
	}
	if added != 0 {
		m.keys += added
		s.keys += added
		if s.keys > a.shardKeyBudget && s.keys > s.shrinkRetry {
			a.shrink(s)
		}
	}
}

// shrink compacts the shard's largest tables until it is back under 3/4 of
// its key budget.
func (a *Aggregator) shrink(s *shard) {
	for s.keys > a.shardKeyBudget*3/4 {
		var big table
		var bigMin *minuteAgg
		for _, m := range s.minutes {
			if t := m.largest(); t != nil && (big == nil || t.len() > big.len()) {
				big, bigMin = t, m
			}
		}
		if big == nil || big.len() < 2*a.cfg.TopK {
			// Nothing worth forgetting: stay over budget rather than lose the
			// top K, and don't rescan every table on each new key until an
			// eighth of the budget more has come.
			s.shrinkRetry = s.keys + a.shardKeyBudget/8
			return
		}
		d := big.compact(big.len() / 2)
		bigMin.keys += d
		s.keys += d
		a.compactions.Add(1)
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (a *Aggregator) runFlusher() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.flushTick()
		}
	}
}

// maxBackoff is the longest the flusher waits between attempts while the store fails.
const maxBackoff = time.Minute

// flushTick is one tick of the flusher: a flush, unless earlier ones failed and
// it is backing off (retries after 1, 2, 4… ticks, at most maxBackoff apart).
// The first failure of a run is logged, then one a minute at most (the store
// logs its side too); nothing is lost meanwhile: minutes wait in pending.
func (a *Aggregator) flushTick() {
	if a.backoff > 0 {
		a.backoff--
		return
	}
	err := a.FlushBefore(a.deps.Clock())
	if err == nil {
		if a.failures > 0 {
			a.deps.Logger.Info("minute flush recovered", "failed_attempts", a.failures)
		}
		a.failures = 0
		return
	}
	a.flushErrors.Add(1)
	a.failures++
	ceiling := max(1, int(maxBackoff/a.cfg.FlushInterval))
	wait := ceiling
	if a.failures <= 20 {
		wait = min(1<<(a.failures-1), ceiling)
	}
	a.backoff = wait - 1
	if a.failures == 1 || wait == ceiling {
		a.deps.Logger.Warn("minute flush failed; closed minutes wait in memory", "err", err,
			"failed_attempts", a.failures, "pending_minutes", a.pendingCount.Load(), "retry_in", time.Duration(wait)*a.cfg.FlushInterval)
	}
}

// Sync waits until every record pushed into the ring so far has been counted
// by a shard, or the timeout passes. `tmsd import` and tests use it.
func (a *Aggregator) Sync(timeout time.Duration) error {
	want := a.deps.Ring.Pushed()
	deadline := time.Now().Add(timeout)
	for {
		var got uint64
		for _, s := range a.shards {
			got += s.applied.Load()
		}
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("aggregate: %d of %d records counted after %s", got, want, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// FlushBefore closes every minute whose grace period has passed at now.
func (a *Aggregator) FlushBefore(now time.Time) error {
	cutoff := now.Add(-time.Minute - a.cfg.Grace).Unix()
	return a.flush(func(start int64) bool { return start <= cutoff })
}

// FlushAll closes every open minute, whatever its age.
func (a *Aggregator) FlushAll() error {
	return a.flush(func(int64) bool { return true })
}

// flush moves the closed minutes from the shards to pending and writes the
// pending minutes to the store, oldest first. On a store error it stops: what is
// not written stays in pending, answered by View and checkpointed, for the next
// flush. Past the memory budget, the oldest pending minutes are dropped.
func (a *Aggregator) flush(closed func(start int64) bool) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	began := time.Now()
	defer func() {
		if a.metrics != nil {
			a.metrics.flushSeconds.Observe(time.Since(began).Seconds())
		}
	}()
	a.swapClosed(closed)
	// Final writes already begun come first: a later close of the same minute
	// (late flows) merges with what the store holds, which must include them.
	err := a.finishFinals()
	if err == nil {
		err = a.writePending()
	}
	a.boundPending()
	return err
}

// swapClosed moves the closed minutes out of the shards into pending, where
// queries still see them, merged with a pending minute of the same start.
func (a *Aggregator) swapClosed(closed func(start int64) bool) {
	a.viewMu.Lock()
	defer a.viewMu.Unlock()
	for _, s := range a.shards {
		s.mu.Lock()
		for start, m := range s.minutes {
			if !closed(start) {
				continue
			}
			delete(s.minutes, start)
			s.keys -= m.keys
			s.lastPart, s.lastMin = nil, nil
			i, found := slices.BinarySearchFunc(a.pending, start, func(cm *closingMinute, t int64) int { return cmp.Compare(cm.start, t) })
			if !found {
				a.pending = slices.Insert(a.pending, i, &closingMinute{start: start})
			}
			a.pending[i].shards = append(a.pending[i].shards, m)
		}
		s.mu.Unlock()
	}
	a.pendingCount.Store(int64(len(a.pending) + len(a.finals)))
}

// writePending closes the pending minutes, oldest first. Each is merged with
// what the store holds and handed to the store's redo-logged final write, which
// deletes its checkpoint in the same transaction as it records the write; from
// then on it is in finals until every interval is written.
func (a *Aggregator) writePending() error {
	// Retention is wall-clock time (the store's TTLs are), whatever clock
	// closes the minutes: an imported capture from last month may be expired.
	oldest := time.Now().Add(-a.deps.Store.Retention(store.TierMinute) - time.Minute).Unix()
	for len(a.pending) > 0 {
		cm := a.pending[0]
		if cm.start < oldest {
			// Older than retention: say how many flows we could not keep.
			a.skippedFlows.Add(flowsOf(cm.shards))
			a.popPending()
			a.forgetCheckpoint(cm.start)
			continue
		}
		ivs, err := a.closeMinute(cm)
		if err != nil {
			return err
		}
		if err := a.deps.Store.BeginFinal(ivs); err != nil {
			return err
		}
		delete(a.ckFlows, cm.start) // BeginFinal deleted its checkpoint
		a.viewMu.Lock()
		a.pending = a.pending[1:]
		cm.ivs, cm.written = ivs, make([]bool, len(ivs))
		a.finals = append(a.finals, cm)
		a.viewMu.Unlock()
		if err := a.finishFinals(); err != nil {
			return err
		}
	}
	return nil
}

// finishFinals writes the intervals of the begun final writes, one transaction
// each, and ends them. Each write happens under viewMu with the mark that hides
// its scope from View, so a query sees every scope once, from the store or from memory.
func (a *Aggregator) finishFinals() error {
	for len(a.finals) > 0 {
		cm := a.finals[0]
		now := time.Now()
		for i := range cm.ivs {
			if cm.written[i] {
				continue
			}
			a.viewMu.Lock()
			err := a.deps.Store.PutInterval(now, cm.ivs[i])
			if err == nil || errors.Is(err, store.ErrBeyondRetention) {
				cm.written[i] = true
			}
			a.viewMu.Unlock()
			if !cm.written[i] {
				return err
			}
		}
		if err := a.deps.Store.EndFinal(store.TierMinute, time.Unix(cm.start, 0)); err != nil {
			return err
		}
		a.viewMu.Lock()
		a.finals = a.finals[1:]
		a.pendingCount.Store(int64(len(a.pending) + len(a.finals)))
		a.viewMu.Unlock()
	}
	return nil
}

// popPending removes the oldest pending minute.
func (a *Aggregator) popPending() {
	a.viewMu.Lock()
	a.pending = a.pending[1:]
	a.pendingCount.Store(int64(len(a.pending) + len(a.finals)))
	a.viewMu.Unlock()
}

// forgetCheckpoint deletes the checkpoint of a minute no longer held. If the
// store refuses, a restart restores it: what it holds was never written, so
// that cannot count anything twice.
func (a *Aggregator) forgetCheckpoint(start int64) {
	delete(a.ckFlows, start)
	if a.cfg.CheckpointInterval > 0 {
		_ = a.deps.Store.DeleteCheckpoint(time.Unix(start, 0))
	}
}

// boundPending keeps the minutes waiting for the store, with the open ones,
// within the aggregator's key budget (max_memory): past it the oldest pending
// minute is dropped, and its flows are counted as dropped.
func (a *Aggregator) boundPending() {
	if len(a.pending) == 0 {
		return
	}
	keys := 0
	for _, s := range a.shards {
		s.mu.Lock()
		keys += s.keys
		s.mu.Unlock()
	}
	for _, cm := range a.pending {
		keys += cm.keys()
	}
	for budget := a.shardKeyBudget * len(a.shards); keys > budget && len(a.pending) > 0; {
		cm := a.pending[0]
		keys -= cm.keys()
		flows := flowsOf(cm.shards)
		a.droppedMinutes.Add(1)
		a.droppedFlows.Add(flows)
		a.popPending()
		a.forgetCheckpoint(cm.start)
		a.deps.Logger.Warn("store still failing and memory budget reached: oldest waiting minute dropped",
			"minute", time.Unix(cm.start, 0).UTC(), "flows", flows, "waiting_minutes", len(a.pending))
	}
}

func flowsOf(ms []*minuteAgg) uint64 {
	var n uint64
	for _, m := range ms {
		n += m.flows()
	}
	return n
}

// mergeMinuteInto adds m to the minute start of a shard's minutes. The caller
// recounts the keys.
func mergeMinuteInto(minutes map[int64]*minuteAgg, start int64, m *minuteAgg) {
	dst := minutes[start]
	if dst == nil {
		minutes[start] = m
		return
	}
	// Unbounded here: a restored minute keeps every key it had; the shard's
	// budget compacts it on the next new key if need be.
	const unbounded = int(^uint(0) >> 1)
	for pk, src := range m.parts {
		d := dst.parts[pk]
		if d == nil {
			dst.parts[pk] = src
			continue
		}
		d.total.Add(src.total)
		for _, dim := range countedDims {
			sd, dd := src.dims[dim], d.dims[dim]
			sd.counts.each(func(k topn.Key, c topn.Counters) { dd.add(k, c, unbounded) })
			dd.evicted.Add(sd.evicted)
		}
	}
	switch {
	case dst.drill[0] == nil:
		// Its rows may be anywhere already (drillEvicted): nothing to add to.
	case m.drill[0] == nil:
		for _, dd := range dst.drill {
			dd.evicted.Add(m.total()) // m's rows may be anywhere
		}
	default:
		for i, dd := range dst.drill {
			sd := m.drill[i]
			for j := range sd.counts.slots {
				if sl := &sd.counts.slots[j]; sl.tag != 0 {
					dd.add(&sl.key, sl.c, unbounded)
				}
			}
			dd.evicted.Add(sd.evicted)
		}
	}
}

// scopesOf lists the scopes a minute's partitions are stored under, but the drill-downs.
func (a *Aggregator) scopesOf(parts []partRef) []topn.Scope {
	scopes := []topn.Scope{{}}
	seen := map[topn.Scope]bool{}
	for _, p := range parts {
		for _, sc := range []topn.Scope{
			{Kind: topn.ScopeExporter, Exporter: p.key.exporter},
			{Kind: topn.ScopeProto, Proto: p.key.proto},
			{Kind: topn.ScopeInterface, Exporter: p.key.exporter, IfIndex: p.key.inIf, Dir: topn.DirIn},
			{Kind: topn.ScopeInterface, Exporter: p.key.exporter, IfIndex: p.key.outIf, Dir: topn.DirOut},
		} {
			switch {
			case seen[sc],
				sc.Kind == topn.ScopeExporter && !a.cfg.ScopeExporter,
				sc.Kind == topn.ScopeProto && !a.cfg.ScopeProto,
				sc.Kind == topn.ScopeInterface && (!a.cfg.ScopeInterface || p.key.noIf):
				continue
			}
			seen[sc] = true
			scopes = append(scopes, sc)
		}
	}
	return scopes
}

// drillScopes picks the drill-down scopes of a minute: its top DrillDowns
// applications and addresses by bytes, with their totals (their rows in the
// minute's app and ip tables), and gathers their rows from the partitions.
func (a *Aggregator) drillScopes(parts []partRef, aggs []*minuteAgg) ([]topn.Scope, map[topn.Scope]topn.Counters, []drillRows) {
	if a.cfg.DrillDowns <= 0 {
		return nil, nil, nil
	}
	var scopes []topn.Scope
	totals := map[topn.Scope]topn.Counters{}
	for _, d := range []topn.Dim{topn.DimApp, topn.DimIP} {
		t := scopeTable(parts, d)
		rows, _ := t.Top(d, a.cfg.DrillDowns, topn.Bytes)
		for _, e := range rows {
			sc := topn.Scope{Kind: topn.ScopeApp, App: e.Key}
			if d == topn.DimIP {
				sc = topn.Scope{Kind: topn.ScopeIP, IP: e.Key.Addr()}
			}
			scopes = append(scopes, sc)
			totals[sc] = e.Value
		}
	}
	wanted := make(map[topn.Scope]bool, len(scopes))
	for _, sc := range scopes {
		wanted[sc] = true
	}
	rows := make([]drillRows, len(aggs))
	for i, m := range aggs {
		rows[i] = gatherDrill(m, wanted)
	}
	return scopes, totals, rows
}

// closeMinute builds every scope's tables from one minute's partitions (all
// shards), cuts each to the top K, and merges it with what the store already
// holds for that minute (flows that arrived after an earlier flush).
func (a *Aggregator) closeMinute(cm *closingMinute) ([]store.Interval, error) {
	start := time.Unix(cm.start, 0).UTC()
	var parts []partRef
	for _, m := range cm.shards {
		for k, p := range m.parts {
			parts = append(parts, partRef{k, p})
		}
	}
	var errs []error
	// A minute closed before (late flows) is merged with what the store holds.
	// Every final write includes the whole-network scope, so when the store
	// has none of it, it has no scope of the minute and the lookups per scope
	// and dimension (about 100 a minute) are skipped.
	_, stored, err := a.deps.Store.Get(store.TierMinute, topn.Scope{}, topn.DimProto, start)
	if err != nil {
		stored = true // look each up, and report what fails
	}
	scopes := a.scopesOf(parts)
	drills, drillTotals, drillRowsOf := a.drillScopes(parts, cm.shards)
	scopes = append(scopes, drills...)
	ivs := make([]store.Interval, 0, len(scopes))
	for _, sc := range scopes {
		var tables map[topn.Dim]*topn.Table
		total, isDrill := drillTotals[sc]
		if isDrill {
			rows := make([]*[numDrill][]topn.Entry, len(cm.shards))
			for i := range cm.shards {
				rows[i] = drillRowsOf[i][sc]
			}
			tables = drillTables(sc, cm.shards, rows, total)
		}
		var in []partRef
		if !isDrill {
			for _, p := range parts {
				if p.key.in(sc) {
					in = append(in, p)
				}
			}
			total = topn.Counters{}
			for _, p := range in {
				total.Add(p.t.total)
			}
		}
		dims := sc.Dims()
		iv := store.Interval{Tier: store.TierMinute, Start: start, Scope: sc, Tables: make(map[topn.Dim]*topn.Table, len(dims))}
		for _, d := range dims {
			var mg *topn.Merger
			if isDrill {
				t := tables[d]
				mg = topn.NewMerger(len(t.Entries))
				mg.Add(t)
			} else {
				mg = scopeMerger(in, d, 0)
			}
			var old *topn.Table
			var ok bool
			var err error
			if stored {
				old, ok, err = a.deps.Store.Get(store.TierMinute, sc, d, start)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("minute %s %s %s: %w", start.Format(time.RFC3339), sc, d, err))
			} else if ok {
				mg.Add(old)
			}
			t := mg.Truncated(a.cfg.TopK)
			iv.Tables[d] = t
			iv.Total = t.Total
		}
		ivs = append(ivs, iv)
	}
	return ivs, errors.Join(errs...)
}

// TimeCorrections returns, per exporter, how many flows had an insane exporter
// timestamp replaced by the receive time.
func (a *Aggregator) TimeCorrections() map[flow.Addr]uint64 {
	out := map[flow.Addr]uint64{}
	for _, s := range a.shards {
		s.mu.Lock()
		for k, v := range s.corrections {
			out[k] += v
		}
		s.mu.Unlock()
	}
	return out
}

// SkippedFlows is the number of flows not stored because their minute was
// already older than the retention when it closed.
func (a *Aggregator) SkippedFlows() uint64 { return a.skippedFlows.Load() }
