package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// Retention tells how long the store keeps each tier; the API refuses ranges
// that start before what the tier answering them still has.
type Retention interface {
	Retention(tier store.Tier) time.Duration
}

// maxPoints bounds the points (keys × steps, both periods) a report or a
// stacked series holds in memory: about 100 MB.
const maxPoints = 1_000_000

// tierFor is the coarsest tier that can answer steps of step (0: a top,
// which any tier can answer): the one whose retention bounds the range.
func tierFor(step time.Duration) store.Tier {
	for _, t := range []store.Tier{store.TierDay, store.TierHour} {
		if step == 0 || step%t.Duration() == 0 {
			return t
		}
	}
	return store.TierMinute
}

// checkRetention refuses a range starting before the oldest interval the tier
// answering it still keeps: its figures would silently miss the expired part.
func (a *API) checkRetention(param string, from time.Time, step time.Duration) error {
	if a.deps.Retention == nil {
		return nil
	}
	tier := tierFor(step)
	ret := a.deps.Retention.Retention(tier)
	// An interval is kept while it ended at most ret ago.
	oldest := a.deps.Clock().Add(-ret).Truncate(tier.Duration())
	if from.Before(oldest) {
		how := "a top reads any tier"
		if step > 0 {
			how = "a step of " + fmtStep(step) + " needs the " + tier.String() + " tier or a finer one"
		}
		return badParam(param, "%s is beyond the retention of the %s tier (%s; %s): the oldest data starts at %s",
			from.UTC().Format(time.RFC3339), tier, fmtStep(ret), how, oldest.UTC().Format(time.RFC3339))
	}
	return nil
}

// fmtStep renders a duration the way the parameters and the configuration
// take it: 90s, 5m, 1h, 400d. Every message naming a duration uses it.
func fmtStep(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// stepFigures are a series' peak and 95th percentile as rates, with their
// bounds (0 when exact).
type stepFigures struct {
	PeakBps      float64 `json:"peak_bps"`
	PeakTime     string  `json:"peak_time"`
	P95Bps       float64 `json:"p95_bps"`
	PeakBpsError float64 `json:"peak_bps_error"`
	P95BpsError  float64 `json:"p95_bps_error"`
}

func newStepFigures(s query.StepStats, step time.Duration) stepFigures {
	k := 8 / step.Seconds()
	f := stepFigures{PeakBps: float64(s.Peak) * k, P95Bps: float64(s.P95) * k,
		PeakBpsError: float64(s.PeakError) * k, P95BpsError: float64(s.P95Error) * k}
	if !s.PeakTime.IsZero() {
		f.PeakTime = s.PeakTime.UTC().Format(time.RFC3339)
	}
	return f
}

// reportFigures are one row's figures over one period.
type reportFigures struct {
	amounts
	// Error bounds the row's metric over the range, as in top.
	Error uint64 `json:"error"`
	stepFigures
	// Exact is false when a figure of the row is a bound.
	Exact bool `json:"exact"`
}

// delta is the change from the earlier period in %, null when the earlier figure is zero.
type delta struct {
	Total *float64 `json:"total"`
	Avg   *float64 `json:"avg_bps"`
	Peak  *float64 `json:"peak_bps"`
	P95   *float64 `json:"p95_bps"`
}

func pct(now, before float64) *float64 {
	if before == 0 {
		return nil
	}
	v := (now - before) / before * 100
	return &v
}

type reportRow struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	reportFigures
	Previous *reportFigures `json:"previous,omitempty"`
	Delta    *delta         `json:"delta,omitempty"`
}

