package api

import (
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/topn"
)

// request is a query's parameters, parsed and checked once, by parseRequest,
// from its route's declarations: the one pipeline of top, series and report.
// A parameter the route does not declare is left at its zero value.
type request struct {
	csv bool
	d   topn.Dim
	key *topn.Key // series: one key's
	n   int       // series: 0 unless stacked
	m   topn.Metric
	sc  topn.Scope
	// step is the step of a series or a report (0: a top, read in whole minutes).
	step time.Duration
	w    window
	cmp  comparison
	now  time.Time
}

// comparison is compare=: the earlier period is the range moved off back.
type comparison struct {
	name string
	off  time.Duration
}

// window is the range of a query, [from, to), widened outward to whole steps
// (from down, to up; whole minutes for a top), so that no step is cut: the
// answer says which range it covers.
type window struct {
	from, to time.Time
	unit     time.Duration
}

func newWindow(from, to time.Time, unit time.Duration) window {
	return window{from: from.Truncate(unit).UTC(), to: ceilTo(to, unit).UTC(), unit: unit}
}

func ceilTo(t time.Time, d time.Duration) time.Time {
	if f := t.Truncate(d); !f.Equal(t) {
		return f.Add(d)
	}
	return t
}

func (w window) back(off time.Duration) window {
	return window{from: w.from.Add(-off), to: w.to.Add(-off), unit: w.unit}
}

func (w window) steps() int { return int(w.to.Sub(w.from) / w.unit) }

// openStep is the start of the step holding now, when the window holds it:
// that step is partial, its traffic still coming. Its rate is its traffic so
// far over the whole step, a figure that can only rise until the step
// closes, as can the averages, peaks and percentiles it is part of: they are
// never above what the closed step will show (a rate over the seconds
// elapsed would be, after a burst of flows reported at their end).
func (w window) openStep(now time.Time) (time.Time, bool) {
	if now.Before(w.from) || !now.Before(w.to) {
		return time.Time{}, false
	}
	return now.Truncate(w.unit), true
}

// seconds is the window's length, what its averages are over: every rate
// is over whole steps, the open step's too (see openStep).
func (w window) seconds() float64 { return w.to.Sub(w.from).Seconds() }

func (q *request) from() string { return q.w.from.Format(time.RFC3339) }
func (q *request) to() string   { return q.w.to.Format(time.RFC3339) }

// openStep is the answer's open_step: the RFC 3339 start of the step still
// open, "" when every step is closed.
func (q *request) openStep() string {
	if t, ok := q.w.openStep(q.now); ok {
		return t.Format(time.RFC3339)
	}
	return ""
}

