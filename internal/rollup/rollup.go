// Package rollup owns the hour and day tiers: a background component rolls each
// final hour of minute tables into hour tables and each full day of hours into day
// tables (top K per dimension, exact totals, error bounds carried by topn.Merger).
// Its progress is two watermarks kept in store metadata, so a restart resumes at the
// first interval not rolled up, and it enforces the store's disk cap (diskcap.go).
package rollup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// Configuration of the rollups and the disk cap.
type Configuration struct {
	// Interval is the time between two passes.
	Interval time.Duration
	// Delay is how long after its end an hour is rolled up. Until then the
	// aggregator may still merge late flows into its minutes: a minute is written
	// after its grace, and a flow's timestamp may be up to max_age old, so the
	// delay should be at least grace + max_age. A late minute written into an
	// hour already rolled up is not lost: the hour is rolled up again.
	Delay time.Duration
	// HourTopK and DayTopK are how many keys per dimension an hour and a day
	// keep, by each metric; at least the minute tier's K.
	HourTopK, DayTopK int
	// MaxPerPass bounds the intervals of each tier one pass rolls up, so a
	// catch-up after a long downtime comes in slices between which ingest and
	// queries run.
	MaxPerPass int
	// MaxDisk caps the store's size in bytes (0: no cap). Above it, the oldest
	// data of the finest tier is evicted first; see diskcap.go.
	MaxDisk int64
	// Settle is how long to wait after an eviction before measuring the disk
	// again: deleted data leaves the disk only when compaction gets to it.
	Settle time.Duration
}

// DefaultConfiguration returns the defaults, which suit the aggregator's
// defaults (top_k 1000, grace 60 s, max_age 1 h).
func DefaultConfiguration() Configuration {
	return Configuration{
		Interval:   time.Minute,
		Delay:      time.Hour + 5*time.Minute,
		HourTopK:   2000,
		DayTopK:    2000,
		MaxPerPass: 6,
		Settle:     10 * time.Minute,
	}
}

// Dependencies of the component.
type Dependencies struct {
	Store *store.Store
	// Clock says when an hour is final. Tests drive it; `tmsd import` follows the capture.
	Clock func() time.Time
	// Usage measures the disk the cap applies to; nil: Store.DiskUsage.
	Usage    func() (int64, error)
	Registry *prometheus.Registry // may be nil
	Logger   *slog.Logger         // may be nil
}

// Rollup is the component.
type Rollup struct {
	cfg    Configuration
	deps   Dependencies
	logger *slog.Logger

	// mu guards the watermarks and what the write tracker reports.
	mu sync.Mutex
	// mark[t]: every interval of tier t (hour, day) starting before it is rolled
	// up. Zero: nothing yet (an empty store).
	mark [numTiers]time.Time
	// rolling is the interval being rolled up (zero when none) and dirty says a
	// minute inside it was written meanwhile, so it must be done again.
	rolling struct {
		tier  store.Tier
		start time.Time
		dirty bool
	}
	// evicted[t]: the disk cap deleted tier t's intervals before this time.
	evicted [numTiers]time.Time
	// floorWarned throttles the warning about minutes written too late to roll up.
	floorWarned time.Time

	passMu      sync.Mutex // one pass at a time
	settleUntil time.Time  // no eviction before (guarded by passMu)
	lastErrLog  time.Time  // throttles repeated error logs (guarded by passMu)
	loaded      bool       // the progress is read from the store (guarded by passMu)
	backlog     bool       // the last pass stopped at MaxPerPass with more ready (guarded by passMu)

	stop chan struct{}
	wg   sync.WaitGroup

	metrics metrics
}

// numTiers sizes arrays indexed by store.Tier.
const numTiers = 4

// Errors.
var (
	// ErrConfig: a configuration New refuses.
	ErrConfig = errors.New("rollup: bad configuration")
	// ErrStopped: Stop was called during a pass.
	ErrStopped = errors.New("rollup: stopped")
)

