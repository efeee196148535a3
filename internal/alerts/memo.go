package alerts

import (
	"time"

	"github.com/tmsd/tmsd/internal/topn"
)

// memo keeps one evaluation's reads, so that the rules sharing a table read
// it once: 1,000 rules read some 200 distinct tables and totals a minute, each
// read decoding up to 3×top_k rows. BenchmarkEvaluateMinute (loaded 2-core
// box, median of 7) measured: 110 ms → 61 ms for 1,000 rules, 119 ms → 57 ms
// on an hour's first minute, when the baselines read their four weeks (31 ms
// → 18 ms for the 200 baseline rules alone). The 100 any-key rules, 30 ms of
// it, read 78 distinct tables: little to share.
//
// It answers what the source would. A Top and a total are kept as asked. A
// key of a one-step series is looked up in its (scope, dim, interval)'s whole
// table, read with Top(n=0) once a second key of it is asked (a table asked
// for one key costs one Series, as before): the row's value and error, or the
// table's threshold as the error of a key it lacks, which is how Series sums
// the interval's tables and how Top merges them. A Top that covers more than
// the interval asked (an edge read from a coarser tier) is not used.
//
// It starts afresh when the interval changes or a rule comes back (the same
// minute evaluated again: its data may have changed), so it holds its tables
// until the next evaluation. Errors are not kept; tables are shared, read
// only. Guarded by evalMu.
type memo struct {
	from, to int64           // the evaluation's interval, Unix ns
	seen     map[string]bool // rule names
	tops     map[memoTop]*topn.Table
	points   map[memoPoint]memoFigures
	tables   map[memoTable]*memoRows
}

// memoTable is a table's query: (scope, dim, interval), times in Unix ns (a
// time.Time compares its location and monotonic reading too).
type memoTable struct {
	sc       topn.Scope
	d        topn.Dim
	from, to int64
}

type memoTop struct {
	memoTable
	n int
	m topn.Metric
}

// memoPoint is a total's series (its first point is kept).
type memoPoint struct {
	memoTable
	step time.Duration
}

type memoFigures struct{ v, er topn.Counters }

// memoRows is a table asked for keys: how often, then (from the second
// key on) the table with its rows by key, or nil when it is not usable.
type memoRows struct {
	asked int
	read  bool
	t     *topn.Table
	byKey map[topn.Key]int32 // index in t.Entries
}

// begin starts rule r's reads for [from, to), afresh when the evaluation is
// a new one.
func (mm *memo) begin(r *Rule, from, to time.Time) {
	f, t := from.UnixNano(), to.UnixNano()
	if mm.seen == nil || mm.seen[r.Name] || f != mm.from || t != mm.to {
		*mm = memo{from: f, to: t, seen: map[string]bool{}, tops: map[memoTop]*topn.Table{},
			points: map[memoPoint]memoFigures{}, tables: map[memoTable]*memoRows{}}
	}
	mm.seen[r.Name] = true
}

// top is src.Top's table.
func (mm *memo) top(src Source, sc topn.Scope, d topn.Dim, from, to time.Time, n int, m topn.Metric) (*topn.Table, error) {
	q := memoTop{memoTable{sc, d, from.UnixNano(), to.UnixNano()}, n, m}
	if t, ok := mm.tops[q]; ok {
		return t, nil
	}
	res, err := src.Top(sc, d, from, to, n, m)
	if err != nil {
		return nil, err
	}
	mm.tops[q] = res.Table
	return res.Table, nil
}

// point is the first point of src.Series (zero when it has none): a total's
// figures (key nil) or key's of dimension d.
func (mm *memo) point(src Source, sc topn.Scope, from, to time.Time, step time.Duration, d topn.Dim, key *topn.Key) (v, er topn.Counters, err error) {
	tq := memoTable{sc, d, from.UnixNano(), to.UnixNano()}
	if key == nil {
		q := memoPoint{tq, step}
		if f, ok := mm.points[q]; ok {
			return f.v, f.er, nil
		}
		v, er, err = series(src, sc, from, to, step, d, nil)
		if err == nil {
			mm.points[q] = memoFigures{v, er}
		}
		return v, er, err
	}
	// Only a one-step series is one table's figures.
	if !from.Truncate(step).Equal(from) || to.Sub(from) > step {
		return series(src, sc, from, to, step, d, key)
	}
	rows := mm.tables[tq]
	if rows == nil {
		rows = &memoRows{}
		mm.tables[tq] = rows
	}
	if rows.asked++; rows.asked > 1 && !rows.read {
		res, err := src.Top(sc, d, from, to, 0, topn.Bytes)
		if err != nil {
			return v, er, err
		}
		rows.read = true
		if res.From.Equal(from) && res.To.Equal(to) {
			rows.t, rows.byKey = res.Table, make(map[topn.Key]int32, len(res.Table.Entries))
			for i := range res.Table.Entries {
				rows.byKey[res.Table.Entries[i].Key] = int32(i)
			}
		}
	}
	if rows.t == nil {
		return series(src, sc, from, to, step, d, key)
	}
	if i, ok := rows.byKey[*key]; ok {
		e := &rows.t.Entries[i]
		return e.Value, e.Error, nil
	}
	return topn.Counters{}, rows.t.Threshold, nil
}

// series is src.Series' first point.
func series(src Source, sc topn.Scope, from, to time.Time, step time.Duration, d topn.Dim, key *topn.Key) (v, er topn.Counters, err error) {
	s, err := src.Series(sc, from, to, step, d, key)
	if err != nil || len(s.Points) == 0 {
		return v, er, err
	}
	return s.Points[0].Value, s.Points[0].Error, nil
}