// parseRequest reads the parameters route r declares, with its defaults and
// enums, in the order their errors are reported.
func (a *API) parseRequest(c echo.Context, r *route) (*request, error) {
	q := &request{now: a.deps.Clock()}
	val := func(name string) (string, bool) {
		p := r.byName[name]
		if p == nil || p.path {
			return "", false
		}
		if s := c.QueryParam(name); s != "" {
			return s, true
		}
		return p.def, false
	}
	has := func(name string) bool { return r.byName[name] != nil }
	var err error
	if has("format") {
		if q.csv, err = wantCSV(c, r.byName["format"]); err != nil {
			return nil, err
		}
	}
	if p := r.byName["by"]; p != nil {
		if s, _ := val("by"); s != "" || p.required {
			var ok bool
			if q.d, ok = topn.ParseDim(s); !ok {
				return nil, badParam("by", "unknown dimension %q; one of %s", s, topn.DimNames())
			}
		}
		ks, _ := val("key")
		ns, _ := val("n")
		if !p.required {
			// A series: the total, one key's, or the top n keys' stacked.
			switch {
			case q.d == 0 && ks != "":
				return nil, badParam("by", "key needs by, the dimension of the key")
			case q.d == 0 && ns != "":
				return nil, badParam("by", "n needs by, the dimension of the top keys to stack")
			case q.d != 0 && ks != "" && ns != "":
				return nil, badParam("n", "n (the top n keys, stacked) and key (one key's series) exclude each other")
			case q.d != 0 && ks == "" && ns == "":
				return nil, badParam("key", "by needs key (one key's series) or n (the top n keys' series, stacked)")
			}
		}
		if ks != "" {
			k, err := q.d.ParseKey(ks)
			if err != nil {
				return nil, badParam("key", "%v", err)
			}
			q.key = &k
		}
		if ns != "" {
			if q.n, err = parseN(ns, r.byName["n"]); err != nil {
				return nil, err
			}
		}
	}
	if has("metric") {
		s, _ := val("metric")
		if q.m, err = topn.ParseMetric(s); err != nil {
			return nil, badParam("metric", "%v", err)
		}
	}
	if has("exporter") {
		if q.sc, err = a.parseScope(c); err != nil {
			return nil, err
		}
		if err := checkScopeDim(q.sc, q.d); err != nil {
			return nil, err
		}
	}
	unit := time.Minute
	if p := r.byName["step"]; p != nil {
		s, _ := val("step")
		if q.step, err = parseStep(s, p); err != nil {
			return nil, err
		}
		unit = q.step
	}
	if !has("from") || r.ownRange {
		return q, nil
	}
	if q.w, err = a.parseWindow(val, q.now, unit); err != nil {
		return nil, err
	}
	if q.step > 0 && q.w.steps() > 100_000 {
		return nil, badParam("step", "%d steps of %s is too many points (max 100000): raise the step or shorten the range", q.w.steps(), fmtStep(q.step))
	}
	if p := r.byName["compare"]; p != nil {
		s, _ := val("compare")
		if q.cmp, err = parseCompare(s, p, q.w, q.step); err != nil {
			return nil, err
		}
	}
	if q.step > 0 && q.n > 0 {
		periods := 1
		if q.cmp.off > 0 {
			periods = 2
		}
		if steps := q.w.steps(); steps*(q.n+2)*periods > maxPoints {
			return nil, badParam("n", "%d keys over %d steps of %s is too many points (max %d): lower n, raise the step or shorten the range",
				q.n, steps, fmtStep(q.step), maxPoints)
		}
	}
	if err := a.checkRetention("from", q.w.from, q.step); err != nil {
		return nil, err
	}
	if q.cmp.off > 0 {
		if err := a.checkRetention("compare", q.w.from.Add(-q.cmp.off), q.step); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// parseWindow reads from and to and widens them to whole units. Of the two,
// the one named in an error is the one the user set: to when given (from is
// read first and stands), else from.
func (a *API) parseWindow(val func(string) (string, bool), now time.Time, unit time.Duration) (window, error) {
	get := func(name string) (time.Time, bool, error) {
		s, given := val(name)
		t, err := parseTime(s, now)
		if err != nil {
			return t, given, badParam(name, "%v", err)
		}
		return t, given, nil
	}
	from, _, err := get("from")
	if err != nil {
		return window{}, err
	}
	to, toGiven, err := get("to")
	if err != nil {
		return window{}, err
	}
	if !from.Before(to) {
		span := "(from=" + from.UTC().Format(time.RFC3339) + ", to=" + to.UTC().Format(time.RFC3339) + ")"
		if toGiven {
			return window{}, badParam("to", "must be after from %s", span)
		}
		return window{}, badParam("from", "must be before to %s", span)
	}
	if d := to.Sub(from); d > a.cfg.MaxRange {
		return window{}, badParam("from", "the range of %s is longer than the maximum of %s (api.max_range)", fmtStep(d), fmtStep(a.cfg.MaxRange))
	}
	return newWindow(from, to, unit), nil
}

// oneOf lists a parameter's values for a message: "1m, 5m (the default) or 1h".
func oneOf(p *param) string {
	vals := make([]string, len(p.enum))
	for i, v := range p.enum {
		vals[i] = v
		if v == p.def {
			vals[i] += " (the default)"
		}
	}
	if len(vals) < 2 {
		return strings.Join(vals, "")
	}
	return strings.Join(vals[:len(vals)-1], ", ") + " or " + vals[len(vals)-1]
}

func inEnum(s string, p *param) bool {
	for _, v := range p.enum {
		if v == s {
			return true
		}
	}
	return false
}

// parseN reads n, from 1 to its declared maximum.
func parseN(s string, p *param) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < p.min || n > p.max {
		return 0, badParam("n", "must be a whole number from %d to %d, got %q", p.min, p.max, s)
	}
	return n, nil
}

// parseStep reads a step: one of the declared values, or else any whole
// number of minutes.
func parseStep(s string, p *param) (time.Duration, error) {
	if p.enum != nil {
		if !inEnum(s, p) {
			return 0, badParam("step", "unknown step %q: one of %s", s, oneOf(p))
		}
		d, err := ParseDuration(s)
		return d, err
	}
	d, err := ParseDuration(s)
	if err != nil || d < time.Minute || d%time.Minute != 0 {
		return 0, badParam("step", "must be a whole number of minutes such as 60s, 5m, 1h, 1d; got %q", s)
	}
	return d, nil
}

// parseCompare reads compare=: how much earlier the period to compare with
// is. Its points must fall on the steps of the range.
func parseCompare(s string, p *param, w window, step time.Duration) (comparison, error) {
	if s == "" {
		return comparison{}, nil
	}
	if !inEnum(s, p) {
		return comparison{}, badParam("compare", "unknown period %q: one of %s (the period of the same length just before)", s, oneOf(p))
	}
	cmp := comparison{name: s}
	if s == "prev" {
		cmp.off = w.to.Sub(w.from)
	} else {
		cmp.off, _ = ParseDuration(s)
	}
	if step > 0 && cmp.off%step != 0 {
		return comparison{}, badParam("compare", "the earlier period (%s before) is not a whole number of steps of %s: its points would not align", fmtStep(cmp.off), fmtStep(step))
	}
	return cmp, nil
}

// earlier is the earlier period of a comparison, as computed.
type earlier struct {
	name string
	w    window
	ans  query.Answer
}

// compare runs the query over the earlier period with run, the one way every
// endpoint compares: the same range moved back by the period, read by the
// caller (the same keys, the same step), described by period(). nil without
// compare=.
func (q *request) compare(run func(w window) (query.Answer, error)) (*earlier, error) {
	if q.cmp.off == 0 {
		return nil, nil
	}
	e := &earlier{name: q.cmp.name, w: q.w.back(q.cmp.off)}
	var err error
	e.ans, err = run(e.w)
	return e, err
}

func (e *earlier) period() *reportPeriod {
	return &reportPeriod{Period: e.name, From: e.w.from.Format(time.RFC3339), To: e.w.to.Format(time.RFC3339),
		Exact: e.ans.Exact, Partial: e.ans.Partial, Tiers: e.ans.Tiers}
}

// fold is the one rule of exactness with a comparison: an answer's exact and
// partial are about every figure it holds, the earlier period's (previous,
// delta) included; compare.exact and compare.partial are the earlier
// period's alone.
func (e *earlier) fold(exact, partial *bool) {
	*exact = *exact && e.ans.Exact
	*partial = *partial || e.ans.Partial
}
