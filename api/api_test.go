package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/alerts"
	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
)

var now = time.Date(2026, 11, 1, 10, 30, 0, 0, time.UTC)

type fakeExporters []decode.ExporterStats

func (f fakeExporters) Exporters() []decode.ExporterStats { return f }

// countingReloader counts reloads; the real one (cmd/tmsd) is tested there
// against a configuration file.
type countingReloader struct{ n *int }

func (r countingReloader) Reload() (ReloadResult, error) {
	*r.n++
	return ReloadResult{From: now.Format(time.RFC3339), Changed: []string{"apps"}}, nil
}
func (r countingReloader) RuleChanges(from, to time.Time) []time.Time { return nil }

// Forget reports whether addr is listed, and keeps it: the auth matrix
// deletes the same exporter under every token. A real decoder is forgotten
// in TestForgetExporter.
func (f fakeExporters) Forget(addr netip.Addr) bool {
	for _, e := range f {
		if e.Address == addr {
			return true
		}
	}
	return false
}

// newTestAPI serves an API over an in-memory store and a running aggregator fed with recs.
func newTestAPI(t *testing.T, recs ...flow.Record) http.Handler {
	t.Helper()
	return newTestAPIWith(t, DefaultConfiguration(), nil, recs...).Handler()
}

// newTestAPIWith builds an API with cfg, over deps that tweak may change.
func newTestAPIWith(t *testing.T, cfg Configuration, tweak func(*Dependencies), recs ...flow.Record) *API {
	t.Helper()
	return newTestAPIFull(t, cfg, nil, tweak, false, recs...)
}

// newTestAPIAgg is newTestAPIWith over an aggregator whose configuration
// aggTweak changes, with every minute flushed to the store: its tables cut
// as the configuration says (open minutes are read whole).
func newTestAPIAgg(t *testing.T, cfg Configuration, aggTweak func(*aggregate.Configuration), tweak func(*Dependencies), recs ...flow.Record) *API {
	t.Helper()
	return newTestAPIFull(t, cfg, aggTweak, tweak, true, recs...)
}

func newTestAPIFull(t *testing.T, cfg Configuration, aggTweak func(*aggregate.Configuration), tweak func(*Dependencies), flush bool, recs ...flow.Record) *API {
	t.Helper()
	scfg := store.DefaultConfiguration()
	scfg.InMemory = true
	scfg.Retention[store.TierMinute] = 100 * 365 * 24 * time.Hour
	st, err := store.New(scfg, store.Dependencies{})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })
	cls, err := apps.New(nil)
	require.NoError(t, err)
	acfg := aggregate.DefaultConfiguration()
	acfg.FlushInterval = time.Hour
	if aggTweak != nil {
		aggTweak(&acfg)
	}
	r := ring.NewBroadcast(1024, aggregate.Shards(acfg))
	agg, err := aggregate.New(acfg, aggregate.Dependencies{Ring: r, Store: st, Classifier: cls, Clock: func() time.Time { return now }})
	require.NoError(t, err)
	require.NoError(t, agg.Start())
	t.Cleanup(func() { require.NoError(t, agg.Stop()) })
	for i := range recs {
		require.True(t, r.Push(&recs[i]))
	}
	require.NoError(t, agg.Sync(10*time.Second))
	if flush {
		require.NoError(t, agg.FlushAll())
	}
	deps := Dependencies{
		Engine: query.New(st, agg), Corrections: agg, Ports: cls, Clock: func() time.Time { return now },
		Exporters: fakeExporters{{Address: netip.MustParseAddr("192.0.2.1"), Protocols: []string{"ipfix"}, Datagrams: 3,
			Errors: map[string]uint64{"malformed": 1}}},
		Reloader: countingReloader{new(int)},
	}
	ev, err := alerts.New(alerts.DefaultConfiguration(), alerts.Dependencies{Source: deps.Engine, Store: st, Clock: deps.Clock,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	deps.Alerts = ev
	if tweak != nil {
		tweak(&deps)
	}
	a, err := New(cfg, deps)
	require.NoError(t, err)
	return a
}

func get(t *testing.T, h http.Handler, path string, into any) int {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, path, nil))
	require.Equal(t, "application/json", rr.Header().Get("Content-Type")[:16], rr.Body.String())
	require.NoError(t, json.Unmarshal(rr.Body.Bytes(), into), rr.Body.String())
	return rr.Code
}

