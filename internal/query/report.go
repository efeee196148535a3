package query

import (
	"slices"
	"time"

	"github.com/tmsd/tmsd/internal/topn"
)

// ReportRow is one key of a report: its series and their sums.
type ReportRow struct {
	Key topn.Key
	// Value and Error are the sums of the points': the key's true amount over
	// the range is at least Value and at most Value+Error.
	Value, Error topn.Counters
	Points       []Point
}

// ReportResult is the answer of Report and ReportKeys.
type ReportResult struct {
	Rows []ReportRow
	// Other is, per step, what the keys not listed hold: the dimension's
	// CountsPerFlow × the total (twice it for ip and port, a flow counted at
	// both ends) minus the rows' values. Where a row is a bound, Other
	// over-counts by at most the rows' errors, kept in its Error.
	Other []Point
	// Total is the scope's exact total per step.
	Total []Point
	Answer
}

// Report returns the n largest keys of dimension d by metric m over [from, to)
// with their series per step, "other" and the total. Top picks the keys from the
// coarsest tiers; their figures come from one KeySeries pass, so a row's sum and
// its steps agree, and rows are ordered by those sums.
func (e *Engine) Report(sc topn.Scope, d topn.Dim, from, to time.Time, step time.Duration, n int, m topn.Metric) (ReportResult, error) {
	return RankedReport(func() (Result, error) { return e.Top(sc, d, from, to, n, m) },
		func(keys []topn.Key) (ReportResult, error) { return e.ReportKeys(sc, d, keys, from, to, step) }, d, n, m)
}

func tierRank(name string) int {
	return map[string]int{"minute": 0, "hour": 1, "day": 2}[name]
}

// ReportKeys is Report for keys chosen by the caller, in that order: the same
// keys over an earlier period, for a comparison.
func (e *Engine) ReportKeys(sc topn.Scope, d topn.Dim, keys []topn.Key, from, to time.Time, step time.Duration) (ReportResult, error) {
	ks, err := e.KeySeries(sc, d, keys, from, to, step)
	if err != nil {
		return ReportResult{}, err
	}
	res := ReportResult{Rows: make([]ReportRow, len(keys)), Total: ks.Total, Answer: ks.Answer}
	res.Other = make([]Point, len(ks.Total))
	for j := range res.Other {
		res.Other[j] = Point{T: ks.Total[j].T, Value: ks.Total[j].Value.Times(d.CountsPerFlow())}
	}
	for i, pts := range ks.Keys {
		r := ReportRow{Key: keys[i], Points: pts}
		for j := range pts {
			r.Value.Add(pts[j].Value)
			r.Error.Add(pts[j].Error)
			res.Other[j].Value.Sub(pts[j].Value)
			res.Other[j].Error.Add(pts[j].Error)
		}
		res.Rows[i] = r
	}
	return res, nil
}

// StepStats are the peak and the 95th percentile of a series' steps, by one metric.
type StepStats struct {
	// Peak is the largest step's amount and PeakTime its start (the first
	// such step on a tie).
	Peak     uint64
	PeakTime time.Time
	// P95 is the 95th percentile of the steps by nearest rank (Percentile).
	P95 uint64
	// PeakError and P95Error bound the figures where steps carry an error:
	// the true peak lies in [Peak, Peak+PeakError], the true P95 in
	// [P95, P95+P95Error]. Both are zero for exact series.
	PeakError, P95Error uint64
}

// Exact reports whether the stats carry no bound.
func (s StepStats) Exact() bool { return s.PeakError == 0 && s.P95Error == 0 }

// StepStatsOf computes the step statistics of points by metric m. Every step
// counts, empty ones as zero, as in 95th-percentile billing. Bounds come from
// computing the figures twice, on the points' lower values and on their upper
// values (Value+Error): peak and percentile are monotone in every step, so the
// true figures lie between the two.
func StepStatsOf(points []Point, m topn.Metric) StepStats {
	if len(points) == 0 {
		return StepStats{}
	}
	lo, hi := make([]uint64, len(points)), make([]uint64, len(points))
	var s StepStats
	var peakHi uint64
	for i, p := range points {
		lo[i] = p.Value.Get(m)
		hi[i] = lo[i] + p.Error.Get(m)
		if i == 0 || lo[i] > s.Peak {
			s.Peak, s.PeakTime = lo[i], p.T
		}
		peakHi = max(peakHi, hi[i])
	}
	s.PeakError = peakHi - s.Peak
	s.P95 = Percentile(lo, 95)
	s.P95Error = Percentile(hi, 95) - s.P95
	return s
}

// Percentile is the p-th percentile of vals by nearest rank: sorted ascending,
// the value of rank ceil(p/100 × N), counting from 1. For "95th percentile
// billing" over 5-minute steps this is the usual definition: the top 5 % of
// steps are discarded and the largest remaining one is the figure. It sorts vals.
func Percentile(vals []uint64, p int) uint64 {
	if len(vals) == 0 {
		return 0
	}
	slices.Sort(vals)
	// In integers: a float p/100×N such as 0.95×20 may land just above 19.
	rank := (p*len(vals) + 99) / 100
	return vals[min(max(rank, 1), len(vals))-1]
}
