package api

import (
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/store"
)

// reportFixture is two hours of two apps with a known per-minute series:
// https in a triangle peaking at minute 70, ssh flat with a burst at minute 15.
type reportFixture struct {
	from, to time.Time
	https    []uint64 // bytes per minute
	ssh      []uint64
}

func newReportFixture() (reportFixture, []flow.Record) {
	fx := reportFixture{from: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)}
	fx.to = fx.from.Add(2 * time.Hour)
	var recs []flow.Record
	for m := range 120 {
		h := uint64(100_000 + 1000*min(m, 140-m))
		s := uint64(20_000)
		if m == 15 {
			s = 900_000
		}
		fx.https, fx.ssh = append(fx.https, h), append(fx.ssh, s)
		at := fx.from.Add(time.Duration(m)*time.Minute + 30*time.Second)
		recs = append(recs, rec("10.0.0.1", "10.0.0.2", 40000, 443, h, at), rec("10.0.0.3", "10.0.0.4", 40001, 22, s, at))
	}
	return fx, recs
}

// perStep sums a per-minute series into steps.
func perStep(minutes []uint64, step time.Duration) []uint64 {
	k := int(step / time.Minute)
	out := make([]uint64, len(minutes)/k)
	for i, v := range minutes {
		out[i/k] += v
	}
	return out
}

func TestReportFigures(t *testing.T) {
	fx, recs := newReportFixture()
	h := newTestAPI(t, recs...)
	for _, step := range []time.Duration{time.Minute, 5 * time.Minute, time.Hour} {
		q := url.Values{"by": {"app"}, "from": {fx.from.Format(time.RFC3339)}, "to": {fx.to.Format(time.RFC3339)}, "step": {fmtStep(step)}, "n": {"1"}}
		var r reportResponse
		require.Equal(t, http.StatusOK, get(t, h, "/api/v1/report?"+q.Encode(), &r))
		require.True(t, r.Exact)
		require.Equal(t, []string{"minute"}, r.Tiers)
		require.Len(t, r.Rows, 1)
		row := r.Rows[0]
		require.Equal(t, "https", row.Key)
		check := func(got reportFigures, minutes []uint64, total uint64) {
			t.Helper()
			steps := perStep(minutes, step)
			var sum uint64
			for _, v := range minutes {
				sum += v
			}
			require.Equal(t, sum, got.Bytes, step)
			require.InDelta(t, float64(sum)*8/7200, got.Bps, 1e-6, step)
			require.InDelta(t, float64(sum)/float64(total), got.Share, 1e-12, step)
			peak := slices.Max(steps)
			require.InDelta(t, float64(peak)*8/step.Seconds(), got.PeakBps, 1e-6, step)
			require.Equal(t, fx.from.Add(time.Duration(slices.Index(steps, peak))*step).Format(time.RFC3339), got.PeakTime, step)
			// The 95th percentile by nearest rank, computed here on its own.
			sorted := slices.Clone(steps)
			slices.Sort(sorted)
			rank := (95*len(sorted) + 99) / 100
			require.InDelta(t, float64(sorted[rank-1])*8/step.Seconds(), got.P95Bps, 1e-6, step)
			require.True(t, got.Exact)
			require.Zero(t, got.PeakBpsError+got.P95BpsError)
		}
		var total uint64
		both := make([]uint64, len(fx.https))
		for i := range both {
			both[i] = fx.https[i] + fx.ssh[i]
			total += both[i]
		}
		check(row.reportFigures, fx.https, total)
		check(r.Other.reportFigures, fx.ssh, total)
		check(r.Total.reportFigures, both, total)
	}
	// The ssh burst is its peak: the minute step sees it whole, the hour step diluted.
	var r reportResponse
	q := url.Values{"by": {"app"}, "from": {fx.from.Format(time.RFC3339)}, "to": {fx.to.Format(time.RFC3339)}, "step": {"1m"}}
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/report?"+q.Encode(), &r))
	require.Equal(t, "ssh", r.Rows[1].Key)
	require.Equal(t, "2026-11-01T08:15:00Z", r.Rows[1].PeakTime)
	require.InDelta(t, 900_000*8/60.0, r.Rows[1].PeakBps, 1e-6)
	require.InDelta(t, 20_000*8/60.0, r.Rows[1].P95Bps, 1e-6, "one burst minute in 120 is above the 95th percentile")
}

