package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/flow"
)

// The API's clock in the open-step tests: 43 s before the end of a minute.
var clock = now.Add(-43 * time.Second) // 10:29:17

// openStepFixture is https from 10:15 to 10:29, per minute: 10 kB a minute in
// the 10:15 step, 60 kB in the 10:20 one, 100 kB in 10:25, the step still open
// at 10:29:17 (the heaviest so far).
func openStepFixture(t *testing.T) http.Handler {
	t.Helper()
	var recs []flow.Record
	for m := 15; m < 30; m++ {
		b := uint64(10_000)
		switch {
		case m >= 25:
			b = 100_000
		case m >= 20:
			b = 60_000
		}
		recs = append(recs, rec("10.0.0.1", "10.0.0.2", 40000, 443, b, time.Date(2026, 11, 1, 10, m, 10, 0, time.UTC)))
	}
	return newTestAPIWith(t, DefaultConfiguration(), func(d *Dependencies) { d.Clock = func() time.Time { return clock } }, recs...).Handler()
}

// A report on no parameter, or on any range, widens it to whole steps and
// says so; the step holding now is shown, marked open, its traffic so far
// counted over the whole step (a figure that can only rise).
func TestReportWidensToWholeStepsAndShowsTheOpenStep(t *testing.T) {
	h := openStepFixture(t)
	var r reportResponse
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/report?by=app", &r))
	require.Equal(t, "2026-10-31T10:25:00Z", r.From, "the last 24 hours, from widened down to a step")
	require.Equal(t, "2026-11-01T10:30:00Z", r.To, "to widened up")
	require.Equal(t, "5m", r.Step)
	require.Equal(t, "2026-11-01T10:25:00Z", r.OpenStep)
	require.Len(t, r.Rows, 1)
	https := r.Rows[0]
	require.Equal(t, "https", https.Key)
	require.EqualValues(t, 50_000+300_000+500_000, https.Bytes, "the open step's traffic counts")
	require.InDelta(t, 850_000*8/(24*3600+300.0), https.Bps, 1e-9, "the average is over the whole range")
	require.Equal(t, "2026-11-01T10:25:00Z", https.PeakTime, "the open step is the heaviest so far")
	require.InDelta(t, 500_000*8/300.0, https.PeakBps, 1e-9, "over the whole step: it can only rise")
	require.Zero(t, https.P95Bps, "3 busy steps of 289")
	require.Equal(t, https.reportFigures, r.Total.reportFigures)

	// The same as CSV: the open step is in a header.
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/api/v1/report?by=app&format=csv", nil))
	require.Equal(t, http.StatusOK, rr.Code)
	require.Equal(t, "2026-11-01T10:25:00Z", rr.Header().Get("X-Tmsd-Open-Step"))

	f := func(q, from, to, open string, bytes uint64) reportResponse {
		t.Helper()
		var r reportResponse
		require.Equal(t, http.StatusOK, get(t, h, "/api/v1/report?by=app&"+q, &r), q)
		require.Equal(t, from, r.From, q)
		require.Equal(t, to, r.To, q)
		require.Equal(t, open, r.OpenStep, q)
		require.EqualValues(t, bytes, r.Total.Bytes, q)
		return r
	}
	// Edges off the step: widened outward, every step closed.
	f("from=2026-11-01T10:17:00Z&to=2026-11-01T10:23:30Z", "2026-11-01T10:15:00Z", "2026-11-01T10:25:00Z", "", 350_000)
	r = f("from=2026-11-01T10:07:00Z&to=2026-11-01T10:24:00Z&step=1h", "2026-11-01T10:00:00Z", "2026-11-01T11:00:00Z", "2026-11-01T10:00:00Z", 850_000)
	// The only step is open: its figures are its traffic so far over the step.
	require.InDelta(t, 850_000*8/3600.0, r.Total.PeakBps, 1e-9)
	require.Equal(t, "2026-11-01T10:00:00Z", r.Total.PeakTime)
	require.InDelta(t, 850_000*8/3600.0, r.Total.P95Bps, 1e-9)
	require.InDelta(t, 850_000*8/3600.0, r.Total.Bps, 1e-9)
	f("from=-1m&step=1m", "2026-11-01T10:28:00Z", "2026-11-01T10:30:00Z", "2026-11-01T10:29:00Z", 200_000)
	// A range wholly past: no open step.
	r = f("from=-24h&to=-1h", "2026-10-31T10:25:00Z", "2026-11-01T09:30:00Z", "", 0)
	require.Zero(t, r.Total.Bps)
}

// Series and top widen in the same place: a series to its step, a top to
// minutes, with the open step's rate over the whole step, as every other.
func TestSeriesAndTopWidenAndShowTheOpenStep(t *testing.T) {
	h := openStepFixture(t)
	var s seriesResponse
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/series?from=-15m&step=5m", &s))
	require.Equal(t, "2026-11-01T10:10:00Z", s.From)
	require.Equal(t, "2026-11-01T10:30:00Z", s.To)
	require.Equal(t, "2026-11-01T10:25:00Z", s.OpenStep)
	require.Len(t, s.Points, 4)
	require.EqualValues(t, 300_000, s.Points[2].Bytes)
	require.InDelta(t, 300_000*8/300.0, s.Points[2].Bps, 1e-9, "a closed step: over the whole step")
	require.EqualValues(t, 500_000, s.Points[3].Bytes)
	require.InDelta(t, 500_000*8/300.0, s.Points[3].Bps, 1e-9, "the open step: its 4m17s so far over the step")

	var top topResponse
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?by=app&from=-15m", &top))
	require.Equal(t, "2026-11-01T10:14:00Z", top.From)
	require.Equal(t, "2026-11-01T10:30:00Z", top.To)
	require.Equal(t, "2026-11-01T10:29:00Z", top.OpenStep)
	require.EqualValues(t, 850_000, top.Total.Bytes)
	require.InDelta(t, 850_000*8/(16*60.0), top.Total.Bps, 1e-9)

	// Whole minutes before now: nothing open.
	top = topResponse{}
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?by=app&from=2026-11-01T10:15:00Z&to=2026-11-01T10:25:00Z", &top))
	require.Empty(t, top.OpenStep)
	require.InDelta(t, 350_000*8/600.0, top.Total.Bps, 1e-9)
}

