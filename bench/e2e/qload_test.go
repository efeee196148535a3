package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQuantile(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	f := func(q, want float64) {
		t.Helper()
		require.Equal(t, want, quantile(xs, q), "q=%v", q)
	}
	f(0.5, 5)
	f(0.95, 10)
	f(0, 1)
	f(1, 10)
	require.Equal(t, 7.0, quantile([]float64{7}, 0.95))
}

// TestCheckDay: an answer covers its window's seeded minutes when its total
// holds exactly them (no ingest) or more (under ingest), never fewer.
func TestCheckDay(t *testing.T) {
	end := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	r := &qloadRun{seedFirst: end.Add(-1440 * time.Minute), seedEnd: end}
	from, to := end.Add(-1438*time.Minute), end.Add(3*time.Minute) // 1,441 minutes, 1,438 seeded
	seeded := seedTotal.Flows * 1438
	f := func(flows uint64, ingest, covered bool) {
		t.Helper()
		s := &qloadStats{By: "srcip", Window: 1 << 30, SeededMin: 1 << 30}
		var problems []string
		a := &dayAnswer{From: from.Format(time.RFC3339), To: to.Format(time.RFC3339), Tiers: []string{"minute"},
			Rows: []topRow{{Key: "10.0.0.0"}}, Total: amounts{Flows: flows}}
		(&opts{}).checkDay(r, s, a, ingest, func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) })
		require.Equal(t, 1441, s.Window)
		require.Equal(t, 1438, s.SeededMin)
		require.Equal(t, 1438, s.SeededMax)
		require.Equal(t, []string{"minute"}, s.Tiers)
		if covered {
			require.Equal(t, 1, s.Covered)
			require.Empty(t, problems)
		} else {
			require.Zero(t, s.Covered)
			require.Len(t, problems, 1)
		}
	}
	f(seeded, false, true)
	f(seeded+5, false, false) // nothing arrived: more than the seeded day is wrong
	f(seeded+5, true, true)
	f(seeded-seedTotal.Flows, true, false) // a seeded minute missing
	f(seeded-seedTotal.Flows, false, false)
}