func TestReportCompare(t *testing.T) {
	fx, recs := newReportFixture()
	// The second hour again a day later, https doubled.
	for _, r := range slices.Clone(recs[120:]) {
		r.Received += (24 * time.Hour).Milliseconds()
		if r.DstPort == 443 {
			r.Bytes *= 2
		}
		recs = append(recs, r)
	}
	h := newTestAPI(t, recs...)
	from := fx.from.Add(25 * time.Hour)
	q := url.Values{"by": {"app"}, "from": {from.Format(time.RFC3339)}, "to": {from.Add(time.Hour).Format(time.RFC3339)}, "step": {"5m"}, "compare": {"1d"}}
	var r reportResponse
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/report?"+q.Encode(), &r))
	require.Equal(t, "1d", r.Compare.Period)
	require.Equal(t, "2026-11-01T09:00:00Z", r.Compare.From)
	require.Equal(t, "https", r.Rows[0].Key)
	require.InDelta(t, 100, *r.Rows[0].Delta.Total, 1e-9)
	require.InDelta(t, 100, *r.Rows[0].Delta.Peak, 1e-9)
	require.InDelta(t, 100, *r.Rows[0].Delta.P95, 1e-9)
	require.InDelta(t, 0, *r.Rows[1].Delta.Total, 1e-9, "ssh did not change")
	require.Equal(t, 2*r.Rows[0].Previous.Bytes, r.Rows[0].Bytes)

	// prev is the hour just before, which had no traffic: the deltas are null.
	q.Set("compare", "prev")
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/report?"+q.Encode(), &r))
	require.Equal(t, from.Add(-time.Hour).Format(time.RFC3339), r.Compare.From)
	require.Zero(t, r.Total.Previous.Bytes)
	require.Nil(t, r.Total.Delta.Total)
}

func TestTopCompare(t *testing.T) {
	fx, recs := newReportFixture()
	// The second hour again a day later, https doubled, ssh gone.
	for _, r := range slices.Clone(recs[120:]) {
		r.Received += (24 * time.Hour).Milliseconds()
		if r.DstPort == 22 {
			continue
		}
		r.Bytes *= 2
		recs = append(recs, r)
	}
	h := newTestAPI(t, recs...)
	var https uint64
	for _, v := range fx.https[67:] {
		https += v
	}
	// A range off the hour: top takes any whole minutes, compare too (its
	// minutes 09:07-10:00 have traffic, then and now).
	from := fx.from.Add(25*time.Hour + 7*time.Minute)
	q := url.Values{"by": {"app"}, "from": {from.Format(time.RFC3339)}, "to": {from.Add(time.Hour).Format(time.RFC3339)}, "compare": {"1d"}}
	var r topResponse
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &r))
	require.Equal(t, "1d", r.Compare.Period)
	require.Equal(t, "2026-11-01T09:07:00Z", r.Compare.From)
	require.Len(t, r.Rows, 1, "only https a day later")
	require.Equal(t, "https", r.Rows[0].Key)
	require.Equal(t, 2*https, r.Rows[0].Bytes)
	require.Equal(t, https, r.Rows[0].Previous.Bytes)
	require.InDelta(t, 100, *r.Rows[0].Delta.Total, 1e-9)
	require.Equal(t, https+20_000*53, r.Total.Previous.Bytes, "https and ssh then")
	require.InDelta(t, (float64(2*https)/float64(https+20_000*53)-1)*100, *r.Total.Delta.Total, 1e-9)
	require.Equal(t, uint64(20_000*53), r.Other.Previous.Bytes, "what https leaves of then")
	require.InDelta(t, -100, *r.Other.Delta.Total, 1e-9)

	// By packets: the copies kept their packets, so https's did not change.
	q.Set("metric", "packets")
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &r))
	require.InDelta(t, 0, *r.Rows[0].Delta.Total, 1e-9)

	// prev is the hour just before: of the day-later traffic, 09:00-09:07.
	q.Set("compare", "prev")
	q.Del("metric")
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &r))
	require.Equal(t, from.Add(-time.Hour).Format(time.RFC3339), r.Compare.From)
	var early uint64
	for _, v := range fx.https[60:67] {
		early += 2 * v
	}
	require.Equal(t, early, r.Rows[0].Previous.Bytes)
	require.InDelta(t, (float64(2*https)/float64(early)-1)*100, *r.Rows[0].Delta.Total, 1e-9)

	// A week back there was nothing: the deltas are null, not infinite.
	q.Set("compare", "7d")
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &r))
	require.Zero(t, r.Total.Previous.Bytes)
	require.Nil(t, r.Rows[0].Delta.Total)
	require.Nil(t, r.Total.Delta.Total)

	// Without compare, no previous figures at all.
	q.Del("compare")
	r = topResponse{}
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &r))
	require.Nil(t, r.Compare)
	require.Nil(t, r.Rows[0].Delta)

	q.Set("compare", "3d")
	var e map[string]string
	require.Equal(t, http.StatusBadRequest, get(t, h, "/api/v1/top?"+q.Encode(), &e))
	require.Equal(t, "compare", e["parameter"])
}