func TestBadParametersAre400NamingTheParameter(t *testing.T) {
	h := newTestAPI(t)
	f := func(query, param string) {
		t.Helper()
		var body map[string]string
		code := get(t, h, "/api/v1/top?"+query, &body)
		require.Equal(t, http.StatusBadRequest, code, query)
		require.Equal(t, param, body["parameter"], query)
		require.Contains(t, body["error"], `"`+param+`"`, query)
	}
	f("by=nope", "by")
	f("", "by")
	f("by=app&n=-1", "n")
	f("by=app&n=abc", "n")
	f("by=app&n=1000000", "n")
	f("by=app&from=yesterday-ish", "from")
	f("by=app&to=tomorrow", "to")
	// A range the wrong way round names the end the user set (from, read
	// first, stands), or from when to is the default (now).
	f("by=app&from=-1h&to=-2h", "to")
	f("by=app&from=now&to=-1h", "to")
	f("by=app&to=-2h", "to")
	f("by=app&from=2026-11-01T10:00:00Z&to=2026-11-01T09:00:00Z", "to")
	f("by=app&from=2026-11-01T11:00:00Z", "from")
	f("by=app&metric=octets", "metric")
	f("by=app&exporter=router1", "exporter")
	f("by=app&proto=foo", "proto")
	f("by=app&exporter=192.0.2.1&proto=6", "proto")

	var body map[string]string
	require.Equal(t, http.StatusBadRequest, get(t, h, "/api/v1/series?step=30s", &body))
	require.Equal(t, "step", body["parameter"])
	require.Equal(t, http.StatusBadRequest, get(t, h, "/api/v1/series?by=dstport&key=443", &body))
	require.Equal(t, "key", body["parameter"])
}

func rec(src, dst string, sport, dport uint16, bytes uint64, at time.Time) flow.Record {
	a := func(s string) flow.Addr { return flow.AddrFrom(netip.MustParseAddr(s)) }
	return flow.Record{Exporter: a("192.0.2.1"), SrcAddr: a(src), DstAddr: a(dst), SrcPort: sport, DstPort: dport,
		Proto: 6, Bytes: bytes, Packets: bytes / 100, Received: at.UnixMilli()}
}

func TestTopAndSeries(t *testing.T) {
	m := now.Add(-5 * time.Minute)
	h := newTestAPI(t,
		rec("10.0.0.1", "10.0.0.2", 40000, 443, 60_000, m),
		rec("10.0.0.3", "10.0.0.2", 40001, 5432, 30_000, m),
		rec("10.0.0.3", "10.0.0.4", 40002, 22, 6_000, m.Add(time.Minute)),
	)
	var top topResponse
	q := url.Values{"by": {"dstport"}, "from": {m.Format(time.RFC3339)}, "to": {m.Add(2 * time.Minute).Format(time.RFC3339)}, "n": {"2"}}
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &top))
	require.Equal(t, "2026-11-01T10:25:00Z", top.From)
	require.Equal(t, "2026-11-01T10:27:00Z", top.To)
	require.True(t, top.Exact)
	require.Len(t, top.Rows, 2)
	require.Equal(t, "443/tcp", top.Rows[0].Key)
	require.Equal(t, "443/tcp https", top.Rows[0].Label)
	require.EqualValues(t, 60_000, top.Rows[0].Bytes)
	require.InDelta(t, 60_000*8/120.0, top.Rows[0].Bps, 1e-9)
	require.InDelta(t, 0.625, top.Rows[0].Share, 1e-9)
	require.Equal(t, "5432/tcp postgresql", top.Rows[1].Label)
	require.EqualValues(t, 6_000, top.Other.Bytes)
	require.EqualValues(t, 96_000, top.Total.Bytes)
	require.EqualValues(t, 3, top.Total.Flows)

	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?by=app&from=-1h&proto=tcp", &top))
	require.Equal(t, "https", top.Rows[0].Key)
	require.Equal(t, "proto=6", top.Scope)

	var s seriesResponse
	q = url.Values{"from": {m.Format(time.RFC3339)}, "to": {m.Add(2 * time.Minute).Format(time.RFC3339)}, "step": {"60s"}}
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/series?"+q.Encode(), &s))
	require.Len(t, s.Points, 2)
	require.EqualValues(t, 90_000, s.Points[0].Bytes)
	require.InDelta(t, 90_000*8/60.0, s.Points[0].Bps, 1e-9)
	require.EqualValues(t, 6_000, s.Points[1].Bytes)
	q.Set("by", "dstip")
	q.Set("key", "10.0.0.4")
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/series?"+q.Encode(), &s))
	require.EqualValues(t, 0, s.Points[0].Bytes)
	require.EqualValues(t, 6_000, s.Points[1].Bytes)

	var ex struct{ Exporters []exporterJSON }
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/exporters", &ex))
	require.Equal(t, "192.0.2.1", ex.Exporters[0].Address)
	require.EqualValues(t, 1, ex.Exporters[0].Errors["malformed"])
}

func TestParseTime(t *testing.T) {
	f := func(in string, want time.Time) {
		t.Helper()
		got, err := parseTime(in, now)
		require.NoError(t, err)
		require.True(t, want.Equal(got), "%s: %s", in, got)
	}
	f("now", now)
	f("-15m", now.Add(-15*time.Minute))
	f("-24h", now.Add(-24*time.Hour))
	f("-7d", now.Add(-7*24*time.Hour))
	f("1793527200", time.Unix(1793527200, 0))
	f("2026-11-01T09:00:00+01:00", time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC))
	for _, bad := range []string{"yesterday-ish", "-", "-0m", "--5m", ""} {
		_, err := parseTime(bad, now)
		require.Error(t, err, bad)
	}
}

