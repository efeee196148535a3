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

// reportSteps are the steps of a report: the 95th percentile is a figure of
// minutes, five minutes (the billing convention) or hours.
var reportSteps = map[string]time.Duration{"1m": time.Minute, "5m": 5 * time.Minute, "1h": time.Hour}

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

// fmtStep renders a duration the way the parameters take it: 5m, 1h, 7d.
func fmtStep(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

// aligned refuses a range whose edges are not multiples of the step: its
// first and last steps would be partial, their rates (peak, p95) wrong.
func aligned(w window, step time.Duration) error {
	for _, e := range []struct {
		name string
		t    time.Time
	}{{"from", w.from}, {"to", w.to}} {
		if !e.t.Truncate(step).Equal(e.t) {
			return badParam("step", "%s %s is not a multiple of the step %s: the first or last step would be partial; use %s",
				e.name, e.t.Format(time.RFC3339), fmtStep(step), e.t.Truncate(step).Format(time.RFC3339))
		}
	}
	return nil
}

// parseCompare reads compare=1d|7d|28d|prev: how much earlier the period to
// compare with is (0: no comparison).
func parseCompare(c echo.Context, w window, step time.Duration) (string, time.Duration, error) {
	s := c.QueryParam("compare")
	var off time.Duration
	switch s {
	case "":
		return "", 0, nil
	case "1d", "7d", "28d":
		off, _ = ParseDuration(s)
	case "prev":
		off = w.to.Sub(w.from)
	default:
		return "", 0, badParam("compare", "unknown period %q: one of 1d, 7d, 28d or prev (the period of the same length just before)", s)
	}
	if step > 0 && off%step != 0 {
		return "", 0, badParam("compare", "the earlier period (%s before) is not a whole number of steps of %s: its points would not align", fmtStep(off), fmtStep(step))
	}
	return s, off, nil
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

type reportPeriod struct {
	Period string   `json:"period"`
	From   string   `json:"from"`
	To     string   `json:"to"`
	Exact  bool     `json:"exact"`
	Tiers  []string `json:"tiers"`
}

type reportResponse struct {
	By         string `json:"by"`
	Metric     string `json:"metric"`
	Scope      string `json:"scope"`
	From       string `json:"from"`
	To         string `json:"to"`
	Step       string `json:"step"`
	Percentile string `json:"percentile"`
	Exact      bool   `json:"exact"`
	// Partial: a drill-down (app=, ip=) was not kept in some minute of the range.
	Partial bool          `json:"partial"`
	Tiers   []string      `json:"tiers"`
	Compare *reportPeriod `json:"compare,omitempty"`
	Rows    []reportRow   `json:"rows"`
	Other   reportRow     `json:"other"`
	Total   reportRow     `json:"total"`

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

func (a *API) report(c echo.Context) error {
	csv, err := wantCSV(c)
	if err != nil {
		return err
	}
	r, err := a.parseRanking(c)
	if err != nil {
		return err
	}
	d, n, m, sc := r.d, r.n, r.m, r.sc
	stepName := c.QueryParam("step")
	if stepName == "" {
		stepName = "5m"
	}
	step, ok := reportSteps[stepName]
	if !ok {
		return badParam("step", "unknown step %q: one of 1m, 5m (the default) or 1h", stepName)
	}
	w, err := a.parseWindow(c, "-24h")
	if err != nil {
		return err
	}
	if err := aligned(w, step); err != nil {
		return err
	}
	cmpName, off, err := parseCompare(c, w, step)
	if err != nil {
		return err
	}
	steps := int(w.to.Sub(w.from) / step)
	periods := 1
	if off > 0 {
		periods = 2
	}
	if steps*(n+2)*periods > maxPoints {
		return badParam("n", "%d keys over %d steps of %s is too many points (max %d): lower n, raise the step or shorten the range",
			n, steps, stepName, maxPoints)
	}
	if err := a.checkRetention("from", w.from, step); err != nil {
		return err
	}
	if off > 0 {
		if err := a.checkRetention("compare", w.from.Add(-off), step); err != nil {
			return err
		}
	}
	res, err := a.deps.Engine.Report(sc, d, w.from, w.to, step, n, m)
	if err != nil {
		return err
	}
	secs := w.seconds()
	cur := shapePeriod(res, m, step, secs)
	resp := reportResponse{By: d.String(), Metric: m.String(), Scope: sc.String(),
		From: w.from.Format(time.RFC3339), To: w.to.Format(time.RFC3339), Step: stepName,
		Percentile: "95th, nearest rank over the steps' bps", Exact: res.Exact, Partial: res.Partial, Tiers: res.Tiers,
		Rows:  make([]reportRow, len(res.Rows)),
		Other: reportRow{Key: "other", Label: "other", reportFigures: cur.other},
		Total: reportRow{Key: "total", Label: "total", reportFigures: cur.total}}
	resp.CountsPerFlow = d.CountsPerFlow()
	for i, r := range res.Rows {
		resp.Rows[i] = reportRow{Key: d.Format(r.Key), Label: a.label(d, r.Key), reportFigures: cur.rows[i]}
	}
	if off > 0 {
		keys := make([]topn.Key, len(res.Rows))
		for i := range res.Rows {
			keys[i] = res.Rows[i].Key
		}
		pf, pt := w.from.Add(-off), w.to.Add(-off)
		prevRes, err := a.deps.Engine.ReportKeys(sc, d, keys, pf, pt, step)
		if err != nil {
			return err
		}
		prev := shapePeriod(prevRes, m, step, secs)
		resp.Compare = &reportPeriod{Period: cmpName, From: pf.Format(time.RFC3339), To: pt.Format(time.RFC3339),
			Exact: prevRes.Exact, Tiers: prevRes.Tiers}
		link := func(r *reportRow, before reportFigures) {
			r.Previous = &before
			r.Delta = newDelta(r.reportFigures, before, m)
		}
		for i := range resp.Rows {
			link(&resp.Rows[i], prev.rows[i])
		}
		link(&resp.Other, prev.other)
		link(&resp.Total, prev.total)
	}
	setAnswerHeaders(c, resp.Tiers, resp.Exact)
	if csv {
		return writeCSV(c, "report-"+d.String(), reportCSV(resp))
	}
	return c.JSON(http.StatusOK, resp)
}