func TestReportAndSeriesBadParameters(t *testing.T) {
	cfg := DefaultConfiguration()
	a := newTestAPIWith(t, cfg, func(d *Dependencies) {
		d.Retention = fixedRetention{store.TierMinute: 14 * 24 * time.Hour, store.TierHour: 400 * 24 * time.Hour, store.TierDay: 5 * 365 * 24 * time.Hour}
	})
	h := a.Handler()
	f := func(path, param, msg string) {
		t.Helper()
		var body map[string]string
		require.Equal(t, http.StatusBadRequest, get(t, h, path, &body), path)
		require.Equal(t, param, body["parameter"], path)
		require.Contains(t, body["error"], msg, path)
	}
	f("/api/v1/report", "by", "unknown dimension")
	f("/api/v1/report?by=app&step=2h", "step", "one of 1m, 5m")
	f("/api/v1/report?by=app&compare=2w", "compare", "one of 1d, 7d, 28d or prev")
	f("/api/v1/report?by=app&format=xlsx", "format", "json (the default) or csv")
	f("/api/v1/report?by=app&step=5m&from=-20d", "from", "beyond the retention of the minute tier")
	f("/api/v1/report?by=app&step=1m&from=-13d&compare=7d", "compare", "beyond the retention of the minute tier")
	f("/api/v1/report?by=app&step=1m&from=-30d&n=100", "n", "too many points")
	f("/api/v1/series?from=-1d&step=1h&compare=foo", "compare", "unknown period")
	f("/api/v1/series?from=-3h&step=7m&compare=1d", "compare", "not a whole number of steps")
	f("/api/v1/series?from=-20d&step=1m", "from", "minute tier")
	f("/api/v1/series?by=app", "key", "or n")
	f("/api/v1/series?n=3", "by", "n needs by")
	f("/api/v1/series?by=app&n=3&key=https", "n", "exclude each other")
	f("/api/v1/top?by=app&from=-2000d&to=-1999d", "from", "beyond the retention of the day tier")

	// A 30-day hourly report is within the hour tier's retention.
	var r reportResponse
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/report?by=app&step=1h&from=2026-10-01T00:00:00Z&to=2026-10-31T00:00:00Z", &r))
}

type fixedRetention map[store.Tier]time.Duration

func (f fixedRetention) Retention(t store.Tier) time.Duration { return f[t] }

