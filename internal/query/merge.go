package query

import (
	"cmp"
	"slices"

	"github.com/tmsd/tmsd/internal/topn"
)

// The answers of several aggregators that count disjoint flows (Kafka
// partitions) merge as the intervals of one range do: totals add, a key's
// figures add, and a key one answer did not list gets that answer's
// threshold as error (topn.Merger). These are the merges a query across
// aggregators uses (api's fan-out); an aggregator that did not answer is
// named in Unanswered and makes the answer Partial.

// Merge folds o into a: exact only if both are, partial if either is, the
// tiers of both, the range covering both.
func (a *Answer) Merge(o Answer) {
	a.Exact = a.Exact && o.Exact
	a.Partial = a.Partial || o.Partial
	for _, t := range o.Tiers {
		if !slices.Contains(a.Tiers, t) {
			a.Tiers = append(a.Tiers, t)
		}
	}
	slices.SortFunc(a.Tiers, func(x, y string) int { return tierRank(x) - tierRank(y) })
	if !o.From.IsZero() && (a.From.IsZero() || o.From.Before(a.From)) {
		a.From = o.From
	}
	if o.To.After(a.To) {
		a.To = o.To
	}
	for _, u := range o.Unanswered {
		if !slices.Contains(a.Unanswered, u) {
			a.Unanswered = append(a.Unanswered, u)
		}
	}
}

// MissingPeer marks the answer as lacking the traffic of the aggregator
// named: Partial, not exact.
func (a *Answer) MissingPeer(name string) {
	a.Partial, a.Exact = true, false
	a.Unanswered = append(a.Unanswered, name)
}

// MergeTop merges Top results into the n largest by m.
func MergeTop(rs []Result, n int, m topn.Metric) Result {
	mg := mergers.Get().(*topn.Merger)
	defer func() {
		mg.Reset()
		mergers.Put(mg)
	}()
	out := Result{Answer: Answer{Exact: true}}
	for i, r := range rs {
		mg.Add(r.Table)
		if i == 0 {
			out.Answer = r.Answer
			out.Answer.Tiers = slices.Clone(r.Tiers)
		} else {
			out.Answer.Merge(r.Answer)
		}
	}
	out.Table = mg.TopTable(n, m)
	out.Exact = out.Exact && out.Table.Exact()
	return out
}

// addPoints adds b's points into a's, step by step (the same steps).
func addPoints(a, b []Point) {
	for i := range min(len(a), len(b)) {
		a[i].Value.Add(b[i].Value)
		a[i].Error.Add(b[i].Error)
	}
}

// MergeSeries adds o's points into r's: the same range and step.
func (r *SeriesResult) MergeSeries(o SeriesResult) {
	addPoints(r.Points, o.Points)
	r.Answer.Merge(o.Answer)
}

// MergeReport adds o into r: the same keys in the same order, the same steps.
func (r *ReportResult) MergeReport(o ReportResult) {
	for i := range min(len(r.Rows), len(o.Rows)) {
		r.Rows[i].Value.Add(o.Rows[i].Value)
		r.Rows[i].Error.Add(o.Rows[i].Error)
		addPoints(r.Rows[i].Points, o.Rows[i].Points)
	}
	addPoints(r.Other, o.Other)
	addPoints(r.Total, o.Total)
	r.Answer.Merge(o.Answer)
}

// RankedReport is Report over any source of answers: the keys from top,
// their series from keys, ranked by their sums. A query across aggregators
// runs it with merged tops and merged series.
func RankedReport(top func() (Result, error), keys func([]topn.Key) (ReportResult, error), d topn.Dim, n int, m topn.Metric) (ReportResult, error) {
	t, err := top()
	if err != nil {
		return ReportResult{}, err
	}
	rows, _ := t.Table.Top(d, n, m)
	ks := make([]topn.Key, len(rows))
	for i := range rows {
		ks[i] = rows[i].Key
	}
	res, err := keys(ks)
	if err != nil {
		return ReportResult{}, err
	}
	slices.SortStableFunc(res.Rows, func(a, b ReportRow) int { return cmp.Compare(b.Value.Get(m), a.Value.Get(m)) })
	// The ranking itself is a bound when the tables Top read were cut: a key
	// left out may have been larger than the last one listed.
	res.Answer.Merge(t.Answer)
	return res, nil
}