// reportPeriod is the earlier period of a comparison, as computed.
type reportPeriod struct {
	Period  string   `json:"period"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Exact   bool     `json:"exact"`
	Partial bool     `json:"partial"`
	Tiers   []string `json:"tiers"`
}

type reportResponse struct {
	By     string `json:"by"`
	Metric string `json:"metric"`
	Scope  string `json:"scope"`
	From   string `json:"from"`
	To     string `json:"to"`
	Step   string `json:"step"`
	// OpenStep is the start of the step still open (partial), when the range
	// holds it: its figures, and those it is part of, can only rise.
	OpenStep   string `json:"open_step,omitempty"`
	Percentile string `json:"percentile"`
	Exact      bool   `json:"exact"`
	// Partial: a drill-down (app=, ip=) was not kept in some minute of the range.
	Partial bool `json:"partial"`
	// Unanswered are the peer aggregators whose traffic is missing (down
	// during the query): Partial is then set.
	Unanswered []string      `json:"unanswered,omitempty"`
	Tiers      []string      `json:"tiers"`
	Compare    *reportPeriod `json:"compare,omitempty"`
	Rows       []reportRow   `json:"rows"`
	Other      reportRow     `json:"other"`
	Total      reportRow     `json:"total"`

	// CountsPerFlow is as in top: the rows' and other's shares add up to it.
	CountsPerFlow int `json:"counts_per_flow"`
}

// period is one period's report, shaped.
type period struct {
	rows         []reportFigures
	other, total reportFigures
}

func shapePeriod(res query.ReportResult, m topn.Metric, step time.Duration, secs float64) period {
	var total topn.Counters
	for _, p := range res.Total {
		total.Add(p.Value)
	}
	var p period
	for _, r := range res.Rows {
		st := query.StepStatsOf(r.Points, topn.Bytes)
		p.rows = append(p.rows, reportFigures{amounts: newAmounts(r.Value, total, m, secs), Error: r.Error.Get(m),
			stepFigures: newStepFigures(st, step), Exact: r.Error.IsZero() && st.Exact()})
	}
	// Other is CountsPerFlow × the total minus the rows' lower bounds
	// (query.ReportKeys): an upper bound, which may be lower by its errors.
	// Its figures are computed on both; its share is of the total, as the
	// rows', so rows and other add up to CountsPerFlow (2 for ip and port).
	var other, otherErr topn.Counters
	lo, hi := make([]query.Point, len(res.Other)), make([]query.Point, len(res.Other))
	for i, pt := range res.Other {
		other.Add(pt.Value)
		otherErr.Add(pt.Error)
		hi[i] = query.Point{T: pt.T, Value: pt.Value}
		lo[i] = hi[i]
		lo[i].Value.Sub(pt.Error)
	}
	sHi, sLo := query.StepStatsOf(hi, topn.Bytes), query.StepStatsOf(lo, topn.Bytes)
	sHi.PeakError, sHi.P95Error = sHi.Peak-sLo.Peak, sHi.P95-sLo.P95
	p.other = reportFigures{amounts: newAmounts(other, total, m, secs), Error: otherErr.Get(m),
		stepFigures: newStepFigures(sHi, step), Exact: otherErr.IsZero()}
	st := query.StepStatsOf(res.Total, topn.Bytes)
	p.total = reportFigures{amounts: newAmounts(total, total, m, secs), stepFigures: newStepFigures(st, step), Exact: true}
	return p
}

func newDelta(now, before reportFigures, m topn.Metric) *delta {
	get := func(f reportFigures) float64 {
		switch m {
		case topn.Packets:
			return float64(f.Packets)
		case topn.Flows:
			return float64(f.Flows)
		}
		return float64(f.Bytes)
	}
	return &delta{Total: pct(get(now), get(before)), Avg: pct(now.Bps, before.Bps),
		Peak: pct(now.PeakBps, before.PeakBps), P95: pct(now.P95Bps, before.P95Bps)}
}

func (a *API) report(c echo.Context, q *request) error {
	d, m := q.d, q.m
	eng := a.engine(c)
	res, err := eng.Report(q.sc, d, q.w.from, q.w.to, q.step, q.n, m)
	if err != nil {
		return err
	}
	cur := shapePeriod(res, m, q.step, q.w.seconds())
	resp := reportResponse{By: d.String(), Metric: m.String(), Scope: q.sc.String(),
		From: q.from(), To: q.to(), Step: fmtStep(q.step), OpenStep: q.openStep(),
		Percentile: "95th, nearest rank over the steps' bps", Exact: res.Exact, Partial: res.Partial, Tiers: res.Tiers,
		Rows:  make([]reportRow, len(res.Rows)),
		Other: reportRow{Key: "other", Label: "other", reportFigures: cur.other},
		Total: reportRow{Key: "total", Label: "total", reportFigures: cur.total}}
	resp.CountsPerFlow, resp.Unanswered = d.CountsPerFlow(), res.Unanswered
	for i, r := range res.Rows {
		resp.Rows[i] = reportRow{Key: d.Format(r.Key), Label: a.label(d, r.Key), reportFigures: cur.rows[i]}
	}
	keys := make([]topn.Key, len(res.Rows))
	for i := range res.Rows {
		keys[i] = res.Rows[i].Key
	}
	var prevRes query.ReportResult
	e, err := q.compare(func(w window) (query.Answer, error) {
		var err error
		prevRes, err = eng.ReportKeys(q.sc, d, keys, w.from, w.to, q.step)
		return prevRes.Answer, err
	})
	if err != nil {
		return err
	}
	if e != nil {
		prev := shapePeriod(prevRes, m, q.step, e.w.seconds())
		link := func(r *reportRow, before reportFigures) {
			r.Previous = &before
			r.Delta = newDelta(r.reportFigures, before, m)
		}
		for i := range resp.Rows {
			link(&resp.Rows[i], prev.rows[i])
		}
		link(&resp.Other, prev.other)
		link(&resp.Total, prev.total)
		resp.Compare = e.period()
		e.fold(&resp.Exact, &resp.Partial)
	}
	setAnswerHeaders(c, resp.Tiers, resp.Exact, resp.OpenStep)
	if q.csv {
		return writeCSV(c, "report-"+d.String(), reportCSV(resp))
	}
	return c.JSON(http.StatusOK, resp)
}