func TestSeriesStackedAndCompare(t *testing.T) {
	fx, recs := newReportFixture()
	h := newTestAPI(t, recs...)
	q := url.Values{"by": {"app"}, "n": {"1"}, "from": {fx.from.Add(time.Hour).Format(time.RFC3339)},
		"to": {fx.to.Format(time.RFC3339)}, "step": {"5m"}, "compare": {"prev"}}
	var s seriesResponse
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/series?"+q.Encode(), &s))
	require.Len(t, s.Stacked, 2)
	require.Equal(t, "https", s.Stacked[0].Key)
	require.Equal(t, "other", s.Stacked[1].Key)
	https, ssh := perStep(fx.https, 5*time.Minute), perStep(fx.ssh, 5*time.Minute)
	require.Len(t, s.Points, 12)
	for i, p := range s.Points {
		require.Equal(t, https[12+i], s.Stacked[0].Points[i].Bytes)
		require.Equal(t, ssh[12+i], s.Stacked[1].Points[i].Bytes, "other = total - https")
		require.Equal(t, https[12+i]+ssh[12+i], p.Bytes)
		// The earlier period's point i is the same step an hour before.
		require.Equal(t, fx.from.Add(time.Duration(i)*5*time.Minute).Format(time.RFC3339), s.Compare.Points[i].T)
		require.Equal(t, https[i], s.Compare.Stacked[0].Points[i].Bytes)
		require.Equal(t, ssh[i], s.Compare.Stacked[1].Points[i].Bytes)
	}
}

// getCSV fetches path as CSV (by format=csv or by the Accept header) and parses it.
func getCSV(t *testing.T, h http.Handler, path string, byAccept bool) []map[string]string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if byAccept {
		req.Header.Set("Accept", "text/csv")
	} else {
		req.URL.RawQuery += "&format=csv"
	}
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	require.Equal(t, http.StatusOK, rr.Code, rr.Body.String())
	require.Equal(t, "text/csv; charset=utf-8", rr.Header().Get("Content-Type"))
	require.True(t, strings.HasSuffix(rr.Body.String(), "\r\n"), "RFC 4180 line ends")
	recs, err := csv.NewReader(rr.Body).ReadAll()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(recs), 2)
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// eqNum checks a CSV cell holds the JSON's number, exactly.
func eqNum(t *testing.T, want any, cell string, what string) {
	t.Helper()
	switch w := want.(type) {
	case uint64:
		got, err := strconv.ParseUint(cell, 10, 64)
		require.NoError(t, err, what)
		require.Equal(t, w, got, what)
	case float64:
		got, err := strconv.ParseFloat(cell, 64)
		require.NoError(t, err, what)
		require.Equal(t, w, got, what)
	}
}

