package query

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/topn"
)

func TestPercentileNearestRank(t *testing.T) {
	f := func(vals []uint64, p int, want uint64) {
		t.Helper()
		require.Equal(t, want, Percentile(slices.Clone(vals), p), "%v p%d", vals, p)
	}
	f(nil, 95, 0)
	f([]uint64{7}, 95, 7)
	// 20 values: rank ceil(0.95×20) = 19, the top one is discarded.
	twenty := make([]uint64, 20)
	for i := range twenty {
		twenty[i] = uint64(20 - i) // 20..1, unsorted
	}
	f(twenty, 95, 19)
	// 21 values: rank ceil(19.95) = 20.
	f(append(slices.Clone(twenty), 21), 95, 20)
	// 100 values 1..100: rank 95.
	hundred := make([]uint64, 100)
	for i := range hundred {
		hundred[i] = uint64(i + 1)
	}
	f(hundred, 95, 95)
	f(hundred, 100, 100)
	f(hundred, 50, 50)
	f(hundred, 0, 1)
	// Empty steps count: 19 zeros and one burst leave a p95 of zero.
	f(append(make([]uint64, 19), 1000), 95, 0)
}

func TestStepStatsBounds(t *testing.T) {
	ts := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) }
	pt := func(i int, v, e uint64) Point {
		return Point{T: ts(i), Value: topn.Counters{Bytes: v}, Error: topn.Counters{Bytes: e}}
	}
	s := StepStatsOf([]Point{pt(0, 5, 0), pt(1, 9, 0), pt(2, 9, 0), pt(3, 1, 0)}, topn.Bytes)
	require.Equal(t, StepStats{Peak: 9, PeakTime: ts(1), P95: 9}, s, "the first peak on a tie")
	require.True(t, s.Exact())

	// A step where the key was below a threshold: the true peak may be that step.
	s = StepStatsOf([]Point{pt(0, 5, 0), pt(1, 9, 0), pt(2, 0, 12)}, topn.Bytes)
	require.Equal(t, uint64(9), s.Peak)
	require.Equal(t, uint64(3), s.PeakError)
	require.Equal(t, uint64(9), s.P95)
	require.Equal(t, uint64(3), s.P95Error)
	require.False(t, s.Exact())
	require.Equal(t, StepStats{}, StepStatsOf(nil, topn.Bytes))
}

// A report's rows are Top's keys with their sums, other and total add up, and
// where tables were cut the true peak and p95 lie within the bounds.
func TestReport(t *testing.T) {
	st, r, tr := rolledStore(t)
	e := New(st, noOpen{}, WithProgress(r))
	from, to := at(0, 10, 0), at(2, 14, 0)
	for _, step := range []time.Duration{5 * time.Minute, time.Hour} {
		for _, sc := range []topn.Scope{exact, cut} {
			res, err := e.Report(sc, topn.DimSrcIP, from, to, step, 6, topn.Bytes)
			require.NoError(t, err)
			require.Len(t, res.Rows, 6)
			require.Equal(t, sc == exact, res.Exact, "%s %s", step, sc)
			if step == time.Hour {
				require.Equal(t, []string{"hour", "day"}, res.Tiers, sc)
			} else {
				require.Equal(t, []string{"minute", "hour", "day"}, res.Tiers, "Top reads days, the 5m series minutes")
			}
			// The truth per step, for every key and the total.
			nSteps := int(to.Sub(from) / step)
			perStep := func(k *topn.Key) []uint64 {
				out := make([]uint64, nSteps)
				for m := int(from.Sub(t0) / time.Minute); m < int(to.Sub(t0)/time.Minute); m++ {
					i := int(at(0, 0, m).Sub(from) / step)
					for kk, c := range tr[sc][m] {
						if k == nil || kk == *k {
							out[i] += c.Bytes
						}
					}
				}
				return out
			}
			total := perStep(nil)
			sumRows := make([]uint64, nSteps)
			for i, row := range res.Rows {
				if i > 0 {
					require.GreaterOrEqual(t, res.Rows[i-1].Value.Bytes, row.Value.Bytes, "ordered by their sums")
				}
				truth := perStep(&row.Key)
				var sum uint64
				for j, v := range truth {
					sum += v
					sumRows[j] += row.Points[j].Value.Bytes
				}
				require.LessOrEqual(t, row.Value.Bytes, sum)
				require.GreaterOrEqual(t, row.Value.Bytes+row.Error.Bytes, sum)
				got := StepStatsOf(row.Points, topn.Bytes)
				peak := slices.Max(truth)
				p95 := Percentile(slices.Clone(truth), 95)
				require.LessOrEqual(t, got.Peak, peak)
				require.GreaterOrEqual(t, got.Peak+got.PeakError, peak)
				require.LessOrEqual(t, got.P95, p95)
				require.GreaterOrEqual(t, got.P95+got.P95Error, p95)
				if sc == exact {
					require.Equal(t, sum, row.Value.Bytes)
					require.Equal(t, StepStats{Peak: peak, PeakTime: from.Add(time.Duration(slices.Index(truth, peak)) * step), P95: p95}, got)
				}
			}
			for j := range total {
				require.Equal(t, total[j], res.Total[j].Value.Bytes, "exact totals")
				require.Equal(t, total[j]-sumRows[j], res.Other[j].Value.Bytes, "other = total - rows")
			}
			// Compared with itself, the same keys over the same range give the same figures.
			keys := make([]topn.Key, len(res.Rows))
			for i := range res.Rows {
				keys[i] = res.Rows[i].Key
			}
			again, err := e.ReportKeys(sc, topn.DimSrcIP, keys, from, to, step)
			require.NoError(t, err)
			require.Equal(t, res.Rows, again.Rows)
		}
	}
}
