// Package query answers TopN and time-series questions over a time range. It
// plans the range over the tiers (whole days from the day tier, whole hours from
// the hour tier, ragged edges from minutes; plan.go) and adds the minutes still
// open in the aggregator under its view lock, so no minute is counted twice or missed.
package query

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// ErrInvalid is a query the engine cannot answer as asked (a bad step, a key listed twice).
var ErrInvalid = errors.New("query: invalid argument")

// Store is the part of the store queries read.
type Store interface {
	Range(tier store.Tier, scope topn.Scope, dim topn.Dim, from, to time.Time, fn func(start time.Time, t *topn.Table) error) error
	Totals(tier store.Tier, scope topn.Scope, from, to time.Time, fn func(start time.Time, total topn.Counters) error) error
	Bounds(tier store.Tier) (first, last time.Time, ok bool, err error)
}

// Open is the part of the aggregator queries read.
type Open interface {
	View(fn func(v aggregate.View) error) error
}

// Progress says how far the hour and day tiers are rolled up: every interval
// of the tier starting before Rolled(tier) is final (zero: none).
type Progress interface {
	Rolled(tier store.Tier) time.Time
}

// Engine answers queries.
type Engine struct {
	store    Store
	open     Open
	progress Progress
}

// Option configures an Engine.
type Option func(*Engine)

// WithProgress lets the engine read the hour and day tiers below their rollup
// watermarks. Without it, it reads only minutes.
func WithProgress(p Progress) Option { return func(e *Engine) { e.progress = p } }

