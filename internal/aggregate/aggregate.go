// Package aggregate owns the per-minute TopN tables. Flows reach every shard
// through a broadcast ring; each shard owns some of the tables (one per kind
// of scope and dimension, keyed scope<<40 | value: layout.go), so every key
// has one writer, none is counted in two shards and nothing merges across
// them. At minute close (+grace) the shards' minutes are swapped out, each
// scope's tables are cut to the top K with exact totals and error bounds, and
// written to the store. The minutes held in memory are checkpointed to the
// store every few seconds, so a crash loses at most that interval and a
// restart counts nothing twice (checkpoint.go).
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
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// Configuration of the aggregator.
type Configuration struct {
	// Shards is the number of worker goroutines, each the one writer of its
	// tables; 0 means one per CPU.
	Shards int
	// TopK is how many keys per dimension a minute keeps (by each metric).
	TopK int
	// MaxKeys bounds the keys of one scope in one table (a dimension of one
	// partition, interface or application, in one minute); past it the scope
	// compacts and records an error bound.
	MaxKeys int
	// MaxMemory bounds, in bytes, what the minutes held in memory (open, and
	// closed but not written) may hold, as their tables and dictionaries
	// measure it. A shard over its share compacts its largest table, so a
	// flood of distinct addresses costs accuracy (shown as error bounds), not memory.
	MaxMemory int64
	// Grace is how long after its end a minute stays open for late flows.
	Grace time.Duration
	// MaxAge is how old an exporter timestamp may be, against the receive time,
	// before the receive time is used instead.
	MaxAge time.Duration
	// BatchSize is how many records a worker pops at once.
	BatchSize int
	// ScopeExporter and ScopeProto store tables per exporter and per IP
	// protocol, so the API can filter by them (they are read off the partition
	// tables, which are counted anyway).
	ScopeExporter, ScopeProto bool
	// ScopeInterface keeps tables per exporter interface and direction (in:
	// the flows entering by it, out: leaving by it).
	ScopeInterface bool
	// DrillDowns is how many of each minute's top applications and top
	// addresses (by bytes) get drill-down tables (an application's hosts and
	// ports; an address's applications and peers); 0 turns drill-downs off,
	// and their per-flow counting with them. Above TopK it acts as TopK.
	DrillDowns int
	// FlushInterval is how often the flusher looks for minutes to close.
	FlushInterval time.Duration
	// CheckpointInterval is how often the minutes held in memory are saved to the
	// store, bounding what a crash loses; 0 disables checkpoints.
	CheckpointInterval time.Duration
}

// MaxAhead is how far in the future (against the receive time) an exporter
// timestamp may be before it is judged insane.
const MaxAhead = time.Minute

// DefaultConfiguration returns the defaults: every scope on.
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

		ScopeInterface: true,
		DrillDowns:     100,
		FlushInterval:  time.Second,

		CheckpointInterval: 10 * time.Second,
	}
}

// Shards is the number of shards cfg runs: the consumers its ring needs.
func Shards(cfg Configuration) int {
	if cfg.Shards <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return cfg.Shards
}

// Classifier names a flow's application, as a small id (apps.Classifier).
type Classifier interface {
	ClassifyID(r *flow.Record) uint16
	AppKey(id uint16) (topn.Key, bool)
	// Group is the group of application id ("": none); Apps how many
	// application ids there are.
	Group(id uint16) (string, bool)
	Apps() int
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

	PutCheckpoints(cks []store.Checkpoint, pos []byte) error
	DeleteCheckpoint(start time.Time) error
	Checkpoints(fn func(start time.Time, value []byte) error) error
}