// top, report and a stacked series say how many keys a flow counts under:
// for ip and port every flow counts at both ends, so the rows and other add
// up to twice the total in bytes, packets and flows, and their shares (of the
// total, each flow once) to 2; for dstport to the total and 1.
func TestCountsPerFlow(t *testing.T) {
	m := now.Add(-10 * time.Minute)
	ntp := rec("10.0.0.7", "10.0.0.8", 123, 123, 900, m.Add(time.Minute)) // the same key at both ends
	ntp.Proto = 17
	h := newTestAPI(t,
		rec("10.0.0.1", "10.0.0.2", 40000, 443, 60_000, m),
		rec("10.0.0.3", "10.0.0.2", 40001, 5432, 30_000, m),
		rec("10.0.0.5", "10.0.0.5", 40002, 22, 6_000, m.Add(time.Minute)), // an address talking to itself
		ntp,
	)
	span := url.Values{"from": {m.Format(time.RFC3339)}, "to": {m.Add(5 * time.Minute).Format(time.RFC3339)}}
	sum := func(rows []amounts) (c amounts) {
		for _, r := range rows {
			c.Bytes, c.Packets, c.Flows, c.Share = c.Bytes+r.Bytes, c.Packets+r.Packets, c.Flows+r.Flows, c.Share+r.Share
		}
		return c
	}
	f := func(by string, k int) {
		t.Helper()
		for _, n := range []string{"1", "2", "100"} {
			q := url.Values{"by": {by}, "n": {n}, "from": span["from"], "to": span["to"]}
			var top topResponse
			require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &top))
			require.Equal(t, k, top.CountsPerFlow, by)
			all := []amounts{top.Other.amounts}
			for _, r := range top.Rows {
				all = append(all, r.amounts)
			}
			got, tot := sum(all), top.Total
			require.Equal(t, []uint64{uint64(k) * tot.Bytes, uint64(k) * tot.Packets, uint64(k) * tot.Flows},
				[]uint64{got.Bytes, got.Packets, got.Flows}, "top by %s n=%s: rows + other = %d × total", by, n, k)
			require.InDelta(t, float64(k), got.Share, 1e-12, "top by %s n=%s: shares", by, n)
			require.EqualValues(t, 1, top.Total.Share)
			if n == "100" {
				require.Zero(t, top.Other.Bytes+top.Other.Packets+top.Other.Flows, "every key listed")
			}

			q.Set("step", "1m")
			var rep reportResponse
			require.Equal(t, http.StatusOK, get(t, h, "/api/v1/report?"+q.Encode(), &rep))
			require.Equal(t, k, rep.CountsPerFlow, by)
			all = []amounts{rep.Other.amounts}
			for _, r := range rep.Rows {
				all = append(all, r.amounts)
			}
			got = sum(all)
			require.Equal(t, []uint64{uint64(k) * rep.Total.Bytes, uint64(k) * rep.Total.Packets, uint64(k) * rep.Total.Flows},
				[]uint64{got.Bytes, got.Packets, got.Flows}, "report by %s n=%s", by, n)
			require.InDelta(t, float64(k), got.Share, 1e-12, "report by %s n=%s: shares", by, n)

			var s seriesResponse
			require.Equal(t, http.StatusOK, get(t, h, "/api/v1/series?"+q.Encode(), &s))
			require.Equal(t, k, s.CountsPerFlow, by)
			for i, p := range s.Points {
				var b, pk, fl uint64
				for _, st := range s.Stacked {
					b, pk, fl = b+st.Points[i].Bytes, pk+st.Points[i].Packets, fl+st.Points[i].Flows
				}
				require.Equal(t, []uint64{uint64(k) * p.Bytes, uint64(k) * p.Packets, uint64(k) * p.Flows}, []uint64{b, pk, fl},
					"series by %s n=%s step %d: stacked keys + other = %d × total", by, n, i, k)
			}
		}
	}
	f("ip", 2)
	f("port", 2)
	f("dstport", 1)
	f("srcip", 1)
	f("app", 1)

	// One key's series and the scope's own say nothing of it.
	var raw map[string]any
	q := url.Values{"by": {"ip"}, "key": {"10.0.0.2"}, "step": {"1m"}, "from": span["from"], "to": span["to"]}
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/series?"+q.Encode(), &raw))
	require.NotContains(t, raw, "counts_per_flow")
	// In top and report it is always there.
	q = url.Values{"by": {"dstip"}, "from": span["from"], "to": span["to"]}
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &raw))
	require.EqualValues(t, 1, raw["counts_per_flow"])
}
