package alerts

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

const (
	loud  = "192.0.2.20"
	quiet = "192.0.2.30"
)

// usual is the loud key's rate at an hour of the day: the same shape each day.
func usual(hour int) float64 { return (200 + 100*float64(hour%6)) * M }

// day is the evaluated day, five weeks after t0 (both Mondays).
var day = t0.Add(5 * week)

// dailyStore writes the hour tier for the weeks before day (hours from
// `from` on) and day's minutes of hours 3 and 14, each at its hour's usual
// rate but two: the loud key at 6× at 14:05, the quiet one at 6× at 03:05.
func dailyStore(t *testing.T, from time.Time) *store.Store {
	st := newStore(t)
	var ivs []store.Interval
	for h := from; h.Before(day); h = h.Add(time.Hour) {
		tab := &topn.Table{Entries: []topn.Entry{row(t, loud, usual(h.Hour()), time.Hour), row(t, quiet, 1*M, time.Hour)}}
		tab.Total = traffic(100*M, time.Hour)
		for _, r := range tab.Entries {
			tab.Total.Add(r.Value)
		}
		ivs = append(ivs, store.Interval{Tier: store.TierHour, Start: h, Total: tab.Total, Tables: map[topn.Dim]*topn.Table{topn.DimDstIP: tab}})
	}
	_, _, err := st.Put(day, ivs)
	require.NoError(t, err)
	for _, hour := range []int{3, 14} {
		for i := range 10 {
			l, q := usual(hour), 1*M
			if hour == 14 && i == 5 {
				l *= 6
			}
			if hour == 3 && i == 5 {
				q *= 6
			}
			put(t, st, store.TierMinute, day.Add(time.Duration(hour)*time.Hour+time.Duration(i)*time.Minute),
				[]topn.Entry{row(t, loud, l, time.Minute), row(t, quiet, q, time.Minute)}, 0, 100*M)
		}
	}
	return st
}

// dayMinutes are the minutes dailyStore wrote, as minutes of t0.
func dayMinutes() []int {
	var out []int
	for _, hour := range []int{3, 14} {
		for i := range 10 {
			out = append(out, int(day.Sub(t0)/time.Minute)+hour*60+i)
		}
	}
	return out
}

func (h *harness) evalList(ms []int) {
	h.t.Helper()
	for _, m := range ms {
		h.eval(m, m+1)
	}
}

// A daily pattern over five weeks of hours: a minute 6× its hour's usual rate
// fires a ratio-5 rule, normal minutes do not (though the rate changes with
// the hour), and min_volume keeps the quiet key's 6× from paging.
func TestBaselineDailyPattern(t *testing.T) {
	st := dailyStore(t, t0)
	h := newHarness(t, st,
		Rule{Name: "ratio", Dim: "dstip", Key: "*", ResolveFor: Duration(time.Minute), Baseline: &Baseline{Weeks: 4, Ratio: 5, MinVolume: "10M"}},
		Rule{Name: "mad", Dim: "dstip", Key: loud, ResolveFor: Duration(time.Minute), Baseline: &Baseline{Weeks: 5, Deviation: 3}},
	)
	h.evalList(dayMinutes())
	spike := int(day.Sub(t0)/time.Minute) + 14*60 + 5
	require.Equal(t, []transition{{KindFiring, loud, spike}, {KindFiring, loud, spike}, {KindResolved, loud, spike + 1}, {KindResolved, loud, spike + 1}}, h.sent())
	for _, ev := range h.notified[:2] {
		require.Equal(t, usual(14), ev.Baseline)
		require.Equal(t, 6*usual(14), ev.Value)
	}
	byRule := map[string]Event{h.notified[0].Rule: h.notified[0], h.notified[1].Rule: h.notified[1]}
	require.Equal(t, 5*usual(14), byRule["ratio"].Threshold)
	require.Equal(t, usual(14), byRule["mad"].Threshold, "the same every week: no deviation")
	require.Contains(t, byRule["ratio"].Summary, "at 2.40 Gbps > 2.00 Gbps (baseline 400.00 Mbps)")
	require.Empty(t, h.e.Alerts())
}

// With one week of history, a rule asking for two of four weeks says so and
// does not fire, even at the spike.
func TestBaselineHistoryTooShort(t *testing.T) {
	st := dailyStore(t, day.Add(-week))
	h := newHarness(t, st, Rule{Name: "ratio", Dim: "dstip", Key: "*", Baseline: &Baseline{Weeks: 4, Ratio: 5, MinVolume: "10M"}})
	h.evalList(dayMinutes())
	require.Empty(t, h.sent())
	al := h.e.Alerts()
	require.Len(t, al, 1)
	require.Equal(t, Status{Rule: "ratio", Severity: "warning", Dim: "dstip", Key: loud, Metric: "bps", At: day.Add(14*time.Hour + 9*time.Minute),
		Value: usual(14), Reason: "history too short: 1 of 4 weeks"}, al[0])
}
