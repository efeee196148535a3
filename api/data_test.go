package api

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// dataAPI is an API over a started in-memory store and aggregator, both
// returned so that a test can store intervals and close minutes itself.
func dataAPI(t *testing.T) (http.Handler, *store.Store, *aggregate.Aggregator, *ring.Broadcast) {
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
	acfg.FlushInterval = time.Hour // the test closes minutes itself
	r := ring.NewBroadcast(1024, aggregate.Shards(acfg))
	agg, err := aggregate.New(acfg, aggregate.Dependencies{Ring: r, Store: st, Classifier: cls, Clock: func() time.Time { return now }})
	require.NoError(t, err)
	require.NoError(t, agg.Start())
	t.Cleanup(func() { require.NoError(t, agg.Stop()) })
	a, err := New(DefaultConfiguration(), Dependencies{Engine: query.New(st, agg, query.WithProgress(rolledUpTo(now))), Exporters: fakeExporters{}, Ports: cls,
		Clock: func() time.Time { return now }})
	require.NoError(t, err)
	return a.Handler(), st, agg, r
}

// rolledUpTo is a rollup that has rolled up every hour and day before t: the
// test stores the hours itself.
type rolledUpTo time.Time

func (r rolledUpTo) Rolled(store.Tier) time.Time { return time.Time(r) }

func TestDataSaysWhereTheDataIs(t *testing.T) {
	h, st, agg, r := dataAPI(t)
	ask := func() map[string]any {
		t.Helper()
		var body map[string]any
		require.Equal(t, http.StatusOK, get(t, h, "/api/v1/data", &body))
		return body
	}

	// An empty store: no edges, no tier, nothing open.
	require.Equal(t, map[string]any{"from": nil, "to": nil, "tiers": map[string]any{}}, ask())

	// A minute stored (closed), a later one still open in the aggregator,
	// and an hour of the day before, as a rollup leaves after the minutes expired.
	stored, open := now.Add(-10*time.Minute).Truncate(time.Minute), now.Add(-30*time.Second).Truncate(time.Minute)
	for _, at := range []time.Time{stored, open} {
		rc := rec("10.0.0.1", "10.0.0.2", 40000, 443, 1000, at.Add(10*time.Second))
		require.True(t, r.Push(&rc))
	}
	require.NoError(t, agg.Sync(10*time.Second))
	require.NoError(t, agg.FlushBefore(now))
	hour := now.Add(-26 * time.Hour).Truncate(time.Hour)
	c := topn.Counters{Bytes: 5, Packets: 1, Flows: 1}
	// And today's day, rolled up early: its end (midnight tonight) is no
	// end of the data, the minutes inside it are.
	day := now.Truncate(24 * time.Hour)
	_, _, err := st.Put(now, []store.Interval{{Tier: store.TierHour, Start: hour, Total: c,
		Tables: map[topn.Dim]*topn.Table{topn.DimApp: {Total: c, Entries: []topn.Entry{{Key: topn.AppKey("ssh"), Value: c}}}}},
		{Tier: store.TierDay, Start: day, Total: c}})
	require.NoError(t, err)

	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	span := func(a, b time.Time) map[string]any { return map[string]any{"from": rfc(a), "to": rfc(b)} }
	require.Equal(t, map[string]any{
		"from": rfc(hour), "to": rfc(open.Add(time.Minute)),
		"tiers": map[string]any{
			"minute": span(stored, stored.Add(time.Minute)),
			"hour":   span(hour, hour.Add(time.Hour)),
			"day":    span(day, day.Add(24*time.Hour)),
		},
		"open": span(open, open.Add(time.Minute)),
	}, ask())

	// The edges are a range the other endpoints take as from= and to=, and it holds the traffic.
	body := ask()
	var top topResponse
	q := url.Values{"by": {"app"}, "from": {body["from"].(string)}, "to": {body["to"].(string)}}
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &top))
	require.Equal(t, uint64(2005), top.Total.Bytes, "both minutes and the hour")
}