// New validates the configuration; it opens nothing.
func New(cfg Configuration, deps Dependencies) (*Rollup, error) {
	switch {
	case deps.Store == nil:
		return nil, fmt.Errorf("%w: a store is required", ErrConfig)
	case cfg.Interval <= 0:
		return nil, fmt.Errorf("%w: interval must be positive, got %s", ErrConfig, cfg.Interval)
	case cfg.Delay < 0:
		return nil, fmt.Errorf("%w: delay must not be negative, got %s", ErrConfig, cfg.Delay)
	case cfg.HourTopK <= 0 || cfg.DayTopK <= 0:
		return nil, fmt.Errorf("%w: hour and day top K must be positive, got %d and %d", ErrConfig, cfg.HourTopK, cfg.DayTopK)
	case cfg.MaxPerPass <= 0:
		return nil, fmt.Errorf("%w: max per pass must be positive, got %d", ErrConfig, cfg.MaxPerPass)
	case cfg.MaxDisk < 0:
		return nil, fmt.Errorf("%w: max disk must not be negative, got %d", ErrConfig, cfg.MaxDisk)
	case cfg.Settle < 0:
		return nil, fmt.Errorf("%w: settle must not be negative, got %s", ErrConfig, cfg.Settle)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Usage == nil {
		deps.Usage = deps.Store.DiskUsage
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.Default()
	}
	r := &Rollup{cfg: cfg, deps: deps, logger: logger.With("component", "rollup")}
	if err := r.metrics.init(r, deps.Registry); err != nil {
		return nil, err
	}
	return r, nil
}

// Start loads the progress from the store (which must be started) and starts
// the background passes. The first pass runs at once.
func (r *Rollup) Start() error {
	r.passMu.Lock()
	err := r.load()
	r.passMu.Unlock()
	if err != nil {
		return err
	}
	r.stop = make(chan struct{})
	r.wg.Add(1)
	go r.run()
	return nil
}

// Stop ends the passes, interrupting one in progress between two intervals,
// and waits. What is not rolled up yet is the next start's.
func (r *Rollup) Stop() error {
	if r.stop == nil {
		return nil
	}
	close(r.stop)
	r.wg.Wait()
	r.stop = nil
	return nil
}

func (r *Rollup) run() {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		_ = r.Pass() // logged and counted by Pass; retried at the next tick
		r.passMu.Lock()
		behind := r.backlog
		r.passMu.Unlock()
		if behind {
			// A backlog (after downtime, or a seeded store) is rolled up a
			// slice a second rather than a slice an Interval: 6 hours a
			// minute took 4 minutes to catch up one day.
			select {
			case <-r.stop:
				return
			case <-time.After(min(time.Second, r.cfg.Interval)):
			}
			continue
		}
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
	}
}