// Every figure of the CSV answers equals the JSON's.
func TestCSVEqualsJSON(t *testing.T) {
	fx, recs := newReportFixture()
	for _, r := range slices.Clone(recs) {
		r.Received += (24 * time.Hour).Milliseconds()
		recs = append(recs, r)
	}
	h := newTestAPI(t, recs...)
	span := url.Values{"from": {fx.from.Add(24 * time.Hour).Format(time.RFC3339)}, "to": {fx.to.Add(24 * time.Hour).Format(time.RFC3339)}}
	figures := func(what string, j reportFigures, c map[string]string, prefix string) {
		t.Helper()
		eqNum(t, j.Bytes, c[prefix+"bytes"], what)
		eqNum(t, j.Packets, c[prefix+"packets"], what)
		eqNum(t, j.Flows, c[prefix+"flows"], what)
		eqNum(t, j.Bps, c[prefix+"bps"], what)
		eqNum(t, j.Pps, c[prefix+"pps"], what)
		eqNum(t, j.Share, c[prefix+"share"], what)
		eqNum(t, j.Error, c[prefix+"error"], what)
		eqNum(t, j.PeakBps, c[prefix+"peak_bps"], what)
		eqNum(t, j.P95Bps, c[prefix+"p95_bps"], what)
		eqNum(t, j.PeakBpsError, c[prefix+"peak_bps_error"], what)
		eqNum(t, j.P95BpsError, c[prefix+"p95_bps_error"], what)
		require.Equal(t, j.PeakTime, c[prefix+"peak_time"], what)
		require.Equal(t, strconv.FormatBool(j.Exact), c[prefix+"exact"], what)
	}
	for i, byAccept := range []bool{false, true} {
		q := url.Values{"by": {"app"}, "step": {"5m"}, "compare": {"1d"}, "from": span["from"], "to": span["to"]}
		var r reportResponse
		require.Equal(t, http.StatusOK, get(t, h, "/api/v1/report?"+q.Encode(), &r))
		rows := getCSV(t, h, "/api/v1/report?"+q.Encode(), byAccept)
		all := append(slices.Clone(r.Rows), r.Other, r.Total)
		require.Len(t, rows, len(all))
		for k, j := range all {
			c := rows[k]
			require.Equal(t, j.Key, c["key"])
			require.Equal(t, j.Label, c["label"])
			require.Equal(t, r.From, c["from"])
			require.Equal(t, "1", c["counts_per_flow"], j.Key)
			figures(j.Key, j.reportFigures, c, "")
			figures(j.Key+" previous", *j.Previous, c, "prev_")
			for name, d := range map[string]*float64{"total": j.Delta.Total, "avg_bps": j.Delta.Avg, "peak_bps": j.Delta.Peak, "p95_bps": j.Delta.P95} {
				if d == nil {
					require.Empty(t, c["delta_"+name+"_pct"], "no delta from zero")
					continue
				}
				eqNum(t, *d, c["delta_"+name+"_pct"], j.Key+" delta "+name)
			}
		}

		q = url.Values{"by": {"ip"}, "n": {"3"}, "from": span["from"], "to": span["to"]}
		var top topResponse
		require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &top))
		rows = getCSV(t, h, "/api/v1/top?"+q.Encode(), byAccept)
		tops := append(slices.Clone(top.Rows), topRow{Key: "other", amounts: top.Other.amounts}, topRow{Key: "total", amounts: top.Total.amounts})
		require.Len(t, rows, len(tops))
		for k, j := range tops {
			c := rows[k]
			require.Equal(t, j.Key, c["key"])
			require.Equal(t, "2", c["counts_per_flow"], "ip: a flow at both ends")
			for name, v := range map[string]any{"bytes": j.Bytes, "packets": j.Packets, "flows": j.Flows, "bps": j.Bps, "pps": j.Pps, "share": j.Share, "error": j.Error} {
				eqNum(t, v, c[name], j.Key+" "+name)
			}
		}

		q = url.Values{"by": {"app"}, "n": {"1"}, "step": {"5m"}, "compare": {"1d"}, "from": span["from"], "to": span["to"]}
		var s seriesResponse
		require.Equal(t, http.StatusOK, get(t, h, "/api/v1/series?"+q.Encode(), &s))
		rows = getCSV(t, h, "/api/v1/series?"+q.Encode(), byAccept)
		type named struct {
			name      string
			pts, prev []seriesPoint
		}
		var want []named
		for k, st := range s.Stacked {
			want = append(want, named{st.Key, st.Points, s.Compare.Stacked[k].Points})
		}
		want = append(want, named{"total", s.Points, s.Compare.Points})
		k := 0
		for _, w := range want {
			for p := range w.pts {
				c := rows[k]
				k++
				require.Equal(t, w.name, c["series"])
				require.Equal(t, "1", c["counts_per_flow"])
				for prefix, pt := range map[string]seriesPoint{"": w.pts[p], "prev_": w.prev[p]} {
					require.Equal(t, pt.T, c[prefix+"t"])
					for name, v := range map[string]any{"bytes": pt.Bytes, "packets": pt.Packets, "flows": pt.Flows, "bps": pt.Bps, "pps": pt.Pps, "error": pt.Error} {
						eqNum(t, v, c[prefix+name], w.name+" "+prefix+name)
					}
				}
			}
		}
		require.Equal(t, k, len(rows), "case %d", i)
	}
}