// New returns an engine reading st and the open minutes of open.
func New(st Store, open Open, opts ...Option) *Engine {
	e := &Engine{store: st, open: open}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Answer says how a result was computed.
type Answer struct {
	// Tiers lists the tiers read, finest first ("minute", "hour", "day").
	Tiers []string
	// Exact is true when no figure of the result has an error bound.
	Exact bool
	// Partial is true when a drill-down scope's tables miss some of its key's
	// traffic: a minute of the range did not keep a drill-down for it (it was
	// not among that minute's top keys). The figures are then lower bounds,
	// and Exact is false.
	Partial bool
	// From and To are the range the figures cover: the range asked, unless an
	// edge was only still stored in a coarser tier (minutes expired or evicted),
	// in which case the whole hour or day holding it was read and the range
	// widened to it.
	From, To time.Time
	// Unanswered are the aggregators a query across them did not hear from
	// (down, or too slow): their traffic is missing, and Partial is set.
	Unanswered []string
}

// Result is the answer of Top.
type Result struct {
	// Table has the top rows with their error bounds, the exact total and the
	// threshold bounding any key not listed.
	Table *topn.Table
	Answer
}

// Top returns the n largest keys by metric m of dimension d in scope sc over
// [from, to), from the coarsest tiers that cover the range exactly.
func (e *Engine) Top(sc topn.Scope, d topn.Dim, from, to time.Time, n int, m topn.Metric) (Result, error) {
	if err := checkScope(sc, d); err != nil {
		return Result{}, err
	}
	p, err := e.plan(from, to, 0)
	if err != nil {
		return Result{}, err
	}
	mg := mergers.Get().(*topn.Merger)
	defer func() {
		mg.Reset()
		mergers.Put(mg)
	}()
	reserved := false
	err = e.read(p, sc, d, func(_ int, _ time.Time, t *topn.Table) {
		if !reserved {
			// At most every interval's entries, each a new key, sized on the
			// first table: one reservation instead of a copy per growth.
			reserved = true
			mg.Grow(min(p.intervals()*len(t.Entries), maxGrow))
		}
		mg.Add(t)
	})
	if err != nil {
		return Result{}, err
	}
	t := mg.TopTable(n, m)
	ans := p.answer(t.Exact())
	if sc.IsDrillDown() {
		cov, err := e.coverage(p, sc, func(time.Time) int { return 0 }, 1)
		if err != nil {
			return Result{}, err
		}
		cov.apply(&ans)
	}
	return Result{Table: t, Answer: ans}, nil
}

// checkScope refuses a dimension the scope stores no table of: the answer
// would be an empty table, a wrong number.
func checkScope(sc topn.Scope, d topn.Dim) error {
	if d != 0 && !sc.Has(d) {
		return fmt.Errorf("%w: scope %s has no %s table", ErrInvalid, sc, d)
	}
	return nil
}

// maxGrow caps what a query reserves in a Merger up front (1<<18 rows are 25 MB).
const maxGrow = 1 << 18

// mergers are reused between queries: a long range merges 100k+ keys, whose
// map and rows cost more to allocate and grow than to clear.
var mergers = sync.Pool{New: func() any { return topn.NewMerger(0) }}

// read calls fn with every table of (sc, d) the plan covers, the open minutes
// included, in the aggregator's view. The table is only valid during fn.
func (e *Engine) read(p plan, sc topn.Scope, d topn.Dim, fn func(seg int, start time.Time, t *topn.Table)) error {
	return e.open.View(func(v aggregate.View) error {
		// bounded: a stored table read has error bounds, so the answer has
		// them anyway and the open minutes may be read cut (View.Tables).
		// Segments are in time order: the open minutes come last.
		bounded := false
		for i, s := range p.segs {
			if err := e.store.Range(s.tier, sc, d, s.from, s.to, func(start time.Time, t *topn.Table) error {
				bounded = bounded || !t.Exact()
				fn(i, start, t)
				return nil
			}); err != nil {
				return fmt.Errorf("reading %s %s %s: %w", s.tier, sc, d, err)
			}
			if s.tier == store.TierMinute {
				for start, t := range v.Tables(sc, d, s.from, s.to, bounded) {
					fn(i, start, t)
				}
			}
		}
		return nil
	})
}

// Point is one step of a series: the traffic of [T, T+step).
type Point struct {
	T     time.Time
	Value topn.Counters
	// Error bounds the under-count of a key's series (0 for totals).
	Error topn.Counters
}

// SeriesResult is the answer of Series.
type SeriesResult struct {
	Points []Point
	Answer
}

// steps lays out the points of [from, to): aligned to multiples of step since
// the epoch (UTC days for a step of days), every step present even when empty.
type steps struct {
	first time.Time
	step  time.Duration
	n     int
}

func newSteps(from, to time.Time, step time.Duration) (steps, error) {
	if step < time.Minute || step%time.Minute != 0 {
		return steps{}, fmt.Errorf("%w: step must be a whole number of minutes, got %s", ErrInvalid, step)
	}
	first := from.Truncate(step)
	return steps{first: first, step: step, n: max(0, int((to.Sub(first)+step-1)/step))}, nil
}

func (s steps) points() []Point {
	pts := make([]Point, s.n)
	for i := range pts {
		pts[i].T = s.first.Add(time.Duration(i) * s.step)
	}
	return pts
}

// index is the point holding t, or -1.
func (s steps) index(t time.Time) int {
	if t.Before(s.first) {
		return -1
	}
	i := int(t.Sub(s.first) / s.step)
	if i >= s.n {
		return -1
	}
	return i
}

// Series returns the totals of scope sc (or, when key is set, of that key of
// dimension d) per step over [from, to). Steps are aligned to multiples of step
// since the epoch; steps with no traffic are present with zero values. Hour and
// day tiers serve the steps they divide (1h, 1d), minutes the others and the edges.
func (e *Engine) Series(sc topn.Scope, from, to time.Time, step time.Duration, d topn.Dim, key *topn.Key) (SeriesResult, error) {
	if err := checkScope(sc, d); err != nil {
		return SeriesResult{}, err
	}
	res, err := e.series(sc, from, to, step, d, key)
	if err != nil || !sc.IsDrillDown() {
		return res, err
	}
	st, _ := newSteps(from, to, step)
	p, err := e.plan(from, to, step)
	if err != nil {
		return SeriesResult{}, err
	}
	cov, err := e.coverage(p, sc, st.index, st.n)
	if err != nil {
		return SeriesResult{}, err
	}
	cov.apply(&res.Answer)
	return res, nil
}

func (e *Engine) series(sc topn.Scope, from, to time.Time, step time.Duration, d topn.Dim, key *topn.Key) (SeriesResult, error) {
	st, err := newSteps(from, to, step)
	if err != nil {
		return SeriesResult{}, err
	}
	p, err := e.plan(from, to, step)
	if err != nil {
		return SeriesResult{}, err
	}
	points := st.points()
	if key != nil {
		exact := true
		err := e.read(p, sc, d, func(_ int, start time.Time, t *topn.Table) {
			i := st.index(start)
			if i < 0 {
				return
			}
			pt := &points[i]
			if e, ok := t.Lookup(*key); ok {
				pt.Value.Add(e.Value)
				pt.Error.Add(e.Error)
			} else {
				pt.Error.Add(t.Threshold)
			}
			exact = exact && pt.Error.IsZero()
		})
		return SeriesResult{Points: points, Answer: p.answer(exact)}, err
	}
	err = e.open.View(func(v aggregate.View) error {
		add := func(start time.Time, c topn.Counters) {
			if i := st.index(start); i >= 0 {
				points[i].Value.Add(c)
			}
		}
		for _, s := range p.segs {
			if err := e.store.Totals(s.tier, sc, s.from, s.to, func(start time.Time, c topn.Counters) error {
				add(start, c)
				return nil
			}); err != nil {
				return fmt.Errorf("reading %s totals of %s: %w", s.tier, sc, err)
			}
			if s.tier == store.TierMinute {
				for start, c := range v.Totals(sc, s.from, s.to) {
					add(start, c)
				}
			}
		}
		return nil
	})
	return SeriesResult{Points: points, Answer: p.answer(true)}, err
}

// KeySeriesResult is the answer of KeySeries.
type KeySeriesResult struct {
	// Keys[i] is the series of the i-th key asked, one point per step. A step
	// where a table did not keep the key has the table's threshold in Error.
	Keys [][]Point
	// Total is the scope's total per step: what the keys leave of it is "other".
	Total []Point
	Answer
}

// KeySeries returns the series of several keys of dimension d in scope sc, per
// step over [from, to), with the scope's total, in one pass over the tables:
// each table's entries are looked up in the set of keys asked, not each key in
// the table. Steps are laid out as in Series and served from the same tiers.
func (e *Engine) KeySeries(sc topn.Scope, d topn.Dim, keys []topn.Key, from, to time.Time, step time.Duration) (KeySeriesResult, error) {
	if err := checkScope(sc, d); err != nil {
		return KeySeriesResult{}, err
	}
	st, err := newSteps(from, to, step)
	if err != nil {
		return KeySeriesResult{}, err
	}
	idx := make(map[topn.Key]int, len(keys))
	for i, k := range keys {
		if _, dup := idx[k]; dup {
			return KeySeriesResult{}, fmt.Errorf("%w: key %s listed twice", ErrInvalid, d.Format(k))
		}
		idx[k] = i
	}
	p, err := e.plan(from, to, step)
	if err != nil {
		return KeySeriesResult{}, err
	}
	res := KeySeriesResult{Keys: make([][]Point, len(keys)), Total: st.points()}
	for i := range res.Keys {
		res.Keys[i] = st.points()
	}
	// seen[i] == table number when the current table kept key i.
	seen := make([]int, len(keys))
	tables := 0
	err = e.read(p, sc, d, func(_ int, start time.Time, t *topn.Table) {
		pi := st.index(start)
		if pi < 0 {
			return
		}
		tables++
		res.Total[pi].Value.Add(t.Total)
		for j := range t.Entries {
			en := &t.Entries[j]
			if i, ok := idx[en.Key]; ok {
				pt := &res.Keys[i][pi]
				pt.Value.Add(en.Value)
				pt.Error.Add(en.Error)
				seen[i] = tables
			}
		}
		if t.Threshold.IsZero() {
			return
		}
		for i := range seen {
			if seen[i] != tables {
				res.Keys[i][pi].Error.Add(t.Threshold)
			}
		}
	})
	if err != nil {
		return KeySeriesResult{}, err
	}
	exact := true
	for i := range res.Keys {
		for j := range res.Keys[i] {
			exact = exact && res.Keys[i][j].Error.IsZero()
		}
	}
	res.Answer = p.answer(exact)
	if sc.IsDrillDown() {
		cov, err := e.coverage(p, sc, st.index, st.n)
		if err != nil {
			return KeySeriesResult{}, err
		}
		cov.apply(&res.Answer)
	}
	return res, nil
}