func (r *Rollup) stopping() bool {
	if r.stop == nil {
		return false
	}
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// logError logs at most once a minute of the clock: a failing disk would
// otherwise log every pass. Called with passMu held.
func (r *Rollup) logError(msg string, err error) {
	r.metrics.errors.Inc()
	now := r.deps.Clock()
	if now.Sub(r.lastErrLog) < time.Minute && now.After(r.lastErrLog) {
		return
	}
	r.lastErrLog = now
	r.logger.Warn(msg, "err", err)
}

// Rolled returns the watermark of tier (hour or day): every interval of the
// tier that starts before it is rolled up and final. Zero for the minute tier
// or when nothing is rolled up yet. Queries read a coarse tier only below it.
func (r *Rollup) Rolled(tier store.Tier) time.Time {
	if tier != store.TierHour && tier != store.TierDay {
		return time.Time{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mark[tier]
}

// Pass rolls up what is final at the clock's time, at most MaxPerPass
// intervals per tier, then enforces the disk cap. The background loop calls it
// every Interval; tests call it directly. A failure is logged (throttled) and
// counted, and the next pass tries again from the watermarks.
func (r *Rollup) Pass() (err error) {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	began := time.Now()
	defer func() {
		r.metrics.passSeconds.Observe(time.Since(began).Seconds())
		if err != nil && !errors.Is(err, ErrStopped) {
			r.logError("rollup pass failed", err)
		}
	}()
	if !r.loaded {
		if err := r.load(); err != nil {
			return err
		}
	}
	now := r.deps.Clock()
	r.backlog = false
	errH := r.rollTier(store.TierHour, now)
	errD := r.rollTier(store.TierDay, now)
	errC := r.enforceCap(now)
	return errors.Join(errH, errD, errC)
}

// source is the tier an interval of tier is rolled up from.
func source(tier store.Tier) store.Tier {
	if tier == store.TierDay {
		return store.TierHour
	}
	return store.TierMinute
}

func (r *Rollup) topK(tier store.Tier) int {
	if tier == store.TierDay {
		return r.cfg.DayTopK
	}
	return r.cfg.HourTopK
}

// ready reports whether the interval of tier starting at start is final at now:
// an hour once the delay has passed after its end, a day once its 24 hours are
// rolled up.
func (r *Rollup) ready(tier store.Tier, start, now time.Time) bool {
	end := start.Add(tier.Duration())
	if tier == store.TierDay {
		r.mu.Lock()
		defer r.mu.Unlock()
		return !end.After(r.mark[store.TierHour])
	}
	return !end.Add(r.cfg.Delay).After(now)
}

// rollTier rolls up the ready intervals of tier from its watermark on.
func (r *Rollup) rollTier(tier store.Tier, now time.Time) error {
	if err := r.initMark(tier); err != nil {
		return err
	}
	for range r.cfg.MaxPerPass {
		if r.stopping() {
			return ErrStopped
		}
		r.mu.Lock()
		start := r.mark[tier]
		r.mu.Unlock()
		if start.IsZero() || !r.ready(tier, start, now) {
			return nil
		}
		r.mu.Lock()
		r.rolling.tier, r.rolling.start, r.rolling.dirty = tier, start, false
		r.mu.Unlock()
		err := r.rollInterval(tier, start)
		r.mu.Lock()
		// Advance only if nothing moved under us: the tracker lowers the mark (a
		// minute written into an hour already rolled up) or flags the interval
		// being rolled up (a minute written into it meanwhile). Then the next
		// pass does it again, from the store's current content.
		advance := err == nil && !r.rolling.dirty && r.mark[tier].Equal(start)
		if tier == store.TierDay && r.mark[store.TierHour].Before(start.Add(tier.Duration())) {
			advance = false
		}
		r.rolling.tier, r.rolling.start = 0, time.Time{}
		if advance {
			err = r.setMark(tier, start.Add(tier.Duration()))
		}
		r.mu.Unlock()
		if err != nil {
			return err
		}
		if advance {
			r.metrics.rolled[tier].Inc()
		}
	}
	r.mu.Lock()
	next := r.mark[tier]
	r.mu.Unlock()
	if !next.IsZero() && r.ready(tier, next, now) {
		r.backlog = true
	}
	return nil
}

// initMark sets the watermark of an empty tier to the start of the first data
// of its source, and moves it past source data that is gone: a tmsd down for
// longer than the minute retention cannot roll up what expired, and walking
// hundreds of empty hours would only delay the ones that can be done.
func (r *Rollup) initMark(tier store.Tier) error {
	first, _, ok, err := r.deps.Store.Bounds(source(tier))
	if err != nil {
		return fmt.Errorf("rollup %s: %w", tier, err)
	}
	if !ok {
		return nil
	}
	first = first.Truncate(tier.Duration())
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mark[tier].Before(first) {
		return r.setMark(tier, first)
	}
	return nil
}

// rollInterval writes the tier's interval at start, for every scope and
// dimension its source has: each table is the merge of the source tables (the
// Merger adds, to a key missing from a source table, that table's threshold to
// its error) cut to the tier's top K by each metric (which raises the threshold
// to the largest key dropped), and the totals are the exact sum of the sources'.
// It writes scope by scope, so it holds one scope's tables at a time; a crash
// half-way leaves the mark where it was, and the next pass rewrites the lot.
func (r *Rollup) rollInterval(tier store.Tier, start time.Time) error {
	src := source(tier)
	end := start.Add(tier.Duration())
	scopes, err := r.deps.Store.Scopes(src, start, end)
	if err != nil {
		return fmt.Errorf("rollup %s %s: %w", tier, start.Format(time.RFC3339), err)
	}
	k := r.topK(tier)
	for _, sd := range scopes {
		if r.stopping() {
			return ErrStopped
		}
		iv := store.Interval{Tier: tier, Start: start, Scope: sd.Scope, Tables: make(map[topn.Dim]*topn.Table, len(sd.Dims))}
		err := r.deps.Store.Totals(src, sd.Scope, start, end, func(_ time.Time, c topn.Counters) error {
			iv.Total.Add(c)
			return nil
		})
		if err != nil {
			return fmt.Errorf("rollup %s %s %s totals: %w", tier, start.Format(time.RFC3339), sd.Scope, err)
		}
		for _, d := range sd.Dims {
			mg := topn.NewMerger(2 * k)
			err := r.deps.Store.Range(src, sd.Scope, d, start, end, func(_ time.Time, t *topn.Table) error {
				mg.Add(t)
				return nil
			})
			if err != nil {
				return fmt.Errorf("rollup %s %s %s %s: %w", tier, start.Format(time.RFC3339), sd.Scope, d, err)
			}
			t := mg.Table()
			t.Truncate(k)
			iv.Tables[d] = t
		}
		// Retention is wall-clock time, as for the minutes (the store's TTLs are).
		if _, _, err := r.deps.Store.Put(time.Now(), []store.Interval{iv}); err != nil && !errors.Is(err, store.ErrBeyondRetention) {
			return fmt.Errorf("rollup %s %s %s: %w", tier, start.Format(time.RFC3339), sd.Scope, err)
		}
	}
	return nil
}

// Metadata names of the progress (docs/STORAGE.md, "Tiers and rollups").
func markName(tier store.Tier) string    { return "rollup/" + tier.String() }
func evictedName(tier store.Tier) string { return "rollup/evicted/" + tier.String() }

// A stored time is a version byte (1) and big-endian unix seconds.
const timeFormat = 1

func encodeTime(t time.Time) []byte {
	return binary.BigEndian.AppendUint64([]byte{timeFormat}, uint64(t.Unix()))
}

func decodeTime(b []byte) (time.Time, error) {
	if len(b) != 9 || b[0] != timeFormat {
		return time.Time{}, fmt.Errorf("%w: rollup time %x", store.ErrCorrupt, b)
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b[1:])), 0).UTC(), nil
}

// load reads the watermarks and eviction points. A corrupt value is logged and
// forgotten: the mark is then set again from the first stored data, which at
// worst rolls up again what was (a rewrite gives the same tables).
func (r *Rollup) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, tier := range []store.Tier{store.TierHour, store.TierDay} {
		for _, m := range []struct {
			name string
			dst  *time.Time
		}{{markName(tier), &r.mark[tier]}, {evictedName(source(tier)), &r.evicted[source(tier)]}} {
			b, ok, err := r.deps.Store.GetMeta(m.name)
			if err != nil {
				return fmt.Errorf("rollup: load progress: %w", err)
			}
			if !ok {
				continue
			}
			t, err := decodeTime(b)
			if err != nil {
				r.logger.Warn("rollup progress unreadable, starting over from the first stored data", "name", m.name, "err", err)
				continue
			}
			*m.dst = t
		}
	}
	r.loaded = true
	return nil
}

// setMark moves a watermark and persists it. Called with mu held.
func (r *Rollup) setMark(tier store.Tier, t time.Time) error {
	if err := r.deps.Store.PutMeta(markName(tier), encodeTime(t)); err != nil {
		return fmt.Errorf("rollup: save progress: %w", err)
	}
	r.mark[tier] = t
	return nil
}