// Dependencies of the aggregator.
type Dependencies struct {
	// Ring brings every record to every shard: Shards(cfg) consumers.
	Ring       *ring.Broadcast
	Store      Store
	Classifier Classifier
	// Clock tells the flusher what time it is; tests and `tmsd import` drive it.
	Clock    func() time.Time
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Source, when set, is a feed that must know what the store holds (an
	// aggregator's Kafka consumer): every checkpoint records its position,
	// and a closed minute is checkpointed before its final write, so that
	// nothing written holds a flow past a position the source was told of.
	Source Source
}

// Source is a feed whose position follows the checkpoints.
type Source interface {
	// Pause stops handing flows on (once the batch being handed on is in
	// the ring) and returns the position reached, opaque.
	Pause() []byte
	// Resume lets it hand flows on again.
	Resume()
	// Durable says the store holds every flow up to pos, in checkpoints or
	// final writes: the source may commit it.
	Durable(pos []byte) error
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
	ckBufs  [][]byte // a pass's encodings, one a minute, reused
	// ckCap is the keys a scope's table may save in this checkpoint pass (0: all).
	ckCap int

	// flusher goroutine only: consecutive failed flushes, and ticks left to skip
	failures, backoff int

	skippedFlows atomic.Uint64
	shardBudget  int64 // bytes each shard's minutes may hold, with nothing held outside them
	// outside is what the minutes hold outside the shards (pending, being
	// closed, being written) and the checkpoint buffers: each shard leaves
	// room for its share (shardLimit), so max_memory bounds all of it.
	outside atomic.Int64
	// closeRatio is, in thousandths, the bytes a close builds per byte of
	// its minute, as the last closes measured it (1000 until one has): a
	// flood's minutes build about their own size again (109 MB of
	// intervals from 102, 194 from 227).
	closeRatio     atomic.Int64
	endsLimit      int // addresses a shard's minute folds by at most (putEnds)
	compactions    atomic.Uint64
	directMinutes  atomic.Uint64 // shard minutes switched to counting countries and ASes per flow (putEnds)
	flushErrors    atomic.Uint64
	droppedMinutes atomic.Uint64
	droppedFlows   atomic.Uint64
	checkpoints    atomic.Uint64
	ckErrors       atomic.Uint64
	ckLast         atomic.Int64 // unix ns of the last successful checkpoint
	ckBytes        atomic.Int64 // bytes the last checkpoint wrote
	metrics        *metrics

	// hold and barrier align the shards for a flush (align): while hold is
	// set no shard reads past barrier, and none at all while barrier is 0.
	hold    atomic.Bool
	barrier atomic.Uint64 // the position plus one; 0: none yet
	running atomic.Bool   // the shard workers run

	// appIDs are the classifier's ids by application key, for drill-down
	// scopes (made once, on the first need).
	appIDsOnce sync.Once
	appIDs     map[topn.Key]uint16

	// the appgroup values handed out (groupValue)
	groupMu    sync.Mutex
	groupIDs   map[string]uint64
	groupNames []string
}

// closingMinute is a closed minute on its way to the store: the shards'
// minutes of it (by shard; nil where a shard had none), then, once its final
// write has begun, its intervals.
type closingMinute struct {
	start  int64        // unix seconds
	shards []*minuteAgg // nil for a final write found in the store at start-up
	// Set by BeginFinal: what to write, and which of it the store holds.
	ivs     []store.Interval
	written []bool
}

func (cm *closingMinute) bytes() int64 {
	var n int64
	for _, m := range cm.shards {
		if m != nil {
			n += m.bytes
		}
	}
	return n
}

type shard struct {
	id    int
	own   []int  // the specs whose tables this shard counts
	need  uint32 // the fields they need, a bit each
	folds bool   // it owns address tables that countries and ASes fold from
	cur   *ring.Cursor

	mu      sync.Mutex
	minutes map[int64]*minuteAgg // by minute start, unix seconds
	bytes   int64                // held by all its open minutes
	// shrinkRetry is the bytes below which a failed shrink is not retried
	shrinkRetry int64
	// per exporter: flows whose exporter timestamp was replaced by the
	// receive time (shard 0 only: every shard sees every flow)
	corrections map[flow.Addr]uint64
	applied     atomic.Uint64
	flows       atomic.Uint64
	paused      atomic.Uint64 // its ring position plus one, while it waits for an aligning flush
	gate        growGate      // its budget, as its open minutes' tables see it
	// the worker's buffers, reused batch after batch
	fields []flowFields
	mins   []int64
}

// New validates the configuration.
func New(cfg Configuration, deps Dependencies) (*Aggregator, error) {
	cfg.Shards = Shards(cfg)
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
	case deps.Ring.Consumers() != cfg.Shards:
		return nil, fmt.Errorf("aggregate: the ring has %d consumers for %d shards", deps.Ring.Consumers(), cfg.Shards)
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
	a.shardBudget = cfg.MaxMemory / int64(cfg.Shards)
	a.closeRatio.Store(1000)
	// An eighth of a shard's budget for its open minute's ends, at 32 bytes
	// an address (16-byte slots, at most half full).
	a.endsLimit = int(max(a.shardBudget/8/32, 1<<12))
	for i, own := range assign(&cfg, cfg.Shards) {
		s := &shard{id: i, own: own, cur: deps.Ring.Consumer(i), minutes: map[int64]*minuteAgg{}, corrections: map[flow.Addr]uint64{}}
		s.gate = growGate{a: a, s: s}
		for _, j := range own {
			s.need |= 1<<specs[j].scope | 1<<specs[j].value
			s.folds = s.folds || spills[j] != nil
		}
		if s.need&(1<<fPeer) != 0 {
			s.need |= 1<<fSrc | 1<<fDst
		}
		a.shards = append(a.shards, s)
	}
	a.metrics = newMetrics(a, deps.Registry)
	return a, nil
}

// Ungrouped is the appgroup row of the applications no rule gave a group.
const Ungrouped = "ungrouped"

// groupValue is the appgroup value of application id: a dense number per
// group name, the same for the aggregator's life (names are few and a
// reload may add some).
func (a *Aggregator) groupValue(id uint16) uint64 {
	name, ok := a.deps.Classifier.Group(id)
	if !ok {
		name = Ungrouped
	}
	a.groupMu.Lock()
	defer a.groupMu.Unlock()
	v, ok := a.groupIDs[name]
	if !ok {
		if a.groupIDs == nil {
			a.groupIDs = map[string]uint64{}
		}
		v = uint64(len(a.groupNames))
		a.groupNames = append(a.groupNames, name)
		a.groupIDs[name] = v
	}
	return v
}

// groupKey names an appgroup value.
func (a *Aggregator) groupKey(v uint64) topn.Key {
	a.groupMu.Lock()
	defer a.groupMu.Unlock()
	if v < uint64(len(a.groupNames)) {
		return topn.AppKey(a.groupNames[v])
	}
	return topn.AppKey(Ungrouped)
}

// appKey names an application id for the tables' readers.
func (a *Aggregator) appKey(id uint16) topn.Key {
	if k, ok := a.deps.Classifier.AppKey(id); ok {
		return k
	}
	return topn.AppKey("other")
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
	a.running.Store(true)
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
	a.running.Store(false)
	err := a.FlushAll()
	if err != nil && (a.cfg.CheckpointInterval > 0 || a.deps.Source != nil) {
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
		limit := len(buf)
		if a.hold.Load() {
			// A flush aligns the shards (align): say where this one is, and
			// read up to the barrier once there is one.
			b, pos := a.barrier.Load(), s.cur.Pos()
			if b == 0 || pos >= b-1 {
				s.paused.Store(pos + 1)
				idle.Reset(50 * time.Microsecond)
				select {
				case <-idle.C:
				case <-a.stop:
				}
				continue
			}
			limit = int(min(uint64(limit), b-1-pos))
		}
		n := s.cur.PopBatch(buf[:limit])
		if n == 0 {
			select {
			case <-a.stop:
				if s.cur.Len() == 0 {
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
		a.addBatch(s, buf[:n])
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

// addBatch counts a batch of records in the shard's tables, run by run of
// records of one minute (a batch rarely spans two). Shards call it with their
// lock held.
func (a *Aggregator) addBatch(s *shard, recs []flow.Record) {
	if cap(s.mins) < len(recs) {
		s.mins = make([]int64, len(recs))
		s.fields = make([]flowFields, len(recs))
	}
	mins := s.mins[:len(recs)]
	for i := range recs {
		ms, corrected := a.eventTime(&recs[i])
		if corrected && s.id == 0 {
			s.corrections[recs[i].Exporter]++
		}
		mins[i] = floorDiv(ms, 60_000) * 60
	}
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && mins[j] == mins[i] {
			j++
		}
		a.addRun(s, mins[i], recs[i:j])
		i = j
	}
}

// addRun counts records of one minute: their fields first, then table by table.
func (a *Aggregator) addRun(s *shard, minute int64, recs []flow.Record) {
	m := s.minutes[minute]
	if m == nil {
		m = newMinuteAgg(s.own, s.minutes[minute-60], (a.shardLimit()-s.bytes)/2, &s.gate)
		s.minutes[minute] = m
		s.bytes += m.bytes
	}
	ffs := s.fields[:len(recs)]
	if cap(m.keyBuf) < len(recs) {
		m.keyBuf = make([]uint64, len(recs))
	}
	for i := range recs {
		r := &recs[i]
		app := r.App
		if app == 0 && s.need&(1<<fApp) != 0 {
			app = a.deps.Classifier.ClassifyID(r)
		}
		m.fields(r, s.need, app, &ffs[i])
	}
	m.flowCount += uint64(len(recs))
	before := m.bytes
	added := 0
	if s.folds && !m.direct {
		n := m.ends.n
		if m.putEnds(ffs, a.endsLimit) {
			m.materialize()
			a.directMinutes.Add(1)
			added++ // its memory changed: the ends freed, the tables folded into
		} else {
			added += m.ends.n - n
		}
	}
	for _, i := range s.own {
		added += m.count(i, ffs, a.cfg.MaxKeys, func(t *table, sc uint64) {
			t.compact(0, int64(sc), a.cfg.MaxKeys/2, false)
			a.compactions.Add(1)
		})
	}
	if added > 0 {
		m.recount()
		s.bytes += m.bytes - before
		if limit := a.shardLimit(); s.bytes > limit && s.bytes > s.shrinkRetry {
			a.shrink(s, limit)
		}
	}
}

// shrinkFloor is the fewest keys a shrink leaves a scope's table; the
// floors it tries go from top_k down to it.
const shrinkFloor = 16

// shardLimit is what a shard's open minutes may hold: its share of the
// budget less its share of what is held outside the shards (never under a
// quarter of its share: the minute being closed is freed within seconds),
// with room kept for what their closes will build, closeRatio of their
// bytes. Counted when it is built, that room had to be taken from the open
// minutes at each close, at once: in a flood of sources, compactions of
// 160–740 ms under the shard's lock and 0.1–0.8 % of the flows lost there.
// Before the minutes outside the shards were counted at all, they and the
// open ones took 1.09 GB of live heap under a 1 GiB memory_limit, the
// collector ran back to back (40 GCs/s) and 4.2 % of the flows were lost.
func (a *Aggregator) shardLimit() int64 {
	room := max(a.shardBudget-a.outside.Load()/int64(len(a.shards)), a.shardBudget/4)
	return room * 1000 / (1000 + a.closeRatio.Load())
}

// closeReserve is what the close of a minute of b bytes is expected to build.
func (a *Aggregator) closeReserve(b int64) int64 { return b * a.closeRatio.Load() / 1000 }

// measureClose updates closeRatio from a close that built out bytes of
// intervals from a minute of in bytes: half the old ratio, half the new.
func (a *Aggregator) measureClose(in, out int64) {
	if in <= 0 {
		return
	}
	r := min(max(out*1000/in, 100), 2000)
	a.closeRatio.Store((a.closeRatio.Load() + r) / 2)
}

// account recomputes what is held outside the shards (outside), reserve
// included: the close under way's estimate of what it will build.
// Under flushMu.
func (a *Aggregator) account(reserve int64) {
	n := reserve
	for _, cm := range a.pending {
		n += cm.bytes()
	}
	for _, cm := range a.finals {
		n += intervalsBytes(cm.ivs)
	}
	for _, b := range a.ckBufs {
		n += int64(cap(b))
	}
	a.outside.Store(n)
}

// intervalsBytes is what a closed minute's tables hold, as an entry's 72
// bytes and a table's header.
func intervalsBytes(ivs []store.Interval) int64 {
	var n int64
	for i := range ivs {
		for _, t := range ivs[i].Tables {
			if t != nil {
				n += int64(cap(t.Entries))*int64(unsafe.Sizeof(topn.Entry{})) + int64(unsafe.Sizeof(*t))
			}
		}
	}
	return n
}

// shrink compacts the shard's largest tables until it is back under 3/4 of
// limit. Each pass halves the scopes of the largest table that hold more
// than a floor of keys, from top_k down: a scope with few keys (a quiet
// interface) keeps them while a flooded one halves.
func (a *Aggregator) shrink(s *shard, limit int64) {
	floor := a.cfg.TopK
	for s.bytes > limit/4*3 {
		var big *table
		var bigMin *minuteAgg
		for _, m := range s.minutes {
			if t, _ := m.largest(); t != nil && (big == nil || t.n > big.n) {
				big, bigMin = t, m
			}
		}
		if big == nil {
			break
		}
		if big.compact(floor, -1, 0, true) == 0 {
			if floor > shrinkFloor {
				floor = max(shrinkFloor, floor/2)
				continue
			}
			// Nothing worth forgetting: stay over budget rather than cut
			// further, and don't retry on every new key until an eighth of
			// the budget more has come.
			s.shrinkRetry = s.bytes + a.shardBudget/8
			return
		}
		// From now on it forgets keys where it stands rather than grow.
		big.limit, big.floor, big.compactions = len(big.slots), floor, &a.compactions
		before := bigMin.bytes
		bigMin.recount()
		s.bytes += bigMin.bytes - before
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
		// Every shard sees every record: the slowest one tells.
		got := want
		for _, s := range a.shards {
			got = min(got, s.applied.Load())
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
	if a.swapClosed(closed) && a.deps.Source != nil {
		// What the final writes will hold, recorded first with the
		// source's position: written, they never run ahead of it.
		if err := a.checkpointLocked(); err != nil {
			a.boundPending()
			return err
		}
	}
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
func (a *Aggregator) swapClosed(closed func(start int64) bool) (moved bool) {
	a.align()
	defer a.hold.Store(false)
	a.viewMu.Lock()
	defer a.viewMu.Unlock()
	// Their countries and ASes folded first (materialize), a shard each at
	// once: a pending minute is read by queries without a lock, so it must
	// not change, and close and checkpoints read it whole.
	var wg sync.WaitGroup
	for _, s := range a.shards {
		s.mu.Lock()
		wg.Go(func() {
			for start, m := range s.minutes {
				if closed(start) {
					before := m.bytes
					m.materialize()
					s.bytes += m.bytes - before
				}
			}
		})
	}
	wg.Wait()
	for _, s := range a.shards {
		for start, m := range s.minutes {
			if !closed(start) {
				continue
			}
			delete(s.minutes, start)
			m.leaveShard()
			moved = true
			s.bytes -= m.bytes
			i, found := slices.BinarySearchFunc(a.pending, start, func(cm *closingMinute, t int64) int { return cmp.Compare(cm.start, t) })
			if !found {
				a.pending = slices.Insert(a.pending, i, &closingMinute{start: start, shards: make([]*minuteAgg, len(a.shards))})
			}
			// Late flows of a minute still waiting for the store: one
			// minute per shard, so that each table is in one place.
			if old := a.pending[i].shards[s.id]; old != nil {
				old.mergeFrom(m, a.cfg.MaxKeys)
			} else {
				a.pending[i].shards[s.id] = m
			}
		}
		s.mu.Unlock()
	}
	a.pendingCount.Store(int64(len(a.pending) + len(a.finals)))
	a.account(0)
	return moved
}

// align brings every shard to one position of the ring, the furthest any
// has read, and holds them there until hold is cleared: the minutes swapped
// out then hold the same flows in every shard, so that a minute's totals and
// its tables, which different shards count, agree. The laggards catch up
// while the others wait: the backlog between shards, a few batches. With
// the workers not running (before Start, in Stop) they are where they stay.
func (a *Aggregator) align() {
	a.barrier.Store(0)
	a.hold.Store(true)
	if !a.running.Load() {
		return
	}
	for _, s := range a.shards {
		s.paused.Store(0)
	}
	deadline := time.Now().Add(10 * time.Second)
	wait := func(ready func(s *shard) bool) bool {
		for {
			done := true
			for _, s := range a.shards {
				done = done && ready(s)
			}
			if done {
				return true
			}
			select {
			case <-a.stop:
				return false
			default:
			}
			if time.Now().After(deadline) {
				a.deps.Logger.Warn("shards not aligned for a flush after 10 s: the minute's tables may disagree with its totals by the flows in flight")
				return false
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	// Every shard stops before its next batch and says where it is.
	if !wait(func(s *shard) bool { return s.paused.Load() != 0 }) {
		return
	}
	var p uint64
	for _, s := range a.shards {
		p = max(p, s.paused.Load()-1)
	}
	a.barrier.Store(p + 1)
	wait(func(s *shard) bool { return s.applied.Load() >= p })
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
		// What the close builds (its intervals), reserved while it builds.
		// Its working tables are not: reserving as much again for them
		// kept peak RSS at 1,017–1,021 MiB against 1,013–1,203 in a flood,
		// but the deeper compaction of the open minutes it forced at each
		// close lost 0.51–1.56 % of the flows against 0.10–0.11 %.
		a.account(a.closeReserve(cm.bytes()))
		ivs, err := a.closeMinute(cm)
		if err != nil {
			a.account(0)
			return err
		}
		a.measureClose(cm.bytes(), intervalsBytes(ivs))
		if err := a.deps.Store.BeginFinal(ivs); err != nil {
			return err
		}
		delete(a.ckFlows, cm.start) // BeginFinal deleted its checkpoint
		a.viewMu.Lock()
		a.pending = a.pending[1:]
		cm.ivs, cm.written = ivs, make([]bool, len(ivs))
		a.finals = append(a.finals, cm)
		a.viewMu.Unlock()
		a.account(0)
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
		a.account(0)
	}
	return nil
}

// popPending removes the oldest pending minute.
func (a *Aggregator) popPending() {
	a.viewMu.Lock()
	a.pending = a.pending[1:]
	a.pendingCount.Store(int64(len(a.pending) + len(a.finals)))
	a.viewMu.Unlock()
	a.account(0)
}

// forgetCheckpoint deletes the checkpoint of a minute no longer held. If the
// store refuses, a restart restores it: what it holds was never written, so
// that cannot count anything twice.
func (a *Aggregator) forgetCheckpoint(start int64) {
	delete(a.ckFlows, start)
	if a.cfg.CheckpointInterval > 0 || a.deps.Source != nil {
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
	var held int64
	for _, s := range a.shards {
		s.mu.Lock()
		held += s.bytes
		s.mu.Unlock()
	}
	for _, cm := range a.pending {
		held += cm.bytes()
	}
	for budget := a.cfg.MaxMemory; held > budget && len(a.pending) > 0; {
		cm := a.pending[0]
		held -= cm.bytes()
		flows := flowsOf(cm.shards)
		a.droppedMinutes.Add(1)
		a.droppedFlows.Add(flows)
		a.popPending()
		a.forgetCheckpoint(cm.start)
		a.deps.Logger.Warn("store still failing and memory budget reached: oldest waiting minute dropped",
			"minute", time.Unix(cm.start, 0).UTC(), "flows", flows, "waiting_minutes", len(a.pending))
	}
}

// flowsOf is the flows of a minute held as its shards' minutes: each shard
// counts every flow, so the most any of them counted.
func flowsOf(ms []*minuteAgg) uint64 {
	var n uint64
	for _, m := range ms {
		if m != nil {
			n = max(n, m.flowCount)
		}
	}
	return n
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
