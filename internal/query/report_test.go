package query

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/rollup"
	"github.com/tmsd/tmsd/internal/store"
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

// endsStore writes three hours of minutes of flows between a dozen hosts
// (some talking to themselves) as the aggregator stores them: an ip table
// (each flow under both ends), a dstip table, cut to cutK keys when cutK > 0,
// and rolls the hours up. It returns the store, the rollup and the flows'
// truth per minute: ip and dstip key → counters, and the total.
func endsStore(t *testing.T, cutK int) (*store.Store, *rollup.Rollup, []map[topn.Dim]map[topn.Key]topn.Counters, []topn.Counters) {
	cfg := store.DefaultConfiguration()
	cfg.InMemory = true
	for _, tier := range store.Tiers {
		cfg.Retention[tier] = 100 * 365 * 24 * time.Hour
	}
	st, err := store.New(cfg, store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })
	const minutes = 3 * 60
	truth := make([]map[topn.Dim]map[topn.Key]topn.Counters, minutes)
	totals := make([]topn.Counters, minutes)
	var ivs []store.Interval
	for m := range minutes {
		truth[m] = map[topn.Dim]map[topn.Key]topn.Counters{topn.DimIP: {}, topn.DimDstIP: {}}
		add := func(d topn.Dim, k topn.Key, c topn.Counters) {
			v := truth[m][d][k]
			v.Add(c)
			truth[m][d][k] = v
		}
		for f := range 30 {
			src, dst := key((m+f)%12), key((m*7+f*5)%12) // src == dst now and then
			c := topn.Counters{Bytes: uint64(100 + (m*31+f*17)%900), Packets: uint64(1 + (m+f)%5), Flows: 1}
			totals[m].Add(c)
			add(topn.DimIP, src, c)
			add(topn.DimIP, dst, c)
			add(topn.DimDstIP, dst, c)
		}
		iv := store.Interval{Tier: store.TierMinute, Start: at(0, 0, m), Scope: exact, Total: totals[m], Tables: map[topn.Dim]*topn.Table{}}
		for d, keys := range truth[m] {
			tab := &topn.Table{Total: totals[m]}
			for k, c := range keys {
				tab.Entries = append(tab.Entries, topn.Entry{Key: k, Value: c})
			}
			tab.Truncate(cutK)
			iv.Tables[d] = tab
		}
		ivs = append(ivs, iv)
	}
	_, _, err = st.Put(t0, ivs)
	require.NoError(t, err)
	rcfg := rollup.DefaultConfiguration()
	rcfg.HourTopK, rcfg.DayTopK = max(cutK, 1), max(cutK, 1)
	if cutK == 0 {
		rcfg.HourTopK, rcfg.DayTopK = 1000, 1000
	}
	r, err := rollup.New(rcfg, rollup.Dependencies{Store: st, Clock: func() time.Time { return at(0, 3, 0).Add(rcfg.Delay) },
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, r.Pass())
	require.Equal(t, at(0, 3, 0), r.Rolled(store.TierHour))
	return st, r, truth, totals
}

// A report's and a stacked series' other, per step, is what the listed keys
// leave of CountsPerFlow × the total: for ip, a flow at both ends, rows +
// other = 2 × total in bytes, packets and flows; for dstip, 1 × total. Where
// the tables were cut, the true remainder lies in [other − error, other].
func TestReportOtherCountsEveryEnd(t *testing.T) {
	for _, cutK := range []int{0, 4} {
		st, r, truth, totals := endsStore(t, cutK)
		e := New(st, noOpen{}, WithProgress(r))
		from, to := at(0, 0, 10), at(0, 3, 0)
		for _, step := range []time.Duration{5 * time.Minute, time.Hour} {
			if step == time.Hour {
				from = at(0, 1, 0) // whole steps, from the hour tier
			}
			for d, k := range map[topn.Dim]int{topn.DimIP: 2, topn.DimDstIP: 1} {
				what := fmt.Sprintf("cut %d, step %s, %s", cutK, step, d)
				res, err := e.Report(exact, d, from, to, step, 3, topn.Bytes)
				require.NoError(t, err, what)
				require.Len(t, res.Rows, 3, what)
				require.Equal(t, cutK == 0, res.Exact, what)
				nSteps := int(to.Sub(from) / step)
				require.Len(t, res.Other, nSteps, what)
				for j := range nSteps {
					var total, rows, rowsErr, listed topn.Counters
					for m := int(from.Sub(t0)/time.Minute) + j*int(step/time.Minute); m < int(from.Sub(t0)/time.Minute)+(j+1)*int(step/time.Minute); m++ {
						total.Add(totals[m])
						for _, row := range res.Rows {
							listed.Add(truth[m][d][row.Key])
						}
					}
					for _, row := range res.Rows {
						rows.Add(row.Points[j].Value)
						rowsErr.Add(row.Points[j].Error)
					}
					require.Equal(t, total, res.Total[j].Value, "%s step %d: exact total", what, j)
					whole := total.Times(k)
					sum := res.Other[j].Value
					sum.Add(rows)
					require.Equal(t, whole, sum, "%s step %d: rows + other = %d × total", what, j, k)
					require.Equal(t, rowsErr, res.Other[j].Error, "%s step %d: other's bound", what, j)
					trueOther := whole
					trueOther.Sub(listed)
					for _, m := range []topn.Metric{topn.Bytes, topn.Packets, topn.Flows} {
						require.LessOrEqual(t, trueOther.Get(m), res.Other[j].Value.Get(m), "%s step %d %s", what, j, m)
						require.GreaterOrEqual(t, trueOther.Get(m)+res.Other[j].Error.Get(m), res.Other[j].Value.Get(m), "%s step %d %s", what, j, m)
					}
				}
				// The same through ReportKeys (a comparison's earlier period).
				keys := []topn.Key{res.Rows[0].Key}
				again, err := e.ReportKeys(exact, d, keys, from, to, step)
				require.NoError(t, err, what)
				for j := range again.Other {
					sum := again.Other[j].Value
					sum.Add(again.Rows[0].Points[j].Value)
					require.Equal(t, again.Total[j].Value.Times(k), sum, "%s step %d: one key + other", what, j)
				}
			}
		}
		// Top over a ragged range (minutes and hours): with every key listed
		// (n large) other is nothing, and the shares add up to 2.
		res, err := e.Top(exact, topn.DimIP, at(0, 0, 10), to, 0, topn.Bytes)
		require.NoError(t, err)
		require.Equal(t, []string{"minute", "hour"}, res.Tiers)
		if cutK == 0 {
			rows, other := res.Table.Top(topn.DimIP, 0, topn.Bytes)
			require.True(t, other.IsZero(), "every key listed: %+v", other)
			var share float64
			for _, row := range rows {
				share += float64(row.Value.Flows) / float64(res.Table.Total.Flows)
			}
			require.InDelta(t, 2.0, share, 1e-12)
		}
	}
}