// top, series and report read their shared parameters in one place: the
// same input gets the same error, and the same range the same widening.
func TestOnePipelineForTopSeriesAndReport(t *testing.T) {
	h := newTestAPI(t)
	endpoints := []string{"/api/v1/top?by=app&", "/api/v1/series?by=app&n=3&step=5m&", "/api/v1/report?by=app&step=5m&"}
	f := func(q, param string) {
		t.Helper()
		var first map[string]string
		for i, e := range endpoints {
			var body map[string]string
			require.Equal(t, http.StatusBadRequest, get(t, h, e+q, &body), e+q)
			require.Equal(t, param, body["parameter"], e+q)
			if i == 0 {
				first = body
			}
			require.Equal(t, first["error"], body["error"], e+q)
		}
	}
	f("from=-2h&to=-3h", "to")
	f("from=yesterday", "from")
	f("compare=2w", "compare")
	f("metric=octets", "metric")
	f("format=xlsx", "format")
	f("exporter=router1", "exporter")
	f("from=-401d", "from")

	// Only to given, before each default from, it is the one named; the
	// strictness of the route is the same check (its message lists the
	// route's own parameters).
	for q, param := range map[string]string{"to=-25h": "to", "metrics=flows": "metrics", "compare=1d&compare=7d": "compare"} {
		for _, e := range endpoints {
			var body map[string]string
			require.Equal(t, http.StatusBadRequest, get(t, h, e+q, &body), e+q)
			require.Equal(t, param, body["parameter"], e+q)
		}
	}

	q := url.Values{"from": {"2026-11-01T09:07:30Z"}, "to": {"2026-11-01T09:52:10Z"}}.Encode()
	var top topResponse
	require.Equal(t, http.StatusOK, get(t, h, endpoints[0]+q, &top))
	require.Equal(t, "2026-11-01T09:07:00Z", top.From)
	require.Equal(t, "2026-11-01T09:53:00Z", top.To)
	var s seriesResponse
	require.Equal(t, http.StatusOK, get(t, h, endpoints[1]+q, &s))
	require.Equal(t, "2026-11-01T09:05:00Z", s.From)
	require.Equal(t, "2026-11-01T09:55:00Z", s.To)
	require.Len(t, s.Points, 10)
	var r reportResponse
	require.Equal(t, http.StatusOK, get(t, h, endpoints[2]+q, &r))
	require.Equal(t, s.From, r.From)
	require.Equal(t, s.To, r.To)
}

// One rule for exact with a comparison, on every endpoint: exact is about
// every figure of the answer, the earlier period's included; compare.exact
// is the earlier period's alone.
func TestExactWithACompareIsOneRule(t *testing.T) {
	at := func(day, m int) time.Time { return time.Date(2026, 11, day, 9, m, 10, 0, time.UTC) }
	var recs []flow.Record
	for m := range 10 {
		// Now: https and ssh only, both kept by every table: exact.
		recs = append(recs, rec("10.0.0.1", "10.0.0.2", 40000, 443, 50_000, at(1, m)), rec("10.0.0.3", "10.0.0.4", 40001, 22, 20_000, at(1, m)))
		// A day before: heavier apps, with more flows, fill the tables of
		// two keys; https and ssh fall below their threshold: bounds.
		for i, port := range []uint16{80, 5432, 3306, 25, 53, 110} {
			for k := range 3 {
				recs = append(recs, rec("10.0.1.1", "10.0.1.2", uint16(41000+i*10+k), port, uint64(900_000-100_000*i), at(1, m).AddDate(0, 0, -1)))
			}
		}
		recs = append(recs, rec("10.0.0.1", "10.0.0.2", 40000, 443, 1_000, at(1, m).AddDate(0, 0, -1)), rec("10.0.0.3", "10.0.0.4", 40001, 22, 1_000, at(1, m).AddDate(0, 0, -1)))
	}
	h := newTestAPIAgg(t, DefaultConfiguration(), func(c *aggregate.Configuration) { c.TopK = 2 }, nil, recs...).Handler()
	span := "from=2026-11-01T09:00:00Z&to=2026-11-01T10:00:00Z"
	type answer struct {
		Exact   bool `json:"exact"`
		Compare struct {
			Exact bool `json:"exact"`
		} `json:"compare"`
	}
	for _, path := range []string{
		"/api/v1/top?by=app&n=2&" + span,
		"/api/v1/report?by=app&n=2&step=5m&" + span,
		"/api/v1/series?by=app&n=2&step=5m&" + span,
		"/api/v1/series?by=app&key=https&step=5m&" + span,
	} {
		var a answer
		require.Equal(t, http.StatusOK, get(t, h, path, &a), path)
		require.True(t, a.Exact, "%s: the range alone is exact", path)
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, path+"&compare=1d", nil))
		require.Equal(t, http.StatusOK, rr.Code, rr.Body.String())
		require.NoError(t, json.Unmarshal(rr.Body.Bytes(), &a))
		require.False(t, a.Compare.Exact, "%s: the day before is bounds: %s", path, rr.Body)
		require.False(t, a.Exact, "%s: so is the answer holding it", path)
		require.Equal(t, "false", rr.Header().Get("X-Tmsd-Exact"), path)
	}
}
